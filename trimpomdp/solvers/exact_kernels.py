"""Numba kernels of the exact solver: a certified simplex for the small witness linear programs and Lark's
filter built on it (one call per prune, no Python per LP). The upper envelope of lines (two-state pieces)
is ``solvers.envelope``.
"""
from __future__ import annotations

import numpy as np
from numba import njit


# ---------------------------------------------------------------------------------------------------------
# Small linear programs for pruning. A domain piece has few vertices (q: at most 4 on shuttle and 4x3; the
# number of states when pruning on the whole simplex), so the witness LP
#     d* = max_{lam in q-simplex} min_k (w - u_k) . lam
# is the value of a matrix game with q pure strategies for the maximiser. It is solved with a dense tableau
# simplex on the game's standard form and both sides are *certified* from the solution: the primal mix lam
# gives d_lo = min_k (w - u_k).lam <= d* (an actual advantage), and the dual mix mu (a convex combination of
# the u_k) gives d_hi = max_s (w - sum_k mu_k u_k)_s >= d* (weak duality). Decisions use d_hi to drop a vector
# (its loss is at most d_hi) and d_lo to keep one, so a numerically poor solve can only keep extra vectors.
# ---------------------------------------------------------------------------------------------------------

@njit(cache=True, inline="always")
def worst_against(w, U, n, lam):
    """min over k < n of (w - U[k]) . lam, and its k: w's advantage at belief ``lam`` and the vector that
    limits it."""
    q = w.shape[0]
    worst = np.inf
    kw = -1
    for k in range(n):
        v = 0.0
        for s in range(q):
            v += (w[s] - U[k, s]) * lam[s]
        if v < worst:
            worst = v
            kw = k
    return worst, kw


@njit(cache=True)
def game_lp(w, U, n, lam, mu):
    """Certified bounds (d_lo, d_hi) on max_{lam in simplex} min_{k < n} (w - U[k]).lam.

    Writes the primal mix into ``lam`` (length q) and the dual mix into ``mu`` (length >= n). With
    ``M = w - U + C > 0`` (C makes every entry at least 1) the game has value v + C > 0, and
    ``max 1'y s.t. M'y <= 1, y >= 0`` (q constraints, the origin feasible, no phase one) has optimum 1/(v + C),
    with y/1'y the dual mix and the slack prices the primal mix. Dantzig pricing, Bland's rule after 50
    pivots (no cycling). Returns (-inf, inf) when the pivot budget runs out.
    """
    q = w.shape[0]
    gmin = np.inf
    for k in range(n):
        for s in range(q):
            g = w[s] - U[k, s]
            if g < gmin:
                gmin = g
    C = 1.0 - gmin
    ncol = n + q
    tab = np.zeros((q, ncol + 1))
    for i in range(q):
        for k in range(n):
            tab[i, k] = w[i] - U[k, i] + C
        tab[i, n + i] = 1.0
        tab[i, ncol] = 1.0
    r = np.zeros(ncol)
    r[:n] = 1.0
    basis = np.empty(q, dtype=np.int64)
    for i in range(q):
        basis[i] = n + i
    done = False
    for it in range(50 + 20 * (n + q)):
        bland = it >= 50
        j = -1
        best = 1e-12
        for c in range(ncol):
            if r[c] > best:
                j = c
                if bland:
                    break
                best = r[c]
        if j < 0:
            done = True
            break
        i_out = -1
        ratio = np.inf
        for i in range(q):
            a = tab[i, j]
            if a > 1e-12:
                t = tab[i, ncol] / a
                if t < ratio or (t == ratio and basis[i] < basis[i_out]):
                    ratio = t
                    i_out = i
        if i_out < 0:  # unbounded cannot happen (M >= 1); numerical trouble
            break
        piv = tab[i_out, j]
        for c in range(ncol + 1):
            tab[i_out, c] /= piv
        for i in range(q):
            if i != i_out:
                f = tab[i, j]
                if f != 0.0:
                    for c in range(ncol + 1):
                        tab[i, c] -= f * tab[i_out, c]
        f = r[j]
        for c in range(ncol):
            r[c] -= f * tab[i_out, c]
        basis[i_out] = j
    if not done:
        return -np.inf, np.inf
    for k in range(n):
        mu[k] = 0.0
    ysum = 0.0
    for i in range(q):
        if basis[i] < n:
            y = max(tab[i, ncol], 0.0)
            mu[basis[i]] = y
            ysum += y
    xsum = 0.0
    for i in range(q):
        lam[i] = max(-r[n + i], 0.0)
        xsum += lam[i]
    if ysum <= 0.0 or xsum <= 0.0:
        return -np.inf, np.inf
    for k in range(n):
        mu[k] /= ysum
    for i in range(q):
        lam[i] /= xsum
    d_lo, _ = worst_against(w, U, n, lam)
    d_hi = -np.inf
    for s in range(q):
        v = w[s]
        for k in range(n):
            v -= mu[k] * U[k, s]
        if v > d_hi:
            d_hi = v
    return d_lo, d_hi


