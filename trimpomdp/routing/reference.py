"""The TRIM reference implementation's POMDP decode rule, to predict its real runs in our simulator.

The reference (``TRIM_POMDP.py``) does not filter: at every step it takes the posterior of the current
observation pair (min earlier PRM score, current score) under a uniform prior, keeps the step outright
unless the fresh-error probability is within ``closeness`` of the largest belief component, and otherwise
looks the action up in a table solved offline (SARSOP on its formulation: the pair observation model, a
flat future regeneration cost, beliefs snapped to a ``grid`` of the simplex; the current step's cost is
its own token count). ``ReferencePolicy`` reproduces that rule around our exact structured solution of
the same formulation, so the reference's real POMDP runs can be predicted out of sample.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.routing.posterior import posteriors

#: the reference's defaults: closeness gate at evaluation, belief grid of its action tables, future cost
CLOSENESS, GRID, FUTURE_TOKENS = 0.4, 0.025, 60.0


def reference_formulation(spec, future_tokens: float = FUTURE_TOKENS):
    """The reference's POMDP from a TRIM spec: its 2-D table read as independent per-step pairs, and one
    flat strong-token cost for every future regeneration."""
    from trimpomdp.routing.spec import load_observation_model

    if spec.obs.dims == 2:
        table = spec.obs
    elif spec.obs_path is not None and spec.source is not None:
        table = load_observation_model(Path(spec.source).parent / spec.obs_path)
    else:
        table = None
    if table is None or table.dims != 2:
        raise TrimError("the reference formulation needs the spec's 2-D (min earlier, current) table")
    return dataclasses.replace(spec, obs=table, observation="pair", obs_truth=None,
                               token_values=np.array([float(future_tokens)]), token_probs=np.array([1.0]))


def snap(beliefs: np.ndarray, grid: float = GRID) -> np.ndarray:
    """Each belief moved to a nearby point of the simplex grid (largest-remainder rounding)."""
    n = int(round(1.0 / grid))
    x = np.asarray(beliefs, dtype=np.float64) * n
    base = np.floor(x)
    short = (n - base.sum(axis=1)).astype(int)
    order = np.argsort(-(x - base), axis=1)
    for j in range(beliefs.shape[1]):
        base[np.arange(len(x)), order[:, j]] += j < short
    return base / n


class ReferencePolicy:
    """Memoryless posterior of the current pair, closeness gate, then the solved policy's decision."""

    needs_belief = False

    def __init__(self, inner, closeness: float = CLOSENESS, grid: float = GRID):
        tm = inner.trim_model
        if tm.obs.dims != 2:
            raise TrimError("the reference rule reads (min earlier, current) pairs: its policy needs a 2-D table")
        self.inner, self.closeness, self.grid = inner, float(closeness), float(grid)
        self.table = tm.obs
        self.name = f"reference:{getattr(inner, 'lam', 0):g}"

    def posteriors(self, mins, scores) -> np.ndarray:
        """P(state | pair) under a uniform prior; an impossible pair gives the uniform belief."""
        pairs = np.stack([np.asarray(mins, dtype=np.float64), np.asarray(scores, dtype=np.float64)], axis=1)
        bins = np.atleast_1d(self.table.bin_index(pairs))
        post, _ = posteriors(np.full((bins.size, 3), 1.0 / 3), self.table.probs, bins)  # impossible: the prior
        return post

    def regenerate(self, mins, scores, step: int, costs) -> np.ndarray:
        b = self.posteriors(mins, scores)
        gated = b.max(axis=1) - b[:, 1] >= self.closeness
        qk, qr = self.inner.q_values(snap(b, self.grid), step, np.asarray(costs, dtype=np.float64))
        return ~gated & (qr > qk)

    # the simulator's batch API (it hands over the pairs' first coordinates)
    def act_many(self, state, batch):
        out = np.zeros(batch.rows.size, dtype=bool)
        for t in np.unique(batch.step):
            m = batch.step == t
            out[m] = self.regenerate(batch.mins[m], batch.scores[m], int(t), batch.costs[m])
        return out, state

    # trimpomdp.interfaces.RoutingPolicy (decode)
    def start(self):
        return None

    def act(self, state, observation):
        from trimpomdp.interfaces import Decision

        r = self.regenerate([observation.min_earlier], [observation.score], observation.step,
                            [observation.n_tokens])
        return Decision("regenerate" if r[0] else "keep"), state
