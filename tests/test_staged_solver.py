"""The staged solver (finite-horizon MOMDPs with acyclic visible dynamics): known answers, agreement with the
exact solver on random layered models, refusal of cyclic models, and the routing MOMDP against the
structured solver."""
from __future__ import annotations

from typing import NamedTuple

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from trimpomdp.errors import ModelError
from trimpomdp.pomdp.momdp import MOMDP
from trimpomdp.solvers.exact import ExactSolver
from trimpomdp.solvers.staged import StagedSolver, _tiny, is_staged, stages


def test_known_answer_two_guesses():
    # guess a fair coin (0.5), look at it through a 0.8-accurate sensor, guess again: 0.5 + 0.9 * 0.8
    res = StagedSolver(precision=1e-9).solve(_tiny())
    assert res.lower == pytest.approx(1.22, abs=1e-12) and res.upper == pytest.approx(1.22, abs=1e-9)
    assert res.converged and res.policy.meta["solver"] == "staged"
    # the policy reads flat beliefs: after the look says heads (posterior 0.8) it guesses heads
    pol = res.policy
    m = _tiny()
    assert pol.value(m.flat.initial_belief) == pytest.approx(1.22, abs=1e-12)
    assert pol.action(m.join(1, [0.8, 0.2])) == 0 and pol.action(m.join(1, [0.2, 0.8])) == 1


def _tiger(horizon: int) -> MOMDP:
    """The tiger problem for ``horizon`` decisions, visible value = decisions made (the last one terminal)."""
    X, Y, A = horizon + 1, 2, 3  # listen, open-left, open-right; tiger left / right
    TX = np.zeros((A, X * Y, X))
    TY = np.zeros((A, X * Y, X, Y))
    O = np.zeros((A, X * Y, 2))
    R = np.zeros((X * Y, A))
    for x in range(X):
        for y in range(Y):
            s = x * Y + y
            TX[:, s, min(x + 1, X - 1)] = 1.0
            TY[0, s, :, y] = 1.0  # listening keeps the tiger where it is
            TY[1:, s, :, :] = 0.5  # opening a door resets it
            O[0, s] = [0.85, 0.15] if y == 0 else [0.15, 0.85]
            O[1:, s] = 0.5
            R[s] = [-1.0, -100.0 if y == 0 else 10.0, 10.0 if y == 0 else -100.0]
    term = np.zeros(X * Y, bool)
    term[-Y:] = True
    b0 = np.zeros(X * Y)
    b0[:Y] = 0.5
    return MOMDP.from_factors(TX, TY, O, R, 1.0, b0, terminal=term, name=f"tiger-{horizon}")


@pytest.mark.parametrize("horizon, value", [(1, -1.0), (2, -2.0)])
def test_tiger_hand_computed(horizon, value):
    # one or two decisions: opening at 0.5 or 0.85 loses on average, so listen every time
    res = StagedSolver(precision=1e-9).solve(_tiger(horizon))
    assert res.lower == pytest.approx(value, abs=1e-9) and res.upper == pytest.approx(value, abs=1e-9)


def test_tiger_horizon_three_matches_exact_solver():
    m = _tiger(3)
    ex = ExactSolver(tol=1e-9, horizon=3).solve(m.flat)  # 3 backups reach the terminal layer
    res = StagedSolver(precision=1e-6).solve(m)
    assert res.lower - 1e-9 <= ex.upper and ex.lower <= res.upper + 1e-9
    assert res.gap <= 1e-6
    assert res.lower == pytest.approx(ex.lower, abs=1e-6)


def _layered(rng, widths, Y, A, Zo, discount):
    """A random MOMDP whose visible values come in layers; each moves to the next layer, the last is
    terminal; hidden values and observations random."""
    X = sum(widths)
    first = np.cumsum([0] + list(widths))
    TX = np.zeros((A, X * Y, X))
    for li in range(len(widths) - 1):
        nxt = np.arange(first[li + 1], first[li + 2])
        for x in range(first[li], first[li + 1]):
            for a in range(A):
                w = rng.random(nxt.size) * (rng.random(nxt.size) < 0.7)
                w[rng.integers(nxt.size)] += 0.1
                for y in range(Y):
                    TX[a, x * Y + y, nxt] = w / w.sum()
    for x in range(first[-2], X):
        TX[:, x * Y:(x + 1) * Y, x] = 1.0
    TY = rng.random((A, X * Y, X, Y)) ** 3
    TY /= TY.sum(axis=3, keepdims=True)
    O = rng.random((A, X * Y, Zo)) ** 2
    O /= O.sum(axis=2, keepdims=True)
    R = rng.normal(size=(X * Y, A)).round(2)
    term = np.zeros(X * Y, bool)
    term[first[-2] * Y:] = True
    b0 = np.zeros(X * Y)
    b0[:Y] = rng.dirichlet(np.ones(Y))
    return MOMDP.from_factors(TX, TY, O, R, discount, b0, terminal=term)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), depth=st.integers(2, 3), Y=st.integers(2, 3),
       discount=st.sampled_from([0.9, 1.0]))
