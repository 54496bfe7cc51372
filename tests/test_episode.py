"""The per-step decode API (``decode.episode.Episode``) and a general solver's policy driving it."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.decode.backends import StepOut
from trimpomdp.decode.episode import Episode
from trimpomdp.errors import TrimError
from trimpomdp.interfaces import BeliefUpdater, Decision, RoutingPolicy, StepObservation
from trimpomdp.routing.filter import BeliefFilter
from trimpomdp.routing.pomdp import FlatRoutingPolicy, coarsen, flat_pomdp
from trimpomdp.routing.spec import TrimModel

SPEC = Path(__file__).resolve().parents[1] / "data" / "trim_math_plain.json"


@dataclass
class Problem:
    id: str
    question: str = "1+1?"
    reference: str | None = "2"


class BelowHalf:
    """Regenerate below 0.5; state counts regenerations (so per-question state is visible)."""

    name, needs_belief = "below-half", False

    def start(self):
        return 0

    def act(self, state, obs):
        regen = obs.score < 0.5
        return Decision("regenerate" if regen else "keep"), state + regen


def test_protocols_are_met(tm):
    from trimpomdp.interfaces import BatchRoutingPolicy, TracedUpdater
    from trimpomdp.routing import load_policy

    assert isinstance(BeliefFilter(tm), BeliefUpdater) and isinstance(BeliefFilter(tm), TracedUpdater)
    assert isinstance(BelowHalf(), RoutingPolicy)
    for spec in ("weak", "strong", "threshold:0.4", "pomdp:lambda=0.5"):
        pol = load_policy(spec, tm)
        assert isinstance(pol, RoutingPolicy) and isinstance(pol, BatchRoutingPolicy)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.integers(1, 90)), min_size=1, max_size=8))
def test_episode_bookkeeping(tm, steps):
    """Tokens, running minimum, beliefs and policy state follow the definitions, step by step."""
    f = BeliefFilter(tm)
    ep = Episode(Problem("p"), BelowHalf(), f, max_steps=len(steps))
    b, prev, m, regens = f.initialize(), "keep", 1.0, 0
    kept = discarded = strong = 0
    for i, (score, n) in enumerate(steps):
        assert ep.awaiting == "observe" and ep.step == i + 1
        last = i == len(steps) - 1
        obs = ep.observe(StepOut(f"w{i}", n, False), score)
        assert isinstance(obs, StepObservation) and obs.min_earlier == m and obs.step == i + 1
        post = f.update(b, prev, (m, score))
        np.testing.assert_allclose(obs.belief, post, atol=1e-12)
        assert len(obs.history) == i
        d = ep.decide()
        assert d.regenerate == (score < 0.5)
        if d.regenerate:
            ep.commit(StepOut(f"s{i}", 2 * n, last))
            discarded, strong, regens = discarded + n, strong + 2 * n, regens + 1
        else:
            ep.commit()
            kept, m = kept + n, min(m, score)
        b, prev = post, d.action
        assert ep.policy_state == regens
    assert ep.done and ep.finish in ("max_steps", "eos")
    assert ep.tokens == {"weak_kept": kept, "weak_discarded": discarded, "strong": strong}
    rec = ep.record("below-half")
    assert [e["model"] for e in rec["steps"]] == ["strong" if s < 0.5 else "weak" for s, _ in steps]
    assert [e["policy_state"] for e in rec["steps"]] == list(np.cumsum([0] + [s < 0.5 for s, _ in steps])[:-1])


def test_episode_refuses_calls_out_of_order_and_isolates_errors(tm):
    ep = Episode(Problem("p"), BelowHalf(), BeliefFilter(tm), max_steps=3)
    with pytest.raises(TrimError, match="awaiting observe"):
        ep.decide()
    ep.observe(StepOut("a", 5, False), 0.2)
    with pytest.raises(TrimError, match="awaiting decide"):
        ep.commit()
    ep.decide()
    with pytest.raises(TrimError, match="no strong step"):
        ep.commit(None)
    ep.commit(StepOut("b", 5, False))
    with pytest.raises(TrimError, match="non-finite"):
        ep.observe(StepOut("c", 5, False), float("nan"))
    assert ep.done and ep.finish == "error" and "non-finite" in ep.error
    assert ep.record("x")["finish"] == "error"


def test_external_decisions_drive_an_episode_without_policy(tm):
    """A training environment imposes its agent's actions."""
    ep = Episode(Problem("p"), None, BeliefFilter(tm), max_steps=2)
    ep.observe(StepOut("a", 5, False), 0.9)
    assert ep.decide(1).action == "regenerate"
    ep.commit(StepOut("b", 7, True))
    assert ep.finish == "eos" and ep.tokens["strong"] == 7


def _small(tm):
    pmf = tm.length_pmf[:2].copy()
    pmf[-1] += tm.length_pmf[2:].sum()
    return TrimModel(obs=coarsen(tm.obs, 10), p_weak=tm.p_weak, p_strong=tm.p_strong, length_pmf=pmf,
                     token_values=np.array([60.0]), token_probs=np.array([1.0]), discount=0.95,
                     tokens_per_weak_token=1.0)


def test_flat_alpha_policy_drives_an_episode_like_the_structured_policy(tm):
    """The exact solver's alpha vectors of the flat routing POMDP, run through the generic Bayes update,
    decide as the structured policy does wherever the two actions' values are not tied."""
    from trimpomdp.routing.solver import solve_trim
    from trimpomdp.solvers.exact import ExactSolver

    s = _small(tm)
    lam = 0.05
    res = ExactSolver(horizon=3).solve(flat_pomdp(s, lam))
    flat = FlatRoutingPolicy(s, lam, res.policy)
    structured = solve_trim(s, lam=lam, evaluate=False)
    f = BeliefFilter(s)
    rng = np.random.default_rng(0)
    agree = 0
    for trial in range(60):
        scores = rng.uniform(0, 1, size=2)
        ep = Episode(Problem(str(trial)), flat, f, max_steps=2)
        for score in scores:
            if ep.done:
                break
            obs = ep.observe(StepOut("w", 60, False), score)
            d = ep.decide()
            qk, qr = structured.q_values(obs.belief, obs.step, 60.0)
            flat_b = ep.policy_state[0]
            hidden = np.array([flat_b[1:-1].reshape(2, 3)[obs.step - 1, h] for h in range(3)])
            np.testing.assert_allclose(hidden / hidden.sum(), obs.belief, atol=1e-9)
            if abs(qk[0] - qr[0]) > 1e-3:
                assert d.regenerate == bool(qr[0] > qk[0])
                agree += 1
            ep.commit(StepOut("s", 60, False) if d.regenerate else None)
    assert agree > 30
    ep = Episode(Problem("long"), flat, f, max_steps=5)
    for _ in range(2):
        ep.observe(StepOut("w", 60, False), 0.9)
        ep.commit(StepOut("s", 60, False) if ep.decide().regenerate else None)
    with pytest.raises(TrimError, match="horizon"):
        ep.observe(StepOut("w", 60, False), 0.9)
        ep.decide()
