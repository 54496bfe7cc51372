"""SARSOP solver: known optima, bound invariants along the history, policies, errors."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimpomdp.errors import ModelError
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.sarsop import SARSOPSolver, solve

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from rocksample import rocksample_model, write_cassandra  # noqa: E402

from test_bounds import random_pomdp, tiger  # noqa: E402

TIGER_V = 19.37130


def check_history(hist):
    assert hist, "history must not be empty"
    lows = [h["lower"] for h in hist]
    ups = [h["upper"] for h in hist]
    assert all(b >= a for a, b in zip(lows, lows[1:])), "lower bound decreased"
    assert all(b <= a + 1e-9 for a, b in zip(ups, ups[1:])), "upper bound increased"
    assert all(u >= l - 1e-9 for l, u in zip(lows, ups))
    times = [h["time"] for h in hist]
    assert all(b >= a for a, b in zip(times, times[1:]))
    for key in ("time", "trials", "backups", "lower", "upper", "alphas", "beliefs"):
        assert key in hist[0]


def test_tiger_converges_to_published_value():
    res = SARSOPSolver(precision=1e-3).solve(tiger())
    assert res.converged
    assert res.gap <= 1e-3
    assert abs(res.lower - TIGER_V) < 1e-3
    assert res.lower <= TIGER_V + 1e-4 <= res.upper + 1e-3
    assert res.solve_seconds < 5.0
    check_history(res.history)
    # the policy's own value at b0 is the reported lower bound
    assert res.policy.value(tiger().initial_belief) == pytest.approx(res.lower, abs=1e-9)
    assert res.policy.action([0.5, 0.5]) == 0  # listen first


def test_policy_meta_and_round_trip(tmp_path):
    m = tiger()
    res = solve(m, precision=1e-2)
    meta = res.policy.meta
    for key in ("model_fingerprint", "solver", "settings", "lower", "upper", "solve_seconds", "jit_seconds"):
        assert key in meta
    assert meta["model_fingerprint"] == m.fingerprint()
    path = tmp_path / "tiger.policy.npz"
    res.policy.save(path)
    back = AlphaVectorPolicy.load(path)
    np.testing.assert_allclose(back.alphas, res.policy.alphas)
    np.testing.assert_array_equal(back.actions, res.policy.actions)
    back.check_model(m)
    assert back.meta["lower"] == pytest.approx(res.lower)


def test_rocksample_4_4_reaches_optimum():
    m = rocksample_model(4, 4)
    assert m.n_states == 272 and m.n_actions == 9  # (16 cells + the exit) x 16 rock qualities
    res = SARSOPSolver(precision=1e-3, timeout=3).solve(m)
    check_history(res.history)
    # optimum of this instance is 18.0247 (converged bounds 18.02468 / 18.02490)
    assert res.lower == pytest.approx(18.0247, abs=2e-3)
    assert res.upper >= 18.0246
    assert res.policy.value(m.initial_belief) == pytest.approx(res.lower, abs=1e-9)


def test_memory_cap_evicts_leaf_beliefs_and_keeps_bounds_valid():
    """With a tiny memory cap the solver keeps dropping leaf beliefs (recomputing them when a parent is
    backed up again), yet converges to the same optimum with a pool far smaller than the tree's beliefs."""
    m = rocksample_model(4, 4)
    free = SARSOPSolver(precision=1e-2, timeout=20, memory_mb=None).solve(m)
    capped = SARSOPSolver(precision=1e-2, timeout=20, memory_mb=41).solve(m)  # the tree (~37 MB) fits, its beliefs do not
    assert free.policy.meta["evictions"] == 0 and capped.policy.meta["evictions"] >= 1
    check_history(capped.history)
    assert free.converged and capped.converged
    assert capped.lower <= free.upper + 1e-9 and free.lower <= capped.upper + 1e-9
    assert capped.lower == pytest.approx(18.0247, abs=1e-2)
    assert capped.policy.value(m.initial_belief) == pytest.approx(capped.lower, abs=1e-9)


