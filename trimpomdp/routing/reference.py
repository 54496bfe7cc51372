"""The TRIM reference implementation's POMDP decode rule, to predict its real runs in our simulator.

What the reference does (``TRIM_POMDP.py`` and ``get_pomdp_policy.py`` of github.com/Vansh28Kapoor/TRIM),
reproduced here point by point:

- It does not filter. At every step it takes the posterior of the current observation pair (min PRM score
  over ALL earlier steps -- strong rewrites included, since the PRM re-reads the whole history -- or 1.0 at
  the first step; the current score) under a uniform prior, from its reflected-KDE *density* (9-fold
  reflection of a Scott-bandwidth Gaussian KDE per state), not from the binned table.
- It keeps the step outright when ``max(b) - b(E) >= closeness`` (0.4); otherwise it snaps the belief to
  the 0.025 simplex grid (its own nearest-point rule, ``snap``) and looks the action up in a table solved
  offline for (token bin, step index, belief).
- The table's POMDP charges ``lambda`` times the *cheap draft's* token count (snapped to its token bins
  5..500) for regenerating the current step and a flat 60 tokens for every future one; reward 100, step
  accuracies 0.866 / 0.9704, discount 1 - 1e-6.
- Its step index is 0-based (``for step in range(max_steps)``) while its terminal hazard is 1-based, and the
  current step is never the last one: it plans as if every solution had one step more than its length
  distribution says. ``reference_formulation`` shifts the length pmf by one step to match.
- Steps past its 30th are never routed (the decode loop stops).

``ReferencePolicy`` applies that rule around our exact structured solution of the same formulation.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.routing.posterior import posteriors

#: the reference's defaults: closeness gate at evaluation, belief grid of its action tables, future cost
CLOSENESS, GRID, FUTURE_TOKENS = 0.4, 0.025, 60.0
#: the token bins of its action tables (a draft's count is clipped to [5, 500] and snapped to the nearest)
TOKEN_BINS = np.array([5, 10, 20, 30, 40, 50, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500.0])
#: steps its decode loop routes
MAX_STEPS = 30


def reference_formulation(spec, future_tokens: float = FUTURE_TOKENS, length_pmf=None):
    """The reference's POMDP from a TRIM spec: its 2-D table read as independent per-step pairs, one flat
    strong-token cost for every future regeneration, and its solution lengths (``length_pmf`` over steps
    1..T, default the spec's) shifted by one step, as its 0-based step index makes it plan."""
    from trimpomdp.routing.spec import load_observation_model

    if spec.obs.dims == 2:
        table = spec.obs
    elif spec.obs_path is not None and spec.source is not None:
        table = load_observation_model(Path(spec.source).parent / spec.obs_path)
    else:
        table = None
    if table is None or table.dims != 2:
        raise TrimError("the reference formulation needs the spec's 2-D (min earlier, current) table")
    pmf = np.asarray(spec.length_pmf if length_pmf is None else length_pmf, dtype=np.float64)
    # its planner has one class and derailed is final; the step accuracies are the spec's (the reference's
    # own 0.866 / 0.9704 are those of the plain shipped spec, data/trim_math_plain.json)
    return dataclasses.replace(spec, obs=table, observation="pair", obs_truth=None, difficulty=None,
                               derailed_as_error=0.0, derailed_repair=0.0,
                               length_pmf=np.concatenate([[0.0], pmf / pmf.sum()]),
                               token_values=np.array([float(future_tokens)]), token_probs=np.array([1.0]))


def snap(beliefs: np.ndarray, grid: float = GRID, tol: float = 1e-9) -> np.ndarray:
    """The reference's ``get_closest_belief`` on rows ordered (C, E, D): it rounds its first two
    components, (C, D), together (both down, both up, or one each way) and gives E the rest."""
    b = np.asarray(beliefs, dtype=np.float64)
    N = int(round(1.0 / grid))
    p1, p2 = b[:, 0], b[:, 2]
    k1, k2, k3 = p1 * N, p2 * N, b[:, 1] * N
    on = (np.abs(k1 - np.round(k1)) < tol) | (np.abs(k2 - np.round(k2)) < tol) | (np.abs(k3 - np.round(k3)) < tol)
    f1, f2 = np.floor(k1 + tol), np.floor(k2 + tol)
    c1, c2 = np.ceil(k1 - tol), np.ceil(k2 - tol)
    d1f, d2f = p1 - f1 / N, p2 - f2 / N
    d1c, d2c = c1 / N - p1, c2 / N - p2
    both_down = np.minimum(d1f, d2f) + 2 * np.maximum(d1f, d2f) <= grid + tol
    both_up = np.minimum(d1c, d2c) + 2 * np.maximum(d1c, d2c) <= grid + tol
    first_down = d1f <= d2f + tol
    i1 = np.where(on, np.round(k1), np.where(both_down, f1, np.where(both_up, c1, np.where(first_down, f1, c1))))
    i2 = np.where(on, np.round(k2), np.where(both_down, f2, np.where(both_up, c2, np.where(first_down, c2, f2))))
    return np.stack([i1, N - i1 - i2, i2], axis=1) / N


def token_bin(tokens) -> np.ndarray:
    """The action table's token bin of a draft's token count (clipped to [5, 500], nearest bin)."""
    t = np.clip(np.asarray(tokens, dtype=np.float64), TOKEN_BINS[0], TOKEN_BINS[-1])
    return TOKEN_BINS[np.argmin(np.abs(TOKEN_BINS[None, :] - t[:, None]), axis=1)]


class ReflectedDensity:
    """The reference's observation density: per state a Scott-bandwidth Gaussian KDE of the labelled
    (min earlier, current) points, summed over the 9 reflections of the point across the unit square's
    edges. Tabulated once on a ``n x n`` grid and read bilinearly (the kernels are ~0.1 wide)."""

    def __init__(self, points: dict, n: int = 101):
        from scipy.interpolate import RegularGridInterpolator
        from scipy.stats import gaussian_kde

        from trimpomdp.observation_models.binned import TRIM_STATES

        g = np.linspace(0.0, 1.0, n)
        X, Y = np.meshgrid(g, g, indexing="ij")
        x, y = X.ravel(), Y.ravel()
        refl = [(a, c) for a in (x, 2 - x, -x) for c in (y, 2 - y, -y)]
        Z = np.concatenate([np.stack([a, c]) for a, c in refl], axis=1)
        self._interp = []
        for s in TRIM_STATES:
            kde = gaussian_kde(np.asarray(points[s], dtype=np.float64).T, bw_method="scott")
            dens = kde(Z).reshape(9, -1).sum(axis=0).reshape(n, n)
            self._interp.append(RegularGridInterpolator((g, g), dens))

    def __call__(self, pairs) -> np.ndarray:
        """Densities (n, 3) of pairs (n, 2) under C, E, D."""
        p = np.clip(np.asarray(pairs, dtype=np.float64), 0.0, 1.0)
        return np.stack([f(p) for f in self._interp], axis=1)


class ReferencePolicy:
    """Memoryless posterior of the current pair, closeness gate, snapped belief, then the solved policy's
    decision at the draft's token bin (``inner`` solves ``reference_formulation``). Without a
    ``density`` the posterior reads the binned table instead of the KDE."""

    needs_belief = False

    def __init__(self, inner, closeness: float = CLOSENESS, grid: float = GRID, density=None,
                 max_steps: int = MAX_STEPS):
        tm = inner.trim_model
        if tm.obs.dims != 2:
            raise TrimError("the reference rule reads (min earlier, current) pairs: its policy needs a 2-D table")
        self.inner, self.closeness, self.grid = inner, float(closeness), float(grid)
        self.table, self.density, self.max_steps = tm.obs, density, int(max_steps)
        self.name = f"reference:{getattr(inner, 'lam', 0):g}"

    def posteriors(self, mins, scores) -> np.ndarray:
        """P(state | pair) under a uniform prior; an impossible pair gives the uniform belief."""
        pairs = np.stack([np.asarray(mins, dtype=np.float64), np.asarray(scores, dtype=np.float64)], axis=1)
        if self.density is not None:
            lik = self.density(pairs)
            tot = lik.sum(axis=1, keepdims=True)
            return np.where(tot > 0, lik / np.where(tot > 0, tot, 1.0), 1.0 / 3)
        bins = np.atleast_1d(self.table.bin_index(pairs))
        post, _ = posteriors(np.full((bins.size, 3), 1.0 / 3), self.table.probs, bins)  # impossible: the prior
        return post

    def regenerate(self, mins, scores, step: int, draft_tokens) -> np.ndarray:
        """Regenerate? for pairs at 1-based ``step`` whose cheap drafts have ``draft_tokens`` tokens."""
        b = self.posteriors(mins, scores)
        out = b.max(axis=1) - b[:, 1] < self.closeness
        if step > self.max_steps:
            return np.zeros(b.shape[0], dtype=bool)
        if out.any():
            qk, qr = self.inner.q_values(snap(b[out], self.grid), step, token_bin(np.asarray(draft_tokens)[out]))
            out[out] = qr > qk
        return out

    # the simulator's batch API (it hands over the pairs' first coordinates and the draft's tokens)
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
