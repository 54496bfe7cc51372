"""Exact value iteration with incremental pruning: the test oracle for the approximate solvers.

Each Bellman backup builds the new alpha-vector set as in Cassandra, Littman & Zhang (1997): the
projections ``Gamma^{a,o}`` are pruned, the per-action set is an incrementally pruned cross sum over
observations, and the union over actions is pruned once more. Pruning is Lark's filter: a candidate is kept
when a linear program finds a belief where it beats the kept set.

Infinite-horizon runs only need V* at the beliefs reachable from b0, and those lie in a small closed set
``B``: ``b0`` plus, for every (action, observation), the convex hull of the successors of the simplex
corners (``_reachable_domain``). The Bellman operator restricted to functions on ``B`` is still a monotone
gamma-contraction with fixed point V* on ``B``, so value iteration may drop every vector that is not
maximal somewhere on ``B`` and take the Bellman residual over ``B`` only. ``B`` is a union of
low-dimensional pieces on the classic problems (at most four states in a piece of shuttle or 4x3), and
each piece keeps its own vector sets in its own barycentric coordinates, so the cross sums, the vector
sets and the linear programs stay small. The LPs are tiny matrix games solved by a Numba simplex whose
answers are certified by their primal and dual solutions (``exact_kernels``).

The runs start from the blind-policy vectors (each a policy's value, so every backed-up vector is one too)
and prune with an epsilon proportional to the current gap; the value actually lost to pruning is charged
to the upper bound. Only small models are tractable, hence ``timeout`` and ``max_iterations``; an
interrupted run still returns valid bounds from the last residual bound.
"""
from __future__ import annotations

import math
import sys
import time

import numpy as np
from scipy.optimize import linprog

from trimpomdp.errors import ModelError
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.pomdp.model import POMDP
from trimpomdp.solvers.envelope import envelope_mask
from trimpomdp.solvers.exact_kernels import best_at, lark_filter, max_advantage
from trimpomdp.solvers.result import SolveResult

#: largest cross sum formed in one prune (vectors); beyond it the solve stops early, bounds still valid
MAX_CROSS_SUM = 2_000_000

#: witness beliefs remembered per piece (the first candidates kept without an LP in later prunes)
MAX_SEEDS = 150


class _Timeout(Exception):
    pass


class _Piece:
    """One convex piece of the pruning domain: the beliefs ``M.T @ lam`` for ``lam`` in the q-simplex.

    Vectors are pruned on a piece in its barycentric coordinates (``V @ M.T`` has q columns, often far fewer
    than the states), so its linear programs are small. ``isolated`` pieces hold separate beliefs (one per
    row of ``M``), where the best vector is simply evaluated; the others use Lark's filter with LPs and
    epsilon (two-vertex pieces, segments, first take the exact upper envelope of their lines).
    """

    def __init__(self, vertices: np.ndarray, isolated: bool = False):
        self.M = np.asarray(vertices, dtype=float)
        self.q = self.M.shape[0]
        self.isolated = isolated or self.q == 1
        # corners and centre: the first witnesses to try
        self.seeds = np.r_[np.eye(self.q), np.full((1, self.q), 1.0 / self.q)]
        self.n_fixed = len(self.seeds)

    def add_seeds(self, lams: np.ndarray) -> None:
        """Remember new witness mixes; the oldest ones go first (corners and centre stay)."""
        if len(lams):
            self.seeds = np.r_[self.seeds, lams]
            extra = len(self.seeds) - self.n_fixed - MAX_SEEDS
            if extra > 0:
                self.seeds = np.r_[self.seeds[:self.n_fixed], self.seeds[self.n_fixed + extra:]]


def _successors(V: np.ndarray, T: np.ndarray, O: np.ndarray, a: int, o: int) -> np.ndarray:
    """Distinct beliefs after action ``a`` and observation ``o`` from the beliefs in the rows of ``V``
    (rows where ``o`` has probability zero have no successor)."""
    U = (V @ T[a]) * O[a][:, o][None, :]
    d = U.sum(axis=1)
    U = U[d > 0] / d[d > 0, None]
    return np.unique(U, axis=0)


