"""Cheap value bounds that seed point-based solvers: QMDP and FIB (upper), best blind policy (lower).

QMDP ignores partial observability after one step, FIB (Hauskrecht 2000) after the next observation, so
QMDP >= FIB >= V* pointwise; a blind policy (one action forever) is a real policy, so its value is <= V*.
All three are computed on the sparse per-action matrices with scipy, vectorised over states.

Undiscounted models (discount 1) are only handled once ``POMDP.value_problem`` has certified a finite
value. Value iteration then has no contraction factor to turn a small last change into an error bound, so
QMDP starts from ``positive_bound``, a function W at least the largest expected total positive reward of
any policy: every iterate H^n W is then itself an upper bound on V*, wherever the iteration stops. Blind
values are exact linear solves on the states outside each action's closed classes (which earn zero).
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP, UndiscountedStructure
from trimpomdp.solvers.result import SolveResult
from trimpomdp.solvers.sparse import to_sparse

#: sweep cap of the value iterations (every sweep is a valid bound at discount 1, see the module docstring)
MAX_ITER = 10_000
#: below this many states a dense LAPACK solve beats scipy's sparse LU set-up
DENSE_SOLVE_MAX = 100


def _tol(sm, tol):
    return tol * (1.0 - sm.discount) / max(sm.discount, 1e-12) if sm.discount < 1.0 else tol


def _horizon_guard(sm, values):
    if not np.all(np.isfinite(values)):
        raise ArithmeticError("bound diverged")


def _solve(M, b):
    d = M.diagonal()
    if M.nnz == np.count_nonzero(d) and np.all(d != 0):  # diagonal (an action that keeps the state): divide
        return np.asarray(b, dtype=np.float64) / d
    if M.shape[0] <= DENSE_SOLVE_MAX:
        return np.linalg.solve(M.toarray(), b)
    return np.atleast_1d(spla.spsolve(M.tocsc(), b))


def _certified(model: POMDP) -> UndiscountedStructure:
    """The undiscounted model's graph analysis; a ``ModelError`` when its value may be infinite."""
    model.check_value_finite()
    return model.undiscounted_structure()


def positive_bound(model: POMDP) -> np.ndarray:
    """(S,) the largest expected total positive reward any policy collects from each state (discount 1).

    Computed exactly by policy iteration on the quotient where each end component outside the absorbing
    zero-reward set is one node that may leave by any of its states' exits or stop (its inner pairs earn no
    positive reward once the value is certified finite): every policy of the quotient ends, so each policy
    evaluation is a regular linear system, and the quotient's optimum is the original one.
    """
    st = _certified(model)
    sm = to_sparse(model)
    S, A = sm.S, sm.A
    Rp = np.maximum(sm.R, 0.0)
    free = ~st.absorbing
    pairs = free[None, :] & ~st.ec_pair  # (A, S): the quotient's actions
    if not np.any(Rp.T[pairs] > 0.0):
        return np.zeros(S)
    n_ec = int(st.ec_id.max()) + 1
    node = np.full(S, -1)
    node[st.ec_id >= 0] = st.ec_id[st.ec_id >= 0]
    single = free & (st.ec_id < 0)
    node[single] = n_ec + np.arange(int(single.sum()))
    N = n_ec + int(single.sum())
    to_node = sp.csr_matrix((np.ones(int(free.sum())), (np.flatnonzero(free), node[free])), shape=(S, N))
    blocks, rew, owner = [], [], []
    for a in range(A):
        idx = np.flatnonzero(pairs[a])
        blocks.append(sm.T[a][idx] @ to_node)
        rew.append(Rp[idx, a])
        owner.append(node[idx])
    blocks.append(sp.csr_matrix((n_ec, N)))  # stop: stay in the end component, no more positive reward
    rew.append(np.zeros(n_ec))
    owner.append(np.arange(n_ec))
    own = np.concatenate(owner)
    order = np.argsort(own, kind="stable")
    P, r, own = sp.vstack(blocks).tocsr()[order], np.concatenate(rew)[order], own[order]
    starts = np.searchsorted(own, np.arange(N))
    choice = starts.copy()
    eye = sp.identity(N, format="csr")
    for _ in range(MAX_ITER):
        x = _solve(eye - P[choice], r[choice])
        q = r + P @ x
        first = np.lexsort((-q, own))[starts]  # each node's best pair
        better = q[first] > q[choice] + 1e-12 * (1.0 + np.abs(x))
        if not better.any():
            break
        choice = np.where(better, first, choice)
    W = np.zeros(S)
    W[free] = np.maximum(x[node[free]], 0.0)
    return W


