"""Backups: the bounds' values at a belief, a node's cached bounds, and the Bellman backup of a node.

The lower bound is the upper envelope of the alpha vectors of the belief's visible value (a MOMDP belief
(x, b_y) is stored as a flat belief over the joint states x * Y + y of one x; a flat POMDP is X = 1), the
upper bound the sawtooth interpolation of the points above the FIB corner values (points of other visible
values never contain the belief's support, so they drop out by themselves). Each node caches both and only reads the vectors/points added since
its last refresh, so a backup costs about the new entries, not the whole sets.
"""
from __future__ import annotations

from numba import njit

from trimpomdp.solvers.sarsop.state import DONE, NEED_ALPHA_ROOM, NEED_BELIEFS, NEED_POINT_ROOM

NEG_INF = -1e300


@njit(cache=True, fastmath={"reassoc", "contract"})
def dense_dot(vectors, k, cv):
    """alpha_k . b over all hidden values in order. Reassociation lets LLVM vectorise the sum (SIMD partial
    sums; results differ from the sequential sum by rounding only, and no NaN/inf assumption is made):
    on large models most of the solve is these sums."""
    v = 0.0
    for t in range(cv.shape[0]):
        v += vectors[k, t] * cv[t]
    return v


@njit(cache=True, inline="always")
def dot(vectors, k, ci, cv, base):
    """alpha_k . b for a belief over joint states ``ci`` of one visible value (a MOMDP's long beliefs over all
    hidden values use ``dense_dot``: a call inside the flat models' loops slowed them 2x, taken or not)."""
    v = 0.0
    for t in range(ci.shape[0]):
        v += vectors[k, ci[t] - base] * cv[t]
    return v


@njit(cache=True, inline="always")
def lower_value(bi, bv, alphas, n_alpha, Y):
    """max_k alphas.vectors[k] . b over the live vectors of b's visible value, and the maximising k.

    b's support (joint states x * Y + y) lies within one visible value x."""
    vectors, alive, xnext = alphas.vectors, alphas.alive, alphas.xnext
    x = bi[0] // Y
    base = x * Y
    best = NEG_INF
    kb = -1
    k = alphas.xhead[x]
    full = alphas.xhead.shape[0] > 1 and bi.shape[0] == Y  # a MOMDP's belief over all hidden values
    while k >= 0:
        if k < n_alpha and alive[k]:
            v = dense_dot(vectors, k, bv) if full else dot(vectors, k, bi, bv, base)
            if v > best:
                best = v
                kb = k
        k = xnext[k]
    return best, kb


@njit(cache=True, inline="always")
def bucket(points, s):
    """The bucket of a point whose support starts at joint state s (``state.Points``)."""
    nb = points.head.shape[0]
    S = points.corner.shape[0]
    return s if nb == S else s // (S // nb)


@njit(cache=True, fastmath={"reassoc", "contract"})
def n_below(d, v, thr):
    """How many j have d[j] <= thr * v[j]: a count (not an early exit) so that LLVM vectorises it."""
    c = 0
    for j in range(d.shape[0]):
        c += d[j] <= thr * v[j]
    return c


@njit(cache=True, fastmath={"reassoc", "contract"})
def n_differ(a, b):
    """How many j have a[j] != b[j] (a count, vectorised like ``n_below``)."""
    c = 0
    for j in range(a.shape[0]):
        c += a[j] != b[j]
    return c


#: entries per vectorised block of a full-support ratio test (a failing test stops at the block's end)
RATIO_BLOCK = 256


@njit(cache=True, inline="always")
def min_ratio(dense, pool_idx, pool_val, p0, p1, thr):
    """min_j b(s_j) / b_i(s_j) over a point's pool slice, stopped as soon as it is <= thr (then inexact)."""
    phi = 1e300
    for j in range(p0, p1):
        d = dense[pool_idx[j]]
        if d < phi * pool_val[j]:
            phi = d / pool_val[j]
            if phi <= thr:
                break
    return phi


