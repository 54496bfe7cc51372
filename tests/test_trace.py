"""Trace JSONL: validation with line numbers, crash-safe writer, resume after a killed run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import pytest

from trimpomdp.decode.trace import TraceWarning, TraceWriter, read_run, read_traces, validate_record
from trimpomdp.errors import FormatError, TrimError


def make_record(pid="0", policy="threshold:0.5", correct=True, n_steps=2):
    steps = []
    for k in range(n_steps):
        regen = k % 2 == 1
        steps.append({"index": k + 1, "text": f"s{k}", "model": "strong" if regen else "weak",
                      "weak_text": f"w{k}", "weak_tokens": 10, "strong_tokens": 12 if regen else 0,
                      "prm_score": 0.3 if regen else 0.9, "observation": [1.0, 0.9], "obs_bin": 3,
                      "belief_before": [0.9, 0.05, 0.05], "belief_after": [0.8, 0.15, 0.05],
                      "action": "regenerate" if regen else "keep", "q_keep": 1.0, "q_regenerate": 0.5})
    return {"format": "trimpomdp.trace", "version": 2, "id": pid, "question": "q", "reference": "1",
            "policy": policy, "models": {"weak": "w", "strong": "s", "prm": "p"},
            "solution": "s0\n\ns1", "answer": "1", "correct": correct,
            "tokens": {"weak_kept": 10, "weak_discarded": 10 * (n_steps // 2), "strong": 12 * (n_steps // 2)},
            "finish": "answer", "error": None, "seconds": 0.5, "steps": steps}


def test_roundtrip_with_header(tmp_path):
    path = tmp_path / "run.jsonl"
    with TraceWriter(path, header={"policy": "weak"}) as w:
        for i in range(3):
            w.write(make_record(str(i)))
        assert w.done_ids() == {"0", "1", "2"}
    run = read_run(path)
    assert run.header["settings"] == {"policy": "weak"}
    assert [r["id"] for r in run.records] == ["0", "1", "2"] and run.policy == "threshold:0.5"
    assert read_traces([path, ]) == run.records


@pytest.mark.parametrize("mutate,field", [
    (lambda r: r.pop("tokens"), "tokens"),
    (lambda r: r.update(finish="done"), "finish"),
    (lambda r: r.update(version=99), "version"),
    (lambda r: r["steps"][1].update(action="skip"), "steps[1].action"),
    (lambda r: r["steps"][0].update(belief_after=[0.5, 0.6, 0.1]), "steps[0].belief_after"),
    (lambda r: r["steps"][0].update(model="medium"), "steps[0].model"),
    (lambda r: r["tokens"].update(strong=-1), "tokens.strong"),
    (lambda r: r.update(correct="yes"), "correct"),
])
def test_invalid_records_name_line_and_field(tmp_path, mutate, field):
    bad = make_record("1")
    mutate(bad)
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(make_record("0")) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(FormatError) as exc:
        read_traces([path])
    assert exc.value.line == 2 and field in str(exc.value)
    assert "\n" not in str(exc.value)


def test_invalid_json_mid_file_and_duplicates(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(make_record("0")) + "\n{broken\n" + json.dumps(make_record("1")) + "\n")
    with pytest.raises(FormatError, match=r"x.jsonl:2: invalid JSON"):
        read_traces(path)
    path.write_text(json.dumps(make_record("0")) + "\n" + json.dumps(make_record("0")) + "\n")
    with pytest.raises(FormatError, match="duplicate id"):
        read_traces(path)
    with pytest.raises(TrimError, match="not found"):
        read_traces(tmp_path / "none.jsonl")


def test_truncated_last_line_dropped_on_read_and_resume(tmp_path):
    path = tmp_path / "run.jsonl"
    good = json.dumps(make_record("0")) + "\n"
    path.write_text(good + json.dumps(make_record("1"))[:40])
    with pytest.warns(TraceWarning, match="truncated"):
        assert [r["id"] for r in read_traces(path)] == ["0"]
    with pytest.warns(TraceWarning):
        w = TraceWriter(path, resume=True)
    assert w.done_ids() == {"0"}
    w.write(make_record("1"))
    w.close()
    assert path.read_text().count("\n") == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["id"] for r in read_traces(path)] == ["0", "1"]


def test_resume_keeps_complete_unterminated_line_and_fresh_run_truncates(tmp_path):
    path = tmp_path / "run.jsonl"
    path.write_text(json.dumps(make_record("0")))
    with TraceWriter(path, resume=True) as w:
        assert w.done_ids() == {"0"}
        with pytest.raises(TrimError, match="already in the trace"):
            w.write(make_record("0"))
        w.write(make_record("1"))
    assert len(read_traces(path)) == 2
    with TraceWriter(path, resume=False) as w:
        assert w.done_ids() == set()
    assert path.read_text() == ""


def test_writer_rejects_invalid_and_nan_records(tmp_path):
    path = tmp_path / "run.jsonl"
    with TraceWriter(path) as w:
        rec = make_record("0")
        rec["steps"][0]["prm_score"] = float("nan")
        with pytest.raises(TrimError, match="prm_score"):
            w.write(rec)
        with pytest.raises(FormatError, match="finish"):
            w.write({**make_record("1"), "finish": "?"})
        w.write(make_record("2"))
    assert [r["id"] for r in read_traces(path)] == ["2"]


def test_killed_writer_loses_nothing_written(tmp_path):
    """A process killed right after write() returns keeps every written record (flush + fsync)."""
    path = tmp_path / "run.jsonl"
    code = (
        "import os, sys, json\n"
        "from trimpomdp.decode.trace import TraceWriter\n"
        f"rec = json.loads({json.dumps(json.dumps(make_record('x')))})\n"
        f"w = TraceWriter({str(path)!r})\n"
        "for i in range(5):\n"
        "    rec['id'] = str(i); w.write(rec)\n"
        "w._fh.write('{\"partial\": '); w._fh.flush()\n"
        "os._exit(9)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ}, timeout=60)
    assert proc.returncode == 9
    with pytest.warns(TraceWarning):
        w = TraceWriter(path, resume=True)
    assert w.done_ids() == {"0", "1", "2", "3", "4"}
    w.close()


def test_validate_record_accepts_nulls():
    rec = make_record("0", n_steps=0)
    rec.update(answer=None, correct=None, reference=None, finish="error", error="PRM returned NaN")
    validate_record(rec)


def _errored(pid):
    rec = make_record(pid, n_steps=1)
    rec.update(finish="error", error="PRM failed: http://127.0.0.1:1/score: HTTP 500", answer=None, correct=None)
    return rec


def test_resume_drops_failed_records_so_each_problem_has_one_final_record(tmp_path):
    path = tmp_path / "run.jsonl"
    with TraceWriter(path, header={"policy": "threshold:0.5"}) as w:
        for rec in (make_record("0"), _errored("1"), make_record("2"), _errored("3")):
            w.write(rec)
    with TraceWriter(path, resume=True, header={"policy": "threshold:0.5"}, retry_errors=False) as w:
        assert w.done_ids() == {"0", "1", "2", "3"} and w.error_ids() == {"1", "3"}
    assert len(read_run(path).records) == 4  # kept as they were
    with TraceWriter(path, resume=True, header={"policy": "threshold:0.5"}) as w:
        assert w.done_ids() == {"0", "2"} and w.error_ids() == set()
        w.write(make_record("3"))
        w.write(_errored("1"))  # failed again: one record, still an error
    run = read_run(path)
    assert run.header["settings"] == {"policy": "threshold:0.5"}
    assert [r["id"] for r in run.records] == ["0", "2", "3", "1"]
    assert [r["finish"] for r in run.records] == ["answer", "answer", "answer", "error"]
    assert not [p for p in tmp_path.iterdir() if p.name != "run.jsonl"]  # no temporary file left


def test_resume_with_other_settings_is_refused_naming_the_field(tmp_path):
    from trimpomdp.decode.trace import check_resume_settings

    path = tmp_path / "run.jsonl"
    old = {"policy": "threshold:0.5", "weak": "smollm2", "seed": 0}
    with TraceWriter(path, header=old) as w:
        w.write(make_record("0"))
    before = path.read_bytes()
    new = {**old, "weak": "http://127.0.0.1:9/v1?model=x"}
    for check in (lambda: TraceWriter(path, resume=True, header=new, compare=("policy", "weak")),
                  lambda: check_resume_settings(path, new, ("policy", "weak"))):
        with pytest.raises(TrimError, match=r"cannot resume: this run's weak is 'http://127.0.0.1:9/v1\?model=x' "
                                            r"but the trace was written with weak 'smollm2'"):
            check()
    assert path.read_bytes() == before
    # fields not compared, or not recorded in the old header, do not matter; compare=() allows mixing
    with TraceWriter(path, resume=True, header={**old, "seed": 1, "extra": 2}, compare=("policy", "weak")) as w:
        w.write(make_record("1"))
    with TraceWriter(path, resume=True, header=new, compare=()) as w:
        w.write(make_record("2", policy="weak"))
    assert [r["id"] for r in read_run(path).records] == ["0", "1", "2"]
    # a header-less file is compared on its records' policy
    bare = tmp_path / "bare.jsonl"
    bare.write_text(json.dumps(make_record("0")) + "\n")
    with pytest.raises(TrimError, match="this run's policy is 'weak'"):
        TraceWriter(bare, resume=True, header={"policy": "weak"}, compare=("policy",))


def test_resume_of_a_file_without_records_starts_afresh_under_the_new_header(tmp_path):
    path = tmp_path / "run.jsonl"
    TraceWriter(path, header={"policy": "weak"}).close()
    with TraceWriter(path, resume=True, header={"policy": "strong"}, compare=("policy",)) as w:
        w.write(make_record("0", policy="strong"))
    run = read_run(path)
    assert run.header["settings"] == {"policy": "strong"} and len(run.records) == 1
