"""Calibration against run summaries: exact evaluation, parameter recovery, bad run data."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from trimpomdp.calibration import ClassModel, fit, load_run_dir, load_runs, predict
from trimpomdp.calibration.model import evaluate_threshold
from trimpomdp.calibration.runs import RunPoint
from trimpomdp.cli.main import main
from trimpomdp.errors import FormatError
from trimpomdp.routing.spec import load_observation_points

ROOT = Path(__file__).resolve().parents[1]
POINTS = load_observation_points(ROOT / "data" / "prm_obs_processbench_math.npz")
ANCHORS = ROOT.parent / "shared" / "data" / "anchor_runs"


def test_exact_evaluation_by_hand():
    """Two steps, one class: cheap-only, strong-only and a rewrite-every-flagged-step policy by hand."""
    m = ClassModel([1.0], [0.8], [0.9], 0.0, [0.0, 1.0])
    assert evaluate_threshold(m, [0, 0, 0]) == pytest.approx((0.8 ** 2, 0.0))
    assert evaluate_threshold(m, [1, 1, 1]) == pytest.approx((0.9 ** 2, 2.0))
    # rewrite only fresh errors, always: step 1 correct w.p. 0.8 + 0.2 * 0.9 = 0.98, likewise step 2
    acc, calls = evaluate_threshold(m, [0, 1, 0])
    assert acc == pytest.approx(0.98 ** 2) and calls == pytest.approx(0.2 + 0.98 * 0.2)
    # two classes mix linearly
    m2 = ClassModel([0.25, 0.75], [0.8, 0.5], [0.9, 0.9], 0.0, [0.0, 1.0])
    assert evaluate_threshold(m2, [0, 0, 0])[0] == pytest.approx(0.25 * 0.64 + 0.75 * 0.25)


def _summaries(model, n=20_000):
    """Exact run summaries of a known model (accuracy rounded to n questions)."""
    runs = []
    for fam, k in [("cheap", 0.0)] + [("threshold", k) for k in (0.05, 0.2, 0.4, 0.6, 0.8, 0.95)] + [("strong", 1.0)]:
        p = predict(model, fam, k, POINTS)
        acc = round(p["accuracy"] * n) / n
        runs.append(RunPoint(fam, k, acc, n, p["strong_tokens"], p["strong_calls"], p["cheap_tokens"],
                             p["discarded_tokens"], "synthetic"))
    return runs


def test_recovers_a_known_difficulty_model():
    pmf = np.full(8, 1 / 8)
    true = ClassModel([0.7, 0.3], [0.93, 0.4], [0.97, 0.6], 0.5, pmf, rewrite_tokens=70.0, strong_step_tokens=60.0,
                      cheap_step_tokens=50.0, discarded_step_tokens=75.0)
    runs = _summaries(true)
    got, info = fit(runs, POINTS, pmf, classes=2, starts=8, seed=1, anchor_weight=1.0)
    order = np.argsort(-got.weights)
    np.testing.assert_allclose(got.weights[order], true.weights, atol=0.05)
    np.testing.assert_allclose(got.p_weak[order], true.p_weak, atol=0.05)
    np.testing.assert_allclose(got.p_strong[order], true.p_strong, atol=0.08)
    assert got.rewrite_tokens == pytest.approx(70.0) and got.strong_step_tokens == pytest.approx(60.0)
    for r in runs:  # the refit reproduces the curve
        p = predict(got, r.family, r.knob, POINTS)
        assert abs(p["accuracy"] - r.accuracy) < 0.005 and abs(p["strong_calls"] - r.strong_calls) < 0.02


def test_shared_anchor_runs_load():
    runs = load_run_dir(ANCHORS)
    fams = [r.family for r in runs]
    assert fams.count("threshold") == 19 and fams.count("pomdp") == 8 and {"cheap", "strong"} <= set(fams)
    assert all(r.questions == 500 for r in runs)
    strong = next(r for r in runs if r.family == "strong")
    assert strong.strong_tokens / strong.strong_calls == pytest.approx(61.7, abs=0.05)


GOOD = {"threshold": 0.5, "accuracy": 0.5, "num_correct": 250, "avg_target_tokens_per_question": 10.0,
        "avg_target_calls_per_question": 0.2, "avg_draft_tokens_per_question": 300.0,
        "avg_discarded_draft_tokens_per_question": 12.0}


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d.pop("avg_target_calls_per_question"), "missing field 'avg_target_calls_per_question'"),
    (lambda d: d.update(threshold=1.0, avg_target_calls_per_question=0, avg_target_tokens_per_question=0),
     "strong-only run (threshold 1) with no strong calls"),
    (lambda d: d.update(accuracy="high"), "accuracy"),
    (lambda d: d.update(num_correct=251.5), "num_correct"),
    (lambda d: d.update(num_correct=7, accuracy=0.3), "no whole number of questions"),
    (lambda d: d.pop("threshold"), "no policy knob"),
])
def test_bad_run_lines_name_file_and_line(tmp_path, edit, needle):
    bad = dict(GOOD)
    edit(bad)
    p = tmp_path / "runs.jsonl"
    p.write_text(json.dumps(GOOD) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(FormatError) as e:
        load_runs(p)
    msg = str(e.value)
    assert needle in msg and f"{p}" in msg and ":2" in msg and "\n" not in msg


def test_runs_of_different_problem_sets_are_refused(tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps(GOOD) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps(dict(GOOD, num_correct=50, accuracy=0.5)) + "\n")
    with pytest.raises(FormatError, match="different problem sets"):
        load_run_dir(tmp_path)


def test_cli_calibrate_one_line_error(tmp_path, capsys):
    p = tmp_path / "r.jsonl"
    p.write_text(json.dumps(replace_field(GOOD, "accuracy", None)) + "\n")
    rc = main(["calibrate", "--runs", str(p), "--lengths", str(tmp_path / "nope.npz")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "Error:" in err


def replace_field(d, k, v):
    d = dict(d)
    d[k] = v
    return d


def test_class_model_refuses_bad_parameters():
    with pytest.raises(Exception, match="sum to 1"):
        ClassModel([0.5, 0.6], [0.9, 0.9], [0.9, 0.9], 0.0, [1.0])
    with pytest.raises(Exception, match="p_weak"):
        ClassModel([1.0], [1.2], [0.9], 0.0, [1.0])


def test_replace_keeps_runs_frozen():
    r = load_run_dir(ANCHORS)[0]
    assert replace(r, questions=1).questions == 1 and r.questions == 500


# ----------------------------------------------------------------------------- the reference's decode rule
def test_reference_rule_reads_the_pair_alone_and_gates():
    from trimpomdp.routing import TrimModel, solve_trim
    from trimpomdp.routing.reference import ReferencePolicy, reference_formulation, snap

    spec = TrimModel.load(ROOT / "data" / "trim_math_plain.json")
    ref = reference_formulation(spec)
    assert ref.observation == "pair" and ref.obs.dims == 2 and ref.token_values.tolist() == [60.0]
    pol = ReferencePolicy(solve_trim(ref, lam=0.15, evaluate=False))
    b = pol.posteriors([0.55], [0.2])[0]
    assert b[1] == pytest.approx(0.683, abs=0.005)  # the review's figure for the memoryless posterior
    # confident 'correct' (b(C) - b(E) >= 0.4): kept without consulting the solved policy
    hi = pol.posteriors([1.0], [0.99])[0]
    assert hi.max() - hi[1] >= 0.4 and not pol.regenerate([1.0], [0.99], 3, [60.0])[0]
    s = snap(np.array([[0.333, 0.333, 0.334], [0.9, 0.07, 0.03]]))
    np.testing.assert_allclose(s.sum(axis=1), 1) and np.testing.assert_allclose(s * 40, np.round(s * 40))


def test_world_simulation_agrees_with_the_exact_evaluation():
    """A threshold rule simulated in the calibrated world (token model, repairs) matches the closed form."""
    from trimpomdp.calibration.emulate import run_world

    pmf = np.zeros(30)
    pmf[4:10] = 1 / 6
    world = ClassModel([0.6, 0.4], [0.95, 0.5], [0.98, 0.7], 0.5, pmf, step_log_sd=0.7, cheap_tokens_correct=50.0,
                       cheap_tokens_error=80.0, strong_coef=3.0, strong_exponent=0.8, recover=0.3)
    sim = run_world(world, lambda m, s, t, n: s < 0.5, POINTS, episodes=20_000, seed=3)
    exact = predict(world, "threshold", 0.5, POINTS)
    assert sim["accuracy"] == pytest.approx(exact["accuracy"], abs=0.015)
    assert sim["strong_calls"] == pytest.approx(exact["strong_calls"], rel=0.03)
    assert sim["strong_tokens"] == pytest.approx(exact["strong_tokens"], rel=0.04)


# ----------------------------------------------------------------------------- from our own decode traces
def _trace(path, policy, n, n_correct, regen_steps, n_steps=4):
    from trimpomdp.decode.trace import TraceWriter

    with TraceWriter(path, header={"policy": policy}) as w:
        for i in range(n):
            steps = [{"index": k, "text": "t", "model": "strong" if k in regen_steps else "weak", "weak_text": "w",
                      "weak_tokens": 10, "strong_tokens": 30 if k in regen_steps else 0, "prm_score": 0.5,
                      "observation": [1.0, 0.5], "obs_bin": 0, "belief_before": [1.0, 0.0, 0.0],
                      "belief_after": [1.0, 0.0, 0.0], "action": "regenerate" if k in regen_steps else "keep",
                      "q_keep": None, "q_regenerate": None} for k in range(1, n_steps + 1)]
            w.write({"id": str(i), "question": "q", "reference": "1", "policy": policy,
                     "models": {"weak": "w", "strong": "s", "prm": "p"}, "solution": "s", "answer": "1",
                     "correct": i < n_correct, "tokens": {"weak_kept": 10 * (n_steps - len(regen_steps)),
                                                          "weak_discarded": 10 * len(regen_steps),
                                                          "strong": 30 * len(regen_steps)},
                     "finish": "answer", "error": None, "seconds": 0.1, "steps": steps})
    return str(path)


def test_runs_from_traces(tmp_path):
    from trimpomdp.calibration.runs import length_pmf_from_traces, runs_from_traces

    paths = [_trace(tmp_path / "w.jsonl", "weak", 10, 4, ()),
             _trace(tmp_path / "s.jsonl", "strong", 10, 8, (1, 2, 3, 4)),
             _trace(tmp_path / "t.jsonl", "threshold:0.5", 10, 6, (2,))]
    runs = runs_from_traces(paths)
    assert [r.family for r in runs] == ["cheap", "strong", "threshold"] and runs[2].knob == 0.5
    assert runs[0].accuracy == 0.4 and runs[1].strong_calls == pytest.approx(4) and runs[2].strong_calls == 1
    assert runs[2].strong_tokens == 30 and runs[2].discarded_tokens == 10 and runs[2].name == "threshold:0.5"
    np.testing.assert_allclose(length_pmf_from_traces(paths)[:5], [0, 0, 0, 1, 0])
    other = _trace(tmp_path / "o.jsonl", "threshold:0.7", 9, 6, (2,))
    with pytest.raises(FormatError, match="differ from"):
        runs_from_traces(paths + [other])
    with pytest.raises(FormatError, match="calibration reads"):
        runs_from_traces([_trace(tmp_path / "q.jsonl", "query:0.5", 10, 6, (2,))])


def test_points_from_a_score_sequence_file(tmp_path):
    from trimpomdp.calibration.report import labelled_points

    p = tmp_path / "scores.jsonl"
    p.write_text('{"id": "a", "scores": [0.9, 0.8, 0.2, 0.3], "label": 2, "prm": "x"}\n'
                 '{"id": "b", "scores": [0.95, 0.9], "label": -1, "prm": "x"}\n')
    pts = labelled_points(p)
    np.testing.assert_allclose(pts["fresh_error"], [[0.8, 0.2]])  # (min of the earlier scores, this score)
    np.testing.assert_allclose(pts["derailed"], [[0.2, 0.3]])
    assert len(pts["correct"]) == 4 and [1.0, 0.9] in pts["correct"].tolist()


def test_world_points_mix_any_alpha_in_a_bounded_pool():
    from trimpomdp.calibration.emulate import POOL_FACTOR, world_points

    D = np.asarray(POINTS["derailed"])
    for alpha in (0.0, 0.3, 1.0 - 1e-12, 1.0):
        pts = world_points(POINTS, alpha, seed=1)
        pool = pts["derailed"]
        assert len(pool) <= POOL_FACTOR * len(D)
        if alpha == 0:
            assert pool is POINTS["derailed"] or np.array_equal(pool, D)
            continue
        # every pair keeps a real derailed min; its scores are derailed and fresh-error scores mixed at alpha
        assert np.isin(pool[:, 0], D[:, 0]).all()
        E = np.asarray(POINTS["fresh_error"])
        expected = (1 - alpha) * D[:, 1].mean() + alpha * E[:, 1].mean()
        assert pool[:, 1].mean() == pytest.approx(expected, abs=0.03)