def _reachable_domain(T: np.ndarray, O: np.ndarray, b0: np.ndarray) -> list[_Piece]:
    """A union of polytopes that contains every belief reachable from ``b0`` and is closed under successors.

    Belief updates are projective maps, ``tau(b) = M b / 1'M b``, which map the convex hull of some beliefs
    into the convex hull of their images. The successors of *any* belief under (a, o) therefore lie in
    ``P_ao = conv{tau(e_s, a, o)}`` (the images of the simplex corners), so ``{b0}`` plus any supersets of
    the A*Z pieces ``P_ao`` is closed. Single-belief pieces are evaluated directly; the others are merged per
    support (``_merge_by_support``), and isolated beliefs that are a vertex of a piece are dropped.
    """
    A, Z, S = T.shape[0], O.shape[2], T.shape[1]
    pieces = [_successors(np.eye(S), T, O, a, o) for a in range(A) for o in range(Z)]
    points = [np.asarray(b0, dtype=float)[None, :]] + [P for P in pieces if len(P) == 1]
    out = [_Piece(M) for M in _merge_by_support([P for P in pieces if len(P) > 1])]
    vertices = {bytes(v) for piece in out for v in piece.M}
    pts = np.unique(np.concatenate(points), axis=0)
    pts = np.array([p for p in pts if bytes(p) not in vertices]).reshape(-1, S)
    if len(pts):
        out.append(_Piece(pts, isolated=True))
    return out


def _merge_by_support(polys: list[np.ndarray]) -> list[np.ndarray]:
    """One piece per support (set of states with positive belief): the convex hull of the union of the
    pieces with that support, or the support's face of the simplex when that has fewer vertices.

    Both contain the original pieces, so the domain stays closed under successors (any successor lies in one
    of the original pieces). Pieces with one support usually overlap heavily, and each piece costs its own
    linear programs.
    """
    groups: dict[bytes, list[np.ndarray]] = {}
    for P in polys:
        groups.setdefault(np.packbits(P.sum(axis=0) > 0).tobytes(), []).append(P)
    out = []
    for Ps in groups.values():
        V = _extreme_points(np.unique(np.concatenate(Ps), axis=0))
        support = np.flatnonzero(V.sum(axis=0) > 0)
        if len(V) > len(support):
            V = np.eye(V.shape[1])[support]
        out.append(V)
    return out


def _extreme_points(V: np.ndarray) -> np.ndarray:
    """The rows of ``V`` that are not a convex combination of the other rows (one feasibility LP each)."""
    keep = np.ones(len(V), dtype=bool)
    for i in range(len(V)):
        others = V[keep & (np.arange(len(V)) != i)]
        if len(others) == 0:
            continue
        res = linprog(np.zeros(len(others)), A_eq=np.r_[others.T, np.ones((1, len(others)))],
                      b_eq=np.r_[V[i], 1.0], bounds=[(0.0, None)] * len(others), method="highs")
        # V[i] lies in the hull of the others (checked on the weights themselves, not on HiGHS's tolerance):
        # dropping it leaves the piece unchanged
        if res.status == 0 and np.max(np.abs(np.clip(res.x, 0.0, None) @ others - V[i])) <= 1e-13 \
                and abs(np.clip(res.x, 0.0, None).sum() - 1.0) <= 1e-13:
            keep[i] = False
    return V[keep]


