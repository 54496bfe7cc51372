"""Ablations and query-level baselines of step routing: full takeover, the first-step probe, the oracle.

- ``TakeoverPolicy`` (``takeover:<base>``): the base policy decides until its first regeneration; from then
  on the strong model writes every remaining step (the paper's "full takeover" ablation of regenerating one
  step and handing back to the cheap model).
- ``QueryPolicy`` (``query:K``): a query-level router that probes: the cheap model writes step 1, the PRM
  scores it, and the whole question goes to the strong model (step 1 rewritten and every later step) when
  that score is below K; otherwise the cheap model writes everything.
- ``OracleQueryPolicy`` (``query-oracle``): the upper bound of query-level routing: the strong model writes
  exactly the questions the cheap model alone gets wrong (known in simulation only: the cheap-only and
  strong-only runs on the same draws, combined per question).

Policies with ``takeover = True`` tell the simulator (``StepSimulator``) and the decode loop
(``Episode.awaiting == "strong"``) that once they regenerate, the strong model writes the rest without
anything being scored or decided. Per-question state (decode): ``{"takeover": 0|1, "base": <base state>}``.
"""
from __future__ import annotations

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.interfaces import Decision, StepObservation
from trimpomdp.routing.policies import RoutingPolicy


class TakeoverPolicy(RoutingPolicy):
    """``base`` until its first regeneration, then the strong model writes every remaining step."""

    takeover = True

    def __init__(self, base):
        if getattr(base, "takeover", False) or getattr(base, "oracle", False):
            raise TrimError(f"takeover:{base.name}: the base policy already routes whole questions")
        if getattr(base, "cap", None) is not None:
            raise TrimError(f"takeover:{base.name}: a capped policy cannot hand the rest of a question to the "
                            "strong model (the cap would be exceeded); use a price or mean budget")
        self.base = base
        self.name = f"takeover:{base.name}"
        self.needs_belief = bool(getattr(base, "needs_belief", False))
        for attr in ("trim_model", "predicted", "meta", "lam"):
            if hasattr(base, attr):
                setattr(self, attr, getattr(base, attr))
        if hasattr(base, "act_many"):  # learned routers: per-episode state in the simulator
            self.start_many = base.start_many
            self.act_many = base.act_many

    def decide_many(self, beliefs, step, costs, scores, levels=None):
        return self.base.decide_many(beliefs, step, costs, scores, levels)

    def decide(self, belief, step, n_tokens, score=None, remaining=None) -> Decision:
        return self.base.decide(belief, step, n_tokens, score=score, remaining=remaining)

    def start(self):
        return {"takeover": 0, "base": self.base.start()}

    def act(self, state, obs: StepObservation):
        if self.strong_writes(state):
            return Decision("regenerate"), state
        d, base_state = self.base.act(state["base"], obs)
        return d, {"takeover": int(d.regenerate), "base": base_state}

    @staticmethod
    def strong_writes(state) -> bool:
        """True once the strong model writes every remaining step of the question."""
        return bool(isinstance(state, dict) and state.get("takeover"))


class QueryPolicy(RoutingPolicy):
    """Route the whole question to the strong model when the first cheap step scores below ``k``."""

    takeover = True

    def __init__(self, k: float):
        if not (0.0 <= k <= 1.0) or isinstance(k, bool):
            raise TrimError(f"query:K needs a PRM score K in [0, 1], got {k!r}")
        self.k = float(k)
        self.name = f"query:{k:g}"

    def decide_many(self, beliefs, step, costs, scores, levels=None):
        s = np.asarray(scores, dtype=np.float64)
        return (s < self.k) & (np.asarray(step) == 1)

    def decide(self, belief, step, n_tokens, score=None, remaining=None) -> Decision:
        if score is None:
            raise TrimError(f"{self.name} needs the first step's PRM score")
        return Decision("regenerate" if step == 1 and score < self.k else "keep")

    def start(self):
        return {"takeover": 0}

    def act(self, state, obs: StepObservation):
        if TakeoverPolicy.strong_writes(state):
            return Decision("regenerate"), state
        d = self.decide(obs.belief, obs.step, obs.n_tokens, score=obs.score)
        return d, {"takeover": int(d.regenerate)}

    strong_writes = staticmethod(TakeoverPolicy.strong_writes)


class OracleQueryPolicy(RoutingPolicy):
    """The strong model writes exactly the questions the cheap model alone gets wrong (simulation only)."""

    oracle = True
    name = "query-oracle"

    @staticmethod
    def combine(weak, strong):
        """Per-episode (correct, strong tokens, strong steps, steps, draws, borrowed) from the cheap-only and
        strong-only runs of the same episodes."""
        wc, _, _, steps, nd, nb = weak
        sc, st, sr, _, _, _ = strong
        return wc | sc, np.where(wc, 0.0, st), np.where(wc, 0, sr), steps, nd, nb

    def _refuse(self, *a, **k):
        raise TrimError("query-oracle knows which questions the cheap model gets wrong, so it runs in "
                        "simulate-routing only; for real runs compare a cheap-only and a strong-only run "
                        "(trimpomdp eval)")

    decide_many = decide = start = act = _refuse
