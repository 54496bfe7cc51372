"""Solver invariants against the exact oracle: SARSOP's bounds bracket the optimum, its lower bound never
decreases, and SARSOP agrees with exact value iteration on the small classic problems.

Undiscounted classics (discount 1): concert has a zero-cost action and no positive reward, so V* = 0 and
finite-horizon exact values equal it from horizon 1 on; it is compared with SARSOP. ejs1, ejs2 and ejs4 have
no absorbing states and a non-zero average reward, so their H-step values grow linearly in H and no
infinite-horizon value exists to compare; the tests check that growth and the exact solver's refusal.
The discounted classics (tiger.95, parr95.95, cheese.95, shuttle.95, 4x3.95) are all solved exactly to a
1e-4 gap at b0 (shuttle.95 and 4x3.95 in seconds because the exact solver prunes on the beliefs reachable
from b0 only), and SARSOP must agree with them tightly.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from trimpomdp.pomdp import load_model
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.exact import ExactSolver
from trimpomdp.solvers.sarsop import SARSOPSolver

SLACK = 1e-6  # float noise between two independent computations of the same bound


def random_pomdp(seed: int, S: int, A: int, Z: int, discount: float) -> POMDP:
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(S) * 0.5, size=(A, S))
    O = rng.dirichlet(np.ones(Z) * 0.5, size=(A, S))
    R = rng.uniform(-10, 10, size=(S, A)).round(2)
    return POMDP.from_arrays(T, O, R, discount, rng.dirichlet(np.ones(S)))


def check_history(res):
    lows = [h["lower"] for h in res.history]
    assert all(b >= a - 1e-12 for a, b in zip(lows, lows[1:])), "SARSOP lower bound decreased"
    assert res.lower >= lows[-1] - 1e-12 if lows else True


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 100_000), A=st.integers(2, 3), Z=st.integers(2, 3),
       discount=st.sampled_from([0.5, 0.75, 0.9]))
def test_sarsop_brackets_exact_optimum_two_states(seed, A, Z, discount):
    m = random_pomdp(seed, 2, A, Z, discount)
    ex = ExactSolver(tol=1e-8, timeout=5).solve(m)  # a few seeds blow up to thousands of vectors: capped
    sa = SARSOPSolver(precision=1e-3, timeout=10, seed=seed).solve(m)
    assert sa.lower <= ex.upper + SLACK and ex.lower <= sa.upper + SLACK
    if ex.converged:
        opt = 0.5 * (ex.lower + ex.upper)
        assert sa.lower <= opt + SLACK and opt <= sa.upper + SLACK
    check_history(sa)


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 100_000), S=st.integers(3, 4), A=st.integers(2, 3), Z=st.integers(2, 3),
       discount=st.sampled_from([0.5, 0.75, 0.9]))
def test_sarsop_bounds_overlap_exact_bounds(seed, S, A, Z, discount):
    m = random_pomdp(seed, S, A, Z, discount)
    ex = ExactSolver(tol=1e-6, timeout=1.0).solve(m)  # bounds are valid even when capped
    sa = SARSOPSolver(precision=1e-3, timeout=10, seed=seed).solve(m)
    assert sa.lower <= ex.upper + SLACK and ex.lower <= sa.upper + SLACK
    check_history(sa)
    # the SARSOP policy's vectors are a lower bound: never above the exact upper bound at b0
    assert sa.policy.value(m.initial_belief) <= ex.upper + SLACK


@pytest.mark.parametrize("name", ["tiger.95", "parr95.95", "cheese.95", "shuttle.95", "4x3.95"])
def test_sarsop_agrees_with_exact_on_classics(pomdp_dir, name):
    m = load_model(pomdp_dir / f"{name}.POMDP")
    ex = ExactSolver(tol=1e-4, timeout=120).solve(m)  # 4x3.95, the slowest, needs about 10 s on 2 cores
    assert ex.converged and ex.upper - ex.lower <= 1e-4
    sa = SARSOPSolver(precision=1e-4, timeout=30).solve(m)
    assert abs(0.5 * (sa.lower + sa.upper) - 0.5 * (ex.lower + ex.upper)) <= 1e-3
    assert sa.lower <= ex.upper + SLACK and ex.lower <= sa.upper + SLACK
    check_history(sa)


def test_undiscounted_classics_are_refused_by_the_exact_solver(pomdp_dir):
    m = load_model(pomdp_dir / "ejs1.POMDP")
    assert m.discount == 1.0
    with pytest.raises(Exception, match="discount"):
        ExactSolver().solve(m)


def test_concert_undiscounted_value_is_zero_for_both_solvers(pomdp_dir):
    m = load_model(pomdp_dir / "concert.POMDP")
    assert m.discount == 1.0 and m.R.max() <= 0.0 and (m.R == 0).all(axis=0).any()  # a free action
    for H in (1, 5, 40):
        ex = ExactSolver(horizon=H).solve(m)
        assert ex.lower == pytest.approx(0.0, abs=1e-9) and ex.upper == pytest.approx(0.0, abs=1e-9)
    sa = SARSOPSolver(precision=1e-3, timeout=10).solve(m)
    assert sa.lower <= 0.0 + SLACK and 0.0 <= sa.upper + SLACK and sa.upper - sa.lower <= 1e-3


@pytest.mark.parametrize("name", ["ejs1", "ejs2", "ejs4"])
def test_undiscounted_ejs_values_grow_without_bound(pomdp_dir, name):
    """No absorbing zero-reward states: the per-step gain V_{H+1} - V_H settles at a non-zero average
    reward, so the infinite-horizon value is infinite and there is nothing finite to compare."""
    m = load_model(pomdp_dir / f"{name}.POMDP")
    assert m.discount == 1.0
    v = [ExactSolver(horizon=H).solve(m).upper for H in (40, 41, 80, 81)]
    gain_40, gain_80 = v[1] - v[0], v[3] - v[2]
    assert abs(gain_80) > 1e-2
    assert gain_80 == pytest.approx(gain_40, abs=1e-3)
    assert abs(v[2] - v[0]) > 40 * abs(gain_80) * 0.5
