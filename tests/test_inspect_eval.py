"""`trimpomdp inspect` and `trimpomdp eval` on hand-made trace files with known metrics."""
from __future__ import annotations

import json

import pytest

from trimpomdp.analysis.runs import evaluate
from trimpomdp.cli.main import main
from trimpomdp.decode.trace import TraceWriter


def _record(pid, policy, correct, strong, regen_steps=(), n_steps=3, answer="1", reference="1"):
    steps = []
    for k in range(1, n_steps + 1):
        regen = k in regen_steps
        c = 0.9 - 0.2 * k
        steps.append({"index": k, "text": f"step {k} text", "model": "strong" if regen else "weak",
                      "weak_text": f"weak {k}", "weak_tokens": 10, "strong_tokens": 20 if regen else 0,
                      "prm_score": 0.2 if regen else 0.8, "observation": [1.0, 0.8], "obs_bin": 5,
                      "belief_before": [c, 0.1, 0.9 - c], "belief_after": [c - 0.1, 0.2, 0.9 - c],
                      "action": "regenerate" if regen else "keep", "q_keep": 50.0 + k, "q_regenerate": 49.0})
    return {"id": str(pid), "question": f"q{pid}", "reference": reference, "policy": policy,
            "models": {"weak": "w", "strong": "s", "prm": "p"}, "solution": "...", "answer": answer,
            "correct": correct, "tokens": {"weak_kept": 10 * (n_steps - len(regen_steps)),
                                           "weak_discarded": 10 * len(regen_steps), "strong": strong},
            "finish": "answer", "error": None, "seconds": 0.1, "steps": steps}


def _write(path, policy, n_correct, strong_per_q, n=10, regen=()):
    with TraceWriter(path, header={"policy": policy}) as w:
        for i in range(n):
            w.write(_record(i, policy, i < n_correct, strong_per_q, regen_steps=regen))
    return str(path)


@pytest.fixture()
def runs(tmp_path):
    return {
        "weak": _write(tmp_path / "weak.jsonl", "weak", 4, 0),
        "strong": _write(tmp_path / "strong.jsonl", "strong", 8, 100, regen=(1, 2, 3)),
        "thr": _write(tmp_path / "thr.jsonl", "threshold:0.5", 6, 30, regen=(2,)),
        "thr2": _write(tmp_path / "thr2.jsonl", "threshold:0.8", 7, 60, regen=(2, 3)),
        "pomdp": _write(tmp_path / "pomdp.jsonl", "pomdp:p.npz", 7, 40, regen=(3,)),
    }


def test_eval_metrics_known_values(runs):
    res = evaluate([runs["weak"], runs["strong"], runs["thr"], runs["thr2"], runs["pomdp"]])
    assert res["baselines"] == {"weak": "weak", "strong": "strong"}
    pts = {p["name"]: p for p in res["runs"]}
    assert pts["weak"]["accuracy"] == 0.4 and pts["strong"]["strong_tokens"] == 100
    thr = pts["thr"]
    assert thr["pgr"] == pytest.approx(0.5)
    assert thr["norm_cost"] == pytest.approx(0.3)
    assert thr["ibc"] == pytest.approx(0.2 / 30)
    assert thr["delta_ibc"] == pytest.approx((0.2 / 30 - 0.004) / 0.004)
    assert thr["regen_frac"] == pytest.approx(1 / 3)
    assert pts["pomdp"]["pgr"] == pytest.approx(0.75)
    fam = res["families"]
    assert set(fam) == {"threshold", "pomdp"}
    assert fam["threshold"]["cpt50"] == pytest.approx(0.3)
    # the threshold front tops out at PGR 0.75 (60 tokens): 80% is never reached
    assert fam["threshold"]["cpt80"] is None
    assert fam["pomdp"]["cpt50"] == pytest.approx(40 * (0.5 / 0.75) / 100)


def test_eval_common_ids_and_recheck(runs, tmp_path):
    short = tmp_path / "short.jsonl"
    with TraceWriter(short) as w:
        for i in range(5):
            # answers recorded wrong by the run but equivalent after re-grading
            w.write(_record(i, "threshold:0.3", False, 10, answer="\\frac{2}{2}", reference="1"))
    res = evaluate([runs["weak"], runs["strong"], str(short)])
    assert res["n_common"] == 5
    pts = {p["name"]: p for p in res["runs"]}
    assert pts["weak"]["n"] == 5 and pts["weak"]["accuracy"] == 0.8
    assert pts["short"]["accuracy"] == 0.0
    res2 = evaluate([runs["weak"], runs["strong"], str(short)], recheck=True)
    assert {p["name"]: p for p in res2["runs"]}["short"]["accuracy"] == 1.0


def test_eval_cli_table_json_plot(runs, tmp_path, capsys):
    png = tmp_path / "cost.png"
    assert main(["eval", runs["weak"], runs["strong"], runs["thr"], runs["pomdp"], "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "PGR" in out and "CPT50" in out and "threshold" in out and "[weak]" in out
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", runs["thr"], "--weak-run", runs["weak"], "--strong-run", runs["strong"],
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["acc_weak"] == 0.4 and data["acc_strong"] == 0.8
    assert main(["eval", runs["thr"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "note" in data and "pgr" not in data["runs"][0]


def test_eval_plot_with_reference_runs(runs, tmp_path, data_dir, capsys):
    png = tmp_path / "ref.png"
    assert main(["eval", runs["weak"], runs["strong"], runs["thr"], "--plot", str(png),
                 "--reference", str(data_dir / "anchor_runs")]) == 0
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["eval", runs["thr"], "--plot", str(png), "--reference", str(tmp_path)]) == 2
    assert "no runs with accuracy" in capsys.readouterr().err


def test_eval_errors(runs, tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.jsonl")]) == 2
    assert "file not found (expected a decode trace .jsonl)" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"format": "trimpomdp.trace", "version": 1}\n')
    assert main(["eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.jsonl:1:" in err and err.count("\n") == 1
    assert main(["eval", runs["weak"], _write(tmp_path / "weak2.jsonl", "weak", 1, 0), runs["strong"]]) == 2
    assert "several weak-only runs" in capsys.readouterr().err


def test_inspect_tables_json_plot(runs, tmp_path, capsys):
    png = tmp_path / "traj.png"
    assert main(["inspect", runs["thr"], "--problem", "3", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    assert "problem 3" in out and "regenerate" in out and "b_after C E D" in out
    assert "0.70 0.10 0.20" in out  # belief before of step 1
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert main(["inspect", runs["pomdp"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["n_problems"] == 10 and len(data["problems"]) == 10
    p0 = data["problems"][0]
    assert [r["action"] for r in p0["step_rows"]] == ["keep", "keep", "regenerate"]
    assert p0["regenerated"] == 1 and p0["step_rows"][2]["q_keep"] == 53.0
    assert main(["inspect", runs["pomdp"], "--max-problems", "2"]) == 0
    assert "8 more problems" in capsys.readouterr().out


def test_inspect_unknown_problem(runs, capsys):
    assert main(["inspect", runs["thr"], "--problem", "nope"]) == 2
    err = capsys.readouterr().err
    assert "no problem with id 'nope'" in err and "ids include: 0, 1" in err