def test_random_layered_models_bracket_the_exact_value(seed, depth, Y, discount):
    rng = np.random.default_rng(seed)
    widths = [1] + [int(rng.integers(1, 3)) for _ in range(depth - 1)] + [1]
    m = _layered(rng, widths, Y, A=2, Zo=2, discount=discount)
    assert is_staged(m)
    ex = ExactSolver(tol=1e-7, horizon=len(widths) - 1).solve(m.flat)  # exact after the depth
    res = StagedSolver(precision=1e-5).solve(m)
    tol = 1e-6
    assert res.lower <= ex.upper + tol and ex.lower <= res.upper + tol  # the bounds bracket the value
    assert res.gap <= 1e-5 and ex.upper - ex.lower <= 1e-6
    assert abs(res.lower - ex.lower) <= 1e-5 + tol
    # the policy's vectors give the lower bound at b0
    assert res.policy.value(m.flat.initial_belief) == pytest.approx(res.lower, abs=1e-9)


def _cyclic(loop_back: bool) -> MOMDP:
    """Two visible values a, b: a -> b, and b -> a (loop_back) or b -> b (a self-loop), never terminal."""
    X, Y, A = 2, 2, 1
    TX = np.zeros((A, X * Y, X))
    TX[0, :Y, 1] = 1.0
    TX[0, Y:, 0 if loop_back else 1] = 1.0
    TY = np.broadcast_to(np.full(Y, 1.0 / Y), (A, X * Y, X, Y)).copy()
    O = np.ones((A, X * Y, 1))
    R = np.ones((X * Y, A))
    return MOMDP.from_factors(TX, TY, O, R, 0.9, np.array([0.5, 0.5, 0, 0]), visible=["a", "b"],
                              name="loop")


def test_cyclic_models_are_refused_with_the_cycle():
    with pytest.raises(ModelError, match=r"not staged .*cycle.*'a'.*'b'|not staged .*cycle.*'b'.*'a'"):
        stages(_cyclic(True))
    with pytest.raises(ModelError, match=r"action '0' in state .* can stay at visible value 'b'.*--solver sarsop"):
        StagedSolver().solve(_cyclic(False))
    assert not is_staged(_cyclic(True))


def test_bad_settings_are_refused():
    for kw in ({"precision": 0}, {"timeout": -1}, {"max_iterations": -1}, {"memory_mb": 0}):
        with pytest.raises(ModelError):
            StagedSolver(**kw)


def test_routing_momdp_small_matches_structured_solver(tm):
    from tests.test_routing_model import small
    from trimpomdp.routing.momdp import routing_momdp
    from trimpomdp.routing.solver import solve_trim

    s = small(tm, T=3, factor=5, values=(40.0, 120.0))
    target = s.discount * solve_trim(s, lam=0.05, evaluate=False).predicted["value"]
    res = StagedSolver(precision=1e-7).solve(routing_momdp(s, 0.05))
    assert res.lower == pytest.approx(target, abs=1e-6)
    assert res.lower - 1e-6 <= target <= res.upper + 1e-6


def test_routing_momdp_with_classes_brackets_single_class_bounds(tm):
    """Three identical difficulty classes (9 hidden values) give the single-class value."""
    from tests.test_routing_model import small
    from trimpomdp.routing.difficulty import Difficulty
    from trimpomdp.routing.momdp import routing_momdp

    s = small(tm, T=2, factor=10, values=(40.0, 120.0))
    one = StagedSolver(precision=1e-6).solve(routing_momdp(s, 0.05))
    d = Difficulty([0.2, 0.3, 0.5], [s.p_weak] * 3, [s.p_strong] * 3)
    three = StagedSolver(precision=1e-6).solve(routing_momdp(dataclasses.replace(s, difficulty=d), 0.05))
    assert three.policy.n_hidden == 9
    assert three.lower == pytest.approx(one.lower, abs=2e-6)
    assert three.lower - 2e-6 <= one.upper and one.lower <= three.upper + 2e-6


