"""Staged point-based solver for MOMDPs whose visible part only moves forward (finite horizon).

When the visible transitions (apart from terminal states) form a directed acyclic graph, as in the routing
MOMDP (start -> step 1 -> ... -> end), the value function of a visible value x depends only on those of its
successors. So bounds can be built backwards: a point-based backup at a belief of x that reads its
successors' bounds is final for those bounds, and one sweep in reverse topological order makes every
stored point exact given the points below it. No belief tree is stored (SARSOP's, which on the routing
MOMDP holds 2 x 400 children per node, is what runs out of memory there); only per visible value

* a lower bound: alpha vectors over the Y hidden values (each the value of a policy, from the backups);
* an upper bound: corner values (MDP backward induction on the DAG, then backed up) and belief points read
  by sawtooth interpolation.

Points are added in two ways, alternating by CPU time. Breadth rounds: simulated runs of the lower bound's
policy (some actions random) collect the beliefs it reaches at every visible value, each is backed up in
reverse topological order, then every stored point is (a full sweep). HSVI trials from b0 (Smith & Simmons
2005): follow the upper bound's action and the successor (x', o) with the largest weighted excess gap, back
the path up in reverse. Visible values with identical successor blocks (siblings: in the routing MOMDP the
16 token bins of a step, which differ only in the regeneration cost) are backed up together: one
continuation per belief, each sibling adding its own rewards, so every sibling gets every point. A trial
visits each visible value at most once, which is what lets the kernels (``staged_kernels``) run a whole
trial in numba on slabs whose room the Python side guarantees beforehand.
"""
from __future__ import annotations

import graphlib
import sys
import time

import numpy as np

from trimpomdp.errors import ModelError
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP
from trimpomdp.pomdp.momdp import MOMDP
from trimpomdp.solvers import staged_kernels as K
from trimpomdp.solvers.result import SolveResult, check_bounds, check_options

__all__ = ["StagedSolver", "Stages", "stages", "is_staged", "solve"]


class Stages:
    """The model arrays the kernels read (``dyn``) and the DAG of the visible values reachable from b0."""

    def __init__(self, dyn: K.Dyn, order: np.ndarray, reach: np.ndarray, roots: np.ndarray,
                 masses: np.ndarray, beliefs: np.ndarray, Y: int):
        self.dyn, self.order, self.reach, self.Y = dyn, order, reach, Y
        self.roots, self.masses, self.beliefs = roots, masses, beliefs  # visible values of b0, P(x), b_y | x
        self.leader = dyn.gmem[dyn.gptr[dyn.grp]]  # per x, the leader of its sibling group

    @property
    def X(self) -> int:
        return self.dyn.R.shape[0]

    @property
    def A(self) -> int:
        return self.dyn.R.shape[1]

    def nbytes(self) -> int:
        return sum(getattr(self.dyn, f).nbytes for f in ("R", "sptr", "sx", "sP", "optr", "oL", "term"))


def _as_momdp(model) -> MOMDP:
    if isinstance(model, POMDP):
        return MOMDP.from_pomdp(model)
    if isinstance(model, MOMDP):
        return model
    raise ModelError(f"the staged solver takes a POMDP or a MOMDP, got {type(model).__name__}")


