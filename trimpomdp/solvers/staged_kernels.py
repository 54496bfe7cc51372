"""Numba kernels of the staged solver (``solvers.staged``): bounds at a belief, one point backup, one trial.

The model arrives as a ``Dyn`` tuple (per visible value x and action a, its successor visible values x' with
the dense (Y, Y) blocks P(x', y' | x, y, a); per (a, x') the observations o with their likelihood vectors
O(o | x', y', a)); the bounds as a ``Store`` tuple: per visible value a slab of upper-bound points (belief,
value, sawtooth excess over the corners) and a slab of alpha vectors, each slab ``[start, start + count)``
of shared arrays. The caller (Python) guarantees two free slots per slab before each call: a trial visits a
visible value at most once (the visible part only moves forward) and backs it up at most twice.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

#: relative improvement below which a backed-up bound is not stored (avoids storing float noise)
STORE_TOL = 1e-12
#: two beliefs closer than this (max norm) are the same upper-bound point
SAME_POINT = 1e-12


class Dyn(NamedTuple):
    R: np.ndarray  # (X, A, Y) rewards, zero for terminal joint states
    sptr: np.ndarray  # (X * A + 1,) successor blocks of (x, a): sptr[x * A + a] .. sptr[x * A + a + 1]
    sx: np.ndarray  # (B,) successor visible value of each block
    sP: np.ndarray  # (B, Y, Y) P(x', y' | x, y, a)
    optr: np.ndarray  # (A * X + 1,) observations of (a, x'): optr[a * X + x'] .. optr[a * X + x' + 1]
    oL: np.ndarray  # (M, Y) O(o | x', y', a)
    term: np.ndarray  # (X,) bool: every hidden value terminal (value 0, no successors)
    gamma: float


class Store(NamedTuple):
    corners: np.ndarray  # (X, Y) upper bound at the corners of each visible value's simplex
    pb: np.ndarray  # (P, Y) upper-bound points
    pv: np.ndarray  # (P,) their values
    pd: np.ndarray  # (P,) corners . b - value (the sawtooth's excess; <= 0 means useless)
    ps: np.ndarray  # (X,) slab start
    pn: np.ndarray  # (X,) slab count
    av: np.ndarray  # (N, Y) alpha vectors
    aa: np.ndarray  # (N,) their actions
    ast: np.ndarray  # (X,) slab start
    an: np.ndarray  # (X,) slab count
    hv: np.ndarray  # (H, Y) facets of the lower convex envelope of x's points and corners (an upper bound)
    hs: np.ndarray  # (X,) slab start
    hn: np.ndarray  # (X,) slab count (0: sawtooth only)


@njit(cache=True)
def lower_at(x, b, st):
    """max over x's alpha vectors of alpha . b (unnormalised b allowed), and the maximising index."""
    Y = b.shape[0]
    best, arg = -np.inf, -1
    for i in range(st.ast[x], st.ast[x] + st.an[x]):
        v = 0.0
        for y in range(Y):
            v += st.av[i, y] * b[y]
        if v > best:
            best, arg = v, i
    return best, arg


@njit(cache=True)
def upper_at(x, b, st):
    """Upper bound at the (normalised) belief b of visible value x: the sawtooth over x's points, or the
    envelope of x's facets (``hv``, computed from points stored earlier) where that is lower."""
    up = _sawtooth(x, b, st)
    if st.hn[x] > 0:
        Y = b.shape[0]
        env = -np.inf
        for i in range(st.hs[x], st.hs[x] + st.hn[x]):
            v = 0.0
            for y in range(Y):
                v += st.hv[i, y] * b[y]
            if v > env:
                env = v
        if env < up:
            up = env
    return up


@njit(cache=True)
def _sawtooth(x, b, st):
    Y = b.shape[0]
    cb = 0.0
    for y in range(Y):
        cb += st.corners[x, y] * b[y]
    best = 0.0
    for i in range(st.ps[x], st.ps[x] + st.pn[x]):
        d = st.pd[i]
        if d <= best:
            continue
        phi = np.inf
        for y in range(Y):
            q = st.pb[i, y]
            if q > 0.0:
                r = b[y] / q
                if r < phi:
                    phi = r
                    if phi * d <= best:
                        break
        if phi * d > best:
            best = phi * d
    return cb - best


