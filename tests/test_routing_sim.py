"""Routing simulator on real PRM points, budgets in simulation, metrics, plots and the CLI commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.routing import TrimModel, load_policy, parse_budget, parse_sweep, solve_budget, solve_trim
from trimpomdp.routing import metrics as M
from trimpomdp.routing.simulator import simulate

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "data" / "trim_math_plain.json"
N = 100_000


@pytest.fixture(scope="module")
def anchors(tm, pts):
    w = simulate(tm, load_policy("weak"), pts, N, 0)
    s = simulate(tm, load_policy("strong"), pts, N, 0)
    return w.accuracy, s.accuracy, s.mean_tokens


# ---------------------------------------------------------------------------------------------- metrics
def test_metrics_known_answers():
    assert M.pgr(0.55, 0.4, 0.7) == pytest.approx(0.5)
    assert M.ibc(0.6, 100, 0.4) == pytest.approx(0.002)
    # strong IBC = 0.3 / 200 = 0.0015; (0.002 - 0.0015) / 0.0015 = 1/3
    assert M.delta_ibc(0.6, 100, 0.4, 0.7, 200) == pytest.approx(1 / 3)
    costs, accs = [0, 50, 100, 200], [0.4, 0.5, 0.65, 0.7]
    # PGR 0.5 = acc 0.55 reached between (50, .5) and (100, .65): 50 + 50/3 = 66.67 -> 0.3333 of 200
    assert M.cpt(costs, accs, 0.4, 0.7, 200, 0.5) == pytest.approx(66.6667 / 200, rel=1e-4)
    assert M.cpt(costs, accs, 0.4, 0.7, 200, 1.0) == pytest.approx(1.0)
    assert np.isnan(M.cpt([0, 10], [0.4, 0.45], 0.4, 0.7, 200, 0.95))
    # a dominated point does not lower the front
    assert M.front_accuracy([0, 50, 60, 100], [0.4, 0.6, 0.5, 0.7], 60) == pytest.approx(0.6)
    rows = M.summarize([{"name": "x", "accuracy": 0.55, "strong_tokens": 100}], 0.4, 0.7, 200)
    assert rows[0]["pgr"] == pytest.approx(0.5) and rows[0]["norm_cost"] == pytest.approx(0.5)


# ---------------------------------------------------------------------------------------------- simulator
def test_simulator_seeded_and_consistent(tm, pts):
    a = simulate(tm, load_policy("threshold:0.5"), pts, 20_000, 3)
    b = simulate(tm, load_policy("threshold:0.5"), pts, 20_000, 3)
    assert np.array_equal(a.correct, b.correct) and np.array_equal(a.strong_tokens, b.strong_tokens)
    w = simulate(tm, load_policy("weak"), pts, N, 0)
    assert w.mean_tokens == 0 and w.regenerations.max() == 0
    # weak-only accuracy in the model: E[p_w^L] (all steps must be correct)
    L = np.arange(1, tm.max_steps + 1)
    assert w.accuracy == pytest.approx(
        float(tm.length_pmf @ tm.p_weak**L), abs=4 * w.summary()["accuracy_se"]
    )
    s = simulate(tm, load_policy("strong"), pts, N, 0)
    assert s.accuracy == pytest.approx(
        float(tm.length_pmf @ tm.p_strong**L), abs=4 * s.summary()["accuracy_se"]
    )
    assert s.mean_tokens == pytest.approx(tm.mean_steps * tm.mean_step_tokens, rel=0.02)


def test_predicted_matches_simulated(tm, pts):
    pol = solve_trim(tm, lam=0.1)
    r = simulate(tm, pol, pts, N, 1)
    assert r.mean_tokens == pytest.approx(pol.predicted["strong_tokens"], rel=0.02)
    assert r.accuracy == pytest.approx(pol.predicted["accuracy"], abs=0.006)


def test_mean_budget_hits_target_in_simulation(tm, pts):
    pol = solve_budget(tm, parse_budget("mean=50"))
    r = simulate(tm, pol, pts, N, 2)
    assert r.mean_tokens == pytest.approx(50, rel=0.05)


@pytest.mark.parametrize(
    "budget, field, limit",
    [("cap=2regen", "regenerations", 2), ("cap=120tokens,lambda=0.02", "strong_tokens", 120)],
)
def test_cap_never_exceeded(tm, pts, budget, field, limit):
    b = parse_budget(budget)
    pol = solve_trim(tm, lam=b.lam or 0.0, cap=b.cap, evaluate=False)
    r = simulate(tm, pol, pts, N, 4)
    assert getattr(r, field).max() <= limit + 1e-9
    assert getattr(r, field).max() >= 0.5 * limit  # the cap is actually used
    assert r.accuracy > simulate(tm, load_policy("weak"), pts, N, 4).accuracy + 0.2


def test_pomdp_beats_threshold_front(tm, pts, anchors):
    aw, as_, cs = anchors
    thr_c, thr_a = [0.0], [aw]
    n = N // 2
    for k in np.linspace(0.05, 1.0, 20):
        r = simulate(tm, load_policy(f"threshold:{k}"), pts, n, 0)
        thr_c.append(r.mean_tokens)
        thr_a.append(r.accuracy)
    pom_c, pom_a = [0.0], [aw]
    for lam in (0.01, 0.1, 0.4, 1.0):
        r = simulate(tm, solve_trim(tm, lam=lam, evaluate=False), pts, n, 0)
        pom_c.append(r.mean_tokens)
        pom_a.append(r.accuracy)
        assert r.accuracy >= M.front_accuracy(thr_c, thr_a, r.mean_tokens) - 0.002, lam
    pom = M.curve_metrics(pom_c, pom_a, aw, as_, cs)
    thr = M.curve_metrics(thr_c, thr_a, aw, as_, cs)
    assert pom["best_delta_ibc"] > thr["best_delta_ibc"]
    assert pom["cpt80"] < thr["cpt80"]


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_trim_model(tmp_path, data_dir, capsys):
    out = tmp_path / "t.json"
    rc = main(
        [
            "trim-model",
            "--step-stats",
            str(data_dir / "step_stats_math_train.npz"),
            "--weak",
            "qwen2.5-1.5b-instruct",
            "--strong",
            "qwen2.5-7b-instruct",
            "--obs",
            str(data_dir / "anchor_obs_bins_math_0.05.npz"),
            "--points",
            str(data_dir / "prm_obs_processbench_math.npz"),
            "--max-steps",
            "20",
            "-o",
            str(out),
        ]
    )
    assert rc == 0 and "p_weak 0.8660" in capsys.readouterr().out
    m = TrimModel.load(out)
    assert m.max_steps == 20 and m.obs_truth is not None
    rc = main(
        [
            "trim-model",
            "--step-stats",
            str(data_dir / "step_stats_math_train.npz"),
            "--weak",
            "nope",
            "--strong",
            "qwen2.5-7b-instruct",
            "--obs",
            str(data_dir / "anchor_obs_bins_math_0.05.npz"),
            "-o",
            str(tmp_path / "x.json"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("Error:") and "nope__next_step_accuracy" in err


def test_solve_budgets_and_sweep_resume(tmp_path):
    from trimpomdp.routing.sweep import solve_budgets, write_curve

    tm = TrimModel.load(SPEC)
    rows = solve_budgets(tm, [parse_budget("lambda=0.2")], output=tmp_path / "p.npz")
    assert Path(rows[0]["policy"]) == tmp_path / "p.npz"
    assert load_policy(f"pomdp:{rows[0]['policy']}").lam == 0.2
    sweep = parse_sweep("lambda=0.05:0.5:3")
    s = solve_budgets(tm, sweep, output=tmp_path / "sw.npz")
    assert len(s) == 3 and all(Path(r["policy"]).exists() for r in s)
    write_curve(s, tmp_path / "c.csv")
    # a rerun resumes from the files already written (same spec and budgets): no new solve
    s2 = solve_budgets(tm, sweep, output=tmp_path / "sw.npz")
    assert [r["predicted_strong_tokens"] for r in s2] == [r["predicted_strong_tokens"] for r in s]
    assert [r["solve_seconds"] for r in s2] == [r["solve_seconds"] for r in s]
    lines = (tmp_path / "c.csv").read_text().splitlines()
    assert len(lines) == 4 and lines[0].startswith("budget,lambda,predicted_accuracy")
    toks = [r["predicted_strong_tokens"] for r in s]
    assert toks == sorted(toks, reverse=True)


def test_cli_solve_spec_sweep_curve_and_refused_options(tmp_path, capsys):
    from trimpomdp.cli.main import main

    rc = main(["solve", str(SPEC), "--sweep", "mean=80", "--curve", str(tmp_path / "c.json"), "--json"])
    assert rc == 0
    pts = json.loads((tmp_path / "c.json").read_text())["points"]
    assert pts[0]["predicted_strong_tokens"] == pytest.approx(80, rel=0.005)
    capsys.readouterr()
    assert main(["solve", str(SPEC)]) == 2
    assert "needs --budget" in capsys.readouterr().err
    # options of the point-based solvers are refused for a spec instead of being silently ignored
    for opt in (["--solver", "exact"], ["--precision", "0.1"], ["--timeout", "3"], ["--seed", "2"],
                ["--max-iterations", "5"], ["--memory", "100"]):
        assert main(["solve", str(SPEC), "--budget", "lambda=0.2", *opt]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and opt[0] in err and "applies to POMDP files" in err


def test_cli_simulate_routing(tmp_path, capsys):
    png = tmp_path / "r.png"
    rc = main(
        [
            "simulate-routing",
            str(SPEC),
            "--policy",
            "threshold:0.5",
            "--policy",
            "pomdp:lambda=0.15",
            "--sweep",
            "threshold:0:1:5",
            "--episodes",
            "20000",
            "--plot",
            str(png),
            "--json",
            "--reference",
            str(ROOT.parent / "shared" / "data" / "anchor_runs"),
        ]
    )
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert list(res["modes"]) == ["independent", "sequence"] and "derailed" in res["sequence_rules"]
    for mode in res["modes"].values():
        names = [p["name"] for p in mode["policies"]]
        assert names[:4] == ["weak", "strong", "threshold:0.5", "pomdp:lambda=0.15"]
        assert "cpt80" in mode["families"]["threshold:0:1:5"]
    # the hidden paths are the same in both modes: the weak anchor's accuracy does not depend on the scores
    assert res["modes"]["independent"]["acc_weak"] == res["modes"]["sequence"]["acc_weak"]
    assert 0 <= res["modes"]["sequence"]["fallback"] < 0.2
    assert png.exists() and png.stat().st_size > 10_000
    rc = main(["simulate-routing", str(SPEC), "--policy", "nonsense"])
    assert rc == 2 and "unknown policy" in capsys.readouterr().err


def test_cli_solve_json_spec(tmp_path, capsys):
    out = tmp_path / "p.npz"
    rc = main(["solve", str(SPEC), "--budget", "lambda=0.3", "-o", str(out), "--json", "--progress", "none"])
    assert rc == 0 and out.exists()
    res = json.loads(capsys.readouterr().out)
    assert res["points"][0]["lambda"] == 0.3 and 0 < res["points"][0]["predicted_strong_tokens"] < 100
    rc = main(["solve", str(SPEC), "--budget", "cap=3"])
    assert rc == 2 and "cap=<K>regen" in capsys.readouterr().err
