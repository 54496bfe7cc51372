"""pomdp-py interop: its exact histogram update agrees with ours, POUCT plans on our arrays, and a
model exported by pomdp-py's own .pomdp writer reads back to the same arrays."""
from __future__ import annotations

import random

import numpy as np
import pytest

from trimpomdp.pomdp import load_model, update

pomdp_py = pytest.importorskip("pomdp_py")

from trimpomdp.pomdp.interop import (  # noqa: E402
    belief_from_histogram,
    histogram,
    to_pomdp_py,
    to_pomdp_py_problem,
)


@pytest.fixture(scope="module")
def tiger(pomdp_dir):
    return load_model(pomdp_dir / "tiger.95.POMDP")


def test_objects_carry_indices_and_names(tiger):
    pr = to_pomdp_py_problem(tiger, init_state="tiger-right", seed=1)
    assert [s.index for s in pr.states] == [0, 1] and str(pr.actions[2]) == "open-right"
    assert pr.env.state == pr.states[1]
    assert pr.states[0] == type(pr.states[0])(0, "other name") and pr.states[0] != pr.states[1]
    tm, om = pr.agent.transition_model, pr.agent.observation_model
    assert tm.probability(pr.states[0], pr.states[0], pr.actions[0]) == 1.0
    assert om.probability(pr.observations[0], pr.states[0], pr.actions[0]) == 0.85
    assert pr.agent.reward_model.sample(pr.states[0], pr.actions[1], pr.states[1]) == -100
    assert len(tm.get_all_states()) == 2 and len(om.get_all_observations()) == 2
    assert np.array_equal(pr.belief(), [0.5, 0.5])


def test_histogram_update_agrees_with_ours(tiger):
    pr = to_pomdp_py_problem(tiger, seed=0)
    ag = pr.agent
    hist, b = ag.belief, tiger.initial_belief
    for a, o in [(0, 0), (0, 0), (0, 1), (1, 0), (0, 1), (0, 1), (2, 1)]:
        hist = pomdp_py.update_histogram_belief(hist, pr.actions[a], pr.observations[o], ag.observation_model,
                                                ag.transition_model)
        b = update(tiger, b, a, o)
        assert np.allclose(belief_from_histogram(hist, 2), b, rtol=1e-12, atol=1e-12)


def test_sampling_follows_the_arrays(tiger):
    pr = to_pomdp_py_problem(tiger, seed=3)
    tm, om = pr.agent.transition_model, pr.agent.observation_model
    listen, s0 = pr.actions[0], pr.states[0]
    assert all(tm.sample(s0, listen) == s0 for _ in range(50))  # listening never moves the tiger
    hits = sum(om.sample(s0, listen) == pr.observations[0] for _ in range(2000))
    assert 0.80 < hits / 2000 < 0.90  # O(tiger-left | tiger-left, listen) = 0.85


def test_pouct_listens_at_the_start_belief(tiger):
    random.seed(0)
    agent = to_pomdp_py(tiger, seed=0)
    planner = pomdp_py.POUCT(max_depth=8, discount_factor=0.95, num_sims=600, exploration_const=50,
                             rollout_policy=agent.policy_model)
    assert str(planner.plan(agent)) == "listen"
    # listening is also what every visit count of the root favours
    counts = {str(a): n.num_visits for a, n in agent.tree.children.items()}
    assert max(counts, key=counts.get) == "listen"


def test_pomdp_py_export_reads_back(tiger, tmp_path):
    agent = to_pomdp_py(tiger, belief=histogram_belief(tiger))
    path = tmp_path / "from_pomdp_py.pomdp"
    pomdp_py.to_pomdp_file(agent, str(path), discount_factor=0.95)
    back = load_model(path)
    assert back.states == tiger.states and back.actions == tiger.actions
    assert np.allclose(back.T_dense(), tiger.T_dense()) and np.allclose(back.O_dense(), tiger.O_dense())
    assert np.allclose(back.R, tiger.R) and np.allclose(back.initial_belief, [0.3, 0.7])


def histogram_belief(model):
    return np.array([0.3, 0.7])


def test_histogram_round_trip(tiger):
    pr = to_pomdp_py_problem(tiger)
    h = histogram(pr.states, [0.25, 0.75])
    assert np.array_equal(belief_from_histogram(h, 2), [0.25, 0.75])


def test_pomcp_plans_and_updates_particles(tiger):
    random.seed(0)
    pr = to_pomdp_py_problem(tiger, seed=0, n_particles=400, init_state=0)
    assert abs(pr.belief()[0] - 0.5) < 0.1
    planner = pomdp_py.POMCP(max_depth=8, discount_factor=0.95, num_sims=400, exploration_const=50,
                             rollout_policy=pr.agent.policy_model)
    action = planner.plan(pr.agent)
    assert str(action) == "listen"
    planner.update(pr.agent, action, pr.observations[0])  # heard the tiger on the left
    assert abs(pr.belief()[0] - 0.85) < 0.1  # particle estimate of the exact posterior 0.85