@njit(cache=True)
def advantage_bounds(w, U, n, stop, lam, mu, Usub):
    """Certified bounds (d_lo, d_hi) on the advantage of ``w`` over ``U[:n]``, by constraint generation.

    The game is solved against a small subset of ``U`` (in ``Usub``), started with the vector closest to
    dominating ``w`` pointwise; the vector of ``U`` worst for ``w`` at the subset's optimal mix joins the
    subset until none is violated. A subset's dual mix certifies d_hi for the whole set (its vectors are in
    ``U``), so a candidate is ruled out (d_hi <= ``stop``) after a few tiny LPs; d_lo is evaluated against all
    of ``U`` at the current mix. About q + 2 rows usually suffice, against the hundreds of the whole set.
    """
    q = w.shape[0]
    best = np.inf
    k1 = 0
    for k in range(n):
        m = -np.inf
        for s in range(q):
            d = w[s] - U[k, s]
            if d > m:
                m = d
                if m >= best:
                    break
        if m < best:
            best = m
            k1 = k
            if best <= stop:
                break
    if best <= stop:  # dominated (within stop) by one vector: no LP
        for s in range(q):
            lam[s] = 1.0 / q
        return -np.inf, best
    sub = np.empty(n, dtype=np.int64)
    for s in range(q):
        Usub[0, s] = U[k1, s]
    sub[0] = k1
    m = 1
    d_hi = best
    while True:
        lo_s, hi_s = game_lp(w, Usub, m, lam, mu)
        if not np.isfinite(hi_s):  # pivot budget exhausted: the whole set, and the pointwise bound
            lo_s, hi_s = game_lp(w, U, n, lam, mu)
            return lo_s, min(hi_s, d_hi)
        if hi_s < d_hi:
            d_hi = hi_s
        if d_hi <= stop:
            return -np.inf, d_hi
        worst, kw = worst_against(w, U, n, lam)
        if worst >= lo_s - 1e-12 * (1.0 + abs(lo_s)) or m >= n:
            return worst, d_hi
        for t in range(m):  # already in the subset: LP round-off, the bounds are as good as they get
            if sub[t] == kw:
                return worst, d_hi
        for s in range(q):
            Usub[m, s] = U[kw, s]
        sub[m] = kw
        m += 1


@njit(cache=True)
def _better(vals, cand, j, k, tol):
    """Candidate j beats k at a belief: higher value, ties broken lexicographically on the vectors."""
    if vals[j] > vals[k] + tol:
        return True
    if vals[j] < vals[k] - tol:
        return False
    for s in range(cand.shape[1]):
        if cand[j, s] != cand[k, s]:
            return cand[j, s] > cand[k, s]
    return j < k


