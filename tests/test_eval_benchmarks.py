"""`eval` groups runs by the benchmark their trace header names, and re-grades with the header's grading."""
from __future__ import annotations

import json

import pytest

from trimpomdp.analysis.runs import evaluate, evaluation_text
from trimpomdp.cli.main import main
from trimpomdp.decode.problems import load_problems
from trimpomdp.decode.trace import TraceWriter, read_run
from trimpomdp.errors import FormatError, TrimError
from trimpomdp.pipeline import _benchmark_settings


def _record(pid, policy, correct, strong, answer="1", reference="1"):
    regen = strong > 0
    step = {"index": 1, "text": "s", "model": "strong" if regen else "weak", "weak_text": "w", "weak_tokens": 10,
            "strong_tokens": strong, "prm_score": 0.5, "observation": [1.0, 0.5], "obs_bin": 5,
            "belief_before": [0.8, 0.1, 0.1], "belief_after": [0.7, 0.2, 0.1],
            "action": "regenerate" if regen else "keep", "q_keep": 1.0, "q_regenerate": 0.5}
    return {"id": str(pid), "question": f"q{pid}", "reference": reference, "policy": policy, "models": None,
            "solution": "...", "answer": answer, "correct": correct,
            "tokens": {"weak_kept": 0 if regen else 10, "weak_discarded": 10 if regen else 0, "strong": strong},
            "finish": "answer", "error": None, "seconds": 0.1, "steps": [step]}


def _run(path, policy, n_correct, strong, settings=None, n=10):
    header = None if settings is False else {"policy": policy, **(settings or {})}
    with TraceWriter(path, header=header) as w:
        for i in range(n):
            w.write(_record(i, policy, i < n_correct, strong))
    return str(path)


@pytest.fixture()
def two_benchmarks(tmp_path):
    g = {"benchmark": "gsm8k_test", "answer_kind": "gsm8k"}
    o = {"benchmark": "olympiadbench", "answer_kind": "math"}
    return {
        "g_weak": _run(tmp_path / "g_weak.jsonl", "weak", 4, 0, g),
        "g_strong": _run(tmp_path / "g_strong.jsonl", "strong", 8, 100, g),
        "g_thr": _run(tmp_path / "g_thr.jsonl", "threshold:0.5", 6, 30, g),
        "o_weak": _run(tmp_path / "o_weak.jsonl", "weak", 1, 0, o),
        "o_strong": _run(tmp_path / "o_strong.jsonl", "strong", 5, 200, o),
        "o_pomdp": _run(tmp_path / "o_pomdp.jsonl", "pomdp:p.npz", 4, 50, o),
    }


def test_runs_are_grouped_by_benchmark_with_their_own_baselines(two_benchmarks):
    r = two_benchmarks
    # interleaved on the command line: the groups keep the order benchmarks are first met
    res = evaluate([r["g_weak"], r["o_weak"], r["g_strong"], r["o_strong"], r["g_thr"], r["o_pomdp"]])
    assert [b["benchmark"] for b in res["benchmarks"]] == ["gsm8k_test", "olympiadbench"]
    g, o = res["benchmarks"]
    assert g["baselines"] == {"weak": "g_weak", "strong": "g_strong"}
    assert o["baselines"] == {"weak": "o_weak", "strong": "o_strong"}
    pg = {p["name"]: p for p in g["runs"]}
    po = {p["name"]: p for p in o["runs"]}
    assert pg["g_thr"]["pgr"] == pytest.approx((0.6 - 0.4) / (0.8 - 0.4))
    assert pg["g_thr"]["norm_cost"] == pytest.approx(0.3)
    assert po["o_pomdp"]["pgr"] == pytest.approx((0.4 - 0.1) / (0.5 - 0.1))
    assert po["o_pomdp"]["norm_cost"] == pytest.approx(0.25)
    assert set(g["families"]) == {"threshold"} and set(o["families"]) == {"pomdp"}
    assert len(res["runs"]) == 6 and {p["benchmark"] for p in res["runs"]} == {"gsm8k_test", "olympiadbench"}
    text = evaluation_text(res)
    assert text.index("== gsm8k_test ==") < text.index("g_thr") < text.index("== olympiadbench ==") < \
        text.index("o_pomdp")


def test_one_benchmark_reads_as_before_and_names_it(two_benchmarks):
    r = two_benchmarks
    res = evaluate([r["g_weak"], r["g_strong"], r["g_thr"]])
    assert res["benchmark"] == "gsm8k_test" and "benchmarks" not in res
    assert res["baselines"] == {"weak": "g_weak", "strong": "g_strong"}
    assert evaluation_text(res).startswith("benchmark: gsm8k_test\n")


