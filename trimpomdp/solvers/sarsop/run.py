"""One solve: building the structures, driving the trial loop, serving its requests, stopping rules.

The kernels do the trials; this loop calls them with a backup budget sized so that a call takes about 5 ms,
serves what they hand back (expand a node, recompute evicted beliefs, grow an array), prunes when they ask
for maintenance, keeps the solve under its memory cap, and records the root bounds' progress.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np

from trimpomdp.errors import ModelError
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.bounds import blind_alphas, fib_alphas
from trimpomdp.solvers.sarsop.backup import backup_update, lower_value
from trimpomdp.solvers.sarsop.prune import (compact_alphas, compact_points, follow_pool, make_alpha_room,
                                            make_point_room, prune_alphas)
from trimpomdp.solvers.sarsop.sample import run_trials
from trimpomdp.solvers.sarsop.state import (CONVERGED, DONE, MAINTENANCE, NEED_ALPHA_ROOM, NEED_BELIEFS,
                                            NEED_EXPAND, NEED_POINT_ROOM, Settings, kernel_model, link_alphas,
                                            new_alphas, new_points, new_scratch, new_state)
from trimpomdp.solvers.sarsop.tree import BeliefTree, belief_key
from trimpomdp.solvers.sparse import SparseModel

#: trial-gap factor: a trial aims to shrink gaps below this fraction of the current root gap
TRIAL_KAPPA = 0.5
#: a backup stores a new vector/point only when it improves the node's bound by more than this x precision
IMPROVE_TOL = 1e-3
#: dead points past which (and past half of all points) they are pruned and compacted
DEAD_POINTS = 2000


def default_depth(sm: SparseModel, precision: float) -> int:
    """The depth past which a discounted reward range is below ``precision``."""
    g = sm.discount
    if g >= 1.0:
        return 500
    span = float(sm.R.max() - min(sm.R.min(), 0.0)) + 1e-12
    depth = int(math.ceil(math.log(max(precision, 1e-9) * (1 - g) / span) / math.log(g))) + 1
    return max(10, min(depth, 2000))


def undominated(vec: np.ndarray) -> np.ndarray:
    """(X, K) mask of the vectors vec[x, k] (over Y) that no other vector of the same x dominates pointwise
    (of equal vectors, the first is kept)."""
    K = vec.shape[1]
    ge = np.stack([(vec[:, j: j + 1] >= vec).all(axis=2) for j in range(K)], axis=1)  # [x, j, k]: j >= k
    j, k = np.meshgrid(np.arange(K), np.arange(K), indexing="ij")
    # k goes when some j != k dominates it strictly somewhere, or equals it with j < k
    beats = ge & ((~ge.transpose(0, 2, 1)) | (j < k)) & (j != k)
    return ~beats.any(axis=1)


class Run:
    """The state of one solve: tree, alpha vectors, sawtooth points (see ``state``) and progress."""

    def __init__(self, sm: SparseModel, model, precision, timeout, max_iterations, verbose,
                 report_every, callback, max_depth=None, prune_delay=50, targets=True, memory_mb=None):
        self.precision = float(precision)
        self.timeout = timeout
        self.max_iterations = max_iterations
        self.verbose = verbose
        self.report_every = report_every
        self.callback = callback
        self.prune_delay = prune_delay
        self.memory_bytes = None if memory_mb is None else float(memory_mb) * 2**20
        self.evictions = 0
        depth = default_depth(sm, self.precision) if max_depth is None else max_depth
        self.settings = Settings(precision=self.precision, tol=IMPROVE_TOL * self.precision,
                                 kappa=TRIAL_KAPPA, max_depth=depth, targets=bool(targets),
                                 dead_points=DEAD_POINTS)
        self.state = new_state(bool(targets))
        self.st = self.state[0]  # a view: kernels and Python read and write the same record
        self.path = np.zeros(depth + 3, np.int64)
        flat = model if isinstance(model, POMDP) else model.flat
        X, Y = sm.X, sm.Y
        bi = np.flatnonzero(sm.b0 > 0).astype(np.int64)
        if X > 1 and np.unique(bi // Y).size > 1:
            raise ModelError(f"{model.name or 'model'}: the initial belief spreads over "
                             f"{np.unique(bi // Y).size} visible values; the MOMDP solver starts from one "
                             "(solve the flat model instead)")
        # lower bound: the blind policies with a finite value (all of them when discounted), one vector per
        # visible value each: the floor, never pruned
        blind = blind_alphas(flat)
        keep = np.flatnonzero(np.isfinite(blind).all(axis=1))
        vec = blind[keep].reshape(keep.size, X, Y).transpose(1, 0, 2)  # (X, kept actions, Y)
        # on a MOMDP a vector dominated pointwise within its visible value is never the maximiser: left out
        # (on RockSample[11,11] 15 of 16 per position, which every new belief would otherwise read); a flat
        # model keeps them all (a weakly dominated vector tied at a belief may be picked there, and leaving
        # it out changed Hallway's trials: fewer vectors, no faster)
        xs, ks = np.nonzero(undominated(vec) if X > 1 else np.ones(vec.shape[:2], bool))
        self.n_floor = xs.size
        self.alphas = new_alphas(max(64, 2 * self.n_floor), Y, X)
        self.alphas.vectors[: self.n_floor] = vec[xs, ks]
        self.alphas.action[: self.n_floor] = keep[ks]
        self.alphas.xval[: self.n_floor] = xs
        self.alphas.alive[: self.n_floor] = True
        link_alphas(self.alphas, self.n_floor)
        means = vec[xs, ks].mean(axis=1)
        order = np.lexsort((-means, xs))  # by visible value, the best mean first
        floor = order[np.searchsorted(xs[order], np.arange(X))]
        self.st["n_alpha"] = self.st["n_alive"] = self.n_floor
        self.model = kernel_model(sm, floor)
        self.Y = Y
        self.scratch = new_scratch(sm.S, sm.Z, Y)
        self.tree = BeliefTree(self.model, self.scratch, sm.A)
        # upper bound: FIB corners, sawtooth points to come
        try:
            corner = fib_alphas(flat).max(axis=0)
        except ArithmeticError as exc:
            raise ModelError(f"cannot bound the value of {model.name or 'the model'}: {exc}") from None
        self.points = new_points(corner, X)
        self.history: list[dict] = []
        bv = sm.b0[bi].copy()
        bv /= bv.sum()
        self.tree.add(bi, bv, belief_key(bi, bv))

    @property
    def trials(self) -> int:
        return int(self.st["trials"])

    @property
    def backups(self) -> int:
        return int(self.st["backups"])

    # ------------------------------------------------------------------ kernels and their requests
    def _serve(self, code):
        """Do what run_trials/backup_update handed back to Python; the kernel then resumes where it was."""
        need = int(self.st["need"])
        if code == NEED_EXPAND:
            self.tree.expand(need)
        elif code == NEED_BELIEFS:
            self.tree.materialise(need)
        elif code == NEED_ALPHA_ROOM:
            self.alphas = make_alpha_room(self.alphas, self.st, self.tree.arrays, self.tree.n_nodes)
        elif code == NEED_POINT_ROOM:
            self.points = make_point_room(self.points, self.st)
        else:  # pragma: no cover - a new return code without a handler
            raise RuntimeError(f"unexpected kernel request {code}")

    def backup(self, n):
        """Back one expanded node up (both bounds)."""
        while True:
            code = backup_update(n, self.state, self.settings.tol, self.model, self.tree.arrays, self.alphas,
                                 self.points, self.scratch)
            if code == DONE:
                return
            self._serve(code)

    def trials_until(self, max_trials, alive_limit=1 << 62, max_backups=1 << 62):
        """Run up to ``max_trials`` trials (or about ``max_backups`` backups) in numba; returns DONE,
        CONVERGED or MAINTENANCE."""
        t0, b0 = self.trials, self.backups
        while True:  # the counts left, not the counts asked: a request hands back mid-way
            code = run_trials(self.state, self.path, max_trials - (self.trials - t0),
                              max_backups - (self.backups - b0), alive_limit, self.settings, self.model,
                              self.tree.arrays, self.alphas, self.points, self.scratch)
            if code in (DONE, CONVERGED, MAINTENANCE):
                return code
            self._serve(code)

    def trial(self):
        """One whole trial (descent from the root, then backups along the path)."""
        before = self.trials
        while self.trials == before:
            if self.trials_until(1) == CONVERGED:
                break

    # ------------------------------------------------------------------ pruning and memory
    def prune(self, protect=True):
        prune_alphas(self.alphas, self.st, self.tree.arrays, self.tree.n_nodes, self.prune_delay,
                     self.n_floor, self.Y, protect, leaves=self.model.X > 1)
        self.alive_after_prune = int(self.st["n_alive"])

    def compact_points(self):
        compact_points(self.points, self.st, self.tree.arrays, self.tree.n_nodes, self.scratch.dense)

    def _alive_limit(self) -> int:
        """Working-set size that triggers the next pruning: half again as many as the last one left."""
        return int(1.5 * self.alive_after_prune + 20)

    def memory_in_use(self) -> int:
        """Bytes held by the solver's growable arrays (the tree, its belief pool, vectors and points)."""
        return self.tree.nbytes() + sum(a.nbytes for a in self.alphas) + sum(a.nbytes for a in self.points)

    def evict(self):
        """Back to 3/4 of ``memory_mb`` by dropping leaf beliefs, if over it (``BeliefTree.evict``)."""
        over = self.memory_in_use() - 0.75 * self.memory_bytes
        if over <= 0:
            return
        t = self.tree.arrays
        self.tree.evict(int(over // (t.pool_idx.itemsize + t.pool_val.itemsize)) + 1)
        follow_pool(self.points, self.st, self.tree.arrays)
        self.evictions += 1

    def _fit_memory(self) -> bool:
        """Get back under ``memory_mb``: leaf beliefs first, then vectors down to recently used ones (rows
        given back). False when the tree itself still exceeds the cap: stop, as pomdpsol --memory does."""
        self.evict()
        t = self.tree.arrays
        pool = t.pool_idx.nbytes + t.pool_val.nbytes
        if self.memory_in_use() - pool > self.memory_bytes:
            self.prune(protect=False)
            self.alphas = compact_alphas(self.alphas, self.st, t, self.tree.n_nodes, shrink=True)
        return self.memory_in_use() - pool <= self.memory_bytes

    # ------------------------------------------------------------------ main loop
    def root_bounds(self):
        bi, bv = self.tree.belief(0)
        lb, _ = lower_value(bi, bv, self.alphas, self.st["n_alpha"], self.Y)
        return lb, self.tree.arrays.upper[0]

    def record(self, t_cpu, t_wall, force=False):
        lb, ub = self.root_bounds()
        if self.history:
            last = self.history[-1]
            lb = max(lb, last["lower"])
            ub = min(ub, last["upper"])
        entry = {"time": t_cpu, "wall": t_wall, "trials": self.trials, "backups": self.backups,
                 "lower": float(lb), "upper": float(ub), "alphas": int(self.st["n_alive"]),
                 "beliefs": self.tree.n_nodes}
        if force or not self.history or entry["lower"] != self.history[-1]["lower"] \
                or entry["upper"] != self.history[-1]["upper"]:
            self.history.append(entry)
        return entry

    def run(self):
        t0, w0 = time.process_time(), time.perf_counter()
        self.tree.expand(0)
        self.backup(0)
        self.converged = False
        self.stop_reason = "iterations"
        last_report = -1e9
        self.alive_after_prune = int(self.st["n_alive"])
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
            if self.st["p_dead"] > DEAD_POINTS and self.st["p_dead"] > self.st["n_pts"] // 2:
                self.compact_points()
            if self.st["n_alive"] > self._alive_limit():
                self.prune()
            if self.memory_bytes is not None and self.memory_in_use() > self.memory_bytes:
                if not self._fit_memory():
                    self.stop_reason = "memory"
                    break
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
        """The live vectors, their actions and their visible values."""
        live = np.flatnonzero(self.alphas.alive[: self.st["n_alpha"]])
        return self.alphas.vectors[live].copy(), self.alphas.action[live].copy(), self.alphas.xval[live].copy()
