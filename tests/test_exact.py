"""Exact solver: hand-derived Tiger values, a belief-recursion brute force, bounds and error cases."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st

from trimpomdp.errors import ModelError
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.exact import ExactSolver, _envelope_2state, _reachable_domain
from trimpomdp.solvers.exact_kernels import advantage_bounds, game_lp, lark_filter

TIGER_OPT = 19.3713683749  # our converged value (bounds within 1e-9); literature: about 19.37


def tiger(discount=0.95):
    T = np.array([np.eye(2), np.full((2, 2), 0.5), np.full((2, 2), 0.5)])
    O = np.array([[[0.85, 0.15], [0.15, 0.85]], np.full((2, 2), 0.5), np.full((2, 2), 0.5)])
    R = np.array([[-1.0, -100.0, 10.0], [-1.0, 10.0, -100.0]])
    return POMDP.from_arrays(T, O, R, discount, [0.5, 0.5])


def brute_force(model: POMDP, b: np.ndarray, horizon: int) -> float:
    """max over actions of immediate + discounted expected value, recursing over actual beliefs."""
    if horizon == 0:
        return 0.0
    T, O, R = model.T_dense(), model.O_dense(), model.R
    best = -np.inf
    for a in range(model.n_actions):
        v = float(b @ R[:, a])
        pred = b @ T[a]
        for o in range(model.n_observations):
            joint = pred * O[a][:, o]
            p = joint.sum()
            if p > 1e-15:
                v += model.discount * p * brute_force(model, joint / p, horizon - 1)
        best = max(best, v)
    return best


def test_tiger_hand_values():
    m = tiger()
    # horizon 1: listening (-1) beats opening (0.5 * 10 - 0.5 * 100 = -45)
    assert ExactSolver(horizon=1).solve(m).upper == pytest.approx(-1.0, abs=1e-9)
    # horizon 2: listen twice; opening after one listen is worse (0.85*10 - 0.15*100 = -6.5)
    assert ExactSolver(horizon=2).solve(m).upper == pytest.approx(-1.95, abs=1e-9)
    # horizon 3: listen, listen, open when the two agree: -1 - .95 + .95^2 * .745 * 6.677852... (by hand)
    agree = 0.85 ** 2 + 0.15 ** 2
    post = 0.85 ** 2 / agree
    open_val = post * 10 - (1 - post) * 100
    h3 = -1 - 0.95 + 0.95 ** 2 * (agree * open_val + (1 - agree) * -1)
    res = ExactSolver(horizon=3).solve(m)
    assert res.upper == pytest.approx(h3, abs=1e-9)
    assert res.lower == pytest.approx(res.upper, abs=1e-7)
    for h in (1, 2, 3, 4):
        assert ExactSolver(horizon=h).solve(m).upper == pytest.approx(brute_force(m, m.initial_belief, h), abs=1e-9)


def test_tiger_infinite_horizon():
    res = ExactSolver(tol=1e-6).solve(tiger())
    assert res.converged and res.upper - res.lower <= 1e-6
    assert res.lower - 1e-9 <= TIGER_OPT <= res.upper + 1e-9
    # the returned (shifted) vectors are a lower bound whose value at b0 is ``lower``
    assert res.policy.value(np.array([0.5, 0.5])) == pytest.approx(res.lower, abs=1e-9)
    assert res.policy.action(np.array([0.5, 0.5])) == 0  # listen
    assert res.policy.action(np.array([0.999, 0.001])) == 2  # open the right door
    assert res.policy.meta["model_fingerprint"] == tiger().fingerprint()
    assert all(h["upper"] >= h["lower"] - 1e-12 for h in res.history)


def test_capped_run_still_brackets_the_optimum():
    res = ExactSolver(max_iterations=8).solve(tiger())
    assert not res.converged and res.iterations == 8
    assert res.lower <= TIGER_OPT <= res.upper
    res = ExactSolver(timeout=1e-9).solve(tiger())
    assert not res.converged


def random_model(seed, S, A, Z, discount):
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(S) * 0.7, size=(A, S))
    O = rng.dirichlet(np.ones(Z) * 0.7, size=(A, S))
    R = rng.uniform(-1, 1, size=(S, A)).round(3)
    return POMDP.from_arrays(T, O, R, discount, rng.dirichlet(np.ones(S)))


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), S=st.integers(2, 3), A=st.integers(2, 3), Z=st.integers(2, 3),
       horizon=st.integers(1, 3))
def test_finite_horizon_matches_brute_force(seed, S, A, Z, horizon):
    if S == 3 and horizon == 3:
        horizon = 2  # keep the LP count small
    m = random_model(seed, S, A, Z, 0.9)
    res = ExactSolver(horizon=horizon).solve(m)
    want = brute_force(m, m.initial_belief, horizon)
    assert res.upper == pytest.approx(want, abs=1e-7)
    # the whole value function is right, not just at b0
    b = np.random.default_rng(seed).dirichlet(np.ones(S))
    assert res.policy.value(b) == pytest.approx(brute_force(m, b, horizon), abs=1e-7)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), A=st.integers(2, 3), Z=st.integers(2, 3))
def test_two_state_infinite_horizon_bounds_contain_long_horizon_values(seed, A, Z):
    m = random_model(seed, 2, A, Z, 0.8)
    res = ExactSolver(tol=1e-7, timeout=20).solve(m)
    assume(res.converged)  # some random models grow thousands of vectors; capped runs are tested elsewhere
    assert res.upper - res.lower <= 1e-7
    # V* is within gamma^H * Rmax / (1 - gamma) of the H-step value
    H = 80
    vh_res = ExactSolver(horizon=H, timeout=20).solve(m)
    assume(vh_res.converged)
    vh = vh_res.upper
    slack = 0.8 ** H * np.abs(m.R).max() / 0.2
    assert res.lower <= vh + slack + 1e-9 and vh - slack - 1e-9 <= res.upper


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 40))
def test_two_state_envelope_keeps_exactly_the_maximisers(seed, K):
    rng = np.random.default_rng(seed)
    V = rng.integers(-5, 6, size=(K, 2)).astype(float)
    keep = set(_envelope_2state(V).tolist())
    p = np.linspace(0, 1, 20001)
    vals = np.c_[1 - p, p] @ V.T
    top = vals.max(axis=1)
    # every kept line attains the maximum somewhere; every point's maximum is attained by a kept line
    for k in keep:
        assert np.any(vals[:, k] >= top - 1e-9)
    assert np.allclose(vals[:, sorted(keep)].max(axis=1), top)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), q=st.integers(3, 6), K=st.integers(1, 60), eps=st.sampled_from([0.0, 1e-3, 0.05]))
@example(seed=3, q=3, K=6, eps=0.0)  # a vector tying the kept set (d* = 0) was kept, then dominated
def test_lark_filter_keeps_the_envelope_within_the_reported_loss(seed, q, K, eps):
    rng = np.random.default_rng(seed)
    V = rng.normal(size=(K, q))
    if seed % 3 == 0:  # ties and exact duplicates
        V = np.round(V, 1)
    seeded = np.zeros(K, dtype=bool)  # as in the solver: the best vector at some belief
    seeded[np.argmax(V @ rng.dirichlet(np.ones(q)))] = True
    keep, loss, wit = lark_filter(V, seeded, eps)
    assert keep.any() and 0.0 <= loss <= eps + 1e-12
    lam = np.r_[rng.dirichlet(np.ones(q) * 0.3, size=4000), np.eye(q)]
    full, kept = (lam @ V.T).max(axis=1), (lam @ V[keep].T).max(axis=1)
    assert np.all(kept >= full - loss - 1e-9)
    # no kept vector is strictly dominated by the other kept ones, and the witnesses are real
    for k in np.flatnonzero(keep):
        others = V[keep & (np.arange(K) != k)]
        if len(others):
            lo, hi = game_lp(V[k], others, len(others), np.empty(q), np.empty(len(others)))
            assert hi >= -1e-9
    for lam_w in wit:
        assert lam_w.min() >= 0 and lam_w.sum() == pytest.approx(1.0)


def test_reachable_domain_contains_every_reachable_belief(pomdp_dir):
    """Beliefs sampled along random action/observation sequences from b0 lie in some piece of the domain."""
    from scipy.optimize import linprog

    from trimpomdp.pomdp import load_model

    for name in ("shuttle.95", "4x3.95", "cheese.95"):
        m = load_model(pomdp_dir / f"{name}.POMDP")
        T, O = m.T_dense(), m.O_dense()
        pieces = _reachable_domain(T, O, m.initial_belief)
        rng = np.random.default_rng(0)
        for _ in range(40):
            b = m.initial_belief
            for _step in range(rng.integers(0, 6)):
                a = rng.integers(m.n_actions)
                joint = (b @ T[a])[:, None] * O[a]
                p = joint.sum(axis=0)
                o = rng.choice(len(p), p=p / p.sum())
                b = joint[:, o] / p[o]
            inside = False
            for piece in pieces:
                if piece.isolated:
                    inside |= bool(np.any(np.abs(piece.M - b).max(axis=1) <= 1e-9))
                else:
                    res = linprog(np.zeros(piece.q), A_eq=np.r_[piece.M.T, np.ones((1, piece.q))],
                                  b_eq=np.r_[b, 1.0], bounds=[(0, None)] * piece.q, method="highs")
                    inside |= res.status == 0
            assert inside, (name, b)


def test_errors():
    with pytest.raises(ModelError):
        ExactSolver(horizon=-1)
    with pytest.raises(ModelError):
        ExactSolver(tol=0)
    with pytest.raises(ModelError, match="discount"):
        ExactSolver().solve(tiger(discount=1.0))
    assert ExactSolver(horizon=2).solve(tiger(discount=1.0)).upper == pytest.approx(-2.0)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), q=st.integers(1, 8), K=st.integers(1, 80), stop=st.sampled_from([-np.inf, 0.0, 0.5]))
def test_certified_game_lp_brackets_linprog(seed, q, K, stop):
    """Both LP routines return a certified interval around the witness LP optimum (HiGHS as reference)."""
    from scipy.optimize import linprog

    rng = np.random.default_rng(seed)
    U = rng.normal(size=(K, q))
    w = rng.normal(size=q) * rng.choice([0.1, 1.0, 10.0])
    if seed % 3 == 0:  # degenerate: ties everywhere
        U, w = np.round(U, 1), np.round(w, 1)
    res = linprog(np.r_[-w, 1.0], A_ub=np.c_[U, -np.ones(K)], b_ub=np.zeros(K),
                  A_eq=np.r_[np.ones(q), 0.0][None, :], b_eq=[1.0], bounds=[(0, None)] * q + [(None, None)],
                  method="highs")
    ref = -res.fun
    lam, mu = np.empty(q), np.empty(K)
    lo, hi = game_lp(w, U, K, lam, mu)
    assert lo <= ref + 1e-9 and ref <= hi + 1e-9 and hi - lo <= 1e-9
    assert lam.min() >= 0 and lam.sum() == pytest.approx(1.0)
    assert float(np.min((w - U) @ lam)) == pytest.approx(lo, abs=1e-12)  # d_lo is attained at lam
    lo, hi = advantage_bounds(w, U, K, stop, lam, mu, np.empty((K, q)))
    assert lo <= ref + 1e-9 and ref <= hi + 1e-9
    if hi > stop:  # not stopped early: tight
        assert hi - lo <= 1e-9


@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 10_000), A=st.integers(2, 3), Z=st.integers(2, 3))
def test_coarse_adaptive_pruning_and_warm_start_keep_valid_bounds(seed, A, Z):
    """Epsilon-pruning is charged to the upper bound, so coarse pruning and a blind-policy start must still
    bracket the optimum found by a near-exact cold run."""
    m = random_model(seed, 3, A, Z, 0.6)
    # the reference's bounds are valid even when capped (fine pruning can blow up the vector sets)
    ref = ExactSolver(tol=1e-7, eps_fraction=1e-3, warm_start=False, timeout=2).solve(m)
    for frac, warm in ((0.5, True), (0.5, False), (0.3, True)):
        res = ExactSolver(tol=1e-5, eps_fraction=frac, warm_start=warm, timeout=2).solve(m)
        assert res.upper - res.lower <= 1e-5 or not res.converged
        assert res.lower <= ref.upper + 1e-9 and ref.lower <= res.upper + 1e-9
        assert res.policy.value(m.initial_belief) == pytest.approx(res.lower, abs=1e-9)


def test_capped_coarse_run_brackets_tiger():
    # early iterations prune with a large epsilon; whatever is reached must still bracket the optimum
    for it in (1, 3, 10, 30):
        res = ExactSolver(max_iterations=it, eps_fraction=0.9).solve(tiger())
        assert res.lower - 1e-9 <= TIGER_OPT <= res.upper + 1e-9


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), S=st.integers(3, 4), A=st.integers(2, 3), Z=st.integers(2, 3))
def test_reachable_domain_and_whole_simplex_agree(seed, S, A, Z):
    """Pruning on the beliefs reachable from b0 gives the same bounds at b0 as pruning on the whole simplex."""
    m = random_model(seed, S, A, Z, 0.7)
    near = ExactSolver(tol=1e-6, timeout=3).solve(m)
    full = ExactSolver(tol=1e-6, timeout=3, reachable=False).solve(m)
    assert near.lower <= full.upper + 1e-9 and full.lower <= near.upper + 1e-9
    if near.converged and full.converged:
        assert 0.5 * (near.lower + near.upper) == pytest.approx(0.5 * (full.lower + full.upper), abs=2e-6)
    # the shifted vectors are a lower bound whose value at b0 is the reported lower bound
    assert near.policy.value(m.initial_belief) == pytest.approx(near.lower, abs=1e-9)
