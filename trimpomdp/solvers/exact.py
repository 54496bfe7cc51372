"""Exact value iteration with incremental pruning: the test oracle for the approximate solvers.

Each Bellman backup builds the new alpha-vector set as in Cassandra, Littman & Zhang (1997):
``Gamma^{a,o}`` is projected and pruned, the per-action set is an incrementally pruned cross sum over
observations, and the union over actions is pruned once more. Pruning is Lark's filter with HiGHS linear
programs (``scipy.optimize.linprog(method="highs")``), preceded by pointwise-dominance removal and by seeding
the kept set with the best vectors at known witness beliefs, so that most candidates never need an LP.

Infinite-horizon runs start from the blind-policy vectors and prune with an epsilon proportional to the
current gap (the loss is charged to the upper bound), and the LPs are warm-started HiGHS models that grow a
row per kept vector. Only small models are tractable (the vector sets can grow doubly exponentially), hence ``timeout`` and
``max_iterations``; an interrupted run still returns valid-looking bounds from the last residual bound.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np
from scipy.optimize import linprog

try:  # scipy's bundled HiGHS binding (private, hence optional): persistent warm-started LPs
    from scipy.optimize._highspy import _core as _hc
except Exception:  # pragma: no cover
    _hc = None

from trimpomdp.errors import ModelError
from trimpomdp.policy import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.exact_kernels import upper_envelope
from trimpomdp.solvers.result import SolveResult

#: HiGHS tolerances: the defaults (1e-7) are too loose for an oracle compared at 1e-6 and below
_HIGHS = {"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10}


#: largest cross sum formed in one backup (vectors); beyond it the solve stops early, bounds still valid
MAX_CROSS_SUM = 2_000_000


class _Timeout(Exception):
    pass


class _LP:
    """Witness linear program: max_b (w.b - max_{u in W} u.b) over the belief simplex.

    One HiGHS instance is kept per vector set and rows are appended as the set grows, so consecutive
    candidates re-solve from the previous basis (warm start, no presolve): about 5x cheaper than a fresh
    ``linprog`` call, which dominated the solver's time. scipy's bundled HiGHS binding is private API, so any
    import or solve failure falls back to ``linprog``.
    """

    def __init__(self, n_states: int):
        self.S = n_states
        self.A_eq = np.r_[np.ones(n_states), 0.0][None, :]
        self.bounds = [(0.0, None)] * n_states + [(None, None)]
        self.calls = 0
        self._h = None
        self._W: list[np.ndarray] = []

    # -- persistent model -------------------------------------------------------------------------
    def reset(self, W: np.ndarray) -> None:
        """Start a new LP whose constraint rows are the vectors of ``W``."""
        self._W = [np.asarray(u, dtype=float) for u in W]
        self._h = None
        if _hc is None:
            return
        try:
            S = self.S
            h = _hc._Highs()
            for k, v in (("output_flag", False), ("presolve", "off"),
                         ("primal_feasibility_tolerance", 1e-10), ("dual_feasibility_tolerance", 1e-10)):
                h.setOptionValue(k, v)
            inf = _hc.kHighsInf
            for _ in range(S):
                h.addVar(0.0, inf)
            h.addVar(-inf, inf)
            h.changeColCost(S, 1.0)
            self._idx = np.arange(S + 1, dtype=np.int32)
            h.addRow(1.0, 1.0, S, self._idx[:-1], np.ones(S))
            self._h = h
            for u in self._W:
                self._add_row(u)
        except Exception:  # pragma: no cover - binding changed: use linprog
            self._h = None

    def _add_row(self, u: np.ndarray) -> None:
        self._h.addRow(-_hc.kHighsInf, 0.0, self.S + 1, self._idx, np.r_[u, -1.0])

    def add(self, u: np.ndarray) -> None:
        """Append one vector to the constraint set of the current LP."""
        self._W.append(np.asarray(u, dtype=float))
        if self._h is not None:
            self._add_row(self._W[-1])

    def best(self, w: np.ndarray) -> tuple[float, np.ndarray | None]:
        """``witness(w, W)`` against the current set, warm-started."""
        if self._h is not None:
            self.calls += 1
            h = self._h
            try:
                h.changeColsCost(self.S, self._idx[:-1], -np.asarray(w, dtype=float))
                h.run()
                if h.getModelStatus() == _hc.HighsModelStatus.kOptimal:
                    b = np.clip(np.asarray(h.getSolution().col_value)[: self.S], 0.0, None)
                    if b.sum() > 0:
                        b /= b.sum()
                        return float(-h.getInfo().objective_function_value), b
            except Exception:  # pragma: no cover
                pass
            self.calls -= 1
        return self.witness(w, np.asarray(self._W))

    def witness(self, w: np.ndarray, W: np.ndarray) -> tuple[float, np.ndarray | None]:
        """Largest advantage of ``w`` over the set ``W`` and the belief achieving it (fresh ``linprog``)."""
        self.calls += 1
        A_ub = np.c_[W, -np.ones(W.shape[0])]
        res = linprog(
            np.r_[-w, 1.0], A_ub=A_ub, b_ub=np.zeros(W.shape[0]), A_eq=self.A_eq, b_eq=[1.0],
            bounds=self.bounds, method="highs", options=_HIGHS,
        )
        if res.status != 0:  # numerically troubled LP: fall back to the pointwise bound, no witness
            return float(np.max(np.min(w[None, :] - W, axis=0))), None
        b = np.clip(res.x[: self.S], 0.0, None)
        b /= b.sum()
        return float(-res.fun), b


class ExactSolver:
    """Value iteration over alpha vectors with LP pruning (incremental pruning).

    ``horizon=None`` iterates until the bounds on V*(b0) implied by the Bellman residual (its minimum and
    maximum over all beliefs) are within ``tol``; ``horizon=H`` gives the exact H-step value (``lower`` only
    differs from ``upper`` by the epsilon-pruning slack). The returned vectors are shifted by the residual's
    lower bound, which keeps the greedy actions and makes them a global lower bound on V*.
    """

    def __init__(self, horizon: int | None = None, tol: float = 1e-9, max_iterations: int = 10_000,
                 timeout: float | None = None, prune_eps: float = 1e-11, verbose: bool = False,
                 eps_fraction: float = 0.5, warm_start: bool = True):
        if horizon is not None and horizon < 0:
            raise ModelError(f"horizon must be >= 0, got {horizon}")
        if tol <= 0:
            raise ModelError(f"tol must be > 0, got {tol}")
        self.horizon, self.tol, self.max_iterations = horizon, tol, max_iterations
        self.timeout, self.prune_eps, self.verbose = timeout, prune_eps, verbose
        self.eps_fraction, self.warm_start = eps_fraction, warm_start

    # ------------------------------------------------------------------ public entry point
    def solve(self, model: POMDP) -> SolveResult:
        t0 = time.perf_counter()
        self._deadline = None if self.timeout is None else t0 + self.timeout
        S, A, Z = model.n_states, model.n_actions, model.n_observations
        gamma = model.discount
        if self.horizon is None and gamma >= 1.0:
            raise ModelError("the exact solver needs discount < 1 or a finite horizon")
        if A * Z * S * S > 20_000_000:
            raise ModelError(f"{model.name or 'model'} is too large for the exact solver ({S} states, {A} actions, "
                             f"{Z} observations); use SARSOP")
        T, O, R = model.T_dense().copy(), model.O_dense(), model.R.copy()
        if model.terminal is not None and model.terminal.any():  # absorbing, value zero
            T[:, model.terminal, :] = 0.0
            R[model.terminal, :] = 0.0
        # P[a, o] = gamma * T[a] * diag(O[a, :, o]): projects a future alpha vector to the current step
        self._P = gamma * np.einsum("ast,ato->aost", T, O)
        self._R, self._Z = R, Z
        self._lp = _LP(S)
        steps = 1.0 / (1.0 - gamma) if gamma < 1.0 else math.inf
        if self.horizon is not None:
            steps = min(steps, float(self.horizon))
        self._scale = max(1.0, float(np.abs(R).max()) * steps)
        self._eps0 = self._eps = self.prune_eps * self._scale
        self._points = [np.eye(S)[i] for i in range(S)] + [np.full(S, 1.0 / S), model.initial_belief]

        alphas, acts = np.zeros((1, S)), np.zeros(1, dtype=np.int64)
        b0 = model.initial_belief
        n_iter, lower, upper, converged, history = 0, -math.inf, math.inf, False, []
        target = self.horizon if self.horizon is not None else self.max_iterations
        delta_total, shift, min_gap = 0.0, 0.0, math.inf
        try:
            if self.horizon is None and self.warm_start and S > 2:  # (two states: exact envelopes, cold start)
                # blind-policy values (repeat one action forever) are a lower bound close to V* on most models,
                # so value iteration starts with a much smaller residual than from zero; the residual bounds
                # below hold for any starting set
                alphas = np.stack([np.linalg.solve(np.eye(S) - gamma * T[a], R[:, a]) for a in range(A)])
                acts = np.arange(A, dtype=np.int64)
                keep = self._prune(alphas, return_index=True)
                alphas, acts = alphas[keep], acts[keep]
            while n_iter < target:
                if self.horizon is None:
                    # adaptive epsilon-pruning: the residual bounds charge the value lost to pruning, so early
                    # iterations (gap still large) can prune coarsely and keep the vector sets small
                    # (the smallest gap so far: pruning noise inflates the next gap, and basing epsilon on the
                    # latest one would feed back into ever coarser pruning)
                    gap = upper - lower if math.isfinite(upper - lower) else self._scale
                    min_gap = min(min_gap, gap, self._scale)
                    budget = self.eps_fraction * (1.0 - gamma) * min_gap / (2 * Z + 1)
                    self._eps = max(self._eps0, min(budget, 1e-3 * self._scale))
                new_alphas, new_acts, delta = self._backup(alphas)
                n_iter += 1
                v0 = float(np.max(new_alphas @ b0))
                if self.horizon is not None:
                    delta_total = delta + gamma * delta_total
                    lower, upper = v0 - delta_total, v0
                    alphas, acts = new_alphas, new_acts
                    history.append(self._record(t0, n_iter, lower, upper, alphas))
                    continue
                lo_diff, hi_diff = self._residual(new_alphas, alphas)
                alphas, acts = new_alphas, new_acts
                # V* - V_{n+1} lies in [gamma*l/(1-gamma), (delta + gamma*u)/(1-gamma)] (monotone contraction)
                lower = v0 + gamma * lo_diff / (1.0 - gamma)
                upper = v0 + (delta + gamma * hi_diff) / (1.0 - gamma)
                history.append(self._record(t0, n_iter, lower, upper, alphas))
                if self.verbose:
                    print(f"iter {n_iter}: {len(alphas)} vectors, V(b0) in [{lower:.9g}, {upper:.9g}]",
                          file=sys.stderr)
                shift = gamma * lo_diff / (1.0 - gamma)
                if upper - lower <= self.tol:
                    converged = True
                    break
            else:
                converged = self.horizon is not None
        except _Timeout:
            pass
        if n_iter == 0:  # nothing computed: the trivial bounds on any discounted return
            if self.horizon is None:
                lower, upper = float(R.min()) / (1.0 - gamma), float(R.max()) / (1.0 - gamma)
                shift = lower
            elif self.horizon == 0:
                lower = upper = 0.0
            else:
                lower, upper = -math.inf, math.inf
        # V_n + gamma*l/(1-gamma) <= V* at every belief: shifting by a constant keeps the greedy actions and
        # turns the vectors into a global lower bound whose value at b0 is ``lower``
        policy = AlphaVectorPolicy(alphas + shift, acts, {
            "solver": "exact", "model_fingerprint": model.fingerprint(), "horizon": self.horizon,
            "iterations": n_iter, "tol": self.tol,
        })
        return SolveResult(
            policy=policy, lower=float(lower), upper=float(upper), solve_seconds=time.perf_counter() - t0,
            alphas=len(alphas), beliefs=len(self._points), iterations=n_iter, converged=converged,
            history=history,
        )

    # ------------------------------------------------------------------ one Bellman backup
    def _backup(self, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Exact backup of the alpha set; returns (vectors, actions, max value lost to epsilon-pruning)."""
        A = self._P.shape[0]
        sets, set_acts, delta = [], [], 0.0
        for a in range(A):
            base = self._R[:, a] / self._Z
            proj = [base[None, :] + alphas @ self._P[a, o].T for o in range(self._Z)]  # (K, S) each
            proj = [self._prune(g) for g in proj]
            cur = proj[0]
            for g in proj[1:]:
                if cur.shape[0] * g.shape[0] > MAX_CROSS_SUM:
                    raise _Timeout  # stop with the last valid bounds instead of exhausting memory
                cur = self._prune((cur[:, None, :] + g[None, :, :]).reshape(-1, cur.shape[1]))
            # Z pruned projections plus Z - 1 pruned partial cross sums, each losing at most eps (two states:
            # the envelope is exact); the pointwise pre-filter adds its own 1e-3 * eps per prune
            delta = 0.0 if alphas.shape[1] == 2 else self._eps * 1.001 * (2 * self._Z - 1)  # max over actions
            sets.append(cur)
            set_acts.append(np.full(len(cur), a, dtype=np.int64))
        allv, alla = np.concatenate(sets), np.concatenate(set_acts)
        keep = self._prune(allv, return_index=True)
        return allv[keep], alla[keep], delta + (0.0 if alphas.shape[1] == 2 else self._eps * 1.001)

    # ------------------------------------------------------------------ pruning
    def _check_time(self):
        if self._deadline is not None and time.perf_counter() > self._deadline:
            raise _Timeout

    def _prune(self, V: np.ndarray, return_index: bool = False):
        """Lark's filter: keep the vectors that are strictly best somewhere on the belief simplex."""
        self._check_time()
        if V.shape[1] == 2:  # one-dimensional belief: exact upper envelope of lines, no LP needed
            idx = _envelope_2state(V)
            return idx if return_index else V[idx]
        idx = _pointwise_undominated(V, self._eps * 1e-3)
        if len(idx) > 1:
            cand = V[idx]
            pts = np.asarray(self._points)
            vals = pts @ cand.T  # (P, K)
            kept = set(_lex_argmax(vals, cand).tolist())
            order = [i for i in range(len(idx)) if i not in kept]
            kept = list(kept)
            F = set(order)
            self._lp.reset(cand[kept])
            while F:
                self._check_time()
                i = F.pop()
                d, b = self._lp.best(cand[i])
                if b is None or d <= self._eps:
                    continue
                # the best remaining candidate at the witness belief joins the kept set
                rest = np.array(sorted(F | {i}))
                j = rest[_lex_argmax((b @ cand[rest].T)[None, :], cand[rest])[0]]
                if float(b @ cand[j]) <= float(np.max(cand[kept] @ b)):
                    continue  # LP noise: nothing actually beats the kept set here
                kept.append(int(j))
                self._lp.add(cand[j])
                F.discard(int(j))
                if j != i:
                    F.add(i)
                self._points.append(b)
                if len(self._points) > 2000:
                    del self._points[self._points_fixed():self._points_fixed() + 500]
            idx = idx[np.sort(np.array(kept, dtype=np.int64))]
        return idx if return_index else V[idx]

    def _points_fixed(self) -> int:
        return self._R.shape[0] + 2

    # ------------------------------------------------------------------ residual bounds
    def _residual(self, new: np.ndarray, old: np.ndarray) -> tuple[float, float]:
        """(min_b, max_b) of V_new(b) - V_old(b): pointwise bounds first, LPs only where they matter."""
        return -self._max_gap(old, new), self._max_gap(new, old)

    def _max_gap(self, X: np.ndarray, Y: np.ndarray) -> float:
        """max_b (max_{x in X} x.b - max_{y in Y} y.b), exactly via one LP per vector of X."""
        if X.shape[1] == 2:  # exact: the gap is piecewise linear with kinks at envelope breakpoints
            p = np.unique(np.r_[0.0, 1.0, _breakpoints(X), _breakpoints(Y)])
            pts = np.c_[1.0 - p, p]
            return float(np.max(np.max(pts @ X.T, axis=1) - np.max(pts @ Y.T, axis=1)))
        pts = np.asarray(self._points)
        sampled = float(np.max(np.max(pts @ X.T, axis=1) - np.max(pts @ Y.T, axis=1)))
        # cheap upper bound per x: min_y max_s (x - y)_s >= max_b min_y (x - y).b
        cheap = np.min(np.max(X[:, None, :] - Y[None, :, :], axis=2), axis=1)
        best = sampled
        self._lp.reset(Y)
        for i in np.argsort(-cheap):
            if cheap[i] <= best + 1e-15:
                break
            self._check_time()
            d, b = self._lp.best(X[i])
            if b is not None:
                d = max(d, float(X[i] @ b - np.max(Y @ b)))
            best = max(best, d)
        return best

    def _record(self, t0, n_iter, lower, upper, alphas) -> dict:
        return {"time": time.perf_counter() - t0, "iterations": n_iter, "trials": n_iter, "backups": n_iter,
                "lower": float(lower), "upper": float(upper), "alphas": int(len(alphas)),
                "beliefs": len(self._points), "lps": self._lp.calls}