@njit(cache=True, inline="always")
def upper_value(bi, bv, points, pool_idx, pool_val, dense, start=0):
    """Sawtooth interpolation: corner . b + min_i phi_i(b) * (v_i - corner . b_i), over points i >= start.

    A point can only contribute when its whole support lies inside supp(b): on a flat model only the
    buckets of supp(b) are read; a bucket is left as soon as it reaches points older than ``start``
    (callers keep the minimum over older points). ``dense`` is a zeroed (S,) scratch array, left zeroed.
    """
    corner, head, nxt = points.corner, points.head, points.next
    ptr, gap, alive, top = points.ptr, points.gap, points.alive, points.top
    v0 = 0.0
    for t in range(bi.shape[0]):
        v0 += corner[bi[t]] * bv[t]
        dense[bi[t]] = bv[t]
    best = 0.0
    if head.shape[0] == corner.shape[0]:  # a flat model: the buckets of supp(b)
        for t in range(bi.shape[0]):
            i = head[bi[t]]
            while i >= start:
                g = gap[i]
                if alive[i] and g < best:
                    # g * phi improves on best only while phi > thr; the ratio at the point's largest entry
                    # bounds phi first (most points stop there), and a ratio is divided out only when it
                    # lowers phi
                    thr = best / g
                    phi = 1e300
                    if ptr[i, 1] - ptr[i, 0] > 16:
                        j = ptr[i, 0] + top[i]
                        phi = dense[pool_idx[j]] / pool_val[j]
                    if phi > thr:
                        for j in range(ptr[i, 0], ptr[i, 1]):
                            d = dense[pool_idx[j]]
                            if d < phi * pool_val[j]:
                                phi = d / pool_val[j]
                                if phi <= thr:
                                    break
                        if phi > thr:
                            best = g * phi
                i = nxt[i]
    else:  # a MOMDP: the points of b's visible value
        Yx = corner.shape[0] // head.shape[0]
        base = (bi[0] // Yx) * Yx
        cl = bi.shape[0]
        i = head[bi[0] // Yx]
        while i >= start:
            g = gap[i]
            p0 = ptr[i, 0]
            p1 = ptr[i, 1]
            # a point whose support is larger than supp(b) is not inside it (phi = 0)
            if alive[i] and g < best and p1 - p0 <= cl:
                thr = best / g
                j = p0 + top[i]
                if dense[pool_idx[j]] > thr * pool_val[j]:
                    if p1 - p0 == Yx:
                        # full support (so is b): test phi > thr as d > thr * v everywhere, vectorised, block
                        # by block (a zero v only makes the test stricter: a point skipped, the bound still
                        # valid), and divide the ratios out only for a point that passes
                        dd = dense[base:base + Yx]
                        pv = pool_val[p0:p1]
                        ok = True
                        for b0 in range(0, Yx, RATIO_BLOCK):
                            b1 = min(b0 + RATIO_BLOCK, Yx)
                            if n_below(dd[b0:b1], pv[b0:b1], thr) > 0:
                                ok = False
                                break
                        phi = min_ratio(dense, pool_idx, pool_val, p0, p1, thr) if ok else 0.0
                    elif p1 - p0 == cl:
                        # a partial support, often supp(b) itself (RockSample: the same rocks known bad):
                        # then the same test on b's own values, block by block; as large as supp(b) but
                        # another set, it is not inside it (phi = 0)
                        pi = pool_idx[p0:p1]
                        pv = pool_val[p0:p1]
                        ok = True
                        same = True
                        for b0 in range(0, cl, RATIO_BLOCK):
                            b1 = min(b0 + RATIO_BLOCK, cl)
                            if n_differ(pi[b0:b1], bi[b0:b1]) > 0:
                                same = False
                                break
                            if n_below(bv[b0:b1], pv[b0:b1], thr) > 0:
                                ok = False
                                break
                        phi = min_ratio(dense, pool_idx, pool_val, p0, p1, thr) if ok and same else 0.0
                    else:
                        phi = min_ratio(dense, pool_idx, pool_val, p0, p1, thr)
                    if phi > thr:
                        best = g * phi
            i = nxt[i]
    for t in range(bi.shape[0]):
        dense[bi[t]] = 0.0
    return v0 + best


@njit(cache=True, inline="always")
def refresh_node(c, tree, alphas, n_alpha, points, n_pts, dense, Y):
    """Bring node c's bounds up to date, reading only vectors/points added since its last refresh.

    The lower value stays the value of a live alpha vector of c's visible value (``best_alpha``), so the
    policy achieves it; the upper value is the minimum of valid sawtooth values over time.
    """
    # fields first, groups never again: an inlined group parameter holds a reference to each of its
    # arrays until its last use, which costs about as much as a cheap refresh when it lasts to the end
    pool_idx, pool_val, lower, upper = tree.pool_idx, tree.pool_val, tree.lower, tree.upper
    best_alpha, alphas_seen, points_seen = tree.best_alpha, tree.alphas_seen, tree.points_seen
    cs = tree.b_start[c]
    cl = tree.b_len[c]
    vectors, alive, xnext = alphas.vectors, alphas.alive, alphas.xnext
    ci = pool_idx[cs:cs + cl]
    cv = pool_val[cs:cs + cl]
    x = ci[0] // Y
    base = x * Y
    full = cl == Y
    kb = best_alpha[c]
    if kb >= 0 and alive[kb]:
        best = lower[c]
        k_from = alphas_seen[c]
    else:  # its vector was pruned: rescan them all
        best = NEG_INF
        kb = -1
        k_from = 0
    if alphas.xhead.shape[0] == 1:  # one visible value: a plain scan of the new vectors
        for k in range(k_from, n_alpha):
            if alive[k]:
                v = dot(vectors, k, ci, cv, base)
                if v > best:
                    best = v
                    kb = k
    elif full and cl >= 32:  # the new vectors of c's visible value only, newest first; read whole
        k = alphas.xhead[x]
        while k >= k_from:
            if alive[k]:
                v = dense_dot(vectors, k, cv)
                if v > best:
                    best = v
                    kb = k
            k = xnext[k]
    elif 4 * cl >= Y:  # a large part of them: spread out, read whole (upper_value clears ``dense``)
        for t in range(cl):
            dense[ci[t]] = cv[t]
        dd = dense[base:base + Y]
        k = alphas.xhead[x]
        while k >= k_from:
            if alive[k]:
                v = dense_dot(vectors, k, dd)
                if v > best:
                    best = v
                    kb = k
            k = xnext[k]
    else:
        k = alphas.xhead[x]
        while k >= k_from:
            if alive[k]:
                v = dot(vectors, k, ci, cv, base)
                if v > best:
                    best = v
                    kb = k
            k = xnext[k]
    lower[c] = best
    best_alpha[c] = kb
    alphas_seen[c] = n_alpha
    uv = upper_value(ci, cv, points, pool_idx, pool_val, dense, points_seen[c])
    if uv > upper[c]:
        uv = upper[c]
    if uv < best:
        uv = best
    upper[c] = uv
    points_seen[c] = n_pts
    return best, kb, uv


@njit(cache=True)
def backup_update(n, state, tol, model, tree, alphas, points, scratch):
    """Bellman backup of both bounds at expanded node n from its children, and storage of the result.

    Refreshes the children's cached bounds, stores Q bounds per action, and keeps a new alpha vector (the
    point-based backup of the best lower action) when the lower bound improves, and a new sawtooth point
    (replacing n's old one) when the upper bound does, by more than ``tol`` (smaller gains are recomputed
    from the children at the next backup, so they are not lost, only not stored). Returns DONE, or
    NEED_BELIEFS / NEED_ALPHA_ROOM / NEED_POINT_ROOM (then nothing was changed and the call can simply be
    repeated)."""
    st = state[0]
    b_start, b_len, pool_idx, pool_val = tree.b_start, tree.b_len, tree.pool_idx, tree.pool_val
    act_ptr, child, prob, obs, reward = tree.act_ptr, tree.child, tree.prob, tree.obs, tree.reward
    q_lower, q_upper, best_alpha = tree.q_lower, tree.q_upper, tree.best_alpha
    Tp, Ti, Tv, Op, Oi, Ov = model.Tp, model.Ti, model.Tv, model.Op, model.Oi, model.Ov
    R, gamma, X, Y, Zo = model.R, model.gamma, model.X, model.Y, model.Zo
    xr_ptr, xr_idx, floor = model.xr_ptr, model.xr_idx, model.floor
    vectors, used = alphas.vectors, alphas.used
    dense, kobs, h, new_alpha = scratch.dense, scratch.kobs, scratch.h, scratch.new_alpha
    n_alpha = st.n_alpha
    n_pts = st.n_pts
    if n_alpha >= vectors.shape[0]:
        return NEED_ALPHA_ROOM
    if n_pts + 1 >= points.gap.shape[0]:
        return NEED_POINT_ROOM
    stamp = st.stamp + 1
    A = act_ptr.shape[1] - 1
    lb_here, k_here, ub_here = refresh_node(n, tree, alphas, n_alpha, points, n_pts, dense, Y)
    cut = lb_here - 1e-9 * (1.0 + abs(lb_here))  # pruning threshold, with room for rounding
    for a in range(A):
        if q_upper[n, a] >= cut:
            for e in range(act_ptr[n, a], act_ptr[n, a + 1]):
                if b_start[child[e]] < 0:  # a child's belief was evicted: the caller recomputes it first
                    st.need = n
                    return NEED_BELIEFS
    if k_here >= 0:
        used[k_here] = stamp
    best_ql = NEG_INF
    best_qu = NEG_INF
    a_best = -1
    for a in range(A):
        if q_upper[n, a] < cut:
            # SARSOP's action pruning: upper bounds only fall and lower bounds only rise, so an action whose
            # Q upper bound is below the lower value here never becomes optimal; its stored Q bounds stay
            # valid and its children are neither refreshed nor needed in memory any more
            if q_upper[n, a] > best_qu:
                best_qu = q_upper[n, a]
            continue
        ql = reward[n, a]
        qu = ql
        for e in range(act_ptr[n, a], act_ptr[n, a + 1]):
            lv, k, uv = refresh_node(child[e], tree, alphas, n_alpha, points, n_pts, dense, Y)
            p = prob[e]
            ql += gamma * p * lv
            qu += gamma * p * uv
        q_lower[n, a] = ql
        q_upper[n, a] = qu
        if ql > best_ql:
            best_ql = ql
            a_best = a
        if qu > best_qu:
            best_qu = qu
    x_here = pool_idx[b_start[n]] // Y
    if a_best >= 0:
        # the backed-up vector of n's visible value x, over all its hidden values: each outcome (x', o)
        # takes its child's best vector; outcomes impossible from b take the vector best at b itself (x' = x),
        # else a sibling's vector of x', else x''s floor vector -- any vector of x' keeps the result a bound
        p0 = xr_ptr[a_best, x_here]
        p1 = xr_ptr[a_best, x_here + 1]
        for j in range(p0, p1):
            xp = xr_idx[j]
            fill = k_here if xp == x_here else -1
            for o in range(Zo):
                kobs[o * X + xp] = fill
        for e in range(act_ptr[n, a_best], act_ptr[n, a_best + 1]):
            k = best_alpha[child[e]]
            kobs[obs[e]] = k
            used[k] = stamp
        for j in range(p0, p1):
            xp = xr_idx[j]
            if xp != x_here:
                sib = floor[xp]
                for o in range(Zo):
                    if kobs[o * X + xp] >= 0:
                        sib = kobs[o * X + xp]
                        break
                for o in range(Zo):
                    if kobs[o * X + xp] < 0:
                        kobs[o * X + xp] = sib
            for s in range(xp * Y, xp * Y + Y):
                acc = 0.0
                ys = s - xp * Y
                for q in range(Op[a_best, s], Op[a_best, s + 1]):
                    acc += Ov[q] * vectors[kobs[Oi[q]], ys]
                h[s] = acc
        base = x_here * Y
        for y in range(Y):
            s = base + y
            acc = 0.0
            for j in range(Tp[a_best, s], Tp[a_best, s + 1]):
                acc += Tv[j] * h[Ti[j]]
            new_alpha[y] = R[s, a_best] + gamma * acc
    st.stamp = stamp
    tree.last_backup[n] = stamp
    st.backups += 1
    if best_ql > lb_here + tol:
        k = st.n_alpha
        vectors[k, :] = new_alpha
        alphas.action[k] = a_best
        alphas.xval[k] = x_here
        alphas.xnext[k] = alphas.xhead[x_here]
        alphas.xhead[x_here] = k
        alphas.alive[k] = True
        used[k] = stamp
        st.n_alpha = k + 1
        st.n_alive += 1
        best_alpha[n] = k
        tree.alphas_seen[n] = k + 1
        lb_here = best_ql
    ub = min(best_qu, ub_here, tree.upper[n])
    if ub < lb_here:
        ub = lb_here
    if ub < ub_here - tol:
        old = tree.point[n]
        if old >= 0:
            points.alive[old] = False
            st.p_dead += 1
        i = st.n_pts
        s0 = b_start[n]
        m = b_len[n]
        v0 = 0.0
        corner = points.corner
        top = 0
        for t in range(m):
            v0 += corner[pool_idx[s0 + t]] * pool_val[s0 + t]
            if pool_val[s0 + t] > pool_val[s0 + top]:
                top = t
        points.node[i] = n
        points.ptr[i, 0] = s0
        points.ptr[i, 1] = s0 + m
        points.top[i] = top
        points.gap[i] = ub - v0
        points.alive[i] = True
        key = bucket(points, pool_idx[s0])
        points.next[i] = points.head[key]
        points.head[key] = i
        tree.point[n] = i
        st.n_pts = i + 1
    tree.lower[n] = lb_here
    tree.upper[n] = ub
    return DONE