def test_older_traces_without_benchmark(tmp_path):
    # no header at all: one unnamed group; a header from before the benchmark field: its problems file's stem
    a = _run(tmp_path / "a.jsonl", "weak", 3, 0, settings=False)
    b = _run(tmp_path / "b.jsonl", "strong", 6, 10, settings=False)
    res = evaluate([a, b])
    assert res["benchmark"] is None and res["baselines"] == {"weak": "a", "strong": "b"}
    assert not evaluation_text(res).startswith("benchmark")
    c = _run(tmp_path / "c.jsonl", "weak", 3, 0, settings={"problems": "../shared/data/benchmarks/math500.jsonl"})
    assert read_run(c).benchmark == "math500"
    res = evaluate([c, b])  # a named and an unnamed run: still compared, as before
    assert res["benchmark"] == "math500" and res["baselines"] == {"weak": "c", "strong": "b"}


def test_explicit_baselines_serve_their_own_benchmark(two_benchmarks):
    r = two_benchmarks
    res = evaluate([r["g_thr"], r["o_pomdp"]], weak_run=r["o_weak"], strong_run=r["o_strong"])
    g, o = res["benchmarks"]
    assert g["baselines"] == {} and "weak-only and a strong-only run" in g["note"]
    assert o["baselines"] == {"weak": "o_weak", "strong": "o_strong"}
    with pytest.raises(TrimError, match=r"--weak-run .*o_weak.jsonl decoded olympiadbench, but the runs evaluated "
                                        "are on gsm8k_test"):
        evaluate([r["g_thr"], r["g_strong"]], weak_run=r["o_weak"])


def test_cli_eval_groups_and_refuses_a_plot_across_benchmarks(two_benchmarks, tmp_path, capsys):
    r = two_benchmarks
    assert main(["eval", r["g_weak"], r["g_strong"], r["o_weak"], r["o_strong"], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [b["benchmark"] for b in out["benchmarks"]] == ["gsm8k_test", "olympiadbench"]
    assert main(["eval", r["g_weak"], r["o_weak"], "--plot", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: --plot draws one benchmark's runs")
    assert not (tmp_path / "x.png").exists()


def test_recheck_grades_with_the_header_grading(tmp_path):
    path = tmp_path / "o.jsonl"
    settings = {"benchmark": "olympiadbench", "answer_kind": "math",
                "answer_kinds": {"1": "math;tol=0.1;unit=%", "2": "math;unit=km"}}
    with TraceWriter(path, header={"policy": "weak", **settings}) as w:
        w.write(_record(0, "weak", False, 0, answer="84, 69", reference="$69$,$84$"))
        w.write(_record(1, "weak", False, 0, answer="4.25", reference="4.2"))
        w.write(_record(2, "weak", False, 0, answer=r"\frac{41}{12}\text{ m}", reference=r"$\frac{41}{12}$"))
    res = evaluate([str(path)], recheck=True)
    assert res["runs"][0]["n_correct"] == 2  # the tuple and the tolerance; metres are not kilometres
    old = tmp_path / "old.jsonl"  # without the header's grading, 4.25 is not 4.2
    with TraceWriter(old) as w:
        w.write(_record(1, "weak", False, 0, answer="4.25", reference="4.2"))
    assert evaluate([str(old)], recheck=True)["runs"][0]["n_correct"] == 0


def test_a_bad_grading_in_a_header_is_a_format_error(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    with TraceWriter(path, header={"policy": "weak", "answer_kind": "math;fuzzy"}, validate=False) as w:
        w.write(_record(0, "weak", True, 0))
    with pytest.raises(FormatError, match=r"bad.jsonl:1: field 'settings.answer_kind': answer kind 'math;fuzzy': "
                                          "unknown option 'fuzzy'"):
        read_run(path)
    assert main(["eval", str(path)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_decode_header_records_the_benchmark_and_its_gradings(data_dir):
    probs, _ = load_problems(data_dir / "benchmarks" / "olympiadbench.jsonl")
    s = _benchmark_settings(probs)
    assert (s["benchmark"], s["layout"], s["answer_kind"]) == ("olympiadbench", "olympiadbench", "math")
    assert len(s["answer_kinds"]) == 8 and set(s["answer_kinds"].values()) >= {"math;tol=0.1;unit=%", "math;unit=km"}
    probs, _ = load_problems(data_dir / "benchmarks" / "minerva_math.jsonl", limit=3)
    assert _benchmark_settings(probs) == {"benchmark": "minerva_math", "layout": "minerva",
                                          "answer_kind": "math;sigfig"}
