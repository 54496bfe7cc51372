"""Numba kernels of the staged solver (``solvers.staged``): bounds at a belief, one point backup, one trial.

The model arrives as a ``Dyn`` tuple (per visible value x and action a, its successor visible values x' with
the dense (Y, Y) blocks P(x', y' | x, y, a); per (a, x') the observations o with their likelihood vectors
O(o | x', y', a)); the bounds as a ``Store`` tuple: per visible value a slab of upper-bound points (belief,
value, sawtooth excess over the corners) and a slab of alpha vectors, each slab ``[start, start + count)``
of shared arrays. Visible values with the same successor blocks (``Dyn.grp``: in the routing MOMDP the
token bins of one step) are backed up together (``backup``). The caller (Python) guarantees two free slots
per slab before each trial: a trial visits a group at most once (the visible part only moves forward, and
siblings share their successors) and backs it up at most twice.
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
    grp: np.ndarray  # (X,) sibling group of x: visible values with the same successor blocks (rewards differ)
    gptr: np.ndarray  # (G + 1,) members of group g: gmem[gptr[g] .. gptr[g + 1]], the first one its leader
    gmem: np.ndarray  # (X,)


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
    hf: np.ndarray  # (X,) 1 while the facets include every point and corner as stored (sawtooth redundant)


@njit(cache=True)
def _predict(b, P, out):
    """out[y'] = sum_y b[y] P[y, y']: the hidden values' distribution after one transition block."""
    Y = b.shape[0]
    for yp in range(Y):
        s = 0.0
        for y in range(Y):
            s += b[y] * P[y, yp]
        out[yp] = s


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
    if st.hn[x] > 0 and st.hf[x] == 1:
        up = np.inf  # the envelope of the same points is never above their sawtooth
    else:
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
        if v < st.corners[x, corner]:
            st.hf[x] = 0
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
                st.hf[x] = 0
            return
    st.hf[x] = 0
    i = st.ps[x] + st.pn[x]
    st.pb[i, :] = b
    st.pv[i] = v
    st.pd[i] = cb - v
    st.pn[x] += 1


@njit(cache=True)
def backup(x, b, thr_next, dyn, st, nxt):
    """Bellman backup at (x, b) and at b for every sibling of x (``dyn.grp``): the continuation (successor
    bounds and the continuation part of each action's alpha vector) is computed once, and each member adds its
    own rewards, so one backup refreshes a whole group. Each member stores its best action's alpha vector
    when it improves its lower bound at b; the upper value is stored at b for every member (unchanged where
    it does not improve) as soon as one improves, so the members' point lists stay the same. Then picks x's
    successor of its upper bound's action with the largest weighted excess gap p (U - L - thr_next) and
    writes its belief into ``nxt``.

    Returns (lower, upper, successor visible value or -1, weighted excess of the successor), all for x.
    """
    Y = b.shape[0]
    A = dyn.R.shape[1]
    X = dyn.R.shape[0]
    g = dyn.gamma
    cvec = np.zeros((A, Y))
    clo = np.zeros(A)
    cup = np.zeros(A)
    pred = np.empty(Y)
    u = np.empty(Y)
    w = np.empty(Y)
    for a in range(A):
        qlo = 0.0
        qup = 0.0
        for j in range(dyn.sptr[x * A + a], dyn.sptr[x * A + a + 1]):
            xp = dyn.sx[j]
            if dyn.term[xp]:
                continue
            P = dyn.sP[j]
            _predict(b, P, pred)
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
                    cvec[a, y] += g * s
        clo[a], cup[a] = qlo, qup
    gi = dyn.grp[x]
    n_mem = dyn.gptr[gi + 1] - dyn.gptr[gi]
    ups = np.empty(n_mem)
    curs = np.empty(n_mem)
    any_up = False
    x_lo, x_up, a_up = -np.inf, -np.inf, 0
    for mi in range(n_mem):
        m = dyn.gmem[dyn.gptr[gi] + mi]
        best_lo, best_up, a_lo, am = -np.inf, -np.inf, 0, 0
        for a in range(A):
            rb = 0.0
            for y in range(Y):
                rb += dyn.R[m, a, y] * b[y]
            if rb + clo[a] > best_lo:
                best_lo, a_lo = rb + clo[a], a
            if rb + cup[a] > best_up:
                best_up, am = rb + cup[a], a
        cur_lo, _ = lower_at(m, b, st)
        if best_lo > cur_lo + STORE_TOL * max(1.0, abs(cur_lo)):
            i = st.ast[m] + st.an[m]
            for y in range(Y):
                st.av[i, y] = dyn.R[m, a_lo, y] + cvec[a_lo, y]
            st.aa[i] = a_lo
            st.an[m] += 1
        else:
            best_lo = cur_lo
        cur_up = upper_at(m, b, st)
        curs[mi] = cur_up
        ups[mi] = best_up
        if best_up < cur_up - STORE_TOL * max(1.0, abs(cur_up)):
            any_up = True
        else:
            best_up = cur_up
        if m == x:
            x_lo, x_up, a_up = best_lo, best_up, am
    if any_up:
        for mi in range(n_mem):
            m = dyn.gmem[dyn.gptr[gi] + mi]
            _store_upper(m, b, min(ups[mi], curs[mi]), st)
    # the successor to explore: the upper bound's action, largest weighted excess gap
    a = a_up
    score, sel_j, sel_k = 0.0, -1, -1
    for j in range(dyn.sptr[x * A + a], dyn.sptr[x * A + a + 1]):
        xp = dyn.sx[j]
        if dyn.term[xp]:
            continue
        P = dyn.sP[j]
        _predict(b, P, pred)
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
        return x_lo, x_up, -1, 0.0
    P = dyn.sP[sel_j]
    _predict(b, P, nxt)
    p = 0.0
    for yp in range(Y):
        nxt[yp] *= dyn.oL[sel_k, yp]
        p += nxt[yp]
    for yp in range(Y):
        nxt[yp] /= p
    return x_lo, x_up, dyn.sx[sel_j], score


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
def _leader(x, dyn):
    return dyn.gmem[dyn.gptr[dyn.grp[x]]] == x