@njit(cache=True)
def _store_upper(x, b, v, st):
    """Record the upper value v at b (a corner, an existing point, or a new point at the slab's end)."""
    Y = b.shape[0]
    corner = -1
    for y in range(Y):
        if b[y] == 1.0:
            corner = y
    if corner >= 0:
        st.corners[x, corner] = min(st.corners[x, corner], v)
        for i in range(st.ps[x], st.ps[x] + st.pn[x]):
            cb = 0.0
            for y in range(Y):
                cb += st.corners[x, y] * st.pb[i, y]
            st.pd[i] = cb - st.pv[i]
        return
    cb = 0.0
    for y in range(Y):
        cb += st.corners[x, y] * b[y]
    for i in range(st.ps[x], st.ps[x] + st.pn[x]):
        same = True
        for y in range(Y):
            if abs(st.pb[i, y] - b[y]) > SAME_POINT:
                same = False
                break
        if same:
            if v < st.pv[i]:
                st.pv[i] = v
                st.pd[i] = cb - v
            return
    i = st.ps[x] + st.pn[x]
    st.pb[i, :] = b
    st.pv[i] = v
    st.pd[i] = cb - v
    st.pn[x] += 1


@njit(cache=True)
def backup(x, b, thr_next, dyn, st, nxt):
    """Bellman backup at (x, b): stores the best action's alpha vector and the upper value when they improve
    the bounds at b; picks the successor of the upper bound's action with the largest weighted excess gap
    p (U - L - thr_next) and writes its belief into ``nxt``.

    Returns (lower, upper, successor visible value or -1, weighted excess of the successor).
    """
    Y = b.shape[0]
    A = dyn.R.shape[1]
    X = dyn.R.shape[0]
    g = dyn.gamma
    vec = np.empty(Y)
    best_vec = np.empty(Y)
    pred = np.empty(Y)
    u = np.empty(Y)
    w = np.empty(Y)
    best_lo, best_up, a_up, a_lo = -np.inf, -np.inf, 0, 0
    for a in range(A):
        qlo = 0.0
        for y in range(Y):
            vec[y] = dyn.R[x, a, y]
            qlo += vec[y] * b[y]
        qup = qlo
        for j in range(dyn.sptr[x * A + a], dyn.sptr[x * A + a + 1]):
            xp = dyn.sx[j]
            if dyn.term[xp]:
                continue
            P = dyn.sP[j]
            for yp in range(Y):
                s = 0.0
                for y in range(Y):
                    s += b[y] * P[y, yp]
                pred[yp] = s
            for k in range(dyn.optr[a * X + xp], dyn.optr[a * X + xp + 1]):
                p = 0.0
                for yp in range(Y):
                    u[yp] = pred[yp] * dyn.oL[k, yp]
                    p += u[yp]
                if p > 0.0:
                    lo, ia = lower_at(xp, u, st)
                    qlo += g * lo
                    for yp in range(Y):
                        u[yp] /= p
                    qup += g * p * upper_at(xp, u, st)
                else:
                    ia = st.ast[xp]
                for yp in range(Y):
                    w[yp] = dyn.oL[k, yp] * st.av[ia, yp]
                for y in range(Y):
                    s = 0.0
                    for yp in range(Y):
                        s += P[y, yp] * w[yp]
                    vec[y] += g * s
        if qlo > best_lo:
            best_lo = qlo
            best_vec[:] = vec
            a_lo = a
        if qup > best_up:
            best_up, a_up = qup, a
    cur_lo, _ = lower_at(x, b, st)
    if best_lo > cur_lo + STORE_TOL * max(1.0, abs(cur_lo)):
        i = st.ast[x] + st.an[x]
        st.av[i, :] = best_vec
        st.aa[i] = a_lo
        st.an[x] += 1
    else:
        best_lo = cur_lo
    cur_up = upper_at(x, b, st)
    if best_up < cur_up - STORE_TOL * max(1.0, abs(cur_up)):
        _store_upper(x, b, best_up, st)
    else:
        best_up = cur_up
    # the successor to explore: the upper bound's action, largest weighted excess gap
    a = a_up
    score, sel_j, sel_k = 0.0, -1, -1
    for j in range(dyn.sptr[x * A + a], dyn.sptr[x * A + a + 1]):
        xp = dyn.sx[j]
        if dyn.term[xp]:
            continue
        P = dyn.sP[j]
        for yp in range(Y):
            s = 0.0
            for y in range(Y):
                s += b[y] * P[y, yp]
            pred[yp] = s
        for k in range(dyn.optr[a * X + xp], dyn.optr[a * X + xp + 1]):
            p = 0.0
            for yp in range(Y):
                u[yp] = pred[yp] * dyn.oL[k, yp]
                p += u[yp]
            if p <= 0.0:
                continue
            lo, _ = lower_at(xp, u, st)
            for yp in range(Y):
                u[yp] /= p
            e = p * (upper_at(xp, u, st) - lo / p - thr_next)
            if e > score:
                score, sel_j, sel_k = e, j, k
    if sel_j < 0:
        return best_lo, best_up, -1, 0.0
    P = dyn.sP[sel_j]
    p = 0.0
    for yp in range(Y):
        s = 0.0
        for y in range(Y):
            s += b[y] * P[y, yp]
        nxt[yp] = s * dyn.oL[sel_k, yp]
        p += nxt[yp]
    for yp in range(Y):
        nxt[yp] /= p
    return best_lo, best_up, dyn.sx[sel_j], score


