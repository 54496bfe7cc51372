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

from trimpomdp.errors import BeliefError, TrimError
from trimpomdp.interfaces import BeliefPolicy
from trimpomdp.resource_limits import check_episodes
from trimpomdp.pomdp.belief import ZERO_PROB, update_batch
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


def simulate_policy(model, policy: BeliefPolicy, episodes: int = 10_000,
                    horizon: int | None = None, seed: int = 0) -> EvalResult:
    """Mean discounted return of following ``policy`` on the tracked belief, starting from b0.

    s0 is drawn from b0, states from T and observations from O; an episode ends at ``horizon`` or when it
    enters a terminal state. ``model`` is a POMDP or a MOMDP; a MOMDP (or a flat model laid out as the MOMDP
    a MOMDP policy was solved for) is simulated on beliefs (x, b_y), Y numbers an episode instead of X * Y,
    when its initial belief is certain of the visible value (the episodes are the same either way).
    """
    check_episodes(episodes, "episodes")
    _check_fits(policy, model)
    momdp = _as_momdp(model, policy)
    model = model if isinstance(model, POMDP) else model.flat
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
    chunk = max(1, min(episodes, BELIEF_BYTES // (8 * (S if momdp is None else momdp.n_hidden))))
    n = 0
    mean = m2 = 0.0  # running mean and sum of squared deviations, merged chunk by chunk (Chan et al.)
    for start in range(0, episodes, chunk):
        k = min(chunk, episodes - start)
        if momdp is None:
            r = _simulate_chunk(model, policy, k, H, rng, b0, term, tsamp, osamp)
        else:
            r = _simulate_chunk_momdp(momdp, policy, k, H, rng, b0, term, tsamp, osamp)
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
        nxt, obs = _sample_transitions(states[idx], acts, tsamp, osamp, rng)
        beliefs[idx] = update_batch(model, beliefs[idx], acts, obs)
        states[idx] = nxt
        disc *= model.discount
    return returns


def _sample_transitions(states, acts, tsamp, osamp, rng):
    """Next states and observations of episodes in ``states`` taking ``acts`` (one draw pair each), the
    hidden world's step shared by the flat and the MOMDP simulation."""
    nxt = np.empty(states.size, dtype=np.int64)
    obs = np.empty(states.size, dtype=np.int64)
    u = rng.random((2, states.size))
    for a in np.unique(acts):
        sel = np.flatnonzero(acts == a)
        nxt[sel] = tsamp[a].sample(states[sel], u[0, sel])
        obs[sel] = osamp[a].sample(nxt[sel], u[1, sel])
    return nxt, obs


def _as_momdp(model, policy):
    """The MOMDP to simulate on beliefs (x, b_y), or None for a flat simulation."""
    from trimpomdp.pomdp.momdp import MOMDP

    if isinstance(model, MOMDP):
        m = model
    elif getattr(policy, "n_visible", 1) > 1:  # a MOMDP policy on the flat form it fits (check_model passed)
        X, Y = policy.n_visible, policy.n_hidden
        if model.n_observations % X:
            return None
        m = MOMDP(model, tuple(map(str, range(X))), tuple(map(str, range(Y))),
                  tuple(map(str, range(model.n_observations // X))))
        if m.structure_problem() is not None:
            return None
    else:
        return None
    return m if m.n_visible > 1 and m.initial_visible() is not None else None


class _MomdpStep:
    """Belief updates of a MOMDP on (x, b_y) rows, with the blocks of T and O it reads cached."""

    def __init__(self, m):
        self.m, self.X, self.Y = m, m.n_visible, m.n_hidden
        self.T: dict = {}
        self.O: dict = {}

    def block(self, a, x, xp):
        key = (a, x, xp)
        if key not in self.T:
            Y = self.Y
            self.T[key] = self.m.flat.T[a][x * Y:(x + 1) * Y, xp * Y:(xp + 1) * Y].tocsc()
        return self.T[key]

    def obs(self, a, xp):
        key = (a, xp)
        if key not in self.O:
            Y = self.Y
            self.O[key] = self.m.observation(a)[xp * Y:(xp + 1) * Y].toarray()
        return self.O[key]

    def update(self, B, acts, xs, xps, obs):
        """Posterior rows b'_y after (a, x) -> (x', o); ``BeliefError`` names an impossible one."""
        out = np.empty_like(B)
        X = self.X
        key = (acts * X + xs) * X + xps
        for k in np.unique(key):
            rows = np.flatnonzero(key == k)
            a, rest = divmod(int(k), X * X)
            x, xp = divmod(rest, X)
            pred = (self.block(a, x, xp).T @ B[rows].T).T
            post = pred * self.obs(a, xp)[:, obs[rows]].T
            z = post.sum(axis=1)
            if not np.all(z > ZERO_PROB):
                i = rows[int(np.argmin(z))]
                raise BeliefError(f"episode row {i}: observation {int(obs[i])} with visible value {xp} has "
                                  f"probability zero after action {a}")
            out[rows] = np.clip(post / z[:, None], 0.0, None)
        return out / out.sum(axis=1, keepdims=True)


def _momdp_actions(policy, xs, B, X, Y):
    """The policy's actions at beliefs (x, b_y): an alpha-vector policy reads the vectors of x only; any
    other policy gets the flat beliefs."""
    alphas, visible = getattr(policy, "alphas", None), getattr(policy, "visible", None)
    if alphas is None or visible is None or getattr(policy, "n_visible", 1) != X:
        J = np.zeros((B.shape[0], X * Y))
        J[np.arange(B.shape[0])[:, None], xs[:, None] * Y + np.arange(Y)] = B
        return np.asarray(policy.action(J)).reshape(-1)
    acts = np.empty(B.shape[0], np.int64)
    for x in np.unique(xs):
        rows = np.flatnonzero(xs == x)
        ks = np.flatnonzero(visible == x)
        if ks.size == 0:
            raise TrimError(f"the policy has no vector for visible value {int(x)}")
        acts[rows] = policy.actions[ks[np.argmax(B[rows] @ alphas[ks].T, axis=1)]]
    return acts


def _simulate_chunk_momdp(m, policy, n, H, rng, b0, term, tsamp, osamp) -> np.ndarray:
    """Discounted returns of ``n`` episodes, beliefs kept as (x, b_y)."""
    X, Y = m.n_visible, m.n_hidden
    step = _MomdpStep(m)
    x0, by0 = m.split(b0)
    states = rng.choice(X * Y, size=n, p=b0)
    xs = np.full(n, x0, np.int64)
    B = np.broadcast_to(by0, (n, Y)).copy()
    returns = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    disc = 1.0
    R = m.flat.R
    for _ in range(H):
        alive &= ~term[states]
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        acts = _momdp_actions(policy, xs[idx], B[idx], X, Y)
        returns[idx] += disc * R[states[idx], acts]
        nxt, obs = _sample_transitions(states[idx], acts, tsamp, osamp, rng)
        xps = nxt // Y
        B[idx] = step.update(B[idx], acts, xs[idx], xps, obs // X)
        xs[idx] = xps
        states[idx] = nxt
        disc *= m.discount
    return returns


def evaluate_exact(model: POMDP, policy: BeliefPolicy, horizon: int | None = None,
                   tol: float = 1e-6, decimals: int = 10, max_beliefs: int = 200_000) -> ExactValue:
    """Exact value at b0 of following ``policy``: expand the belief tree level by level, then back up.

    Beliefs that agree to ``decimals`` places are merged. Without ``horizon`` the tree is cut at the depth
    where the discounted tail is below ``tol``; leaves get the midpoint of the possible tail values, so
    ``error`` is half that range. Raises ``TrimError`` when more than ``max_beliefs`` beliefs are reached.
    """
    _check_fits(policy, model)
    model = model if isinstance(model, POMDP) else model.flat  # a MOMDP: its flat form
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