def test_cli_staged_on_a_cyclic_model_is_one_error_line(capsys, pomdp_dir, tmp_path):
    from trimpomdp.cli.main import main

    rc = main(["solve", str(pomdp_dir / "tiger.95.POMDP"), "--solver", "staged", "--progress", "none",
               "-o", str(tmp_path / "t.npz")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("Error:") and "not staged" in err[0]


def _with_siblings(rng, widths, Y, A, Zo, discount):
    """``_layered`` with each non-first, non-last layer's values copied in pairs: the copy keeps the
    original's successor blocks (so the two are siblings) and gets its own rewards."""
    m = _layered(rng, widths, Y, A, Zo, discount)
    X = m.n_visible
    first = np.cumsum([0] + list(widths))
    T = [m.flat.T[a].toarray() for a in range(A)]
    Om = [m.flat.O[a].toarray() for a in range(A)]
    R = np.array(m.flat.R, dtype=float)
    pairs = []
    for li in range(1, len(widths) - 1):
        xs = list(range(first[li], first[li + 1]))
        for x1, x2 in zip(xs[::2], xs[1::2]):
            for a in range(A):
                T[a][x2 * Y:(x2 + 1) * Y] = T[a][x1 * Y:(x1 + 1) * Y]
            R[x2 * Y:(x2 + 1) * Y] = rng.normal(size=(Y, A)).round(2)
            pairs.append((x1, x2))
    term = np.asarray(m.flat.terminal, bool)
    return MOMDP.from_joint(T, Om, R, discount, X, np.asarray(m.flat.initial_belief), terminal=term), pairs


class _Value(NamedTuple):
    lower: float
    upper: float


def _exact(m, layers):
    """The exact ``layers``-step value of b0 by expanding the belief tree over actions, visible successors
    and observations (independent of every solver; memoised on rounded beliefs). The flat exact solver's
    alpha sets explode on these models (observations fold in the visible value), so it is not used here."""
    X, Y, A, Zo = m.n_visible, m.n_hidden, m.n_actions, m.n_observations
    T = [m.flat.T[a].toarray() for a in range(A)]
    O = [m.observation(a).toarray() for a in range(A)]
    R = np.asarray(m.flat.R, dtype=float)
    term = np.asarray(m.flat.terminal, bool).reshape(X, Y).all(axis=1)
    succ = [[np.flatnonzero(T[a][x * Y:(x + 1) * Y].reshape(Y, X, Y).sum(axis=(0, 2)) > 0) for a in range(A)]
            for x in range(X)]
    memo = {}

    def value(x, b, d):
        if d == 0 or term[x]:
            return 0.0
        key = (x, d, tuple(np.round(b, 12)))
        if key not in memo:
            best = -np.inf
            for a in range(A):
                v = float(b @ R[x * Y:(x + 1) * Y, a])
                for xp in succ[x][a]:
                    pred = T[a][x * Y:(x + 1) * Y, xp * Y:(xp + 1) * Y].T @ b
                    for o in range(Zo):
                        post = pred * O[a][xp * Y:(xp + 1) * Y, o]
                        z = post.sum()
                        if z > 1e-15:
                            v += m.discount * z * value(xp, post / z, d - 1)
                best = max(best, v)
            memo[key] = best
        return memo[key]

    B = np.asarray(m.flat.initial_belief, dtype=float).reshape(X, Y)
    v = sum(B[x].sum() * value(x, B[x] / B[x].sum(), layers) for x in range(X) if B[x].sum() > 0)
    return _Value(v, v)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), Y=st.integers(2, 4))