@njit(cache=True)
def lark_filter(cand, seeded, eps):
    """Lark's filter on the candidate vectors ``cand`` (K, q), starting from the kept mask ``seeded``.

    Each undecided candidate is tested against the kept set (``advantage_bounds``): dropped when its
    certified advantage d_hi is at most ``eps`` plus the LP's round-off (a candidate that only ties the kept
    set, d* = 0, comes back with d_hi ~ 1e-16 and must not count as useful: a vector kept for a tie can end
    up strictly dominated by candidates kept later); otherwise, at the witness mix lam (where it beats the
    kept set), the best undecided candidate joins the kept set and the tested one is queued again. A
    candidate whose LP is inconclusive is kept. Returns (keep mask, largest d_hi of a dropped vector, witness
    mixes (W, q)).
    """
    K, q = cand.shape
    big = 0.0
    for k in range(K):
        for s in range(q):
            big = max(big, abs(cand[k, s]))
    drop_at = eps + 1e-14 * q * (1.0 + big)  # round-off of the certified bounds on values of size ``big``
    U = np.empty((K, q))
    n = 0
    state = np.zeros(K, dtype=np.int64)  # 0 undecided, 1 kept, 2 dropped
    for k in range(K):
        if seeded[k]:
            state[k] = 1
            U[n] = cand[k]
            n += 1
    stack = np.empty(2 * K + 1, dtype=np.int64)
    top = 0
    for k in range(K - 1, -1, -1):
        if state[k] == 0:
            stack[top] = k
            top += 1
    lam = np.empty(q)
    mu = np.empty(K)
    Usub = np.empty((K, q))
    vals = np.empty(K)
    wit = np.empty((K, q))
    nw = 0
    loss = 0.0
    while top > 0:
        top -= 1
        i = stack[top]
        if state[i] != 0:
            continue
        if n == 0:
            state[i] = 1
            U[n] = cand[i]
            n += 1
            continue
        d_lo, d_hi = advantage_bounds(cand[i], U, n, drop_at, lam, mu, Usub)
        if d_hi <= drop_at:
            state[i] = 2
            if d_hi > loss:
                loss = d_hi
            continue
        j = i
        if np.isfinite(d_lo):  # lam is a mix: the best undecided candidate there is the one to keep
            for k in range(K):
                if state[k] == 0 or k == i:
                    v = 0.0
                    for s in range(q):
                        v += cand[k, s] * lam[s]
                    vals[k] = v
            for k in range(K):
                if (state[k] == 0 or k == i) and k != j and _better(vals, cand, k, j, 1e-12 * (1.0 + abs(vals[j]))):
                    j = k
            adv = d_lo
            if j != i:
                adv, _ = worst_against(cand[j], U, n, lam)
            if adv > 0.0:  # lam is a witness: j is surely useful
                for s in range(q):
                    wit[nw, s] = lam[s]
                nw += 1
            else:  # inconclusive: keep the tested candidate itself (extra vectors never lose value)
                j = i
        state[j] = 1
        U[n] = cand[j]
        n += 1
        if j != i:
            stack[top] = i
            top += 1
    return state == 1, loss, wit[:nw]


@njit(cache=True)
def max_advantage(X, Y, best):
    """Certified upper bound on max over the simplex of (max_{x in X} x.lam - max_{y in Y} y.lam), given a
    value ``best`` already attained: vectors whose pointwise bound cannot beat it need no LP."""
    K, q = X.shape
    n = Y.shape[0]
    lam = np.empty(q)
    mu = np.empty(n)
    Usub = np.empty((n, q))
    for i in range(K):
        d_lo, d_hi = advantage_bounds(X[i], Y, n, best, lam, mu, Usub)
        if d_hi > best:
            best = d_hi
    return best


@njit(cache=True)
def best_at(points, cand):
    """Mask of the candidates that are the best (ties broken lexicographically) at one of the ``points``."""
    K, q = cand.shape
    mask = np.zeros(K, dtype=np.bool_)
    vals = np.empty(K)
    for p in range(points.shape[0]):
        j = 0
        for k in range(K):
            v = 0.0
            for s in range(q):
                v += cand[k, s] * points[p, s]
            vals[k] = v
        for k in range(1, K):
            if _better(vals, cand, k, j, 1e-12 * (1.0 + abs(vals[j]))):
                j = k
        mask[j] = True
    return mask
