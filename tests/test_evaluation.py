"""Policy evaluation: known values of fixed policies, simulation vs exact, terminal states, errors."""
from __future__ import annotations

import numpy as np
import pytest

from trimpomdp.errors import ModelError, TrimError
from trimpomdp.policies.evaluation import default_horizon, evaluate_exact, simulate_policy
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.exact import ExactSolver

from tests.test_exact import TIGER_OPT, tiger


def fixed_action(model, a):
    return AlphaVectorPolicy(np.zeros((1, model.n_states)), [a])


def test_always_listen_is_minus_twenty():
    m = tiger()
    ex = evaluate_exact(m, fixed_action(m, 0), tol=1e-8)
    assert ex.value == pytest.approx(-20.0, abs=1e-7) and ex.error <= 1e-8
    sim = simulate_policy(m, fixed_action(m, 0), episodes=50, horizon=30)
    assert sim.std == pytest.approx(0.0, abs=1e-9)
    assert sim.mean == pytest.approx(-(1 - 0.95 ** 30) / 0.05)
    # always opening the left door: -45 per step in expectation
    assert evaluate_exact(m, fixed_action(m, 1), horizon=3).value == pytest.approx(-45 * (1 + .95 + .95 ** 2))


def test_optimal_tiger_policy_exact_and_simulated():
    m = tiger()
    res = ExactSolver(tol=1e-6).solve(m)
    ex = evaluate_exact(m, res.policy, tol=1e-5)
    # following the near-optimal policy achieves the optimum (up to the truncation error)
    assert abs(ex.value - TIGER_OPT) <= ex.error + 1e-5
    sim = simulate_policy(m, res.policy, episodes=2500, seed=3)
    assert sim.ci95_low <= TIGER_OPT <= sim.ci95_high
    assert sim.ci95_high - sim.ci95_low < 3.0
    short = simulate_policy(m, res.policy, episodes=300, horizon=20, seed=3)
    assert simulate_policy(m, res.policy, episodes=300, horizon=20, seed=3).mean == short.mean  # seeded
    assert simulate_policy(m, res.policy, episodes=300, horizon=20, seed=4).mean != short.mean


def test_finite_horizon_policy_value_equals_solver_value():
    m = tiger()
    res = ExactSolver(horizon=3).solve(m)
    # a 3-step plan is not stationary, but greedy on V_3 for 1 step then value check on horizon 1 is exact
    r1 = ExactSolver(horizon=1).solve(m)
    assert evaluate_exact(m, r1.policy, horizon=1).value == pytest.approx(r1.upper)
    assert res.upper >= evaluate_exact(m, res.policy, horizon=3).value - 1e-9


def test_terminal_states_end_episodes():
    # state 0 pays 1 per step and moves to absorbing terminal state 1 with probability 1/2
    T = np.array([[[0.5, 0.5], [0.0, 1.0]]])
    O = np.array([[[1.0], [1.0]]])
    R = np.array([[1.0], [5.0]])  # the terminal state's reward is never collected
    m = POMDP.from_arrays(T, O, R, 1.0, [1.0, 0.0], terminal=[False, True])
    pol = fixed_action(m, 0)
    ex = evaluate_exact(m, pol, horizon=60)
    assert ex.value == pytest.approx(2.0, abs=1e-9)  # geometric: sum 0.5^t
    sim = simulate_policy(m, pol, episodes=4000, seed=0)
    assert sim.horizon == 10_000
    assert sim.ci95_low <= 2.0 <= sim.ci95_high


def test_default_horizon():
    m = tiger()
    H = default_horizon(m)
    assert 0.95 ** H * 100 < 1e-3 <= 0.95 ** (H - 1) * 100
    with pytest.raises(TrimError, match="horizon"):
        default_horizon(tiger(discount=1.0))
    # a discount just below 1 would ask for ~1e12 steps an episode: refused, not run for hours (fuzz find)
    with pytest.raises(TrimError, match="steps per episode.*--horizon"):
        default_horizon(tiger(discount=0.99999999999))


def test_errors():
    m = tiger()
    with pytest.raises(TrimError):
        simulate_policy(m, fixed_action(m, 0), episodes=0)
    with pytest.raises(ModelError, match="states"):
        simulate_policy(m, AlphaVectorPolicy(np.zeros((1, 3)), [0]), episodes=5)
    with pytest.raises(TrimError, match="action"):
        simulate_policy(m, fixed_action(m, 7), episodes=5)
    bad = AlphaVectorPolicy(np.zeros((1, 2)), [0], {"model_fingerprint": "0" * 64})
    with pytest.raises(ModelError, match="fingerprint"):
        evaluate_exact(m, bad)
    with pytest.raises(TrimError, match="beliefs"):
        evaluate_exact(m, fixed_action(m, 0), tol=1e-9, max_beliefs=10)


def test_simulation_memory_is_bounded_by_chunks(monkeypatch):
    """Beliefs are simulated a chunk of episodes at a time; the merged mean and spread equal those of all
    the returns at once, and a huge episode count is refused before anything is allocated."""
    import trimpomdp.policies.evaluation as E

    m = tiger()
    pol = fixed_action(m, 1)
    monkeypatch.setattr(E, "BELIEF_BYTES", 8 * m.n_states * 100)  # chunks of 100 episodes
    chunks = []
    real = E._simulate_chunk
    monkeypatch.setattr(E, "_simulate_chunk", lambda *a: chunks.append(real(*a)) or chunks[-1])
    res = simulate_policy(m, pol, episodes=999, horizon=5, seed=3)
    assert [c.size for c in chunks] == [100] * 9 + [99]
    every = np.concatenate(chunks)
    assert res.mean == pytest.approx(every.mean(), rel=1e-12)
    assert res.std == pytest.approx(every.std(ddof=1), rel=1e-9)
    with pytest.raises(TrimError, match="over the limit"):
        simulate_policy(m, pol, episodes=10**12)
