"""QMDP >= FIB >= V* >= blind: the bound ordering on known models, and on random ones (hypothesis)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.bounds import QMDPSolver, blind_alphas, fib_alphas, qmdp_alphas

TIGER_V = 19.3713  # published optimum of tiger.95 at the uniform belief


def tiger():
    T = np.array([np.eye(2), np.full((2, 2), 0.5), np.full((2, 2), 0.5)])
    O = np.array([[[0.85, 0.15], [0.15, 0.85]], np.full((2, 2), 0.5), np.full((2, 2), 0.5)])
    R = np.array([[-1.0, -100.0, 10.0], [-1.0, 10.0, -100.0]])
    return POMDP.from_arrays(T, O, R, 0.95, [0.5, 0.5], ["tl", "tr"], ["listen", "open-left", "open-right"],
                             ["tl", "tr"], name="tiger")


def random_pomdp(seed, S=3, A=2, Z=2, discount=0.9):
    rng = np.random.default_rng(seed)
    T = rng.dirichlet(np.ones(S) * 0.5, size=(A, S))
    O = rng.dirichlet(np.ones(Z) * 0.5, size=(A, S))
    R = rng.normal(size=(S, A)) * 5
    return POMDP.from_arrays(T, O, R, discount, rng.dirichlet(np.ones(S)))


def test_tiger_known_values():
    m = tiger()
    b = m.initial_belief
    q, f, bl = qmdp_alphas(m) @ b, fib_alphas(m) @ b, blind_alphas(m) @ b
    # blind 'listen forever' is -1 / (1 - 0.95) = -20 exactly
    assert bl.max() == pytest.approx(-20.0)
    assert q.max() >= f.max() - 1e-9
    assert f.max() >= TIGER_V
    assert bl.max() <= TIGER_V
    # QMDP on tiger: knowing the state, open the right door every step: 10 / (1 - 0.95) = 200 for Q(listen)
    assert q[0] == pytest.approx(-1 + 0.95 * 200, abs=1e-4)


def test_pointwise_ordering_on_cheese(pomdp_dir):
    from trimpomdp.pomdp.io import load_model

    m = load_model(pomdp_dir / "cheese.95.POMDP")
    Q, F, B = qmdp_alphas(m), fib_alphas(m), blind_alphas(m)
    assert np.all(Q.max(axis=0) >= F.max(axis=0) - 1e-7)
    assert np.all(F.max(axis=0) >= B.max(axis=0) - 1e-7)
    from trimpomdp.solvers.sarsop import SARSOPSolver

    res = SARSOPSolver(precision=1e-3, timeout=5).solve(m)
    b = m.initial_belief
    assert res.converged  # cheese is small: V*(b0) is pinned within 1e-3
    v_star = res.lower
    assert np.max(Q @ b) >= np.max(F @ b) - 1e-9
    assert np.max(F @ b) >= v_star - 1e-9
    assert v_star >= np.max(B @ b) - 1e-9


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000))
def test_random_models_bound_order(seed):
    m = random_pomdp(seed)
    Q, F, B = qmdp_alphas(m), fib_alphas(m), blind_alphas(m)
    assert np.all(Q >= F - 1e-7)  # FIB tightens QMDP vector by vector
    # every blind vector is a policy's value, below the FIB upper bound at every corner
    assert np.all(B.max(axis=0) <= F.max(axis=0) + 1e-7)


def test_terminal_states_have_zero_value():
    # state 1 is terminal: its row says 'stay with reward 5' but terminal states are worth 0
    T = np.array([[[0.0, 1.0], [0.0, 1.0]]])
    O = np.ones((1, 2, 1))
    R = np.array([[1.0], [5.0]])
    m = POMDP.from_arrays(T, O, R, 0.9, [1.0, 0.0], terminal=[False, True])
    for alphas in (qmdp_alphas(m), fib_alphas(m), blind_alphas(m)):
        assert alphas[0, 1] == pytest.approx(0.0)
        assert alphas[0, 0] == pytest.approx(1.0)


def test_qmdp_solver_result():
    res = QMDPSolver().solve(tiger())
    assert res.upper >= TIGER_V >= res.lower
    assert res.policy.alphas.shape == (3, 2)
    assert res.policy.meta["solver"] == "qmdp"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(2, 8), st.floats(0.5, 0.97))
def test_qmdp_is_the_mdp_fixed_point_and_blind_the_exact_policy_values(seed, S, discount):
    """Gauss-Seidel QMDP sweeps reach the MDP's Q-values (checked against dense Jacobi iteration run to machine
    precision); blind vectors solve their linear systems, also when an action keeps the state (diagonal)."""
    rng = np.random.default_rng(seed)
    A = 3
    T = rng.dirichlet(np.ones(S) * 0.5, size=(A, S))
    T[2] = np.eye(S)  # 'stay': a diagonal system
    O = rng.dirichlet(np.ones(2), size=(A, S))
    R = rng.normal(size=(S, A)) * 5
    m = POMDP.from_arrays(T, O, R, discount, rng.dirichlet(np.ones(S)))
    V = np.zeros(S)
    for _ in range(5000):
        V = (R + discount * np.einsum("ast,t->sa", T, V)).max(axis=1)
    Qref = R.T + discount * np.einsum("ast,t->as", T, V)
    np.testing.assert_allclose(qmdp_alphas(m), Qref, atol=1e-6)
    Bref = np.array([np.linalg.solve(np.eye(S) - discount * T[a], R[:, a]) for a in range(A)])
    np.testing.assert_allclose(blind_alphas(m), Bref, atol=1e-9)
    np.testing.assert_allclose(blind_alphas(m)[2], R[:, 2] / (1 - discount), rtol=1e-12)
