"""The calibration's token model, repairs of derailed solutions, step-length spread, and the reference's
decode-rule parts (snapping, token bins, KDE density, shifted lengths), checked by hand."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.calibration import ClassModel, predict
from trimpomdp.calibration.estimate import fit_tokens
from trimpomdp.calibration.model import evaluate_threshold
from trimpomdp.calibration.runs import RunPoint
from trimpomdp.errors import FormatError, ModelError
from trimpomdp.routing.reference import ReflectedDensity, snap, token_bin
from trimpomdp.routing.spec import load_observation_points

ROOT = Path(__file__).resolve().parents[1]
POINTS = load_observation_points(ROOT / "data" / "prm_obs_processbench_math.npz")
SHARED = ROOT.parent / "shared" / "data"


def test_repair_of_a_derailed_solution_by_hand():
    # two steps; rewrite only derailed steps: step 1 leaves C .8 / E .2; step 2 writes C .64, E .16 and
    # rewrites the derailed .2, repaired w.p. .5 and then correct w.p. .9 -> .64 + .2 * .5 * .9
    m = ClassModel([1.0], [0.8], [0.9], 0.0, [0.0, 1.0], recover=0.5)
    assert evaluate_threshold(m, [0, 0, 1]) == pytest.approx((0.73, 0.2))
    assert evaluate_threshold(replace(m, recover=0.0), [0, 0, 1]) == pytest.approx((0.64, 0.2))
    with pytest.raises(ModelError, match="recover"):
        ClassModel([1.0], [0.8], [0.9], 0.0, [0.0, 1.0], recover=1.5)


def test_token_figures_by_hand():
    # every cheap step correct (p_weak 1), 3 steps: strong-only writes 3 steps of E[coef n^2] = 100 e^(0.25)
    m = ClassModel([1.0], [1.0], [1.0], 0.0, [0, 0, 1.0], step_log_sd=0.5, cheap_tokens_correct=10.0,
                   cheap_tokens_error=30.0, strong_coef=1.0, strong_exponent=2.0)
    p = predict(m, "strong", 1.0, POINTS)
    assert p["strong_tokens"] == pytest.approx(3 * 100 * np.exp(0.25))
    assert predict(m, "cheap", 0.0, POINTS)["cheap_tokens"] == pytest.approx(30.0)
    # one step, always a fresh error (p_weak 0), rewritten at threshold 1 - (any score): discarded 30 tokens
    m1 = replace(m, p_weak=np.array([0.0]), length_pmf=np.array([1.0]), strong_exponent=1.0)
    p1 = predict(m1, "threshold", 0.9999, POINTS)
    frac = np.mean(POINTS["fresh_error"][:, 1] < 0.9999)
    assert p1["strong_calls"] == pytest.approx(frac) and p1["discarded_tokens"] == pytest.approx(30.0 * frac)
    assert p1["strong_tokens"] == pytest.approx(30.0 * frac)  # E[n] of the error state, coefficient 1


def _token_runs(m):
    runs = []
    for fam, k in [("cheap", 0.0)] + [("threshold", k) for k in (0.1, 0.3, 0.5, 0.7, 0.9)] + [("strong", 1.0)]:
        p = predict(m, fam, k, POINTS)
        runs.append(RunPoint(fam, k, p["accuracy"], 500, p["strong_tokens"], p["strong_calls"], p["cheap_tokens"],
                             p["discarded_tokens"], "synthetic"))
    return runs


@settings(max_examples=8, deadline=None)
@given(st.floats(40, 70), st.floats(1.2, 2.2), st.floats(0.5, 3.0), st.floats(0.3, 1.5))
def test_token_model_is_recovered(mc, ratio, coef, b):
    true = ClassModel([0.6, 0.4], [0.93, 0.4], [0.97, 0.6], 0.4, np.full(8, 1 / 8), step_log_sd=0.7,
                      cheap_tokens_correct=mc, cheap_tokens_error=mc * ratio, strong_coef=coef, strong_exponent=b)
    start = replace(true, cheap_tokens_correct=0.0, cheap_tokens_error=0.0, strong_coef=0.0, strong_exponent=1.0)
    got = fit_tokens(start, _token_runs(true), POINTS, 0.7)
    assert got.cheap_tokens_correct == pytest.approx(mc, rel=1e-6)
    assert got.cheap_tokens_error == pytest.approx(mc * ratio, rel=1e-6)
    assert got.strong_exponent == pytest.approx(b, abs=0.011)  # the exponent grid is 0.01 fine
    assert got.strong_coef == pytest.approx(coef, rel=0.06)


def test_snap_follows_the_reference_rule():
    # rows (C, E, D); the reference rounds (C, D) together and gives E the rest
    b = np.array([[0.51, 0.30, 0.19],    # E on the grid: C, D rounded -> (0.5, 0.3, 0.2)
                  [0.51, 0.31, 0.18]])   # both C, D rounded down (0.01 + 2 * 0.005 <= 0.025)
    np.testing.assert_allclose(snap(b), [[0.5, 0.3, 0.2], [0.5, 0.325, 0.175]])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=3, max_size=3).filter(lambda v: sum(v) > 1e-3))
def test_snap_lands_on_the_grid_near_the_belief(v):
    b = np.array([v]) / sum(v)
    s = snap(b)
    assert s.min() >= 0 and s.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(s * 40, np.round(s * 40), atol=1e-9)
    assert np.abs(s - b).max() <= 0.05 + 1e-9


def test_token_bins_are_the_references():
    np.testing.assert_array_equal(token_bin([1, 62, 63, 137, 900]), [5, 50, 75, 125, 500])


def test_reflected_density_keeps_its_mass_and_matches_the_reference_bins():
    dens = ReflectedDensity(POINTS, n=101)
    g = (np.arange(20) + 0.5) / 20  # 0.05 bin centres, midpoint rule on a 4x4 sub-grid per bin
    sub = (np.arange(80) + 0.5) / 80
    X, Y = np.meshgrid(sub, sub, indexing="ij")
    d = dens(np.stack([X.ravel(), Y.ravel()], axis=1)).reshape(80, 80, 3) / 80 ** 2
    np.testing.assert_allclose(d.sum(axis=(0, 1)), 1.0, atol=0.02)
    z = np.load(SHARED / "anchor_obs_bins_math_0.05.npz")
    binned = d.reshape(20, 4, 20, 4, 3).sum(axis=(1, 3))
    for i, s in enumerate(("correct", "fresh_error", "derailed")):
        c, p = z[f"{s}_centers"], z[f"{s}_probs"]
        ix = np.rint((c - 0.025) / 0.05).astype(int)
        assert np.abs(binned[ix[:, 0], ix[:, 1], i] - p).max() < 0.01
    assert g.size == 20


def test_reference_formulation_plans_one_step_more():
    from trimpomdp.routing import TrimModel
    from trimpomdp.routing.reference import reference_formulation

    spec = TrimModel.load(ROOT / "data" / "trim_math_plain.json")
    pmf = np.zeros(30)
    pmf[1:] = 1 / 29
    ref = reference_formulation(spec, length_pmf=pmf)
    assert ref.max_steps == 31 and ref.length_pmf[0] == 0 and ref.length_pmf[1] == 0
    np.testing.assert_allclose(ref.length_pmf[2:], 1 / 29)


def test_step_length_spread_by_hand(tmp_path):
    from trimpomdp.calibration.steps import error_length_ratio, step_log_sd

    p = tmp_path / "pb.json"
    # correct steps of lengths 10 and 40 (log-sd ln 2), the first wrong step 40 and one later step 10
    p.write_text(json.dumps([{"steps": ["a" * 10, "a" * 40], "label": -1},
                             {"steps": ["a" * 40, "a" * 10, "  "], "label": 0}]))
    assert error_length_ratio(p) == pytest.approx(40 / 25)
    # within-state deviations: correct +-ln2; a state with a single step carries no spread and is left out
    assert step_log_sd(p) == pytest.approx(np.log(2))
    p.write_text(json.dumps([{"steps": "x", "label": 0}]))
    with pytest.raises(FormatError, match="item 0"):
        step_log_sd(p)
