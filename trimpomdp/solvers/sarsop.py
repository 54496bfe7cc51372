"""SARSOP-style point-based POMDP solver (Kurniawati, Hsu & Lee, RSS 2008): plain-Python orchestration.

A belief tree (a DAG: identical beliefs are merged by hash) rooted at b0 is grown by trials that follow the
upper bound's best action and the observation with the largest weighted excess gap, stopping when the gap is
below eps * gamma^-t (eps = half the root gap) or, as in SARSOP's selective deep sampling, when the (L, U)
targets propagated from the root are met; a targeted trial that changes nothing at the root makes the next
one use the plain gap rule. The path is then backed up bottom-up: a point-based alpha-vector backup for the
lower bound and a sawtooth belief-value point for the upper bound (FIB corners, blind-policy initial
vectors). Each node caches its bounds and only re-reads vectors/points added since its last refresh.
Actions whose Q upper bound falls below a node's lower value are pruned there (their children are no longer
refreshed), vectors that were nobody's maximiser for ``prune_delay`` backups are dropped (the root's best is
kept), and once replaced sawtooth points pile up, points dominated by the others are pruned and the
survivors compacted. Past ``memory_mb``, the beliefs of unexpanded leaves (pruned actions' first, then least
recently used) leave the pool; they keep their bounds and are recomputed from a parent when needed.

Whole trials (descent, backups, bookkeeping) run in ``kernels.run_trials`` (numba), which hands control back
only to expand a node (the belief index is a Python dict), recompute evicted beliefs, or grow an array; this
module keeps the growable arrays, pruning, progress and stopping rules.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from trimpomdp.errors import ModelError
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers import kernels as K
from trimpomdp.solvers.bounds import blind_alphas, fib_alphas
from trimpomdp.solvers.result import SolveResult, check_bounds
from trimpomdp.solvers.sparse import SparseModel, to_sparse

#: children with P(o | b, a) at or below this are dropped from the tree
MIN_OBS_PROB = 1e-12
#: trial-gap factor: a trial aims to shrink gaps below this fraction of the current root gap
TRIAL_KAPPA = 0.5
#: a backup stores a new vector/point only when it improves the node's bound by more than this x precision
IMPROVE_TOL = 1e-3
_JIT_DONE = False


def warm_up() -> float:
    """Compile (or load from numba's cache) every kernel on a 2-state model; returns the seconds spent."""
    global _JIT_DONE
    if _JIT_DONE:
        return 0.0
    t0 = time.process_time()
    T = np.array([[[0.9, 0.1], [0.1, 0.9]], [[0.5, 0.5], [0.5, 0.5]]])
    O = np.array([[[0.8, 0.2], [0.3, 0.7]], [[0.5, 0.5], [0.5, 0.5]]])
    R = np.array([[1.0, 0.0], [0.0, 0.5]])
    tiny = POMDP.from_arrays(T, O, R, 0.9, name="warmup")
    run = _Run(to_sparse(tiny), tiny, precision=1e-2, timeout=None, max_iterations=5, verbose=False,
               report_every=1e9, callback=None, seed=0)
    run.run()
    run._compact_points()  # compiles the point pruning/relinking kernels too
    run.memory_bytes = 1.0
    run.evict()  # and the eviction ones
    run.materialise(0)
    run.prune_alphas()
    bi, bv = run._belief(0)
    run._same_belief(0, bi, bv)
    _JIT_DONE = True
    return time.process_time() - t0


def _counter(slot):
    """A counter kept in the kernel state array ``st`` (so that run_trials can update it)."""
    return property(lambda self: int(self.st[slot]), lambda self, v: self.st.__setitem__(slot, v))


class _Run:
    """State of one solve: tree arrays, alpha set, sawtooth points; grown by doubling."""

    n_alpha = _counter(K.ST_NALPHA)
    n_pts = _counter(K.ST_NPTS)
    p_dead = _counter(K.ST_PDEAD)
    stamp = _counter(K.ST_STAMP)
    backups = _counter(K.ST_BACKUPS)
    trials = _counter(K.ST_TRIALS)

    def __init__(self, sm: SparseModel, model: POMDP, precision, timeout, max_iterations, verbose,
                 report_every, callback, seed, max_depth=None, prune_delay=50, targets=True, memory_mb=None):
        self.sm, self.model = sm, model
        self.precision = float(precision)
        self.tol = IMPROVE_TOL * self.precision
        self.timeout = timeout
        self.max_iterations = max_iterations
        self.verbose = verbose
        self.report_every = report_every
        self.callback = callback
        self.rng = np.random.default_rng(seed)
        self.prune_delay = prune_delay
        self.targets_enabled = bool(targets)
        self.memory_bytes = None if memory_mb is None else float(memory_mb) * 2**20
        self.evictions = 0
        self.st = np.zeros(16, np.int64)  # kernel state: trial position and counters (see kernels.ST_*)
        self.sf = np.zeros(6)
        self.st[K.ST_TARGETS] = int(bool(targets))
        S, A, Z = sm.S, sm.A, sm.Z
        g = sm.discount
        rng_r = float(sm.R.max() - min(sm.R.min(), 0.0)) + 1e-12
        if max_depth is None:
            if g < 1.0:
                max_depth = int(math.ceil(math.log(max(self.precision, 1e-9) * (1 - g) / rng_r) / math.log(g))) + 1
                max_depth = max(10, min(max_depth, 2000))
            else:
                max_depth = 500
        self.max_depth = max_depth
        self.path = np.zeros(max_depth + 3, np.int64)
        # scratch for the kernels
        self.pred = np.zeros(S)
        self.touched = np.zeros(S, np.int64)
        self.pz = np.zeros(Z)
        self.cnt = np.zeros(Z, np.int64)
        self.dense = np.zeros(S)
        self.kobs = np.zeros(Z, np.int64)
        self.h = np.zeros(S)
        self.new_alpha = np.zeros(S)
        # belief pool and nodes
        self.pool_idx = np.zeros(1024, np.int64)
        self.pool_val = np.zeros(1024)
        self.pool_n = 0
        cap = 256
        self.node_bs = np.zeros(cap, np.int64)
        self.node_bl = np.zeros(cap, np.int64)
        self.node_lb = np.full(cap, -np.inf)
        self.node_ub = np.full(cap, np.inf)
        self.node_rew = np.zeros((cap, A))
        self.node_qlb = np.zeros((cap, A))
        self.node_qub = np.full((cap, A), np.inf)  # +inf until the first backup: never pruned before
        self.aptr = np.zeros((cap, A + 1), np.int64)
        self.expanded = np.zeros(cap, bool)
        self.node_bestk = np.full(cap, -1, np.int64)
        self.node_aseen = np.zeros(cap, np.int64)
        self.node_pseen = np.zeros(cap, np.int64)
        self.node_touch = np.zeros(cap, np.int64)
        self.n_nodes = 0
        self.index: dict[int, int] = {}
        self.e_child = np.zeros(1024, np.int64)
        self.e_prob = np.zeros(1024)
        self.e_obs = np.zeros(1024, np.int64)
        self.n_edges = 0
        # lower bound: alpha vectors (the blind policies with a finite value; all of them when discounted)
        blind = blind_alphas(model)
        self.alphas = np.zeros((max(64, 2 * A), S))
        self.alpha_act = np.zeros(self.alphas.shape[0], np.int64)
        self.alive = np.zeros(self.alphas.shape[0], bool)
        self.used = np.zeros(self.alphas.shape[0], np.int64)
        self.n_alpha = 0
        for a in np.flatnonzero(np.isfinite(blind).all(axis=1)):
            self._add_alpha(blind[a], a)
        self.n_floor = self.n_alpha
        # upper bound: FIB corners plus sawtooth points
        try:
            corner = fib_alphas(model).max(axis=0)
        except ArithmeticError as exc:
            raise ModelError(f"cannot bound the value of {model.name or 'the model'}: {exc}") from None
        self.corner = np.ascontiguousarray(corner)
        # point i's belief is pool[p_ptr[i, 0]:p_ptr[i, 1]]: beliefs never move in the pool, so points
        # reference their node's belief instead of copying it (half the memory on large supports)
        self.p_ptr = np.zeros((256, 2), np.int64)
        self.p_node = np.zeros(256, np.int64)
        self.p_gap = np.zeros(256)
        self.p_alive = np.zeros(256, bool)
        self.nxt = np.full(256, -1, np.int64)
        self.head = np.full(S, -1, np.int64)
        self.node_point = np.full(cap, -1, np.int64)
        self.history: list[dict] = []

    # ------------------------------------------------------------------ storage
    def _grow_alphas(self):
        """Make room for one more vector: compact when a quarter of the rows are dead, else grow by half."""
        live = np.flatnonzero(self.alive[: self.n_alpha])
        if live.size < 0.75 * self.n_alpha:
            self._compact_alphas(live)
        else:
            n = self.alphas.shape[0] + self.alphas.shape[0] // 2
            self.alphas.resize((n, self.alphas.shape[1]), refcheck=False)  # in place, no transient copy
            self.alpha_act = np.resize(self.alpha_act, n)
            self.alive = np.concatenate([self.alive, np.zeros(n - self.alive.shape[0], bool)])
            self.used = np.resize(self.used, n)

    def _compact_alphas(self, live, shrink=False):
        """Move the live vectors to the front (renumbering the nodes' references); ``shrink`` also gives the
        freed rows back to the system."""
        remap = np.full(self.alphas.shape[0], -1, np.int64)
        remap[live] = np.arange(live.size)
        self.alphas[: live.size] = self.alphas[live]
        self.alpha_act[: live.size] = self.alpha_act[live]
        self.used[: live.size] = self.used[live]
        self.alive[:] = False
        self.alive[: live.size] = True
        self.n_alpha = live.size
        # vector indices changed: renumber each node's best vector and how many it has seen (a node whose
        # best was dropped rescans everything at its next refresh)
        if hasattr(self, "node_bestk"):
            N = self.n_nodes
            bk = self.node_bestk[:N]
            self.node_bestk[:N] = np.where(bk >= 0, remap[np.maximum(bk, 0)], -1)
            self.node_aseen[:N] = np.searchsorted(live, self.node_aseen[:N])
        if shrink:
            n = min(self.alphas.shape[0], max(64, live.size + live.size // 4))
            self.alphas.resize((n, self.alphas.shape[1]), refcheck=False)
            self.alpha_act, self.alive, self.used = self.alpha_act[:n].copy(), self.alive[:n].copy(), self.used[:n].copy()

    def _add_alpha(self, vec, a):
        if self.n_alpha == self.alphas.shape[0]:
            self._grow_alphas()
        k = self.n_alpha
        self.alphas[k] = vec
        self.alpha_act[k] = a
        self.alive[k] = True
        self.used[k] = self.stamp
        self.n_alpha += 1
        self.st[K.ST_NALIVE] += 1
        return k

    def _grow_nodes(self, need):
        cap = self.node_bs.shape[0]
        if need <= cap:
            return
        n = max(need, 2 * cap)

        def g(arr, fill):
            out = np.full((n,) + arr.shape[1:], fill, dtype=arr.dtype)
            out[:cap] = arr
            return out

        self.node_bs, self.node_bl = g(self.node_bs, 0), g(self.node_bl, 0)
        self.node_lb, self.node_ub = g(self.node_lb, -np.inf), g(self.node_ub, np.inf)
        self.node_rew, self.node_qlb, self.node_qub = g(self.node_rew, 0), g(self.node_qlb, 0), g(self.node_qub, np.inf)
        self.aptr, self.expanded = g(self.aptr, 0), g(self.expanded, False)
        self.node_point = g(self.node_point, -1)
        self.node_bestk = g(self.node_bestk, -1)
        self.node_aseen, self.node_pseen = g(self.node_aseen, 0), g(self.node_pseen, 0)
        self.node_touch = g(self.node_touch, 0)

    @staticmethod
    def _ensure(arr, need):
        if need <= arr.shape[0]:
            return arr
        out = np.zeros(max(need, arr.shape[0] + arr.shape[0] // 2), arr.dtype)
        out[: arr.shape[0]] = arr
        return out

    def _new_node(self, bi, bv, key):
        n = self.n_nodes
        self._grow_nodes(n + 1)
        self._store_belief(n, bi, bv)
        self.n_nodes += 1
        if key is not None:
            self.index[key] = n
        return n

    def _store_belief(self, n, bi, bv):
        """Append node n's belief to the pool (new nodes, and evicted ones recomputed)."""
        m = bi.shape[0]
        need = self.pool_n + m
        if need > self.pool_idx.shape[0]:
            # the pool is most of the memory: grow it in place (realloc/mremap, no transient copy); no view
            # of it is held across this call (kernels get self.pool_* afresh each call)
            size = max(need, self.pool_idx.shape[0] + self.pool_idx.shape[0] // 2)
            self.pool_idx.resize(size, refcheck=False)
            self.pool_val.resize(size, refcheck=False)
        self.pool_idx[self.pool_n: self.pool_n + m] = bi
        self.pool_val[self.pool_n: self.pool_n + m] = bv
        self.node_bs[n] = self.pool_n
        self.node_bl[n] = m
        self.pool_n += m

    def _same_belief(self, n, bi, bv):
        return K.same_belief(self.pool_idx, self.pool_val, self.node_bs[n], self.node_bl[n], bi, bv, 1e-10)

    @staticmethod
    def _key(bi, bv):
        """Beliefs are merged by a 64-bit hash of (support, values rounded to 1e-11), checked on hit."""
        return hash(bi.tobytes() + np.round(bv, 11).tobytes())

    def _belief(self, n):
        s = self.node_bs[n]
        return self.pool_idx[s: s + self.node_bl[n]], self.pool_val[s: s + self.node_bl[n]]

    def _grow_points(self):
        n2 = 2 * self.p_gap.shape[0]
        self.p_gap = self._ensure(self.p_gap, n2)
        self.p_alive = self._ensure(self.p_alive, n2)
        self.p_node = self._ensure(self.p_node, n2)
        nx = np.full(n2, -1, np.int64)
        nx[: self.nxt.shape[0]] = self.nxt
        self.nxt = nx
        pp = np.zeros((n2, 2), np.int64)
        pp[: self.p_ptr.shape[0]] = self.p_ptr
        self.p_ptr = pp

    def _compact_points(self):
        """Drop replaced sawtooth points so that bucket scans stop walking them.

        Point indices change, so every node rescans all points at its next refresh (its stored upper
        value is kept as a cap, so this never loosens a bound)."""
        n = self.n_pts
        K.prune_dominated_points(self.corner, self.p_ptr, self.pool_idx, self.pool_val, self.p_gap, self.p_alive,
                                 self.head, self.nxt, n, self.dense)
        live = np.flatnonzero(self.p_alive[:n])
        self.p_ptr[: live.size] = self.p_ptr[live]
        self.p_node[: live.size] = self.p_node[live]
        self.p_gap[: live.size] = self.p_gap[live]
        self.p_alive[:n] = False
        self.p_alive[: live.size] = True
        remap = np.full(n, -1, np.int64)
        remap[live] = np.arange(live.size)
        npt = self.node_point[: self.n_nodes]
        has = npt >= 0
        npt[has] = remap[npt[has]]
        K.link_points(self.p_ptr, self.pool_idx, live.size, self.head, self.nxt)
        self.n_pts = live.size
        self.p_dead = 0
        self.node_pseen[:] = 0

    # ------------------------------------------------------------------ tree operations
    def _successors(self, n):
        """Every child belief of node n, grouped by action (``kernels.successors``)."""
        sm = self.sm
        bi, bv = self._belief(n)
        return K.successors(bi, bv, sm.Tp, sm.Ti, sm.Tv, sm.Op, sm.Oi, sm.Ov, sm.R, sm.Z, MIN_OBS_PROB,
                            self.pred, self.touched, self.pz, self.cnt)

    def expand(self, n):
        act_ptr, obs, prob, cptr, cidx, cval, rew = self._successors(n)
        m = obs.shape[0]
        ids = np.empty(m, np.int64)
        index = self.index
        # one rounding and one byte copy per expansion (not per child): keys are slices of these
        ib = cidx.tobytes()
        vb = np.round(cval, 11).tobytes()
        for j in range(m):
            c0, c1 = int(cptr[j]), int(cptr[j + 1])
            ci = cidx[c0: c1]
            cv = cval[c0: c1]
            key = hash(ib[8 * c0: 8 * c1] + vb[8 * c0: 8 * c1])
            c = index.get(key)
            if c is not None and self.node_bs[c] < 0:
                self._store_belief(c, ci, cv)  # an evicted belief met again: store it back
            elif c is not None and not self._same_belief(c, ci, cv):
                c = -1  # hash collision: keep the beliefs apart (the new one is not indexed)
            if c is None or c < 0:
                c = self._new_node(ci, cv, key if c is None else None)
            ids[j] = c
        e0 = self.n_edges
        self.e_child = self._ensure(self.e_child, e0 + m)
        self.e_prob = self._ensure(self.e_prob, e0 + m)
        self.e_obs = self._ensure(self.e_obs, e0 + m)
        self.e_child[e0: e0 + m] = ids
        self.e_prob[e0: e0 + m] = prob
        self.e_obs[e0: e0 + m] = obs
        self.n_edges += m
        self.aptr[n] = act_ptr + e0
        self.node_rew[n] = rew
        self.expanded[n] = True

    def backup(self, n):
        """Back one expanded node up (both bounds), handling the kernel's requests."""
        while True:
            code = K.backup_update(n, self.st, self.tol, self._tree_args())
            if code == K.DONE:
                return
            self._serve(code)

    def _tree_args(self):
        sm = self.sm
        return (self.node_bs, self.node_bl, self.pool_idx, self.pool_val, self.aptr, self.e_child, self.e_prob,
                self.e_obs, self.node_rew, self.node_lb, self.node_ub, self.node_qlb, self.node_qub,
                self.node_bestk, self.node_aseen, self.node_pseen, self.node_touch, self.node_point,
                self.alphas, self.alpha_act, self.alive, self.used, self.corner, self.p_ptr, self.p_node,
                self.p_gap, self.p_alive, self.head, self.nxt, self.dense, sm.Tp, sm.Ti, sm.Tv, sm.Op, sm.Oi,
                sm.Ov, sm.R, sm.discount, sm.Z, self.kobs, self.h, self.new_alpha)

    def _serve(self, code):
        """Do what run_trials/backup_update handed back to Python; the kernel then resumes where it was."""
        need = int(self.st[K.ST_NEED])
        if code == K.NEED_EXPAND:
            self.expand(need)
        elif code == K.NEED_BELIEFS:
            self.materialise(need)
        elif code == K.NEED_ALPHA_ROOM:
            self._grow_alphas()
        elif code == K.NEED_POINT_ROOM:
            self._grow_points()
        else:  # pragma: no cover - a new return code without a handler
            raise RuntimeError(f"unexpected kernel request {code}")

    def trials_until(self, max_trials, alive_limit=1 << 62, max_backups=1 << 62):
        """Run up to ``max_trials`` trials (or about ``max_backups`` backups) in numba; returns DONE,
        CONVERGED or MAINTENANCE."""
        while True:
            code = K.run_trials(self.st, self.sf, self.path, max_trials, max_backups, self.precision, self.tol,
                                TRIAL_KAPPA,
                                self.max_depth, self.targets_enabled, 2000, alive_limit, self.expanded,
                                self._tree_args())
            if code in (K.DONE, K.CONVERGED, K.MAINTENANCE):
                return code
            self._serve(code)

    def trial(self):
        """One SARSOP trial: descent from the root, then backups along the path (bottom-up)."""
        before = self.trials
        while self.trials == before:
            if self.trials_until(1) == K.CONVERGED:
                break

    # ------------------------------------------------------------------ memory
    def materialise(self, n):
        """Recompute the evicted beliefs among the children of expanded node n (same order as expand)."""
        _, obs, _, cptr, cidx, cval, _ = self._successors(n)
        e0 = self.aptr[n, 0]
        assert obs.shape[0] == self.aptr[n, -1] - e0, "successors changed between expansion and recomputation"
        for j in range(obs.shape[0]):
            c = int(self.e_child[e0 + j])
            if self.node_bs[c] < 0:
                self._store_belief(c, cidx[cptr[j]: cptr[j + 1]].copy(), cval[cptr[j]: cptr[j + 1]].copy())

    def memory_in_use(self) -> int:
        """Bytes held by the solver's growable arrays (the tree, its belief pool, vectors and points)."""
        arrays = (self.pool_idx, self.pool_val, self.node_bs, self.node_bl, self.node_lb, self.node_ub,
                  self.node_rew, self.node_qlb, self.node_qub, self.aptr, self.expanded, self.node_bestk,
                  self.node_aseen, self.node_pseen, self.node_touch, self.node_point, self.e_child, self.e_prob,
                  self.e_obs, self.alphas, self.p_ptr, self.p_node, self.p_gap, self.p_alive, self.nxt)
        return sum(a.nbytes for a in arrays) + 100 * len(self.index)

    def _fit_memory(self) -> bool:
        """Get back under ``memory_mb``: leaf beliefs first, then vectors down to recently used ones (rows
        given back). False when the tree itself still exceeds the cap: stop, as pomdpsol --memory does."""
        self.evict()
        pool = self.pool_idx.nbytes + self.pool_val.nbytes
        if self.memory_in_use() - pool > self.memory_bytes:
            self.prune_alphas(protect=False)
            self._compact_alphas(np.flatnonzero(self.alive[: self.n_alpha]), shrink=True)
        return self.memory_in_use() - pool <= self.memory_bytes

    def evict(self):
        """Keep the solver inside ``memory_mb``: drop the beliefs of unexpanded leaves whose parents were
        backed up least recently, then compact the pool. The leaves keep their (valid) cached bounds; a
        parent's next backup, or a trial entering the leaf, recomputes them (one ``successors`` call)."""
        over = self.memory_in_use() - 0.75 * self.memory_bytes
        if over <= 0:
            return
        N = self.n_nodes
        exp = np.flatnonzero(self.expanded[:N])
        order = exp[np.argsort(self.node_touch[exp], kind="stable")]
        K.evict_leaves(order, self.aptr, self.e_child, self.expanded, self.node_bs, self.node_bl, self.node_qub,
                       self.node_lb, int(over // 16) + 1)
        live = np.flatnonzero(self.node_bs[:N] >= 0)
        live = live[np.argsort(self.node_bs[live], kind="stable")]
        self.pool_n = int(K.compact_pool(live, self.node_bs, self.node_bl, self.pool_idx, self.pool_val))
        size = max(1024, self.pool_n + self.pool_n // 8)
        self.pool_idx.resize(size, refcheck=False)  # give the memory back
        self.pool_val.resize(size, refcheck=False)
        npt = self.n_pts
        self.p_ptr[:npt, 0] = self.node_bs[self.p_node[:npt]]
        self.p_ptr[:npt, 1] = self.p_ptr[:npt, 0] + self.node_bl[self.p_node[:npt]]
        self.evictions += 1

    def prune_alphas(self, protect=True):
        """Drop vectors that were nobody's maximiser for ``prune_delay`` backups, except the best vector of
        every expanded node (the root's included).

        Staleness alone is not enough: a vector is "act, then continue with the best vectors of the children"
        and the greedy policy only achieves its value if, at each child belief, the kept set still holds
        something as good. A node's best vector only ever improves at its own belief, so keeping it keeps that
        promise on the expanded part of the tree (dropping it made Tiger's policy worth -14 against a bound of
        19.37); leaves, far more numerous, only rely on recent use, which bounds the memory on large models
        at a loss discounted by their depth. Under memory pressure ``protect=False`` drops that guarantee.
        """
        N = self.n_nodes
        if protect:
            bk = self.node_bestk[:N][self.expanded[:N]]
            self.used[bk[bk >= 0]] = self.stamp
        K.mark_used_at(np.array([0], np.int64), self.node_bs, self.node_bl, self.pool_idx, self.pool_val,
                       self.alphas, self.n_alpha, self.alive, self.used, self.stamp)
        stale = self.alive[: self.n_alpha] & (self.used[: self.n_alpha] < self.stamp - self.prune_delay)
        stale[: self.n_floor] = False  # the blind policies' vectors: the floor every refresh starts from
        self.alive[: self.n_alpha][stale] = False
        self.st[K.ST_NALIVE] = self.alive_after_prune = int(self.alive[: self.n_alpha].sum())

    def _alive_limit(self) -> int:
        """Working-set size that triggers the next pruning: half again as many as the last one left."""
        return int(1.5 * self.alive_after_prune + 20)

    # ------------------------------------------------------------------ main loop
    def root_bounds(self):
        bi, bv = self._belief(0)
        lb, _ = K.lower_value(bi, bv, self.alphas, self.n_alpha, self.alive)
        return lb, self.node_ub[0]

    def record(self, t_cpu, t_wall, force=False):
        lb, ub = self.root_bounds()
        if self.history:
            last = self.history[-1]
            lb = max(lb, last["lower"])
            ub = min(ub, last["upper"])
        entry = {"time": t_cpu, "wall": t_wall, "trials": self.trials, "backups": self.backups,
                 "lower": float(lb), "upper": float(ub), "alphas": int(self.alive[: self.n_alpha].sum()),
                 "beliefs": int(self.n_nodes)}
        if force or not self.history or entry["lower"] != self.history[-1]["lower"] \
                or entry["upper"] != self.history[-1]["upper"]:
            self.history.append(entry)
        return entry

    def run(self):
        sm = self.sm
        t0, w0 = time.process_time(), time.perf_counter()
        bi = np.flatnonzero(sm.b0 > 0).astype(np.int64)
        bv = sm.b0[bi].copy()
        bv /= bv.sum()
        self._new_node(bi, bv, self._key(bi, bv))
        self.expand(0)
        self.backup(0)
        self.converged = False
        self.stop_reason = "iterations"
        last_report = -1e9
        self.alive_after_prune = int(self.alive[: self.n_alpha].sum())
        if self.verbose:
            print("-" * 96, file=sys.stderr)
            print(f"{'Time':>8} | {'#Trial':>7} | {'#Backup':>8} | {'LBound':>11} | {'UBound':>11} | "
                  f"{'Precision':>10} | {'#Alphas':>7} | {'#Beliefs':>8}", file=sys.stderr)
            print("-" * 96, file=sys.stderr)
        budget = 16  # backups per kernel call, adapted so that a call takes about 5 ms
        while True:
            tc, tw = time.process_time() - t0, time.perf_counter() - w0
            entry = self.record(tc, tw)
            gap = entry["upper"] - entry["lower"]
            if gap <= self.precision:
                self.converged = True
                self.stop_reason = "precision"
                break
            if self.timeout is not None and (tc >= self.timeout or tw >= self.timeout * 4 + 5):
                self.stop_reason = "timeout"
                break
            if self.max_iterations is not None and self.trials >= self.max_iterations:
                break
            if tc - last_report >= self.report_every:
                last_report = tc
                if self.verbose:
                    self._print_row(entry)
                if self.callback is not None:
                    self.callback(entry)
            limit = 1 << 62 if self.max_iterations is None else self.max_iterations - self.trials
            c0, b0 = time.perf_counter(), self.backups
            self.trials_until(limit, self._alive_limit(), budget)
            dt, done = time.perf_counter() - c0, self.backups - b0
            if done > 0 and dt > 0:
                budget = int(min(max(0.5 * budget, min(2 * budget, done / dt * 0.005)), 1 << 20)) + 1
            if self.p_dead > 2000 and self.p_dead > self.n_pts // 2:
                self._compact_points()
            if self.st[K.ST_NALIVE] > self._alive_limit():
                self.prune_alphas()
            if self.memory_bytes is not None and self.memory_in_use() > self.memory_bytes:
                if not self._fit_memory():
                    self.stop_reason = "memory"
                    break
        self.iterations = self.trials
        self.cpu = time.process_time() - t0
        self.wall = time.perf_counter() - w0
        final = self.record(self.cpu, self.wall, force=True)
        if self.verbose:
            self._print_row(final)
            print("-" * 96, file=sys.stderr)
            state = "converged" if self.converged else f"stopped ({self.stop_reason})"
            print(f"SARSOP {state}: lower {final['lower']:.6g}, upper {final['upper']:.6g}, "
                  f"{self.cpu:.2f} s CPU, {final['alphas']} alphas, {final['beliefs']} beliefs",
                  file=sys.stderr)
        return final

    def _print_row(self, e):
        print(f"{e['time']:8.2f} | {e['trials']:7d} | {e['backups']:8d} | {e['lower']:11.6g} | "
              f"{e['upper']:11.6g} | {e['upper'] - e['lower']:10.4g} | {e['alphas']:7d} | {e['beliefs']:8d}",
              file=sys.stderr)

    def policy(self):
        live = np.flatnonzero(self.alive[: self.n_alpha])
        return self.alphas[live].copy(), self.alpha_act[live].copy()


class SARSOPSolver:
    """Point-based solver with SARSOP sampling; ``solve(model)`` returns a ``SolveResult``.

    ``timeout`` is in CPU seconds (like pomdpsol; a wall-clock guard of 4x + 5 s also applies);
    ``precision`` is the target gap at b0. Tuning: ``targets`` turns SARSOP's (L, U) trial targets on/off,
    ``prune_delay`` is how many backups a vector may go unused before it is pruned, ``max_depth`` caps trials.
    ``memory_mb`` caps the solver's arrays: past it, the beliefs of the least recently used unexpanded
    leaves are dropped (and recomputed if needed again); if the tree alone still exceeds it, the solve
    stops (``meta["stop_reason"] == "memory"``, bounds valid) like pomdpsol's ``--memory``. ``None``
    disables it.
    """

    def __init__(self, precision=1e-3, timeout=None, max_iterations=None, seed=0, verbose=False,
                 report_every=1.0, callback=None, max_depth=None, targets=True, prune_delay=50, memory_mb=1024):
        if precision <= 0:
            raise ModelError(f"precision must be positive, got {precision}")
        if timeout is not None and timeout <= 0:
            raise ModelError(f"timeout must be positive, got {timeout}")
        if max_iterations is not None and max_iterations < 0:
            raise ModelError(f"max_iterations must be >= 0, got {max_iterations}")
        self.precision = precision
        self.timeout = timeout
        self.max_iterations = max_iterations
        self.seed = seed
        self.verbose = verbose
        self.report_every = report_every
        self.callback = callback
        self.max_depth = max_depth
        self.targets = targets
        self.prune_delay = prune_delay
        if memory_mb is not None and memory_mb <= 0:
            raise ModelError(f"memory_mb must be positive, got {memory_mb}")
        self.memory_mb = memory_mb

    def settings(self) -> dict:
        return {"precision": self.precision, "timeout": self.timeout, "max_iterations": self.max_iterations,
                "seed": self.seed, "max_depth": self.max_depth, "targets": self.targets,
                "prune_delay": self.prune_delay, "memory_mb": self.memory_mb}

    def solve(self, model: POMDP) -> SolveResult:
        model.check_value_finite()  # once, before anything is compiled or allocated
        jit = warm_up()
        t0 = time.process_time()
        sm = to_sparse(model)
        run = _Run(sm, model, self.precision, self.timeout, self.max_iterations, self.verbose, self.report_every,
                   self.callback, self.seed, self.max_depth, self.prune_delay, self.targets, self.memory_mb)
        init_seconds = time.process_time() - t0
        final = run.run()
        check_bounds(final["lower"], final["upper"], model.name)
        solve_seconds = time.process_time() - t0
        for h in run.history:  # times measured from the start of the solve, bounds included
            h["time"] += init_seconds
        alphas, acts = run.policy()
        meta = {"model_fingerprint": model.fingerprint(), "solver": "sarsop", "settings": self.settings(),
                "lower": final["lower"], "upper": final["upper"], "solve_seconds": solve_seconds,
                "wall_seconds": run.wall + init_seconds, "jit_seconds": jit, "init_seconds": init_seconds,
                "trials": run.trials, "backups": run.backups, "beliefs": run.n_nodes, "evictions": run.evictions,
                "stop_reason": run.stop_reason,
                "converged": run.converged, "model": model.name}
        return SolveResult(AlphaVectorPolicy(alphas, acts, meta), final["lower"], final["upper"], solve_seconds,
                           jit, int(alphas.shape[0]), int(run.n_nodes), run.iterations, run.converged,
                           run.history)


def solve(model: POMDP, **kw) -> SolveResult:
    """Convenience: ``SARSOPSolver(**kw).solve(model)``."""
    return SARSOPSolver(**kw).solve(model)