@njit(cache=True)
def trial(x0, b0, eps, dyn, st, xs, bs):
    """One HSVI trial from (x0, b0): descend (backing up each node) while the gap exceeds eps / gamma^depth,
    then back the path up in reverse. ``xs`` (D,) and ``bs`` (D, Y) hold the path (D >= longest path).

    Returns (backups done, depth reached, lower at the root, upper at the root).
    """
    g = dyn.gamma
    xs[0] = x0
    bs[0, :] = b0
    d = 0
    n = 0
    root_lo, root_up = -np.inf, np.inf
    while True:
        thr = eps / g ** d
        lo, up, xn, score = backup(xs[d], bs[d], thr / g, dyn, st, bs[d + 1])
        n += 1
        if d == 0:
            root_lo, root_up = lo, up
        if up - lo <= thr or xn < 0 or d + 2 > xs.shape[0]:
            break
        d += 1
        xs[d] = xn
    for i in range(d - 1, -1, -1):
        lo, up, _, _ = backup(xs[i], bs[i], eps / g ** (i + 1), dyn, st, bs[i + 1])
        n += 1
        if i == 0:
            root_lo, root_up = lo, up
    return n, d, root_lo, root_up


@njit(cache=True)
def sweep(order, dyn, st, means):
    """Backups in ``order`` (reverse topological) at every corner of each visible value and at ``means[x]``
    (a representative belief): one sweep makes every bound at these points exact given its successors'."""
    Y = means.shape[1]
    b = np.empty(Y)
    nxt = np.empty(Y)
    n = 0
    for x in order:
        if dyn.term[x]:
            continue
        for y in range(Y):
            b[:] = 0.0
            b[y] = 1.0
            backup(x, b, 0.0, dyn, st, nxt)
            n += 1
        b[:] = means[x]
        backup(x, b, 0.0, dyn, st, nxt)
        n += 1
    return n


@njit(cache=True)
def sweep_points(order, dyn, st):
    """Back up every stored upper-bound point and every corner, visible values in ``order`` (reverse
    topological), so each point's bounds are exact given its successors'. Adds at most pn[x] + Y vectors to
    x's slab (the caller makes room); points are updated in place."""
    Y = st.pb.shape[1]
    b = np.empty(Y)
    nxt = np.empty(Y)
    n = 0
    for x in order:
        if dyn.term[x]:
            continue
        for y in range(Y):
            b[:] = 0.0
            b[y] = 1.0
            backup(x, b, 0.0, dyn, st, nxt)
            n += 1
        for i in range(st.ps[x], st.ps[x] + st.pn[x]):
            b[:] = st.pb[i]
            backup(x, b, 0.0, dyn, st, nxt)
            n += 1
    return n


@njit(cache=True)
def prune_vectors(x, st, keep_last):
    """Drop x's vectors that are best at none of its stored points or corners (the newest ``keep_last``
    stay); the lower bound stays valid (each vector is a policy's value). Returns the number dropped."""
    Y = st.pb.shape[1]
    s, n = st.ast[x], st.an[x]
    if n <= 1:
        return 0
    used = np.zeros(n, np.bool_)
    used[max(0, n - keep_last):] = True
    b = np.zeros(Y)
    for y in range(Y):
        b[:] = 0.0
        b[y] = 1.0
        _, i = lower_at(x, b, st)
        used[i - s] = True
    for k in range(st.ps[x], st.ps[x] + st.pn[x]):
        _, i = lower_at(x, st.pb[k], st)
        used[i - s] = True
    j = s
    for i in range(s, s + n):
        if used[i - s]:
            if j != i:
                st.av[j, :] = st.av[i]
                st.aa[j] = st.aa[i]
            j += 1
    st.an[x] = j - s
    return n - (j - s)