class ExactSolver:
    """Value iteration over alpha vectors with LP pruning (incremental pruning).

    ``horizon=None`` iterates until the bounds on V*(b0) implied by the Bellman residual (its minimum and
    maximum over the beliefs reachable from b0) are within ``tol``; ``horizon=H`` gives the exact H-step
    value on the whole simplex (``lower`` only differs from ``upper`` by the epsilon-pruning slack).

    ``reachable=False`` prunes on the whole simplex instead of the reachable domain; two-state models always
    use the whole belief line, whose exact envelope is cheap. The returned vectors are shifted by the
    residual's lower bound where that helps: they keep the greedy actions and are a lower bound on V* at
    every belief reachable from b0 (at every belief when not shifted up).
    """

    def __init__(self, horizon: int | None = None, tol: float = 1e-9, max_iterations: int = 10_000,
                 timeout: float | None = None, prune_eps: float = 1e-11, verbose: bool = False,
                 eps_fraction: float = 0.5, warm_start: bool = True, reachable: bool = True):
        if horizon is not None and horizon < 0:
            raise ModelError(f"horizon must be >= 0, got {horizon}")
        if tol <= 0:
            raise ModelError(f"tol must be > 0, got {tol}")
        self.horizon, self.tol, self.max_iterations = horizon, tol, max_iterations
        self.timeout, self.prune_eps, self.verbose = timeout, prune_eps, verbose
        self.eps_fraction, self.warm_start, self.reachable = eps_fraction, warm_start, reachable

    # ------------------------------------------------------------------ public entry point
    def solve(self, model: POMDP) -> SolveResult:
        t0 = time.perf_counter()
        self._deadline = None if self.timeout is None else t0 + self.timeout
        S, A, Z = model.n_states, model.n_actions, model.n_observations
        gamma = model.discount
        if self.horizon is None and gamma >= 1.0:
            model.check_value_finite()  # the same refusal as the other solvers when the value may be infinite
            raise ModelError(f"{model.name or 'model'}: the exact solver needs discount < 1 or a finite horizon "
                             "(its residual bounds rely on the discount); solve this undiscounted model with SARSOP")
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
        b0 = model.initial_belief
        if self.horizon is None and S > 2 and self.reachable:
            self._domain = _reachable_domain(T, O, b0)
        else:
            self._domain = [_Piece(np.eye(S))]
        steps = 1.0 / (1.0 - gamma) if gamma < 1.0 else math.inf
        if self.horizon is not None:
            steps = min(steps, float(self.horizon))
        self._scale = max(1.0, float(np.abs(R).max()) * steps)
        self._eps0 = self._eps = self.prune_eps * self._scale
        self._lps = 0

        alphas, acts = np.zeros((1, S)), np.zeros(1, dtype=np.int64)
        n_iter, lower, upper, converged, history = 0, -math.inf, math.inf, False, []
        target = self.horizon if self.horizon is not None else self.max_iterations
        delta_total, shift, min_gap = 0.0, 0.0, math.inf
        # blind-policy start: every vector is then the value of a policy (a plan tree ending in one action
        # repeated forever), so max_k alpha_k . b0 itself is a lower bound on V*(b0)
        plan_values = self.horizon is None and self.warm_start and S > 2
        try:
            if plan_values:
                # blind-policy values are a lower bound close to V* on most models, so value iteration starts
                # with a much smaller residual than from zero; the residual bounds below hold for any start
                alphas = np.stack([np.linalg.solve(np.eye(S) - gamma * T[a], R[:, a]) for a in range(A)])
                acts = np.arange(A, dtype=np.int64)
                per_piece = [self._prune(piece, alphas)[0] for piece in self._domain]
                keep = np.unique(np.concatenate(per_piece))
                alphas, acts = alphas[keep], acts[keep]
            while n_iter < target:
                if self.horizon is None:
                    # adaptive epsilon-pruning: the bounds charge the value lost to pruning, so early iterations
                    # (gap still large) can prune coarsely and keep the vector sets small (the smallest gap so
                    # far: pruning noise inflates the next gap, and basing epsilon on the latest one would
                    # feed back into ever coarser pruning)
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
                # on the closed domain, V* - V_{n+1} lies in [gamma*l/(1-gamma), (delta + gamma*u)/(1-gamma)]
                # (monotone contraction); plan values are a lower bound without the shift
                shift = gamma * lo_diff / (1.0 - gamma)
                if plan_values:
                    shift = max(shift, 0.0)
                lower = v0 + shift
                upper = v0 + (delta + gamma * hi_diff) / (1.0 - gamma)
                history.append(self._record(t0, n_iter, lower, upper, alphas))
                if self.verbose:
                    print(f"iter {n_iter}: {len(alphas)} vectors, V(b0) in [{lower:.9g}, {upper:.9g}], pruning "
                          f"loss {delta / (1.0 - gamma):.3g} ({time.perf_counter() - t0:.2f}s, {self._lps} LPs)",
                          file=sys.stderr)
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
                if plan_values:  # the blind-policy vectors are plan values already
                    shift = 0.0
                    lower = max(lower, float(np.max(alphas @ b0)))
            elif self.horizon == 0:
                lower = upper = 0.0
            else:
                lower, upper = -math.inf, math.inf
        # V_n + gamma*l/(1-gamma) <= V* on the domain: shifting by a constant keeps the greedy actions and
        # turns the vectors into a lower bound whose value at b0 is ``lower``
        policy = AlphaVectorPolicy(alphas + shift, acts, {
            "solver": "exact", "model_fingerprint": model.fingerprint(), "horizon": self.horizon,
            "iterations": n_iter, "tol": self.tol,
        })
        return SolveResult(
            policy=policy, lower=float(lower), upper=float(upper), solve_seconds=time.perf_counter() - t0,
            alphas=len(alphas), beliefs=sum(len(p.seeds) for p in self._domain), iterations=n_iter,
            converged=converged, history=history,
        )

    # ------------------------------------------------------------------ one Bellman backup
    def _backup(self, alphas: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """Exact backup of the alpha set; returns (vectors, actions, max value lost to epsilon-pruning).

        Each piece of the domain is backed up on its own: a sum u + w of projections can only be needed on
        a piece where both u and w are, so the cross sums only combine each piece's own survivors (the
        pieces' final sets are then merged). The loss is the one actually incurred: along one action's chain
        the losses of the pruned projections and partial cross sums add up (the maximum of a cross sum is
        the sum of the maxima), the union over actions adds its own, and the worst piece counts.
        """
        A, Z = self._P.shape[0], self._Z
        # projections of every vector, shared by the pieces: proj[a][o] is (K, S)
        proj = [[self._R[:, a][None, :] / Z + alphas @ self._P[a, o].T for o in range(Z)] for a in range(A)]
        kept = [[[self._prune(piece, proj[a][o]) for o in range(Z)] for a in range(A)] for piece in self._domain]
        # small sets first keeps the partial sums small; one order for all pieces makes a vector kept on
        # several pieces bitwise identical in each
        order = [sorted(range(Z), key=lambda o: sum(len(k[a][o][0]) for k in kept)) for a in range(A)]
        vecs, vacts, delta = [], [], 0.0
        for piece, pkept in zip(self._domain, kept):
            sets, set_acts, chain = [], [], 0.0
            for a in range(A):
                loss = sum(pkept[a][o][1] for o in range(Z))
                cur = None
                for o in order[a]:
                    g = proj[a][o][pkept[a][o][0]]
                    if cur is None:
                        cur = g
                        continue
                    if cur.shape[0] * g.shape[0] > MAX_CROSS_SUM:
                        raise _Timeout  # stop with the last valid bounds instead of exhausting memory
                    cur = (cur[:, None, :] + g[None, :, :]).reshape(-1, cur.shape[1])
                    keep, lost = self._prune(piece, cur)
                    cur = cur[keep]
                    loss += lost
                chain = max(chain, loss)
                sets.append(cur)
                set_acts.append(np.full(len(cur), a, dtype=np.int64))
            allv, alla = np.concatenate(sets), np.concatenate(set_acts)
            keep, lost = self._prune(piece, allv)
            vecs.append(allv[keep])
            vacts.append(alla[keep])
            delta = max(delta, chain + lost)
        allv, alla = np.concatenate(vecs), np.concatenate(vacts)
        # a vector kept on several pieces is computed identically for each (same sums in the same order)
        _, first = np.unique(allv, axis=0, return_index=True)
        first = np.sort(first)
        return allv[first], alla[first], delta

    # ------------------------------------------------------------------ pruning
    def _check_time(self):
        if self._deadline is not None and time.perf_counter() > self._deadline:
            raise _Timeout

    def _prune(self, piece: _Piece, V: np.ndarray) -> tuple[np.ndarray, float]:
        """Indices of the vectors of ``V`` that are (within eps) best somewhere on ``piece``, and the largest
        value lost by dropping the others anywhere on the piece."""
        self._check_time()
        if len(V) <= 1:
            return np.arange(len(V)), 0.0
        Y = np.ascontiguousarray(V @ piece.M.T)  # values at the vertices: the piece's barycentric coordinates
        if piece.isolated:
            return np.unique(_lex_argmax(Y.T, V)), 0.0
        idx, loss = np.arange(len(Y)), 0.0
        if piece.q == 2:  # a segment: its exact upper envelope first, O(K log K), so the LPs only see the hull
            idx = _envelope_2state(Y)  # (skips lines best on less than 1e-12 of the segment)
            if len(_envelope_2state(Y, 0.0)) > len(idx):  # such a line beats the rest by < 2e-12 max|Y|
                loss = 2e-12 * float(np.abs(Y).max())
            if len(idx) <= 1:
                return idx, loss
            Y = np.ascontiguousarray(Y[idx])
        seeded = best_at(piece.seeds, Y)  # the best vectors at known witnesses need no LP
        keep, lost, wit = lark_filter(Y, seeded, self._eps)
        self._lps += int(len(Y) - seeded.sum())
        piece.add_seeds(wit)
        return idx[keep], loss + lost

    # ------------------------------------------------------------------ residual bounds
    def _residual(self, new: np.ndarray, old: np.ndarray) -> tuple[float, float]:
        """(min, max) over the domain of V_new(b) - V_old(b), from certified LP bounds."""
        lo = hi = -math.inf
        for piece in self._domain:
            self._check_time()
            Xn, Xo = new @ piece.M.T, old @ piece.M.T
            lo = max(lo, self._max_gap(piece, Xo, Xn))
            hi = max(hi, self._max_gap(piece, Xn, Xo))
        return -lo, hi

    @staticmethod
    def _max_gap(piece: _Piece, X: np.ndarray, Y: np.ndarray) -> float:
        """max over the piece of (max_{x in X} x.lam - max_{y in Y} y.lam), in barycentric coordinates."""
        if piece.isolated:
            return float(np.max(np.max(X, axis=0) - np.max(Y, axis=0)))
        pts = piece.seeds
        best = float(np.max(np.max(pts @ X.T, axis=1) - np.max(pts @ Y.T, axis=1)))  # attained: a start
        return float(max_advantage(np.ascontiguousarray(X), np.ascontiguousarray(Y), best))

    def _record(self, t0, n_iter, lower, upper, alphas) -> dict:
        return {"time": time.perf_counter() - t0, "iterations": n_iter, "trials": n_iter, "backups": n_iter,
                "lower": float(lower), "upper": float(upper), "alphas": int(len(alphas)),
                "beliefs": sum(len(p.seeds) for p in self._domain), "lps": self._lps}


def _envelope_2state(V: np.ndarray, min_width: float = 1e-12) -> np.ndarray:
    """Indices of the lines v0 + (v1 - v0) p that form the upper envelope on p in [0, 1] (convex hull trick).

    With two states a belief is one number, so pruning is exact and needs no linear program.
    """
    a, m = V[:, 0], V[:, 1] - V[:, 0]
    order = np.lexsort((-a, m))  # slope ascending, the highest intercept first among equal slopes
    keep = np.flatnonzero(envelope_mask(a, m, order, min_width))
    if keep.size == 0:  # numerically degenerate: fall back to the best line at the simplex centre
        keep = np.array([int(np.argmax(V.sum(axis=1)))])
    return keep


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