def stages(model, memory_mb: float | None = 1024) -> Stages:
    """The staged structure of ``model`` (a MOMDP, or a POMDP as one visible value), cached on it.

    ``ModelError`` (one line) when the visible values reachable from b0 are not acyclic, naming a cycle and,
    for a self-loop, a state and action that make it; or when the (Y, Y) blocks exceed ``memory_mb``.
    """
    m = _as_momdp(model)
    key = "staged_structure"
    if key in m._cache:
        return m._cache[key]
    flat = m.flat
    X, Y, A, Zo = m.n_visible, m.n_hidden, m.n_actions, m.n_observations
    name = m.name or "model"
    term = np.zeros(X * Y, bool) if flat.terminal is None else np.asarray(flat.terminal, bool)
    b0 = np.asarray(flat.initial_belief, dtype=np.float64)
    b0 = (b0 / b0.sum()).reshape(X, Y)
    masses = b0.sum(axis=1)
    roots = np.flatnonzero(masses > 0)
    # transitions of non-terminal states, as (x, a, y, x', y', p)
    parts = []
    for a in range(A):
        c = flat.T[a].tocoo()
        keep = (~term[c.row]) & (c.data != 0)
        r, col, v = c.row[keep], c.col[keep], c.data[keep]
        parts.append((r // Y, np.full(r.size, a), r % Y, col // Y, col % Y, v))
    tx, ta, ty, txp, typ, tv = (np.concatenate(p) for p in zip(*parts))
    loop = np.flatnonzero(tx == txp)
    # the visible values reachable from b0, then acyclicity among them
    succ: dict[int, set] = {}
    for x, xp in set(zip(tx.tolist(), txp.tolist())):
        succ.setdefault(x, set()).add(xp)
    reach = np.zeros(X, bool)
    stack = list(roots.tolist())
    reach[roots] = True
    while stack:
        x = stack.pop()
        for xp in succ.get(x, ()):
            if not reach[xp]:
                reach[xp] = True
                stack.append(xp)
    loop = loop[reach[tx[loop]]]
    if loop.size:
        i = loop[0]
        raise ModelError(f"{name}: not staged (the visible part has a cycle): action {m.actions[ta[i]]!r} in "
                         f"state {flat.states[tx[i] * Y + ty[i]]!r} (non-terminal) can stay at visible value "
                         f"{m.visible[tx[i]]!r}; the staged solver needs visible values that only move forward "
                         "(use --solver sarsop)")
    graph = {x: {p for p in succ.get(x, ()) if reach[p]} for x in np.flatnonzero(reach).tolist()}
    try:  # successors first: the order backups run in
        order = np.array(list(graphlib.TopologicalSorter(graph).static_order()), dtype=np.int64)
    except graphlib.CycleError as exc:
        cyc = " -> ".join(repr(m.visible[x]) for x in exc.args[1][::-1])
        raise ModelError(f"{name}: not staged (the visible part has a cycle): {cyc}; the staged solver needs "
                         "visible values that only move forward (use --solver sarsop)") from None
    # dense (Y, Y) blocks per (x, a, x')
    bkey = (tx * A + ta) * X + txp
    ukeys, inv = np.unique(bkey, return_inverse=True)
    need = ukeys.size * Y * Y * 8
    if memory_mb is not None and need > memory_mb * 2**20:
        raise ModelError(f"{name}: the staged solver's {ukeys.size} transition blocks of {Y} x {Y} hidden "
                         f"values need {need / 2**20:.0f} MB, over the {memory_mb:g} MB cap")
    sP = np.zeros((ukeys.size, Y, Y))
    np.add.at(sP, (inv, ty, typ), tv)
    sptr = np.zeros(X * A + 1, np.int64)
    sptr[1:] = np.cumsum(np.bincount(ukeys // X, minlength=X * A))
    sx = (ukeys % X).astype(np.int64)
    # observations per (a, x'): likelihood vectors over y'
    okeys, orows = [], []
    for a in range(A):
        c = m.observation(a).tocoo()
        nz = c.data != 0
        okeys.append((a * X + c.row[nz] // Y) * Zo + c.col[nz])
        orows.append((c.row[nz] % Y, c.data[nz]))
    ok = np.concatenate(okeys)
    uo, oinv = np.unique(ok, return_inverse=True)
    oL = np.zeros((uo.size, Y))
    np.add.at(oL, (oinv, np.concatenate([r[0] for r in orows])), np.concatenate([r[1] for r in orows]))
    optr = np.zeros(A * X + 1, np.int64)
    optr[1:] = np.cumsum(np.bincount(uo // Zo, minlength=A * X))
    R = np.array(flat.R, dtype=np.float64)
    R[term] = 0.0
    R = np.ascontiguousarray(R.reshape(X, Y, A).transpose(0, 2, 1))
    xterm = term.reshape(X, Y).all(axis=1)
    grp, gptr, gmem = _sibling_groups(sptr, sx, sP, xterm, reach, A)
    dyn = K.Dyn(R, sptr, sx, sP, optr, oL, xterm, float(flat.discount), grp, gptr, gmem)
    st = Stages(dyn, order, reach, roots, masses[roots], b0[roots] / masses[roots, None], Y)
    m._cache[key] = st
    return st


def _sibling_groups(sptr, sx, sP, xterm, reach, A):
    """Group the reachable non-terminal visible values whose successor blocks (visible successors and
    hidden transitions, hence observations too) are identical for every action: their values differ only
    by rewards, so one backup's continuation serves them all (``staged_kernels.backup``). Returns per x its
    group, and the groups' members as CSR (``gptr``, ``gmem``), each group in increasing x, leader first."""
    X = xterm.size
    groups: dict = {}
    for x in range(X):
        if reach[x] and not xterm[x]:
            r0, r1 = sptr[x * A], sptr[x * A + A]
            key = (sptr[x * A:x * A + A + 1] - r0).tobytes() + sx[r0:r1].tobytes() + sP[r0:r1].tobytes()
        else:
            key = ("alone", x)
        groups.setdefault(key, []).append(x)
    members = list(groups.values())
    grp = np.zeros(X, np.int64)
    for g, mem in enumerate(members):
        grp[mem] = g
    gptr = np.concatenate([[0], np.cumsum([len(mm) for mm in members])]).astype(np.int64)
    gmem = np.concatenate([np.asarray(mm, np.int64) for mm in members])
    return grp, gptr, gmem


def is_staged(model) -> bool:
    """Whether ``model`` (MOMDP or POMDP) has an acyclic reachable visible part, so ``StagedSolver`` applies."""
    try:
        stages(model, memory_mb=None)
    except ModelError:
        return False
    return True


class _Slabs:
    """Growable per-visible-value slabs of upper-bound points and alpha vectors (``staged_kernels.Store``)."""

    def __init__(self, X: int, Y: int, live: np.ndarray, pcap: int, acap: int):
        self.Y = Y
        self.pc = np.where(live, pcap, 0).astype(np.int64)
        self.ac = np.where(live, acap, 0).astype(np.int64)
        ps = np.concatenate([[0], np.cumsum(self.pc)[:-1]]).astype(np.int64)
        ast = np.concatenate([[0], np.cumsum(self.ac)[:-1]]).astype(np.int64)
        self.pend, self.aend = int(self.pc.sum()), int(self.ac.sum())
        P, N = max(self.pend, 1), max(self.aend, 1)
        self.hc = np.zeros(X, np.int64)
        self.hend = 0
        self.st = K.Store(np.zeros((X, Y)), np.zeros((P, Y)), np.zeros(P), np.zeros(P), ps,
                          np.zeros(X, np.int64), np.zeros((N, Y)), np.zeros(N, np.int64), ast,
                          np.zeros(X, np.int64), np.zeros((1, Y)), np.zeros(X, np.int64),
                          np.zeros(X, np.int64), np.zeros(X, np.int64))

    def set_envelope(self, x: int) -> None:
        """Recompute x's envelope facets from its corners and points (none when qhull finds it flat)."""
        st = self.st
        pts = st.pb[st.ps[x]:st.ps[x] + st.pn[x]]
        H = _envelope(st.corners[x], pts, st.pv[st.ps[x]:st.ps[x] + st.pn[x]])
        st.hf[x] = 0
        if H is None:
            st.hn[x] = 0
            return
        hv = st.hv
        if H.shape[0] > self.hc[x]:
            cap = 2 * H.shape[0]
            if self.hend + cap > hv.shape[0]:
                hv = _resized(hv, max(2 * hv.shape[0], self.hend + cap))
            st.hs[x], self.hc[x] = self.hend, cap
            self.hend += cap
        hv[st.hs[x]:st.hs[x] + H.shape[0]] = H
        st.hn[x] = H.shape[0]
        st.hf[x] = 1
        if hv is not st.hv:
            self.st = st._replace(hv=hv)

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.st)

    def ensure(self, room=2, room_a=None) -> None:
        """At least ``room`` free point slots and ``room_a`` (default ``room``) free vector slots in every
        live slab (each an int or one per visible value); a short slab moves to the end, twice as large."""
        st = self.st
        room_a = room if room_a is None else room_a
        short_p = np.flatnonzero((self.pc > 0) & (st.pn + room > self.pc))
        short_a = np.flatnonzero((self.ac > 0) & (st.an + room_a > self.ac))
        if short_p.size == 0 and short_a.size == 0:
            return
        pb, pv, pd, av, aa = st.pb, st.pv, st.pd, st.av, st.aa
        need_p = self.pend + int((2 * self.pc[short_p] + np.max(room)).sum())
        if need_p > pv.size:
            size = max(need_p, 2 * pv.size)
            pb, pv, pd = _resized(pb, size), _resized(pv, size), _resized(pd, size)
        for x in short_p:
            s, n, cap = st.ps[x], st.pn[x], 2 * self.pc[x] + np.max(room)
            e = self.pend
            pb[e:e + n], pv[e:e + n], pd[e:e + n] = pb[s:s + n], pv[s:s + n], pd[s:s + n]
            st.ps[x], self.pc[x] = e, cap
            self.pend += cap
        need_a = self.aend + int((2 * self.ac[short_a] + np.max(room_a)).sum())
        if need_a > aa.size:
            size = max(need_a, 2 * aa.size)
            av, aa = _resized(av, size), _resized(aa, size)
        for x in short_a:
            s, n, cap = st.ast[x], st.an[x], 2 * self.ac[x] + np.max(room_a)
            e = self.aend
            av[e:e + n], aa[e:e + n] = av[s:s + n], aa[s:s + n]
            st.ast[x], self.ac[x] = e, cap
            self.aend += cap
        self.st = st._replace(pb=pb, pv=pv, pd=pd, av=av, aa=aa)

    def vectors(self):
        """(alphas, actions, visible values) of every stored vector."""
        st = self.st
        xs = np.flatnonzero(st.an > 0)
        idx = np.concatenate([np.arange(st.ast[x], st.ast[x] + st.an[x]) for x in xs])
        return st.av[idx].copy(), st.aa[idx].copy(), np.repeat(xs, st.an[xs])


def _envelope(corners: np.ndarray, pts: np.ndarray, vals: np.ndarray) -> np.ndarray | None:
    """Facets of the lower convex envelope of the points (corners included) as vectors over the Y hidden
    values: the envelope is their maximum, the tightest upper bound the points imply (a convex value lies
    below every chord). Only for Y <= ``ENVELOPE_MAX_Y`` (qhull's cost grows steeply with the dimension)."""
    from scipy.spatial import ConvexHull, QhullError

    Y = corners.size
    if not 2 <= Y <= ENVELOPE_MAX_Y or pts.shape[0] == 0:
        return None
    Z = np.vstack([np.column_stack([np.eye(Y)[:, :Y - 1], corners]), np.column_stack([pts[:, :Y - 1], vals])])
    try:
        eq = ConvexHull(Z).equations  # rows (normal over the Y - 1 coordinates and the value, offset)
    except (QhullError, ValueError):
        return None
    eq = eq[eq[:, Y - 1] < -1e-9]
    if eq.shape[0] == 0:
        return None
    beta = -eq[:, :Y - 1] / eq[:, [Y - 1]]
    beta0 = -eq[:, Y] / eq[:, Y - 1]
    return np.column_stack([beta0[:, None] + beta, beta0])


def _resized(a: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n,) + a.shape[1:], a.dtype)
    out[: a.shape[0]] = a
    return out


def _initial_bounds(s: Stages):
    """Exact MDP values at the corners and the blind policies' vectors (one action throughout), both by
    backward induction over the DAG; and a representative belief per visible value (b0 pushed forward with
    the actions mixed uniformly, no observation)."""
    d = s.dyn
    X, A, Y = s.X, s.A, s.Y
    V = np.zeros((X, Y))
    blind = np.zeros((X, A, Y))
    for x in s.order:
        if d.term[x]:
            continue
        q = d.R[x].copy()
        qb = d.R[x].copy()
        for a in range(A):
            for j in range(d.sptr[x * A + a], d.sptr[x * A + a + 1]):
                q[a] += d.gamma * d.sP[j] @ V[d.sx[j]]
                qb[a] += d.gamma * d.sP[j] @ blind[d.sx[j], a]
        V[x] = q.max(axis=0)
        blind[x] = qb
    mass = np.zeros((X, Y))
    mass[s.roots] = s.masses[:, None] * s.beliefs
    for x in s.order[::-1]:
        if d.term[x]:
            continue
        for a in range(A):
            for j in range(d.sptr[x * A + a], d.sptr[x * A + a + 1]):
                mass[d.sx[j]] += mass[x] @ d.sP[j] / A
    tot = mass.sum(axis=1, keepdims=True)
    means = np.divide(mass, tot, out=np.full_like(mass, 1.0 / Y), where=tot > 0)
    return V, blind, means


def _initial_slabs(s: Stages):
    """Slabs holding the initial bounds (MDP corners, blind vectors) after one sweep at the corners and
    representative beliefs; returns them and the backups done."""
    d = s.dyn
    X, Y, A = s.X, s.Y, s.A
    V, blind, means = _initial_bounds(s)
    slabs = _Slabs(X, Y, s.reach, pcap=8, acap=A + Y + 8)
    st = slabs.st
    st.corners[:] = V
    for x in np.flatnonzero(s.reach):
        k = 1 if d.term[x] else A
        st.av[st.ast[x]:st.ast[x] + k] = 0.0 if d.term[x] else blind[x]
        st.aa[st.ast[x]:st.ast[x] + k] = np.arange(k)
        st.an[x] = k
    return slabs, int(K.sweep(s.order, d, st, means))


_JIT_DONE = False
#: trials between prunings of the vectors that are best at no stored point
PRUNE_EVERY = 50
#: vectors kept by each pruning whatever their use (the newest ones)
KEEP_NEWEST = 4
#: a full sweep over every stored point runs when the points have grown by this factor since the last one
SWEEP_GROWTH = 1.5
#: simulated runs per breadth round, at most this many new beliefs per sibling group, share of random actions
BULK_EPISODES = 200
BULK_CAP = 100
EXPLORE = 0.15
#: share of the CPU time spent on HSVI trials between breadth rounds (at full routing size the trials move
#: neither bound, the rounds do the work; on small models the trials close the last gap to tight precisions:
#: 0.1 made the routing tests at 1e-7 many times slower)
TRIAL_SHARE = 0.5
#: the largest number of hidden values for which the upper bound also reads the points' convex envelope
ENVELOPE_MAX_Y = 4


def warm_up() -> float:
    """Compile (or load from numba's cache) the kernels on a two-step model; returns the CPU seconds spent."""
    global _JIT_DONE
    if _JIT_DONE:
        return 0.0
    _JIT_DONE = True
    t0 = time.process_time()
    StagedSolver(max_iterations=2).solve(_tiny())
    return time.process_time() - t0


def _tiny() -> MOMDP:
    """Two guesses of a coin with a noisy look between them: visible t = 0, 1, end."""
    X, Y, A = 3, 2, 2
    TX = np.zeros((A, X * Y, X))
    TX[:, 0:2, 1] = 1.0
    TX[:, 2:6, 2] = 1.0
    TY = np.zeros((A, X * Y, X, Y))
    TY[:, :, :, :] = np.eye(Y)[np.tile(np.arange(Y), X)][None, :, None, :]
    O = np.zeros((A, X * Y, 2))
    O[:, 2, :] = [0.8, 0.2]
    O[:, 3, :] = [0.2, 0.8]
    O[:, [0, 1, 4, 5], 0] = 1.0
    R = np.zeros((X * Y, A))
    R[[0, 2], 0] = R[[1, 3], 1] = 1.0
    term = np.zeros(X * Y, bool)
    term[4:] = True
    return MOMDP.from_factors(TX, TY, O, R, 0.9, np.array([0.5, 0.5, 0, 0, 0, 0]), terminal=term)


class StagedSolver:
    """Point-based solver for MOMDPs with acyclic visible dynamics; ``solve(model)`` returns a ``SolveResult``.

    ``precision`` is the target gap at b0, ``timeout`` CPU seconds, ``max_iterations`` trials; ``memory_mb``
    caps the stored points and vectors (past it the solve stops with valid bounds, ``stop_reason`` memory).
    ``seed`` seeds the simulated runs of the breadth rounds.
    """

    def __init__(self, precision=1e-3, timeout=None, max_iterations=None, seed=0, verbose=False,
                 report_every=1.0, callback=None, memory_mb=1024):
        check_options(precision, timeout, max_iterations, memory_mb)
        self.precision, self.timeout, self.max_iterations = precision, timeout, max_iterations
        self.seed, self.verbose, self.report_every, self.callback = seed, verbose, report_every, callback
        self.memory_mb = memory_mb

    def settings(self) -> dict:
        return {"precision": self.precision, "timeout": self.timeout, "max_iterations": self.max_iterations,
                "seed": self.seed, "memory_mb": self.memory_mb}

    def solve(self, model) -> SolveResult:
        """Solve a ``MOMDP`` (or a ``POMDP``, one visible value) whose reachable visible part is acyclic."""
        m = _as_momdp(model)
        jit = warm_up()
        t0, w0 = time.process_time(), time.perf_counter()
        s = stages(m, self.memory_mb)
        d = s.dyn
        X, Y = s.X, s.Y
        slabs, backups = _initial_slabs(s)
        init_seconds = time.process_time() - t0
        depth = len(s.order) + 2
        xs, bs = np.zeros(depth, np.int64), np.zeros((depth + 1, Y))
        limit = None if self.memory_mb is None else self.memory_mb * 2**20 - s.nbytes()
        history: list = []
        trials, rounds, converged, stop = 0, 0, False, "iterations"
        rng = np.random.default_rng(self.seed)
        bulk_due, last_round = 0.0, 0.0
        swept_points = int(slabs.st.pn.sum())
        last_report = -1e9
        if self.verbose:
            _header()
        while True:
            st = slabs.st
            lo = np.array([K.lower_at(x, b, st)[0] for x, b in zip(s.roots, s.beliefs)])
            up = np.array([K.upper_at(x, b, st) for x, b in zip(s.roots, s.beliefs)])
            tc, tw = time.process_time() - t0, time.perf_counter() - w0
            entry = {"time": tc, "wall": tw, "trials": trials, "backups": int(backups),
                     "lower": float(s.masses @ lo), "upper": float(s.masses @ up),
                     "alphas": int(st.an.sum()), "beliefs": int(st.pn.sum())}
            if history:
                entry["lower"] = max(entry["lower"], history[-1]["lower"])
                entry["upper"] = min(entry["upper"], history[-1]["upper"])
            if not history or (entry["lower"], entry["upper"]) != (history[-1]["lower"], history[-1]["upper"]):
                history.append(entry)
            if entry["upper"] - entry["lower"] <= self.precision:
                converged, stop = True, "precision"
                break
            if self.timeout is not None and (tc >= self.timeout or tw >= self.timeout * 4 + 5):
                stop = "timeout"
                break
            if self.max_iterations is not None and trials + rounds >= self.max_iterations:
                break
            if limit is not None and slabs.nbytes() > limit:
                stop = "memory"
                break
            if tc - last_report >= self.report_every:
                last_report = tc
                if self.verbose:
                    _row(entry)
                if self.callback is not None:
                    self.callback(entry)
            late = self.timeout is not None and tc + last_round > self.timeout
            if bulk_due <= tc and not late:  # breadth: the beliefs the policy reaches, then a full sweep
                tb = tc
                backups += _bulk(slabs, s, BULK_EPISODES, EXPLORE, BULK_CAP, rng)
                backups += _full_sweep(slabs, s)
                swept_points = int(slabs.st.pn.sum())
                rounds += 1
                last_round = time.process_time() - t0 - tb
                bulk_due = tc + last_round * (1.0 + TRIAL_SHARE / (1.0 - TRIAL_SHARE))
                continue
            if trials % PRUNE_EVERY == 0:
                _prune(slabs, s)
            if slabs.st.pn.sum() >= SWEEP_GROWTH * swept_points + 64:
                swept_points = int(slabs.st.pn.sum())
                backups += _full_sweep(slabs, s)
            r = int(np.argmax(s.masses * (up - lo)))
            slabs.ensure()
            n, depth_reached, _, _ = K.trial(s.roots[r], s.beliefs[r], self.precision, d, slabs.st, xs, bs)
            for x in xs[:depth_reached + 1]:
                _envelopes(slabs, s, x)
            backups += n
            trials += 1
        final = dict(history[-1], time=tc, wall=tw, trials=trials, backups=int(backups))
        if history[-1] is not final:
            history.append(final)
        check_bounds(final["lower"], final["upper"], m.name)
        solve_seconds = time.process_time() - t0
        if self.verbose:
            _row(final)
            print("-" * 96, file=sys.stderr)
            state = "converged" if converged else f"stopped ({stop})"
            print(f"staged {state}: lower {final['lower']:.6g}, upper {final['upper']:.6g}, "
                  f"{solve_seconds:.2f} s CPU, {final['alphas']} alphas, {final['beliefs']} beliefs",
                  file=sys.stderr)
        alphas, acts, xval = slabs.vectors()
        meta = {"model_fingerprint": m.fingerprint(), "solver": "staged", "settings": self.settings(),
                "lower": final["lower"], "upper": final["upper"], "solve_seconds": solve_seconds,
                "wall_seconds": time.perf_counter() - w0, "jit_seconds": jit, "init_seconds": init_seconds,
                "trials": trials, "rounds": rounds, "backups": int(backups), "beliefs": final["beliefs"],
                "stop_reason": stop,
                "converged": converged, "model": m.name}
        if X > 1:
            meta["momdp"] = {"visible": X, "hidden": Y}
        policy = AlphaVectorPolicy(alphas, acts, meta, visible=xval if X > 1 else None, n_visible=X)
        return SolveResult(policy, final["lower"], final["upper"], solve_seconds, jit, int(alphas.shape[0]),
                           final["beliefs"], trials, converged, history)


def _bulk(slabs: _Slabs, s: Stages, episodes: int, explore: float, cap: int, rng) -> int:
    """Add the beliefs that ``episodes`` simulated runs of the lower bound's policy (random actions with
    probability ``explore``) reach, at most ``cap`` per sibling group, each backed up in reverse topological
    order (so it becomes a point of every member, exact given its successors'); returns the backups done."""
    d = s.dyn
    depth = len(s.order) + 1
    out_x = np.zeros(episodes * depth, np.int64)
    out_b = np.zeros((episodes * depth, s.Y))
    seed = int(rng.integers(2**31 - 1))
    n = K.simulate(s.roots, s.beliefs, s.masses, episodes, explore, seed, d, slabs.st, out_x, out_b)
    lead = s.leader[out_x[:n]]
    keep = np.zeros(n, bool)
    for g in np.unique(lead):
        idx = np.flatnonzero(lead == g)
        keep[idx if idx.size <= cap else rng.choice(idx, cap, replace=False)] = True
    xs, B = lead[keep], out_b[:n][keep]
    ix = np.argsort(xs, kind="stable")
    xs, B = xs[ix], np.ascontiguousarray(B[ix])
    cnt = np.bincount(xs, minlength=s.X)
    ptr = np.concatenate([[0], np.cumsum(cnt)]).astype(np.int64)
    room = cnt[s.leader] + 2  # each member gets its leader's new beliefs
    slabs.ensure(room)
    n = 0
    for x in s.order:
        if cnt[x]:
            n += int(K.backup_new(np.array([x]), d, slabs.st, ptr, B))
            _envelopes(slabs, s, x)
    return n


def _full_sweep(slabs: _Slabs, s: Stages) -> int:
    """Back up every stored point and corner in reverse topological order, pruning before and after, and
    recompute the envelopes."""
    _prune(slabs, s)
    slabs.ensure(2, slabs.st.pn + s.Y + 2)
    d = s.dyn
    n = 0
    for x in s.order:
        if d.term[x] or s.leader[x] != x:
            continue
        n += int(K.sweep_points(np.array([x]), d, slabs.st))
        _envelopes(slabs, s, x)
    _prune(slabs, s)
    return n


def _envelopes(slabs: _Slabs, s: Stages, x: int) -> None:
    """Recompute the envelopes of x's sibling group (its members share their points)."""
    if 2 <= s.Y <= ENVELOPE_MAX_Y:
        d = s.dyn
        g = d.grp[x]
        for m in d.gmem[d.gptr[g]:d.gptr[g + 1]]:
            slabs.set_envelope(int(m))


def _prune(slabs: _Slabs, s: Stages) -> None:
    for x in np.flatnonzero(slabs.st.an > 1):
        K.prune_vectors(x, slabs.st, KEEP_NEWEST)


def _header() -> None:
    print("-" * 96, file=sys.stderr)
    print(f"{'Time':>8} | {'#Trial':>7} | {'#Backup':>8} | {'LBound':>11} | {'UBound':>11} | "
          f"{'Precision':>10} | {'#Alphas':>7} | {'#Beliefs':>8}", file=sys.stderr)
    print("-" * 96, file=sys.stderr)


def _row(e) -> None:
    print(f"{e['time']:8.2f} | {e['trials']:7d} | {e['backups']:8d} | {e['lower']:11.6g} | "
          f"{e['upper']:11.6g} | {e['upper'] - e['lower']:10.4g} | {e['alphas']:7d} | {e['beliefs']:8d}",
          file=sys.stderr)


def solve(model, **kw) -> SolveResult:
    """Convenience: ``StagedSolver(**kw).solve(model)``."""
    return StagedSolver(**kw).solve(model)
