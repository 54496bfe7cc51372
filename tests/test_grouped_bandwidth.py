"""The ``cv-grouped`` bandwidth rule: grouped folds, cell likelihoods, and robustness to tied points."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.errors import ModelError
from trimpomdp.observation_models import grouped_bandwidth as gb
from trimpomdp.observation_models.kde import ReflectedKDE


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 15), min_size=10, max_size=80), st.integers(2, 5), st.integers(0, 5))
def test_grouped_folds_partition_points_and_keep_groups_whole(labels, folds, seed):
    groups = np.array(labels).astype(str)
    if len(set(labels)) < folds:
        with pytest.raises(ModelError):
            gb.grouped_folds(groups, folds, seed)
        return
    splits = gb.grouped_folds(groups, folds, seed)
    tests = np.concatenate([te for _, te in splits])
    assert sorted(tests.tolist()) == list(range(len(groups)))
    for tr, te in splits:
        assert not set(groups[tr]) & set(groups[te])
        assert len(tr) + len(te) == len(groups)


def test_tie_groups():
    X = np.array([[1.0, 1.0], [0.5, 0.2], [1.0, 1.0], [0.5, 0.3]])
    g = gb.tie_groups(X)
    assert g[0] == g[2] and len({g[0], g[1], g[3]}) == 3


def _tied(rng, n_groups=60, copies=8):
    """Quantised scores: each solution repeats one rounded value several times (like bf16 1.0s)."""
    base = np.clip(rng.normal(0.7, 0.15, size=(n_groups, 2)), 0, 1).round(2)
    X = np.repeat(base, copies, axis=0)
    return X, np.repeat(np.arange(n_groups), copies).astype(str)


def test_cv_grouped_does_not_collapse_onto_tied_points():
    X, groups = _tied(np.random.default_rng(0))
    y = np.full(len(X), "correct")
    loo = ReflectedKDE("cv").fit(X, y).cv_scales_["correct"]
    grouped = ReflectedKDE("cv-grouped").fit(X, y, groups=groups).cv_scales_["correct"]
    ties = ReflectedKDE("cv-grouped").fit(X, y).cv_scales_["correct"]
    assert loo < 0.1  # leave-one-out runs to its lower bound: every point has its twins
    assert grouped > 3 * loo and ties > 3 * loo
    with pytest.raises(ModelError, match="groups"):
        ReflectedKDE("cv-grouped").fit(X, y, groups=groups[:-1])


def test_cell_density_agrees_with_quadrature_and_density(monkeypatch):
    rng = np.random.default_rng(2)
    X = rng.beta(4, 2, size=(200, 2))
    m = ReflectedKDE("scott").fit(X, np.full(200, "a"))
    Z = rng.random((30, 2))
    exact = gb.cell_log_density(m, "a", Z, 0.05)
    monkeypatch.setattr(gb, "CELL_FLOOR", 2.0)  # every cell by quadrature
    quad = gb.cell_log_density(m, "a", Z, 0.05)
    assert np.allclose(exact, quad, atol=1e-6)
    fine = gb.cell_log_density(m, "a", Z, 0.01)  # small cells: close to the log density at their centre
    centres = (np.floor(Z / 0.01) + 0.5) * 0.01
    assert np.allclose(fine, np.log(m.density(centres, "a")), atol=0.02)
