"""Policy evaluation: Monte-Carlo simulation with a confidence interval, and exact belief-tree evaluation.

Simulation runs all episodes at once (one numpy step for every live episode), because per-episode Python
loops are far too slow for the tens of thousands of episodes a tight interval needs. The exact evaluation
expands the reachable belief tree under the policy (merging beliefs that round to the same point), so it is
only meant for small models, where it is the ground truth that simulation and solver bounds are tested on.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.interfaces import BeliefPolicy
from trimpomdp.resource_limits import check_episodes
from trimpomdp.pomdp.belief import update_batch
from trimpomdp.pomdp.model import POMDP

#: simulations stop once gamma^t * max|R| falls below this (the rest of the return is negligible)
TAIL_EPS = 1e-3
#: step cap for undiscounted models that rely on terminal states to end episodes
UNDISCOUNTED_CAP = 10_000
#: longest default horizon (a discount just below 1 would otherwise ask for ~1e12 steps per episode)
MAX_DEFAULT_HORIZON = 100_000


@dataclass
class EvalResult:
    """Mean discounted return from the initial belief with its normal-approximation 95% interval."""

    mean: float
    ci95_low: float
    ci95_high: float
    std: float
    episodes: int
    horizon: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExactValue:
    """The policy's value at b0; the truncated tail is at most ``error`` in absolute value."""

    value: float
    error: float
    depth: int
    beliefs: int


#: memory for the beliefs of the episodes simulated at once
BELIEF_BYTES = 256 * 2**20


def default_horizon(model: POMDP) -> int:
    """Steps after which the discounted tail is below ``TAIL_EPS`` (or a cap for undiscounted models)."""
    rmax = float(np.abs(model.R).max())
    if model.discount >= 1.0:
        if model.terminal is None or not model.terminal.any():
            raise TrimError("an undiscounted model without terminal states needs an explicit --horizon")
        return UNDISCOUNTED_CAP
    if rmax <= TAIL_EPS:
        return 1
    steps = math.log(TAIL_EPS / rmax) / math.log(model.discount)
    if steps > MAX_DEFAULT_HORIZON:
        raise TrimError(f"discount {model.discount!r} needs about {steps:.3g} steps per episode before "
                        f"gamma^t * max|R| < {TAIL_EPS:g} (over {MAX_DEFAULT_HORIZON:,}); pass an explicit --horizon")
    return max(1, math.ceil(steps))


