"""The shipped default routing spec is the calibrated one, and it predicts the real runs of its models.

``data/trim_math.json`` is written by ``trimpomdp calibrate --runs ../shared/data/anchor_runs --lengths
../shared/data/solution_length_pmf_math_train.npz --spec data/trim_math.json`` (README). These tests hold
it to the real MATH-500 runs of the same models (cheap Qwen2.5-1.5B, strong Qwen2.5-7B, PRM
Qwen2.5-Math-PRM-7B): a figure measured against real data, not inside the model.
"""
from __future__ import annotations

import numpy as np
import pytest

from trimpomdp.packaged import DEFAULT_SPEC, data_path
from trimpomdp.routing import TrimModel
from trimpomdp.routing.policies import StrongPolicy, ThresholdPolicy, WeakPolicy
from trimpomdp.routing.simulator import simulate_summary


@pytest.fixture(scope="module")
def default():
    return TrimModel.load(data_path(DEFAULT_SPEC))


@pytest.fixture(scope="module")
def real(data_dir):
    from trimpomdp.calibration.runs import load_run_dir

    return load_run_dir(data_dir / "anchor_runs")


def test_the_default_spec_is_the_calibrated_one(default):
    assert default.n_classes == 3 and default.info["source"] == "trimpomdp calibrate"
    assert default.observation == "current" and 0 < default.derailed_as_error < 1


@pytest.mark.parametrize("family, policy", [("cheap", WeakPolicy()), ("strong", StrongPolicy())])
def test_cheap_and_strong_accuracy_are_the_real_runs(default, pts, real, family, policy):
    want = next(r for r in real if r.family == family)
    s = simulate_summary(default, policy, pts, episodes=40_000, seed=0)
    assert s["accuracy"] == pytest.approx(want.accuracy, abs=0.015)


def test_threshold_runs_are_predicted_within_the_calibration_targets(default, pts, real):
    """Mean |accuracy error| and relative strong-token error over the real threshold runs at knobs
    0.1 .. 0.9 (the uncalibrated spec predicted threshold 0.5 at 0.783 accuracy and 54 tokens against the
    real 0.674 and 164)."""
    runs = [r for r in real if r.family == "threshold" and abs(r.knob * 10 - round(r.knob * 10)) < 1e-9 and 0 < r.knob < 1]
    assert len(runs) >= 5
    acc_err, tok_err = [], []
    for r in runs:
        s = simulate_summary(default, ThresholdPolicy(r.knob), pts, episodes=20_000, seed=1)
        acc_err.append(abs(s["accuracy"] - r.accuracy))
        tok_err.append(abs(s["strong_tokens"] - r.strong_tokens) / r.strong_tokens)
    assert np.mean(acc_err) <= 0.04 and np.mean(tok_err) <= 0.15, (np.mean(acc_err), np.mean(tok_err))


def test_the_default_spec_solves_and_beats_thresholds_in_model(default, pts):
    """A budget on the default spec goes through the class solver; in the calibrated model its policy is
    at least as accurate as the threshold that spends as many strong tokens (in-model figure)."""
    from trimpomdp.routing.class_solver import PREDICT_SEED
    from trimpomdp.routing.solver import solve_trim

    pol = solve_trim(default, lam=0.1, evaluate=True)
    assert pol.meta["solver"] == "sweep" and pol.meta["classes"] == 3
    thr = [simulate_summary(default, ThresholdPolicy(k), pts, episodes=20_000, seed=PREDICT_SEED)
           for k in (0.1, 0.3, 0.5)]
    toks = np.array([t["strong_tokens"] for t in thr])
    accs = np.array([t["accuracy"] for t in thr])
    at_same_tokens = np.interp(pol.predicted["strong_tokens"], toks, accs)
    assert pol.predicted["accuracy"] >= at_same_tokens - 0.01