def _pointwise_undominated(V: np.ndarray, eps: float) -> np.ndarray:
    """Indices of vectors not weakly dominated by another (of equal vectors the first survives).

    Vectors are ordered by decreasing sum, since only a vector with a larger sum can dominate; vector i is
    dropped when an earlier one is >= it (within ``eps``) in every state.
    """
    K = len(V)
    if K <= 1:
        return np.arange(K)
    order = np.argsort(-V.sum(axis=1), kind="stable")
    Vs = V[order]
    drop = np.zeros(K, dtype=bool)
    chunk = max(1, 2_000_000 // max(1, K * V.shape[1]))
    for start in range(0, K, chunk):
        block = Vs[start:start + chunk]  # (c, S)
        ge = np.all(Vs[None, :, :] >= block[:, None, :] - eps, axis=2)  # ge[r, j]: Vs[j] >= block[r]
        rows = np.arange(start, start + block.shape[0])
        ge &= np.arange(K)[None, :] < rows[:, None]
        drop[rows] = ge.any(axis=1)
    return np.sort(order[~drop])


def _envelope_2state(V: np.ndarray, min_width: float = 1e-12) -> np.ndarray:
    """Indices of the lines v0 + (v1 - v0) p that form the upper envelope on p in [0, 1] (convex hull trick).

    With two states a belief is one number, so pruning is exact and needs no linear program.
    """
    a, m = V[:, 0], V[:, 1] - V[:, 0]
    order = np.lexsort((-a, m))  # slope ascending, the highest intercept first among equal slopes
    keep = np.flatnonzero(upper_envelope(a, m, order, min_width))
    if keep.size == 0:  # numerically degenerate: fall back to the best line at the simplex centre
        keep = np.array([int(np.argmax(V.sum(axis=1)))])
    return keep


def _breakpoints(V: np.ndarray) -> np.ndarray:
    """Beliefs p in (0, 1) where the maximising line of a two-state alpha set changes."""
    E = V[_envelope_2state(V)]
    if len(E) < 2:
        return np.zeros(0)
    a, m = E[:, 0], E[:, 1] - E[:, 0]
    o = np.argsort(m)
    a, m = a[o], m[o]
    x = (a[:-1] - a[1:]) / (m[1:] - m[:-1])
    return x[(x > 0) & (x < 1)]


def _lex_argmax(vals: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """Row-wise argmax of ``vals`` (P, K) with ties broken lexicographically on the vectors themselves.

    Lexicographic tie-breaking makes the chosen vector truly useful (Littman's lexicographic max), so the
    seeded set never contains a vector that another one covers.
    """
    out = np.argmax(vals, axis=1)
    top = vals.max(axis=1, keepdims=True)
    tie = vals >= top - 1e-12 * np.maximum(1.0, np.abs(top))
    for p in np.flatnonzero(tie.sum(axis=1) > 1):
        ks = np.flatnonzero(tie[p])
        out[p] = ks[np.lexsort(cand[ks].T[::-1])[-1]]
    return out
