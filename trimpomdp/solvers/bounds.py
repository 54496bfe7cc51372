"""Cheap value bounds that seed point-based solvers: QMDP and FIB (upper), best blind policy (lower).

QMDP ignores partial observability after one step, FIB (Hauskrecht 2000) after the next observation, so
QMDP >= FIB >= V* pointwise; a blind policy (one action forever) is a real policy, so its value is <= V*.
All three are computed on the sparse per-action matrices with scipy, vectorised over states.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from trimpomdp.policy import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.result import SolveResult
from trimpomdp.solvers.sparse import to_sparse

#: iteration cap for undiscounted models (discount 1), where value iteration may not contract
MAX_ITER = 10_000
#: below this many states a dense LAPACK solve beats scipy's sparse LU set-up
DENSE_SOLVE_MAX = 100


def _tol(sm, tol):
    return tol * (1.0 - sm.discount) / max(sm.discount, 1e-12) if sm.discount < 1.0 else tol


def _horizon_guard(sm, values):
    if not np.all(np.isfinite(values)):
        raise ArithmeticError("bound diverged (undiscounted model without reachable terminal states?)")


def qmdp_alphas(model: POMDP, tol: float = 1e-7) -> np.ndarray:
    """(A, S) Q-values of the fully observable MDP: an upper bound on V* (one vector per action)."""
    from trimpomdp.solvers.kernels import qmdp_iterate

    sm = to_sparse(model)
    V = np.ascontiguousarray(sm.R.max(axis=1), dtype=np.float64)
    Q = np.empty((sm.A, sm.S))
    # one numba loop: hundreds of sweeps of per-action scipy matvecs were most of a small model's solve
    qmdp_iterate(sm.Tp, sm.Ti, sm.Tv, sm.R, sm.discount, V, _tol(sm, tol), MAX_ITER, Q)
    _horizon_guard(sm, Q)
    return Q


def fib_alphas(model: POMDP, tol: float = 1e-7, init: np.ndarray | None = None) -> np.ndarray:
    """(A, S) fast informed bound vectors: alpha_a(s) = R(s,a) + g sum_o max_a' sum_s' T O alpha_a'(s').

    Started from QMDP, which it can only tighten, so every iterate stays a valid upper bound.
    """
    from trimpomdp.solvers.kernels import fib_iterate

    sm = to_sparse(model)
    alph = qmdp_alphas(model, tol) if init is None else np.array(init, dtype=np.float64)
    alph = np.ascontiguousarray(alph)
    fib_iterate(alph, sm.Tp, sm.Ti, sm.Tv, sm.Op, sm.Oi, sm.Ov, sm.R, sm.discount, sm.Z, _tol(sm, tol), MAX_ITER)
    _horizon_guard(sm, alph)
    return alph


def blind_alphas(model: POMDP, tol: float = 1e-9) -> np.ndarray:
    """(A, S) values of the blind policies 'always take a': lower bounds on V*, exact linear solves."""
    sm = to_sparse(model)
    g = sm.discount
    out = np.empty((sm.A, sm.S))
    eye = sp.identity(sm.S, format="csc")
    for a in range(sm.A):
        if g < 1.0 and sm.S <= DENSE_SOLVE_MAX:
            out[a] = np.linalg.solve(np.eye(sm.S) - g * sm.T[a].toarray(), sm.R[:, a])
        elif g < 1.0:
            out[a] = spla.spsolve((eye - g * sm.T[a]).tocsc(), sm.R[:, a])
        else:  # undiscounted: iterate (converges when the action reaches terminal states)
            v = np.zeros(sm.S)
            for _ in range(MAX_ITER):
                vn = sm.R[:, a] + sm.T[a] @ v
                if np.max(np.abs(vn - v)) <= tol:
                    v = vn
                    break
                v = vn
            else:
                # not absorbing: fall back to the worst reward held for a long horizon (still a bound
                # only for finite-horizon use; documented limitation for discount 1 without terminals)
                v = np.full(sm.S, min(sm.R.min(), 0.0) * MAX_ITER)
            out[a] = v
    _horizon_guard(sm, out)
    return out


class QMDPSolver:
    """QMDP as a solver: fast, optimistic about information; lower bound from the best blind policy."""

    def __init__(self, tol: float = 1e-7):
        self.tol = tol

    def solve(self, model: POMDP) -> SolveResult:
        t0, w0 = time.process_time(), time.perf_counter()
        Q = qmdp_alphas(model, self.tol)
        blind = blind_alphas(model)
        b0 = to_sparse(model).b0
        secs = time.process_time() - t0
        upper = float(np.max(Q @ b0))
        lower = float(np.max(blind @ b0))
        meta = {"model_fingerprint": model.fingerprint(), "solver": "qmdp", "settings": {"tol": self.tol},
                "lower": lower, "upper": upper, "solve_seconds": secs,
                "wall_seconds": time.perf_counter() - w0}
        policy = AlphaVectorPolicy(Q, np.arange(model.n_actions), meta)
        return SolveResult(policy, lower, upper, secs, 0.0, model.n_actions, 1, 1, False,
                           [{"time": secs, "trials": 0, "backups": 0, "lower": lower, "upper": upper,
                             "alphas": model.n_actions, "beliefs": 1}])
