"""The first-error term of the calibration: probabilities by hand, the shared step statistics, recovery."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.calibration import ClassModel, fit, predict
from trimpomdp.calibration import first_error as fe
from trimpomdp.calibration.runs import RunPoint
from trimpomdp.errors import FormatError, TrimError
from trimpomdp.routing.spec import load_observation_points

ROOT = Path(__file__).resolve().parents[1]
POINTS = load_observation_points(ROOT / "data" / "prm_obs_processbench_math.npz")
STATS = ROOT.parent / "shared" / "data" / "step_stats_math_train.npz"


def test_outcome_probs_and_likelihood_by_hand():
    # one class, p_weak 0.5, every solution 2 steps: error at 1 w.p. 0.5, at 2 w.p. 0.25, correct 0.25
    np.testing.assert_allclose(fe.outcome_probs([1.0], [0.5], [0.0, 1.0]), [0.5, 0.25, 0.25])
    assert fe.log_likelihood([3, 1, 2], [1.0], [0.5], [0.0, 1.0]) == pytest.approx(
        3 * np.log(0.5) + np.log(0.25) + 2 * np.log(0.25))
    # two classes (a perfect one and p_weak 0.5), L = 1 or 2 with equal chance:
    # error at 1: 0.5 * 0.5; at 2: 0.5 * (0.5 * 0.5 * P(L >= 2) = 0.125); correct: the rest
    np.testing.assert_allclose(fe.outcome_probs([0.5, 0.5], [1.0, 0.5], [0.5, 0.5]),
                               [0.25, 0.0625, 0.6875])


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 4), st.integers(1, 12), st.data())
def test_outcomes_sum_to_one_and_match_cheap_only_accuracy(K, T, data):
    """P(correct) of the first-error outcomes is the exact cheap-only accuracy of the same model."""
    w = np.array(data.draw(st.lists(st.floats(0.01, 1), min_size=K, max_size=K)))
    pw = np.array(data.draw(st.lists(st.floats(0, 1), min_size=K, max_size=K)))
    pmf = np.array(data.draw(st.lists(st.floats(0, 1), min_size=T, max_size=T))) + 1e-3
    w, pmf = w / w.sum(), pmf / pmf.sum()
    p = fe.outcome_probs(w, pw, pmf)
    assert np.all(p >= 0) and p.sum() == pytest.approx(1.0)
    m = ClassModel(w, pw, np.full(K, 0.9), 0.0, pmf)
    assert p[-1] == pytest.approx(predict(m, "cheap", 0.0, POINTS)["accuracy"])


def test_shared_step_statistics():
    c = fe.load_first_errors(STATS, "qwen2.5-1.5b-instruct", 30)
    assert c.sum() == 7500 and c[-1] == 2819 and c[:-1].sum() == 4681
    assert c[0] / 7500 == pytest.approx(0.130, abs=0.001) and c[1] / 7500 == pytest.approx(0.161, abs=0.001)
    # later first errors are counted at the last step the length pmf has
    short = fe.load_first_errors(STATS, "qwen2.5-1.5b-instruct", 3)
    assert short[2] == c[2:-1].sum() and short[-1] == 2819


def test_bad_step_statistics_name_the_file(tmp_path):
    with pytest.raises(FormatError, match="models here: qwen2.5-1.5b-instruct") as e:
        fe.load_first_errors(STATS, "gpt-x", 30)
    assert str(STATS) in str(e.value) and "\n" not in str(e.value)
    bad = tmp_path / "s.npz"
    np.savez(bad, **{"m__first_error_step": np.array([0, 2]), "m__correct_solution_steps": np.array([3])})
    with pytest.raises(FormatError, match="whole step numbers >= 1") as e:
        fe.load_first_errors(bad, "m", 5)
    assert str(bad) in str(e.value)
    with pytest.raises(TrimError, match="one cell per step"):
        fit([], POINTS, [0.5, 0.5], first_errors=[1.0, 2.0])


def _summaries(model, n=20_000):
    runs = []
    for fam, k in [("cheap", 0.0)] + [("threshold", k) for k in (0.05, 0.3, 0.6, 0.9)] + [("strong", 1.0)]:
        p = predict(model, fam, k, POINTS)
        runs.append(RunPoint(fam, k, round(p["accuracy"] * n) / n, n, p["strong_tokens"], p["strong_calls"],
                             p["cheap_tokens"], p["discarded_tokens"], "synthetic"))
    return runs


# draw 6 (default_rng(6)) broke the first tolerances (weights 0.05, p_weak 0.03): its maximum-likelihood fit
# is 3.1 log-likelihood units more likely than the true model, so the estimate, not the optimiser, is off.
# Over 24 draws the errors (the larger of the two classes) have root mean squares 0.027 (weights), 0.020
# (p_weak) and 0.033 (p_strong) and reach 0.069, 0.044, 0.067; the tolerances below are 4 of those root mean
# squares. Four starts also left draw 1 at a local optimum: the default eight find its maximum.
@pytest.mark.parametrize("draw", [None, 6], ids=["fresh", "draw-6"])
def test_recovers_classes_from_simulated_first_errors(draw):
    """Runs plus first-error counts drawn (fresh each time) from a known 2-class model fit it back."""
    pmf = np.full(8, 1 / 8)
    true = ClassModel([0.6, 0.4], [0.95, 0.6], [0.98, 0.5], 0.4, pmf, rewrite_tokens=70.0, strong_step_tokens=60.0,
                      cheap_step_tokens=50.0, discarded_step_tokens=75.0)
    rng = np.random.default_rng(draw)
    counts = rng.multinomial(20_000, fe.outcome_probs(true.weights, true.p_weak, pmf)).astype(float)
    got, info = fit(_summaries(true), POINTS, pmf, classes=2, seed=int(rng.integers(1 << 30)),
                    anchor_weight=1.0, first_errors=counts)
    order = np.argsort(-got.p_weak)
    np.testing.assert_allclose(got.weights[order], true.weights, atol=0.11)
    np.testing.assert_allclose(got.p_weak[order], true.p_weak, atol=0.08)
    np.testing.assert_allclose(got.p_strong[order], true.p_strong, atol=0.13)
    assert info["first_error_weight"] == 1.0
    # the fitted first-error distribution reproduces the drawn one
    pred = fe.outcome_probs(got.weights, got.p_weak, pmf) * counts.sum()
    assert np.max(np.abs(pred - counts) / np.sqrt(np.maximum(counts, 25))) < 5


def test_world_reports_calls_per_class_and_the_reference_plans_one_class():
    from trimpomdp.calibration.emulate import run_world
    from trimpomdp.routing import TrimModel
    from trimpomdp.routing.reference import reference_formulation

    pmf = np.full(6, 1 / 6)
    world = ClassModel([0.5, 0.5], [0.95, 0.5], [0.98, 0.6], 0.3, pmf, step_log_sd=0.5, cheap_tokens_correct=50.0,
                       cheap_tokens_error=80.0, strong_coef=1.2, recover=0.2)
    r = run_world(world, lambda m, s, t, n: s < 0.5, POINTS, episodes=4000, seed=int(np.random.default_rng().integers(1 << 30)))
    w = np.array([c["weight"] for c in r["by_class"]])
    for k in ("accuracy", "strong_calls", "strong_tokens"):
        assert r[k] == pytest.approx(w @ [c[k] for c in r["by_class"]])
    assert r["by_class"][1]["strong_calls"] > r["by_class"][0]["strong_calls"]  # the hard class is flagged more
    # the shipped spec has difficulty classes; the reference's planner has one class and no repair
    ref = reference_formulation(TrimModel.load(ROOT / "data" / "trim_math.json"))
    assert ref.difficulty is None and ref.derailed_repair == 0 and ref.derailed_as_error == 0
