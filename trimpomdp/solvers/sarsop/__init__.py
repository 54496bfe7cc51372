"""SARSOP-style point-based POMDP solver (Kurniawati, Hsu & Lee, RSS 2008).

A belief tree rooted at b0 is grown by trials that follow the upper bound's best action and the observation
with the largest weighted excess gap; each trial's path is then backed up bottom-up: an alpha-vector backup
for the lower bound, a sawtooth point for the upper bound (FIB corners and blind-policy vectors to start
from). Actions that cannot be optimal are pruned at each node, stale vectors and dominated points from the
sets, and past ``memory_mb`` leaf beliefs leave memory. One module per step:

``state``   the named structures the numba kernels and Python share
``tree``    belief updates, node storage, expansion, eviction
``sample``  the trials (descent and the loop that runs whole trials in numba)
``backup``  bound values at a belief and the Bellman backup of a node
``prune``   vector and point pruning, compaction, growth
``run``     one solve: the loop around the kernels, stopping rules, progress

The kernels are ``cache=True``, and numba checks a cached kernel only against its own file: after editing
one that others call (``backup``, ``tree``), delete ``__pycache__/*.nb[ic]`` here or the callers keep the
old code.
"""
from __future__ import annotations

import time

import numpy as np

from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.result import SolveResult, check_bounds, check_options
from trimpomdp.solvers.sarsop.run import Run
from trimpomdp.solvers.sarsop.tree import MIN_OBS_PROB, successors_momdp
from trimpomdp.solvers.sparse import to_sparse

__all__ = ["SARSOPSolver", "solve", "warm_up"]

_JIT_DONE = False


def warm_up() -> float:
    """Compile (or load from numba's cache) every kernel on a 2-state model; returns the CPU seconds spent."""
    global _JIT_DONE
    if _JIT_DONE:
        return 0.0
    t0 = time.process_time()
    T = np.array([[[0.9, 0.1], [0.1, 0.9]], [[0.5, 0.5], [0.5, 0.5]]])
    O = np.array([[[0.8, 0.2], [0.3, 0.7]], [[0.5, 0.5], [0.5, 0.5]]])
    R = np.array([[1.0, 0.0], [0.0, 0.5]])
    tiny = POMDP.from_arrays(T, O, R, 0.9, name="warmup")
    run = Run(to_sparse(tiny), tiny, precision=1e-2, timeout=None, max_iterations=5, verbose=False,
              report_every=1e9, callback=None)
    run.run()
    run.compact_points()  # and the kernels that only maintenance, memory pressure and hash hits call
    run.memory_bytes = 1.0
    run.evict()
    run.tree.materialise(0)
    run.prune()
    bi, bv = run.tree.belief(0)
    run.tree.same_belief(0, bi, bv)
    successors_momdp(bi, bv, run.model, MIN_OBS_PROB, run.scratch)  # what a MOMDP expands with
    _JIT_DONE = True
    return time.process_time() - t0


class SARSOPSolver:
    """Point-based solver with SARSOP sampling; ``solve(model)`` returns a ``SolveResult``.

    ``timeout`` is in CPU seconds (like pomdpsol; a wall-clock guard of 4x + 5 s also applies);
    ``precision`` is the target gap at b0. Tuning: ``targets`` turns SARSOP's (L, U) trial targets on/off,
    ``prune_delay`` is how many backups a vector may go unused before it is pruned, ``max_depth`` caps trials.
    ``memory_mb`` caps the solver's arrays: past it, the beliefs of the least recently used unexpanded
    leaves are dropped (and recomputed if needed again); if the tree alone still exceeds it, the solve
    stops (``meta["stop_reason"] == "memory"``, bounds valid) like pomdpsol's ``--memory``. ``None``
    disables it. ``seed`` is only recorded: the solver draws no random numbers.
    """

    def __init__(self, precision=1e-3, timeout=None, max_iterations=None, seed=0, verbose=False,
                 report_every=1.0, callback=None, max_depth=None, targets=True, prune_delay=50,
                 memory_mb=1024):
        check_options(precision, timeout, max_iterations, memory_mb)
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
        self.memory_mb = memory_mb

    def settings(self) -> dict:
        return {"precision": self.precision, "timeout": self.timeout, "max_iterations": self.max_iterations,
                "seed": self.seed, "max_depth": self.max_depth, "targets": self.targets,
                "prune_delay": self.prune_delay, "memory_mb": self.memory_mb}

    def solve(self, model) -> SolveResult:
        """Solve a ``POMDP`` or a ``MOMDP`` (whose vectors then belong to visible values, see
        ``AlphaVectorPolicy.visible``); a flat POMDP is solved as the MOMDP with one visible value."""
        flat = model if isinstance(model, POMDP) else model.flat
        flat.check_value_finite()  # once, before anything is compiled or allocated
        jit = warm_up()
        t0 = time.process_time()
        run = Run(to_sparse(model), model, self.precision, self.timeout, self.max_iterations, self.verbose,
                  self.report_every, self.callback, self.max_depth, self.prune_delay, self.targets,
                  self.memory_mb)
        init_seconds = time.process_time() - t0
        final = run.run()
        check_bounds(final["lower"], final["upper"], model.name)
        solve_seconds = time.process_time() - t0
        for h in run.history:  # times measured from the start of the solve, bounds included
            h["time"] += init_seconds
        alphas, acts, xval = run.policy()
        meta = {"model_fingerprint": model.fingerprint(), "solver": "sarsop", "settings": self.settings(),
                "lower": final["lower"], "upper": final["upper"], "solve_seconds": solve_seconds,
                "wall_seconds": run.wall + init_seconds, "jit_seconds": jit, "init_seconds": init_seconds,
                "trials": run.trials, "backups": run.backups, "beliefs": run.tree.n_nodes,
                "evictions": run.evictions, "stop_reason": run.stop_reason, "converged": run.converged,
                "model": model.name}
        X = run.model.X
        if X > 1:
            meta["momdp"] = {"visible": X, "hidden": run.Y}
        policy = AlphaVectorPolicy(alphas, acts, meta, visible=xval if X > 1 else None, n_visible=X)
        return SolveResult(policy, final["lower"], final["upper"], solve_seconds, jit, int(alphas.shape[0]),
                           run.tree.n_nodes, run.trials, run.converged, run.history)


def solve(model: POMDP, **kw) -> SolveResult:
    """Convenience: ``SARSOPSolver(**kw).solve(model)``."""
    return SARSOPSolver(**kw).solve(model)