def test_sibling_group_backup_equals_separate_backups(seed, Y):
    """One grouped backup stores, at every sibling, the alpha vector and upper value that backing up each
    sibling on its own stores."""
    from trimpomdp.solvers import staged as S
    from trimpomdp.solvers import staged_kernels as K

    rng = np.random.default_rng(seed)
    m, pairs = _with_siblings(rng, [1, 4, 2, 1], Y, A=2, Zo=3, discount=0.95)
    s = stages(m)
    d = s.dyn
    pairs = [(x1, x2) for x1, x2 in pairs if s.reach[x1] and s.reach[x2]]
    assume(pairs)
    for x1, x2 in pairs:
        assert d.grp[x1] == d.grp[x2] and d.gptr[d.grp[x1] + 1] - d.gptr[d.grp[x1]] == 2
    alone = d._replace(grp=np.arange(s.X), gptr=np.arange(s.X + 1), gmem=np.arange(s.X))
    sg, _ = S._initial_slabs(s)
    sa, _ = S._initial_slabs(s)
    sg.ensure(4)
    sa.ensure(4)
    b = rng.dirichlet(np.ones(Y))
    nxt = np.empty(Y)
    x1, x2 = pairs[0]
    K.backup(x1, b, 0.0, d, sg.st, nxt)
    for x in (x1, x2):
        K.backup(x, b, 0.0, alone, sa.st, nxt)
    for x in (x1, x2):
        assert K.lower_at(x, b, sg.st)[0] == pytest.approx(K.lower_at(x, b, sa.st)[0], rel=1e-12, abs=1e-12)
        assert K.upper_at(x, b, sg.st) == pytest.approx(K.upper_at(x, b, sa.st), rel=1e-12, abs=1e-12)
        ng, na = sg.st.an[x], sa.st.an[x]
        np.testing.assert_allclose(sg.st.av[sg.st.ast[x]:sg.st.ast[x] + ng],
                                   sa.st.av[sa.st.ast[x]:sa.st.ast[x] + na], rtol=1e-12, atol=1e-12)
    # the siblings share their points
    p1 = sg.st.pb[sg.st.ps[x1]:sg.st.ps[x1] + sg.st.pn[x1]]
    assert sg.st.pn[x1] == sg.st.pn[x2]
    np.testing.assert_array_equal(p1, sg.st.pb[sg.st.ps[x2]:sg.st.ps[x2] + sg.st.pn[x2]])


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), Y=st.integers(2, 3), discount=st.sampled_from([0.9, 1.0]))
def test_breadth_rounds_keep_the_bounds_valid(seed, Y, discount):
    """Simulated beliefs backed up in reverse order, then full sweeps, with no HSVI trial: the bounds at b0
    bracket the exact value after every round and close on it; every simulated belief is a distribution at
    a reachable non-terminal visible value."""
    from trimpomdp.solvers import staged as S
    from trimpomdp.solvers import staged_kernels as K

    rng = np.random.default_rng(seed)
    widths = [1, 4, 4, 2, 1]
    m, _ = _with_siblings(rng, widths, Y, A=2, Zo=2, discount=discount)
    ex = _exact(m, len(widths) - 1)
    s = stages(m)
    slabs, _ = S._initial_slabs(s)
    out_x = np.zeros(50 * 6, np.int64)
    out_b = np.zeros((50 * 6, Y))
    n = K.simulate(s.roots, s.beliefs, s.masses, 50, 0.3, int(rng.integers(1000)), s.dyn, slabs.st, out_x, out_b)
    assert n > 0 and s.reach[out_x[:n]].all() and not s.dyn.term[out_x[:n]].any()
    np.testing.assert_allclose(out_b[:n].sum(axis=1), 1.0, atol=1e-12)
    assert (out_b[:n] >= 0).all()
    tol = 1e-7
    for _ in range(4):
        S._bulk(slabs, s, 100, 0.3, 50, rng)
        S._full_sweep(slabs, s)
        lo = sum(w * K.lower_at(x, b, slabs.st)[0] for x, b, w in zip(s.roots, s.beliefs, s.masses))
        up = sum(w * K.upper_at(x, b, slabs.st) for x, b, w in zip(s.roots, s.beliefs, s.masses))
        assert lo <= ex.upper + tol and ex.lower - tol <= up
    assert up - lo < 0.5 * (ex.upper - (-10.0 * len(widths)))  # the rounds did close the bounds


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), Y=st.integers(2, 3))
def test_models_with_siblings_match_the_exact_solver(seed, Y):
    rng = np.random.default_rng(seed)
    widths = [1, 4, 2, 1]
    m, _ = _with_siblings(rng, widths, Y, A=2, Zo=2, discount=0.95)
    ex = _exact(m, len(widths) - 1)
    res = StagedSolver(precision=1e-6, seed=int(rng.integers(1000))).solve(m)
    assert res.gap <= 1e-6 and res.lower == pytest.approx(ex.lower, abs=2e-6)
    assert res.lower <= ex.upper + 1e-7 and ex.lower - 1e-7 <= res.upper
