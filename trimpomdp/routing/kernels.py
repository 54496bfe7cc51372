"""Numba kernels of the structured TRIM solve, exact forward evaluation and batched decisions.

Why this structure is fast: after either action the *predicted* belief lies on one segment of the simplex,
y(x) = (p_w x, (1 - p_w) x, 1 - x), x being the predicted mass on "C or E". So the value of a step before its
observation is a convex piecewise-linear function U_t(x) of one variable, stored as an upper envelope of
lines (slope, intercept, right breakpoint). The decision value of a posterior b is then
  Q_keep(b)  = A_t b_C            + B_t U_{t+1}(b_C)
  Q_regen(b) = A_t p_s (b_C + b_E) + B_t U_{t+1}(p_s (b_C + b_E)) - lambda * cost
with A_t = h(t) R (the episode ends) and B_t = (1 - h(t)) gamma; each envelope line is an alpha vector of
length 3. Budget caps add an observed "remaining budget" level r; token bins with the same cost in budget
units form contiguous groups (values are sorted), and inside a group the regenerated bins are a prefix
(cheap ones), which cumulative sums turn into O(log K) work.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from trimpomdp.routing.posterior import correct

#: cells of the per-level lookup table that makes envelope evaluation O(1) on average
LOOKUP_CELLS = 2048


@njit(cache=True)
def build_lookup(lb, lo):
    """lk[level, i] = first line of ``level`` whose right breakpoint is >= i / LOOKUP_CELLS."""
    nlev = lo.shape[0] - 1
    lk = np.empty((nlev, LOOKUP_CELLS + 1), dtype=np.int64)
    for r in range(nlev):
        j = lo[r]
        for i in range(LOOKUP_CELLS + 1):
            x = i / LOOKUP_CELLS
            while j < lo[r + 1] - 1 and lb[j] < x:
                j += 1
            lk[r, i] = j
    return lk


@njit(cache=True)
def env_eval(ls, lc, lb, lo, lk, level, x):
    """Value and line index of the envelope of ``level`` at x (lines lo[level]..lo[level+1])."""
    if x <= 0.0:
        j = lk[level, 0]
    elif x >= 1.0:
        j = lk[level, LOOKUP_CELLS]
    else:
        j = lk[level, int(x * LOOKUP_CELLS)]
    last = lo[level + 1] - 1
    while j < last and lb[j] < x:
        j += 1
    return ls[j] * x + lc[j], j


@njit(cache=True)
def count_below(v, k0, k1, thr):
    """Number of v[k0:k1] (sorted) strictly below thr."""
    lo_i = k0
    hi_i = k1
    while lo_i < hi_i:
        mid = (lo_i + hi_i) // 2
        if v[mid] < thr:
            lo_i = mid + 1
        else:
            hi_i = mid
    return lo_i - k0


@njit(cache=True)
def _regen_prefix(v, k0, k1, lam, d):
    if lam > 0.0:
        if d <= 0.0:
            return 0
        return count_below(v, k0, k1, d / lam)
    return (k1 - k0) if d > 0.0 else 0


@njit(cache=True)
def backup_step(xs, O, pw, ps, A, B, lam, tv, cp, cpv, gstart, gcu, nlev, ls, lc, lb, lo, lk):
    """Point-based backup of U_t at the prior points ``xs`` for every budget level.

    Returns (slopes, intercepts), each (nlev, G): the supporting line of U_t at each point.
    ``cp``/``cpv`` are cumulative sums (length K + 1) of token probs and probs * values.
    """
    G = xs.shape[0]
    M = O.shape[1]
    ng = gcu.shape[0]
    out_s = np.zeros((nlev, G))
    out_c = np.zeros((nlev, G))
    for g in range(G):
        x = xs[g]
        y0 = pw * x
        y1 = (1.0 - pw) * x
        y2 = 1.0 - x
        for o in range(M):
            bC, bE, _, _, ok = correct(y0, y1, y2, O, o)
            if not ok:
                continue
            m = bC + bE
            xk = bC
            xr = ps * m
            d0 = pw * O[0, o]
            d1 = (1.0 - pw) * O[1, o]
            d2 = -O[2, o]
            for r in range(nlev):
                vk, jk = env_eval(ls, lc, lb, lo, lk, r, xk)
                qk = A * bC + B * vk
                k0a = A + B * (lc[jk] + ls[jk])
                k2a = B * lc[jk]
                # alpha_W accumulated: components (a0, a1, a2)
                a0 = 0.0
                a1 = 0.0
                a2 = 0.0
                pkeep = 1.0
                for gi in range(ng):
                    rr = r - gcu[gi]
                    if rr < 0:
                        continue
                    vr, jr = env_eval(ls, lc, lb, lo, lk, rr, xr)
                    qr0 = A * ps * m + B * vr
                    k0 = gstart[gi]
                    k1 = gstart[gi + 1]
                    cnt = _regen_prefix(tv, k0, k1, lam, qr0 - qk)
                    if cnt == 0:
                        continue
                    preg = cp[k0 + cnt] - cp[k0]
                    pvt = cpv[k0 + cnt] - cpv[k0]
                    r0 = A * ps + B * (lc[jr] + ls[jr] * ps)
                    r2 = B * lc[jr]
                    a0 += preg * r0 - lam * pvt
                    a1 += preg * r0 - lam * pvt
                    a2 += preg * r2 - lam * pvt
                    pkeep -= preg
                a0 += pkeep * k0a
                a1 += pkeep * k2a
                a2 += pkeep * k2a
                out_s[r, g] += a0 * d0 + a1 * d1 + a2 * d2
                out_c[r, g] += a2 * O[2, o]
    return out_s, out_c


@njit(cache=True)
def _deposit(mass, r, h, x, amount, G):
    pos = x * (G - 1)
    if pos <= 0.0:
        mass[r, h, 0] += amount
        return
    if pos >= G - 1:
        mass[r, h, G - 1] += amount
        return
    i0 = int(pos)
    w = pos - i0
    mass[r, h, i0] += amount * (1.0 - w)
    mass[r, h, i0 + 1] += amount * w


@njit(cache=True)
def forward_step(mass, O, Ot, pw, ps, A, B, h, lam, tv, cp, cpv, gstart, gcu, ls, lc, lb, lo, lk, out):
    """Propagate the joint distribution of (budget level, hidden state, prior belief x on a grid) one step.

    ``O`` is the filter's likelihood (what the policy believes), ``Ot`` the distribution observations are
    really drawn from (the same table, or a histogram of real labelled points). Beliefs land between grid
    nodes and are split linearly. ``out`` accumulates [accuracy, strong tokens, regenerations].
    """
    nlev = mass.shape[0]
    G = mass.shape[2]
    M = O.shape[1]
    ng = gcu.shape[0]
    nxt = np.zeros_like(mass)
    preg = np.zeros(ng)
    pvt = np.zeros(ng)
    for r in range(nlev):
        for i in range(G):
            m0 = mass[r, 0, i]
            m1 = mass[r, 1, i]
            m2 = mass[r, 2, i]
            if m0 + m1 + m2 <= 1e-16:
                continue
            x = i / (G - 1.0)
            y0 = pw * x
            y1 = (1.0 - pw) * x
            y2 = 1.0 - x
            for o in range(M):
                wC = m0 * Ot[0, o]
                wE = m1 * Ot[1, o]
                wD = m2 * Ot[2, o]
                wT = wC + wE + wD
                if wT <= 1e-300:
                    continue
                # an observation impossible under the filter keeps the prior (as the simulator does)
                bC, bE, _, _, _ = correct(y0, y1, y2, O, o)
                m = bC + bE
                vk, jk = env_eval(ls, lc, lb, lo, lk, r, bC)
                qk = A * bC + B * vk
                pkeep = 1.0
                for gi in range(ng):
                    preg[gi] = 0.0
                    pvt[gi] = 0.0
                    rr = r - gcu[gi]
                    if rr < 0:
                        continue
                    vr, jr = env_eval(ls, lc, lb, lo, lk, rr, ps * m)
                    qr0 = A * ps * m + B * vr
                    k0 = gstart[gi]
                    k1 = gstart[gi + 1]
                    cnt = _regen_prefix(tv, k0, k1, lam, qr0 - qk)
                    if cnt == 0:
                        continue
                    preg[gi] = cp[k0 + cnt] - cp[k0]
                    pvt[gi] = cpv[k0 + cnt] - cpv[k0]
                    pkeep -= preg[gi]
                    out[1] += wT * pvt[gi]
                    out[2] += wT * preg[gi]
                    out[0] += (wC + wE) * preg[gi] * h * ps
                    if h < 1.0:
                        c = (wC + wE) * preg[gi] * (1.0 - h)
                        _deposit(nxt, rr, 0, ps * m, c * ps * pw, G)
                        _deposit(nxt, rr, 1, ps * m, c * ps * (1.0 - pw), G)
                        _deposit(nxt, rr, 2, ps * m, c * (1.0 - ps) + wD * preg[gi] * (1.0 - h), G)
                if pkeep > 1e-15:
                    out[0] += wC * pkeep * h
                    if h < 1.0:
                        c = pkeep * (1.0 - h)
                        _deposit(nxt, r, 0, bC, wC * c * pw, G)
                        _deposit(nxt, r, 1, bC, wC * c * (1.0 - pw), G)
                        _deposit(nxt, r, 2, bC, (wE + wD) * c, G)
    return nxt


@njit(cache=True)
def decide_batch(bel, levels, costs, cost_units, A, B, ps, lam, ls, lc, lb, lo, lk):
    """Q_keep and Q_regen (cost included; -inf when the budget forbids it) for many posteriors at one step."""
    N = bel.shape[0]
    qk = np.empty(N)
    qr = np.empty(N)
    for i in range(N):
        bC = bel[i, 0]
        m = bel[i, 0] + bel[i, 1]
        r = levels[i]
        vk, jk = env_eval(ls, lc, lb, lo, lk, r, bC)
        qk[i] = A * bC + B * vk
        rr = r - cost_units[i]
        if rr < 0:
            qr[i] = -np.inf
        else:
            vr, jr = env_eval(ls, lc, lb, lo, lk, rr, ps * m)
            qr[i] = A * ps * m + B * vr - lam * costs[i]
    return qk, qr


def with_lookup(ls, lc, lb, lo):
    """The envelope tuple the kernels take: (slopes, intercepts, breakpoints, level offsets, lookup)."""
    lo = np.asarray(lo, dtype=np.int64)
    return (ls, lc, lb, lo, build_lookup(lb, lo))