@pytest.mark.parametrize("name", ["tiger.95", "cheese.95", "parr95.95"])
def test_greedy_policy_achieves_its_lower_bound_under_aggressive_pruning(pomdp_dir, name):
    """The policy's exact value at b0 is at least the reported lower bound, even when unused vectors are
    pruned after a single backup: each tree node's best vector is kept, so every vector's continuation is
    still covered. (Pruning by staleness alone made Tiger's greedy policy worth -14 against 19.37.)"""
    from trimpomdp.policies.evaluation import evaluate_exact
    from trimpomdp.pomdp import load_model

    m = load_model(pomdp_dir / f"{name}.POMDP")
    res = SARSOPSolver(precision=1e-3, timeout=10, prune_delay=1).solve(m)
    ex = evaluate_exact(m, res.policy)
    assert ex.value >= res.lower - ex.error - 1e-9
    assert ex.value <= res.upper + ex.error + 1e-9


def test_memory_cap_below_the_tree_stops_with_valid_bounds():
    m = rocksample_model(4, 4)
    res = SARSOPSolver(precision=1e-3, timeout=20, memory_mb=4).solve(m)
    assert not res.converged and res.policy.meta["stop_reason"] == "memory"
    check_history(res.history)
    assert res.lower <= 18.0247 + 1e-3 <= res.upper + 2e-3


def test_rocksample_generator_round_trip(tmp_path):
    from trimpomdp.pomdp.io import load_model

    path = write_cassandra(3, 2, tmp_path / "rs32.pomdp")
    loaded = load_model(path)
    m = rocksample_model(3, 2)
    assert loaded.n_states == m.n_states == (3 * 3 + 1) * 4  # the exit 'st' keeps the rocks, as SARSOP's files do
    np.testing.assert_allclose(loaded.R, m.R)
    for a in range(m.n_actions):
        np.testing.assert_allclose(loaded.T[a].toarray(), m.T[a].toarray())
        np.testing.assert_allclose(loaded.O[a].toarray(), m.O[a].toarray(), atol=1e-9)
    np.testing.assert_allclose(loaded.initial_belief, m.initial_belief)


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_bounds_bracket_exact_value_on_random_models(seed):
    from trimpomdp.solvers.exact import ExactSolver

    m = random_pomdp(seed, S=3, A=2, Z=2, discount=0.8)
    exact = ExactSolver(tol=1e-5, timeout=1).solve(m)
    res = SARSOPSolver(precision=1e-4, timeout=5).solve(m)
    check_history(res.history)
    # both solvers bracket V*(b0): the brackets must intersect
    assert res.lower <= exact.upper + 1e-5
    assert res.upper >= exact.lower - 1e-5