@njit(cache=True)
def sweep(order, dyn, st, means):
    """Backups in ``order`` (reverse topological) at every corner of each group leader's simplex and at
    ``means[x]`` (a representative belief; each backup covers the leader's siblings): one sweep makes every
    bound at these points exact given its successors'."""
    Y = means.shape[1]
    b = np.empty(Y)
    nxt = np.empty(Y)
    n = 0
    for x in order:
        if dyn.term[x] or not _leader(x, dyn):
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
    topological), so each point's bounds are exact given its successors'. A group's members share their
    points (``backup``), so only leaders' points are backed up. Adds at most pn[x] + Y vectors to x's slab
    (the caller makes room); points are updated in place."""
    Y = st.pb.shape[1]
    b = np.empty(Y)
    nxt = np.empty(Y)
    n = 0
    for x in order:
        if dyn.term[x] or not _leader(x, dyn):
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
def backup_new(order, dyn, st, ptr, B):
    """Back up, in ``order`` (reverse topological), each visible value x at its new beliefs
    ``B[ptr[x]:ptr[x + 1]]`` (which then become points of x's group, by ``backup``). Adds at most
    ptr[x + 1] - ptr[x] points and vectors to each member's slab (the caller makes room)."""
    Y = B.shape[1]
    nxt = np.empty(Y)
    n = 0
    for x in order:
        if dyn.term[x]:
            continue
        for i in range(ptr[x], ptr[x + 1]):
            backup(x, B[i], 0.0, dyn, st, nxt)
            n += 1
    return n


@njit(cache=True)
def simulate(roots, beliefs, masses, episodes, explore, seed, dyn, st, out_x, out_b):
    """Beliefs reached by ``episodes`` runs from b0 (root drawn by ``masses``) under the lower bound's
    policy, each action replaced by a uniformly random one with probability ``explore``; successor visible
    value and observation drawn from the belief's predictive distribution. Writes the visited
    (x, belief) pairs (terminal values excluded) to ``out_x``, ``out_b`` (room: episodes x longest path);
    returns how many."""
    np.random.seed(seed)
    Y = beliefs.shape[1]
    A = dyn.R.shape[1]
    X = dyn.R.shape[0]
    b = np.empty(Y)
    pred = np.empty(Y)
    n = 0
    for _ in range(episodes):
        r = 0
        u = np.random.random()
        c = masses[0]
        while u > c and r + 1 < masses.size:
            r += 1
            c += masses[r]
        x = roots[r]
        b[:] = beliefs[r]
        while not dyn.term[x] and n < out_x.size:
            out_x[n] = x
            out_b[n, :] = b
            n += 1
            if np.random.random() < explore:
                a = np.random.randint(A)
            else:
                _, ia = lower_at(x, b, st)
                a = st.aa[ia]
            u = np.random.random()
            c = 0.0
            xn = -1
            for j in range(dyn.sptr[x * A + a], dyn.sptr[x * A + a + 1]):
                xp = dyn.sx[j]
                P = dyn.sP[j]
                _predict(b, P, pred)
                for k in range(dyn.optr[a * X + xp], dyn.optr[a * X + xp + 1]):
                    p = 0.0
                    for yp in range(Y):
                        p += pred[yp] * dyn.oL[k, yp]
                    c += p
                    if u <= c and p > 0.0:
                        for yp in range(Y):
                            b[yp] = pred[yp] * dyn.oL[k, yp] / p
                        xn = xp
                        break
                if xn >= 0:
                    break
            if xn < 0:  # the rest of the mass (rounding, or no observation row): the episode ends
                break
            x = xn
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