class _RowSampler:
    """Samples a column of each requested CSR row by inverse CDF over the stored entries (no densifying)."""

    def __init__(self, mat):
        self.indptr, self.indices = mat.indptr, mat.indices
        self.cum = np.cumsum(mat.data)
        self.start = np.r_[0.0, self.cum][mat.indptr[:-1]]
        self.total = np.r_[0.0, self.cum][mat.indptr[1:]] - self.start

    def sample(self, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
        target = self.start[rows] + u * self.total[rows]
        pos = np.searchsorted(self.cum, target, side="right")
        pos = np.clip(pos, self.indptr[rows], self.indptr[rows + 1] - 1)  # rounding at row ends
        return self.indices[pos]


def _check_fits(policy, model) -> None:
    """A policy that knows what it was solved for (an ``AlphaVectorPolicy``) checks it against ``model``."""
    check = getattr(policy, "check_model", None)
    if check is not None:
        check(model)


def simulate_policy(model: POMDP, policy: BeliefPolicy, episodes: int = 10_000,
                    horizon: int | None = None, seed: int = 0) -> EvalResult:
    """Mean discounted return of following ``policy`` on the tracked belief, starting from b0.

    s0 is drawn from b0, states from T and observations from O; an episode ends at ``horizon`` or when it
    enters a terminal state.
    """
    check_episodes(episodes, "episodes")
    _check_fits(policy, model)
    H = default_horizon(model) if horizon is None else int(horizon)
    if H < 1:
        raise TrimError(f"horizon must be >= 1, got {H}")
    rng = np.random.default_rng(seed)
    S = model.n_states
    tsamp = [_RowSampler(m) for m in model.T]
    osamp = [_RowSampler(m) for m in model.O]
    b0 = model.initial_belief / model.initial_belief.sum()
    term = model.terminal if model.terminal is not None else np.zeros(S, dtype=bool)
    # beliefs are (episodes, S): simulate in chunks so memory stays bounded whatever the episode count
    chunk = max(1, min(episodes, BELIEF_BYTES // (8 * S)))
    n = 0
    mean = m2 = 0.0  # running mean and sum of squared deviations, merged chunk by chunk (Chan et al.)
    for start in range(0, episodes, chunk):
        r = _simulate_chunk(model, policy, min(chunk, episodes - start), H, rng, b0, term, tsamp, osamp)
        k, rm = r.size, float(r.mean())
        delta = rm - mean
        mean += delta * k / (n + k)
        m2 += float(np.square(r - rm).sum()) + delta * delta * n * k / (n + k)
        n += k
    std = math.sqrt(m2 / (episodes - 1)) if episodes > 1 else 0.0
    half = 1.959963984540054 * std / math.sqrt(episodes)
    return EvalResult(mean, mean - half, mean + half, std, episodes, H)


def _simulate_chunk(model, policy, n, H, rng, b0, term, tsamp, osamp) -> np.ndarray:
    """Discounted returns of ``n`` episodes."""
    S = model.n_states
    states = rng.choice(S, size=n, p=b0)
    beliefs = np.broadcast_to(b0, (n, S)).copy()
    returns = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    disc = 1.0
    for _ in range(H):
        alive &= ~term[states]
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        acts = policy.action(beliefs[idx])
        returns[idx] += disc * model.R[states[idx], acts]
        nxt = np.empty(idx.size, dtype=np.int64)
        obs = np.empty(idx.size, dtype=np.int64)
        u = rng.random((2, idx.size))
        for a in np.unique(acts):
            sel = np.flatnonzero(acts == a)
            nxt[sel] = tsamp[a].sample(states[idx[sel]], u[0, sel])
            obs[sel] = osamp[a].sample(nxt[sel], u[1, sel])
        beliefs[idx] = update_batch(model, beliefs[idx], acts, obs)
        states[idx] = nxt
        disc *= model.discount
    return returns


def evaluate_exact(model: POMDP, policy: BeliefPolicy, horizon: int | None = None,
                   tol: float = 1e-6, decimals: int = 10, max_beliefs: int = 200_000) -> ExactValue:
    """Exact value at b0 of following ``policy``: expand the belief tree level by level, then back up.

    Beliefs that agree to ``decimals`` places are merged. Without ``horizon`` the tree is cut at the depth
    where the discounted tail is below ``tol``; leaves get the midpoint of the possible tail values, so
    ``error`` is half that range. Raises ``TrimError`` when more than ``max_beliefs`` beliefs are reached.
    """
    _check_fits(policy, model)
    gamma = model.discount
    R = model.R
    term = model.terminal if model.terminal is not None else np.zeros(model.n_states, dtype=bool)
    rmin, rmax = min(0.0, float(R.min())), max(0.0, float(R.max()))
    if horizon is None:
        if gamma >= 1.0:
            raise TrimError("exact evaluation of an undiscounted model needs a finite horizon")
        span = (rmax - rmin) / (1.0 - gamma)
        depth = 0 if span <= 2 * tol else math.ceil(math.log(2 * tol / span) / math.log(gamma))
        tail_lo, tail_hi = rmin / (1.0 - gamma), rmax / (1.0 - gamma)
    else:
        depth, tail_lo, tail_hi = int(horizon), 0.0, 0.0
    O = model.O_dense()
    levels: list[np.ndarray] = [model.initial_belief[None, :] / model.initial_belief.sum()]
    links = []  # per level: (action per belief, child index, parent index, probability)
    total = 1
    for _ in range(depth):
        B = levels[-1]
        acts = np.asarray(policy.action(B)).reshape(-1)
        pa, ch, pr, children, index = [], [], [], [], {}
        for i, (b, a) in enumerate(zip(B, acts)):
            pred = model.T[a].T @ (b * ~term)  # no future from terminal states
            joint = pred[:, None] * O[a]  # (S', Z)
            for o in np.flatnonzero(joint.sum(axis=0) > 1e-14):
                p = joint[:, o].sum()
                nb = joint[:, o] / p
                key = np.round(nb, decimals).tobytes()
                j = index.get(key)
                if j is None:
                    j = index[key] = len(children)
                    children.append(nb)
                pa.append(i)
                ch.append(j)
                pr.append(p)
        total += len(children)
        if total > max_beliefs:
            raise TrimError(f"exact evaluation reached more than {max_beliefs} beliefs; use simulation")
        links.append((acts, np.array(ch, dtype=np.int64), np.array(pa, dtype=np.int64), np.array(pr)))
        if not children:
            levels.append(np.zeros((0, model.n_states)))
            break
        levels.append(np.array(children))
    reached = len(links)
    # leaves: remaining tail (zero for a finite horizon or an extinct tree)
    leaf = levels[-1]
    live = 1.0 - (leaf[:, term].sum(axis=1) if leaf.size else 0.0)
    mid = 0.5 * (tail_lo + tail_hi) if reached == depth else 0.0
    V = live * mid if leaf.size else np.zeros(0)
    for lvl in range(reached - 1, -1, -1):
        acts, ch, pa, pr = links[lvl]
        B = levels[lvl]
        live_b = 1.0 - B[:, term].sum(axis=1)
        imm = np.einsum("ns,ns->n", B, R[:, acts].T) - np.einsum("ns,ns->n", B[:, term], R[term][:, acts].T)
        fut = np.zeros(len(B))
        np.add.at(fut, pa, pr * V[ch])
        V = imm * (live_b > 0) + gamma * fut
    err = 0.5 * (tail_hi - tail_lo) * gamma ** depth if reached == depth else 0.0
    return ExactValue(float(V[0]), float(err), reached, int(total))