def test_undiscounted_with_terminal_state():
    # 0 --go--> terminal (+1) ; 'wait' keeps you at 0 for -0.1 ; value 1 at discount 1
    T = np.array([[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])
    O = np.ones((2, 2, 1))
    R = np.array([[1.0, -0.1], [0.0, 0.0]])
    m = POMDP.from_arrays(T, O, R, 1.0, [1.0, 0.0], terminal=[False, True])
    res = SARSOPSolver(precision=1e-6, timeout=10).solve(m)
    assert res.lower == pytest.approx(1.0, abs=1e-6)
    assert res.converged


def test_stops_on_max_iterations_and_timeout():
    m = rocksample_model(4, 4)
    res = SARSOPSolver(max_iterations=3).solve(m)
    assert res.iterations == 3 and not res.converged
    assert res.upper >= res.lower
    res = SARSOPSolver(timeout=0.3).solve(m)
    assert not res.converged and res.solve_seconds < 3.0


def test_callback_receives_reports():
    seen = []
    SARSOPSolver(precision=1e-3, report_every=0.0, callback=seen.append).solve(tiger())
    assert seen and all("lower" in e for e in seen)


@pytest.mark.parametrize("kw", [{"precision": 0}, {"precision": -1}, {"timeout": 0}, {"max_iterations": -2}])
def test_bad_settings_raise(kw):
    with pytest.raises(ModelError):
        SARSOPSolver(**kw)


def test_hallway_lower_bound_improves(pomdp_dir):
    from trimpomdp.pomdp.io import load_model

    m = load_model(pomdp_dir / "Hallway.pomdp")
    res = SARSOPSolver(timeout=1.5).solve(m)
    check_history(res.history)
    assert res.history[0]["lower"] < res.lower
    assert 0.5 < res.lower <= res.upper


def test_without_sarsop_targets_still_converges():
    res = SARSOPSolver(precision=1e-3, targets=False).solve(tiger())
    assert res.converged and abs(res.lower - TIGER_V) < 1e-3
    assert res.policy.meta["settings"]["targets"] is False


def test_point_pruning_keeps_every_recorded_upper_value():
    """Dropping dominated/replaced sawtooth points must not raise the upper bound at any point's belief."""
    from trimpomdp.solvers.sarsop import warm_up
    from trimpomdp.solvers.sarsop.backup import upper_value
    from trimpomdp.solvers.sarsop.run import Run
    from trimpomdp.solvers.sparse import to_sparse

    warm_up()
    model = rocksample_model(4, 4)
    run = Run(to_sparse(model), model, 1e-3, None, 40, False, 1e9, None)
    run.run()
    pts, tree = run.points, run.tree.arrays
    alive = np.flatnonzero(pts.alive[: run.st["n_pts"]])
    assert alive.size > 10
    before = []
    for i in alive:
        lo, hi = pts.ptr[i]
        bi, bv = tree.pool_idx[lo:hi].copy(), tree.pool_val[lo:hi].copy()
        before.append((bi, bv, float(pts.corner[bi] @ bv + pts.gap[i])))
    run.compact_points()
    assert run.st["n_pts"] <= alive.size and pts.alive[: run.st["n_pts"]].all()
    for bi, bv, val in before:
        u = upper_value(bi, bv, pts, tree.pool_idx, tree.pool_val, run.scratch.dense, 0)
        assert u <= val + 1e-9
    # the solve goes on from the compacted set with consistent bounds
    lb0, ub0 = tree.lower[0], tree.upper[0]
    for _ in range(40):
        run.trial()
    tree = run.tree.arrays
    assert lb0 <= tree.lower[0] <= tree.upper[0] <= ub0


def test_undiscounted_model_with_unbounded_value_is_refused(pomdp_dir):
    """ejs2 has discount 1 and a positive average reward per step: its value is infinite, so the solver
    must say so instead of returning crossed bounds."""
    from trimpomdp.errors import ModelError
    from trimpomdp.pomdp import load_model

    model = load_model(pomdp_dir / "ejs2.POMDP")
    with pytest.raises(ModelError, match="discount 1"):
        SARSOPSolver(timeout=10).solve(model)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), X=st.integers(1, 3), K=st.integers(1, 6), Y=st.integers(1, 4))
def test_floor_keeps_one_vector_per_dominance_class(seed, X, K, Y):
    # the blind vectors left out of the floor are each dominated by one kept, and no kept one by another
    from trimpomdp.solvers.sarsop.run import undominated

    vec = np.random.default_rng(seed).integers(0, 3, (X, K, Y)).astype(float)  # small ints: many ties
    keep = undominated(vec)
    for x in range(X):
        kept = vec[x][keep[x]]
        assert kept.shape[0] >= 1
        assert all(any((k >= v).all() for k in kept) for v in vec[x])
        assert not any(i != j and (kept[i] >= kept[j]).all() for i in range(len(kept)) for j in range(len(kept)))
        # the envelope is unchanged at every belief
        b = np.random.default_rng(seed + 1).dirichlet(np.ones(Y), 20)
        assert np.allclose((b @ vec[x].T).max(axis=1), (b @ kept.T).max(axis=1))
