"""The routing observation model: the decode-time filter is the exact posterior of the model the planner
solves, and the review's sequence is routed as it should be."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
from hypothesis import given, settings, strategies as st

from trimpomdp.decode.episode import Episode
from trimpomdp.decode.problems import Problem
from trimpomdp.decode.backends import StepOut
from trimpomdp.routing import BeliefFilter, TrimModel, solve_trim
from trimpomdp.routing.policies import ThresholdPolicy

SPEC = Path(__file__).resolve().parents[1] / "data" / "trim_math_plain.json"
TM = TrimModel.load(SPEC)


def _pair_model():
    d = json.loads(SPEC.read_text())
    d["observation"] = "pair"
    return TrimModel.from_dict(d, base_dir=SPEC.parent)


def forward_posterior(tm, scores, actions):
    """P(hidden state at the last step | every score so far) by summing over all hidden paths: the exact
    forward algorithm written out, independent of the filter's code. ``actions[k]`` is the action of step
    k (applied after its score); each step's observation is (min of the kept earlier scores, its score)."""
    T = {a: tm.transition(a) for a in ("keep", "regenerate")}
    obs, m = [], 1.0
    for s, a in zip(scores, actions):
        obs.append((m, s))
        if a == "keep":
            m = min(m, s)
    post = np.zeros(3)
    for path in itertools.product(range(3), repeat=len(scores)):
        p = tm.transition("keep")[0, path[0]]  # step 1 is written by the weak model from a correct start
        for k in range(1, len(path)):
            p *= T[actions[k - 1]][path[k - 1], path[k]]
        for k, o in enumerate(obs):
            p *= tm.obs.probs[path[k], tm.obs_bins(np.array(o))]
        post[path[-1]] += p
    return post / post.sum()


class _Imposed:
    """A routing policy that takes a given action sequence (the filter is what is tested)."""

    name = "imposed"

    def __init__(self, actions):
        self.actions = actions

    def start(self):
        return 0

    def act(self, state, observation):
        from trimpomdp.interfaces import Decision

        return Decision(self.actions[state]), state + 1


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.sampled_from(["keep", "regenerate"])), min_size=1, max_size=6),
       st.sampled_from(["current", "pair"]))
def test_decode_filter_is_the_exact_forward_posterior(steps, kind):
    """Episode (the decode loop's per-question state) against the brute-force forward algorithm."""
    tm = TM if kind == "current" else _pair_model()
    scores = [s for s, _ in steps]
    actions = [a for _, a in steps]
    ep = Episode(Problem("q", "Q?", None), _Imposed(actions), BeliefFilter(tm), max_steps=len(steps) + 1)
    for k, s in enumerate(scores):
        obs = ep.observe(StepOut("w", 10, False), s)
        expected = forward_posterior(tm, scores[:k + 1], actions[:k + 1])
        np.testing.assert_allclose(obs.belief, expected, atol=1e-9)
        d = ep.decide()
        assert d.action == actions[k]
        ep.commit(StepOut("s", 10, False) if d.regenerate else None)


def test_review_sequence_is_regenerated_at_its_fifth_step():
    """Kept steps scored 0.55, 0.95, 0.95, 0.95, then 0.2 (the review's example). The v1 pair model counts
    the min-earlier 0.55 again at every step, drifts to 'derailed' (b(D) = 0.83) and keeps the step; the
    current-score model counts each score once and regenerates it. (Its b(E) is not the largest component:
    on Qwen2.5-Math-PRM's labelled steps a 0.55-0.6 score is 13x likelier for a wrong step than a correct
    one, and 35% of derailed steps score >= 0.95, so "wrong at step 1" stays about as likely as "wrong at
    step 5"; the reference's memoryless posterior ignores step 1 and says b(E) = 0.68.)"""
    scores = [0.55, 0.95, 0.95, 0.95, 0.2]
    beliefs = {}
    for kind, tm in (("current", TM), ("pair", _pair_model())):
        pol = solve_trim(tm, lam=0.15, evaluate=False)
        ep = Episode(Problem("q", "Q?", None), _Imposed(["keep"] * 5), BeliefFilter(tm), max_steps=6)
        for s in scores:
            obs = ep.observe(StepOut("w", 60, False), s)
            ep.decide()
            ep.commit(None)
        beliefs[kind] = obs.belief
        q_keep, q_regen = pol.q_values(obs.belief, 5, 60.0)
        assert (q_regen[0] > q_keep[0]) == (kind == "current")
    assert beliefs["pair"][2] > 0.8 and beliefs["current"][1] > 3 * beliefs["pair"][1]
    assert beliefs["current"][2] < 0.6


def test_threshold_policy_sees_the_same_observation_in_both_readings():
    """The raw-score baseline does not depend on how the table is read."""
    p = ThresholdPolicy(0.5)
    b = np.array([1.0, 0.0, 0.0])
    assert p.decide(b, 1, 60, score=0.4).regenerate and not p.decide(b, 1, 60, score=0.6).regenerate