def qmdp_alphas(model: POMDP, tol: float = 1e-7) -> np.ndarray:
    """(A, S) Q-values of the fully observable MDP: an upper bound on V* (one vector per action)."""
    from trimpomdp.solvers.bounds_kernels import qmdp_iterate

    sm = to_sparse(model)
    if sm.discount < 1.0:
        V = np.ascontiguousarray(sm.R.max(axis=1), dtype=np.float64)
    else:
        V = np.ascontiguousarray(positive_bound(model))
    Q = np.empty((sm.A, sm.S))
    # one numba loop: hundreds of sweeps of per-action scipy matvecs were most of a small model's solve
    qmdp_iterate(sm.Tp, sm.Ti, sm.Tv, sm.R, sm.discount, V, _tol(sm, tol), MAX_ITER, Q)
    _horizon_guard(sm, Q)
    return Q


def fib_alphas(model: POMDP, tol: float = 1e-7, init: np.ndarray | None = None) -> np.ndarray:
    """(A, S) fast informed bound vectors: alpha_a(s) = R(s,a) + g sum_o max_a' sum_s' T O alpha_a'(s').

    Started from QMDP, which it can only tighten, so every iterate stays a valid upper bound.
    """
    from trimpomdp.solvers.bounds_kernels import fib_iterate

    sm = to_sparse(model)
    alph = qmdp_alphas(model, tol) if init is None else np.array(init, dtype=np.float64)
    alph = np.ascontiguousarray(alph)
    fib_iterate(alph, sm.Tp, sm.Ti, sm.Tv, sm.Op, sm.Oi, sm.Ov, sm.R, sm.discount, sm.Z, _tol(sm, tol), MAX_ITER)
    _horizon_guard(sm, alph)
    return alph


def blind_alphas(model: POMDP) -> np.ndarray:
    """(A, S) values of the blind policies 'always take a': lower bounds on V*, exact linear solves.

    With discount 1 a blind policy whose value is -infinite from some state gets a row of -inf (a vector
    never chosen); ``value_problem`` guarantees at least one finite row.
    """
    sm = to_sparse(model)
    g = sm.discount
    out = np.empty((sm.A, sm.S))
    st = _certified(model) if g >= 1.0 else None
    for a in range(sm.A):
        if st is None:
            out[a] = _solve(sp.identity(sm.S, format="csr") - g * sm.T[a], sm.R[:, a])
        elif not st.blind_finite[a]:
            out[a] = -np.inf
        else:  # zero on a's closed classes (they earn nothing), a regular system on the states that leave them
            tr = np.flatnonzero(~st.closed[a])
            out[a] = 0.0
            if tr.size:
                out[a, tr] = _solve(sp.identity(tr.size, format="csr") - sm.T[a][tr][:, tr], sm.R[tr, a])
    _horizon_guard(sm, out[np.isfinite(out).any(axis=1)])
    return out


class QMDPSolver:
    """QMDP as a solver: fast, optimistic about information; lower bound from the best blind policy."""

    def __init__(self, tol: float = 1e-7):
        self.tol = tol

    def solve(self, model: POMDP) -> SolveResult:
        t0, w0 = time.process_time(), time.perf_counter()
        model.check_value_finite()
        Q = qmdp_alphas(model, self.tol)
        blind = blind_alphas(model)
        blind = blind[np.isfinite(blind).all(axis=1)]
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
