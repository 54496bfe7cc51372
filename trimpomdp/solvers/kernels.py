"""Numba kernels of the point-based solvers: belief expansion, lower/upper bound evaluation, backups.

Beliefs are sparse (sorted state indices + probabilities) because the large benchmarks keep small
supports; everything here works on flat arrays (see ``sparse.py``) so that the Python orchestration in
``sarsop.py`` only moves indices around. All kernels are ``cache=True`` so a second process skips the JIT.
"""
from __future__ import annotations

import numpy as np
from numba import njit

NEG_INF = -1e300


@njit(cache=True)
def _grow_i(a, n):
    if n <= a.shape[0]:
        return a
    b = np.empty(max(n, 2 * a.shape[0]), np.int64)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def _grow_f(a, n):
    if n <= a.shape[0]:
        return a
    b = np.empty(max(n, 2 * a.shape[0]), np.float64)
    b[: a.shape[0]] = a
    return b


@njit(cache=True)
def same_belief(pool_idx, pool_val, start, m, ci, cv, tol):
    """Whether the stored belief pool[start:start+m] equals (ci, cv) up to ``tol`` (hash-hit check)."""
    if m != ci.shape[0]:
        return False
    for t in range(m):
        if pool_idx[start + t] != ci[t] or abs(pool_val[start + t] - cv[t]) > tol:
            return False
    return True


@njit(cache=True)
def successors(bi, bv, Tp, Ti, Tv, Op, Oi, Ov, R, Z, min_prob, pred, touched, pz, cnt):
    """Every child b^{a,o} of belief (bi, bv) with P(o | b, a) > min_prob, grouped by action.

    Returns (act_ptr (A+1), obs, prob, child_ptr, child_idx, child_val, reward (A)); children of action a
    are act_ptr[a]..act_ptr[a+1]. ``pred``/``touched``/``pz``/``cnt`` are zeroed scratch arrays (S, S, Z, Z)
    and are left zeroed on return.
    """
    A = Tp.shape[0]
    n_b = bi.shape[0]
    act_ptr = np.zeros(A + 1, np.int64)
    obs = np.empty(16, np.int64)
    prob = np.empty(16, np.float64)
    cptr = np.zeros(17, np.int64)
    cidx = np.empty(64, np.int64)
    cval = np.empty(64, np.float64)
    rew = np.zeros(A)
    nc = 0
    ne = 0
    for a in range(A):
        r = 0.0
        nt = 0
        for k in range(n_b):
            s = bi[k]
            w = bv[k]
            r += R[s, a] * w
            for j in range(Tp[a, s], Tp[a, s + 1]):
                sp = Ti[j]
                if pred[sp] == 0.0:
                    touched[nt] = sp
                    nt += 1
                pred[sp] += w * Tv[j]
        rew[a] = r
        tl = np.sort(touched[:nt])
        for k in range(nt):
            sp = tl[k]
            p = pred[sp]
            for j in range(Op[a, sp], Op[a, sp + 1]):
                o = Oi[j]
                pz[o] += p * Ov[j]
                cnt[o] += 1
        # lay out the children of this action
        for o in range(Z):
            if pz[o] > min_prob:
                obs = _grow_i(obs, nc + 1)
                prob = _grow_f(prob, nc + 1)
                cptr = _grow_i(cptr, nc + 2)
                obs[nc] = o
                prob[nc] = pz[o]
                cptr[nc + 1] = cptr[nc] + cnt[o]
                cnt[o] = nc  # reuse as the child slot of o
                nc += 1
            else:
                cnt[o] = -1
        total = cptr[nc]
        cidx = _grow_i(cidx, total)
        cval = _grow_f(cval, total)
        # fill position per child (cursor), kept in a small local array
        start = act_ptr[a]
        fill = np.empty(nc - start, np.int64)
        for c in range(start, nc):
            fill[c - start] = cptr[c]
        for k in range(nt):
            sp = tl[k]
            p = pred[sp]
            for j in range(Op[a, sp], Op[a, sp + 1]):
                c = cnt[Oi[j]]
                if c >= 0:
                    q = fill[c - start]
                    cidx[q] = sp
                    cval[q] = p * Ov[j] / prob[c]
                    fill[c - start] = q + 1
        # children may hold explicit zeros (pred underflow); renormalise each child exactly
        for c in range(start, nc):
            z = 0.0
            for q in range(cptr[c], cptr[c + 1]):
                z += cval[q]
            for q in range(cptr[c], cptr[c + 1]):
                cval[q] /= z
        for k in range(nt):
            pred[touched[k]] = 0.0
        for o in range(Z):
            pz[o] = 0.0
            cnt[o] = 0
        act_ptr[a + 1] = nc
        ne = cptr[nc]
    return act_ptr, obs[:nc].copy(), prob[:nc].copy(), cptr[: nc + 1].copy(), cidx[:ne].copy(), cval[:ne].copy(), rew


@njit(cache=True, inline="always")
def lower_value(bi, bv, alphas, n_alpha, alive):
    """max_k alphas[k] . b over live vectors, and the maximising k."""
    best = NEG_INF
    kb = -1
    for k in range(n_alpha):
        if not alive[k]:
            continue
        v = 0.0
        for t in range(bi.shape[0]):
            v += alphas[k, bi[t]] * bv[t]
        if v > best:
            best = v
            kb = k
    return best, kb


@njit(cache=True, inline="always")
def upper_value(bi, bv, corner, p_ptr, p_idx, p_val, p_gap, p_alive, head, nxt, dense, start=0):
    """Sawtooth interpolation: corner . b + min_i phi_i(b) * (v_i - corner . b_i), over points i >= start.

    Point i's belief is p_idx/p_val[p_ptr[i, 0]:p_ptr[i, 1]] (a slice of the belief pool, not a copy).
    Points are bucketed by the first state of their support (``head``/``nxt`` linked lists, newest first):
    a point can only contribute when its whole support lies inside supp(b), so only the buckets of supp(b)
    are read, and a bucket is left as soon as it reaches points older than ``start`` (callers keep the
    minimum over older points). ``dense`` is a zeroed (S,) scratch array, left zeroed.
    """
    v0 = 0.0
    for t in range(bi.shape[0]):
        v0 += corner[bi[t]] * bv[t]
        dense[bi[t]] = bv[t]
    best = 0.0
    for t in range(bi.shape[0]):
        i = head[bi[t]]
        while i >= start:
            g = p_gap[i]
            if p_alive[i] and g < best:
                phi = 1e300
                for j in range(p_ptr[i, 0], p_ptr[i, 1]):
                    r = dense[p_idx[j]] / p_val[j]
                    if r < phi:
                        phi = r
                        if g * phi >= best:
                            break
                if g * phi < best:
                    best = g * phi
            i = nxt[i]
    for t in range(bi.shape[0]):
        dense[bi[t]] = 0.0
    return v0 + best


@njit(cache=True)
def prune_dominated_points(corner, p_ptr, p_idx, p_val, p_gap, p_alive, head, nxt, n_pts, dense):
    """Mark dead every point whose own value is no better than the sawtooth of the other live points at
    its belief (SARSOP's upper-bound pruning); returns how many were dropped. Checked newest first, so of
    two equal points the older one goes."""
    dropped = 0
    for i in range(n_pts - 1, -1, -1):
        if not p_alive[i]:
            continue
        p_alive[i] = False
        ci = p_idx[p_ptr[i, 0]:p_ptr[i, 1]]
        cv = p_val[p_ptr[i, 0]:p_ptr[i, 1]]
        v0 = 0.0
        for t in range(ci.shape[0]):
            v0 += corner[ci[t]] * cv[t]
        u = upper_value(ci, cv, corner, p_ptr, p_idx, p_val, p_gap, p_alive, head, nxt, dense, 0)
        if u - v0 <= p_gap[i] + 1e-12 * max(1.0, abs(v0)):
            dropped += 1
        else:
            p_alive[i] = True
    return dropped


@njit(cache=True)
def link_points(p_ptr, p_idx, n_pts, head, nxt):
    """Rebuild the sawtooth buckets (newest first per first support state) of points 0..n_pts-1."""
    head[:] = -1
    for i in range(n_pts):
        s0 = p_idx[p_ptr[i, 0]]
        nxt[i] = head[s0]
        head[s0] = i
    for i in range(n_pts, nxt.shape[0]):
        nxt[i] = -1


@njit(cache=True, inline="always")
def refresh_node(c, node_bs, node_bl, pool_idx, pool_val, node_lb, node_ub, node_bestk, node_aseen, node_pseen,
                 alphas, n_alpha, alpha_alive, corner, p_ptr, p_idx, p_val, p_gap, p_alive, head, nxt, n_pts,
                 dense):
    """Bring node c's bounds up to date, reading only vectors/points added since its last refresh.

    The lower value stays the value of a live alpha vector (``node_bestk``), so the policy achieves it; the
    upper value is the minimum of valid sawtooth values over time.
    """
    cs = node_bs[c]
    cl = node_bl[c]
    ci = pool_idx[cs:cs + cl]
    cv = pool_val[cs:cs + cl]
    k0 = node_bestk[c]
    if k0 >= 0 and alpha_alive[k0]:
        best = node_lb[c]
        kb = k0
        for k in range(node_aseen[c], n_alpha):
            if not alpha_alive[k]:
                continue
            v = 0.0
            for t in range(cl):
                v += alphas[k, ci[t]] * cv[t]
            if v > best:
                best = v
                kb = k
    else:
        best, kb = lower_value(ci, cv, alphas, n_alpha, alpha_alive)
    node_lb[c] = best
    node_bestk[c] = kb
    node_aseen[c] = n_alpha
    uv = upper_value(ci, cv, corner, p_ptr, p_idx, p_val, p_gap, p_alive, head, nxt, dense, node_pseen[c])
    if uv > node_ub[c]:
        uv = node_ub[c]
    if uv < best:
        uv = best
    node_ub[c] = uv
    node_pseen[c] = n_pts
    return best, kb, uv


@njit(cache=True, inline="always")
def trial_step(n, t, node_qub, node_qlb, node_rew, aptr, e_child, e_prob, node_lb, node_ub, eps, ginv, g, L, U):
    """One SARSOP descent choice at expanded node n: the upper bound's best action, then the child with the
    largest weighted excess gap, with the (L, U) targets propagated to it.

    Returns (status, child, L, U): status 0 = go to child, 1 = stop here, 2 = stop after backing n up."""
    A = aptr.shape[1] - 1
    a = 0
    for b in range(1, A):
        if node_qub[n, b] > node_qub[n, a]:
            a = b
    e0 = aptr[n, a]
    e1 = aptr[n, a + 1]
    if e1 == e0:
        return 1, -1, L, U
    ginv_next = ginv / g if g < 1.0 else 1.0
    jb = e0
    best = NEG_INF
    Lsum = 0.0
    Usum = 0.0
    for e in range(e0, e1):
        c = e_child[e]
        p = e_prob[e]
        sc = p * (node_ub[c] - node_lb[c] - eps * ginv_next)
        if sc > best:
            best = sc
            jb = e
        Lsum += p * node_lb[c]
        Usum += p * node_ub[c]
    if best <= 0 and t > 0:
        return 2, -1, L, U
    qmax = node_qlb[n, 0]
    for b in range(1, A):
        if node_qlb[n, b] > qmax:
            qmax = node_qlb[n, b]
    Lp = max(L, qmax)
    Up = max(U, Lp + eps * ginv)
    cj = e_child[jb]
    pj = e_prob[jb]
    Lsum -= pj * node_lb[cj]
    Usum -= pj * node_ub[cj]
    if g > 0:
        rba = node_rew[n, a]
        L = ((Lp - rba) / g - Lsum) / pj
        U = ((Up - rba) / g - Usum) / pj
    return 0, cj, L, U


@njit(cache=True)
def evict_leaves(order, aptr, e_child, expanded, node_bs, node_bl, node_qub, node_lb, to_free):
    """Drop the pool beliefs of unexpanded children: first those under pruned actions (never read again),
    then those of the expanded nodes in ``order`` (least recently backed up first) until ``to_free`` entries
    are freed; marks them with ``node_bs = -1`` and returns the count. Their cached bounds stay (still
    valid); the beliefs are recomputed from a parent when needed again."""
    A = aptr.shape[1] - 1
    freed = 0
    for t in range(order.shape[0]):
        n = order[t]
        cut = node_lb[n] - 1e-9 * (1.0 + abs(node_lb[n]))  # as in backup_update
        for a in range(A):
            if node_qub[n, a] < cut:
                for e in range(aptr[n, a], aptr[n, a + 1]):
                    c = e_child[e]
                    if not expanded[c] and node_bs[c] >= 0:
                        node_bs[c] = -1
                        freed += node_bl[c]
    for t in range(order.shape[0]):
        if freed >= to_free:
            break
        n = order[t]
        for e in range(aptr[n, 0], aptr[n, A]):
            c = e_child[e]
            if not expanded[c] and node_bs[c] >= 0:
                node_bs[c] = -1
                freed += node_bl[c]
    return freed


@njit(cache=True)
def compact_pool(live, node_bs, node_bl, pool_idx, pool_val):
    """Slide the beliefs of ``live`` nodes (sorted by pool offset) to the front of the pool, in place;
    returns the new pool length."""
    pos = 0
    for t in range(live.shape[0]):
        n = live[t]
        s0 = node_bs[n]
        m = node_bl[n]
        if s0 != pos:
            for j in range(m):
                pool_idx[pos + j] = pool_idx[s0 + j]
                pool_val[pos + j] = pool_val[s0 + j]
            node_bs[n] = pos
        pos += m
    return pos


@njit(cache=True)
def mark_used_at(node_ids, node_bs, node_bl, pool_idx, pool_val, alphas, n_alpha, alive, used, stamp):
    """Stamp the vector that is best at each of the given nodes (witnesses kept by pruning)."""
    for t in range(node_ids.shape[0]):
        n = node_ids[t]
        s0 = node_bs[n]
        v, k = lower_value(pool_idx[s0:s0 + node_bl[n]], pool_val[s0:s0 + node_bl[n]], alphas, n_alpha, alive)
        if k >= 0:
            used[k] = stamp


@njit(cache=True)
def qmdp_iterate(Tp, Ti, Tv, R, gamma, V, tol, max_iter, Q):
    """MDP value iteration from V until the largest change is <= tol (or max_iter sweeps); Q (A, S) gets
    the Q-values of the last V. Returns the number of sweeps."""
    A = Tp.shape[0]
    S = V.shape[0]
    Vn = np.empty(S)
    it = 0
    while it < max_iter:
        it += 1
        for s in range(S):
            Vn[s] = NEG_INF
        for a in range(A):
            for s in range(S):
                acc = 0.0
                for j in range(Tp[a, s], Tp[a, s + 1]):
                    acc += Tv[j] * V[Ti[j]]
                q = R[s, a] + gamma * acc
                if q > Vn[s]:
                    Vn[s] = q
        diff = 0.0
        for s in range(S):
            d = abs(Vn[s] - V[s])
            if d > diff:
                diff = d
            V[s] = Vn[s]
        if not diff <= tol:  # also stops on NaN/inf below
            if diff != diff or diff > 1e300:
                break
            continue
        break
    for a in range(A):
        for s in range(S):
            acc = 0.0
            for j in range(Tp[a, s], Tp[a, s + 1]):
                acc += Tv[j] * V[Ti[j]]
            Q[a, s] = R[s, a] + gamma * acc
    return it


@njit(cache=True)
def fib_sweep(alph, Tp, Ti, Tv, Op, Oi, Ov, R, gamma, Z, out):
    """One fast-informed-bound sweep: out[a, s] = R[s, a] + g sum_o max_a' sum_s' T O alph[a', s'].

    Returns the largest absolute change. ``alph`` and ``out`` are (A, S).
    """
    A = alph.shape[0]
    S = alph.shape[1]
    acc = np.zeros((Z, A))
    seen = np.zeros(Z, np.bool_)
    olist = np.empty(Z, np.int64)
    diff = 0.0
    for a in range(A):
        for s in range(S):
            no = 0
            for j in range(Tp[a, s], Tp[a, s + 1]):
                sp = Ti[j]
                t = Tv[j]
                for q in range(Op[a, sp], Op[a, sp + 1]):
                    o = Oi[q]
                    w = t * Ov[q]
                    if not seen[o]:
                        seen[o] = True
                        olist[no] = o
                        no += 1
                    for ap in range(A):
                        acc[o, ap] += w * alph[ap, sp]
            tot = 0.0
            for k in range(no):
                o = olist[k]
                m = acc[o, 0]
                for ap in range(1, A):
                    if acc[o, ap] > m:
                        m = acc[o, ap]
                tot += m
                for ap in range(A):
                    acc[o, ap] = 0.0
                seen[o] = False
            v = R[s, a] + gamma * tot
            if v > alph[a, s]:
                v = alph[a, s]
            d = abs(v - alph[a, s])
            if d > diff:
                diff = d
            out[a, s] = v
    return diff



@njit(cache=True)
def fib_iterate(alph, Tp, Ti, Tv, Op, Oi, Ov, R, gamma, Z, tol, max_iter):
    """FIB sweeps from ``alph`` (in place) until the largest change is <= tol; returns the sweep count.
    Every iterate of an upper bound stays an upper bound, so stopping early is safe."""
    out = np.empty_like(alph)
    it = 0
    while it < max_iter:
        it += 1
        diff = fib_sweep(alph, Tp, Ti, Tv, Op, Oi, Ov, R, gamma, Z, out)
        alph[:, :] = out
        if not diff > tol:  # also stops on NaN
            break
    return it

# ---------------------------------------------------------------------------------------------- trial loop
# run_trials keeps its resumable state in two small arrays so that it can hand control back to Python in
# the middle of a trial (to expand a node, recompute evicted beliefs, or grow an array) and carry on after.
ST_PHASE, ST_NODE, ST_PARENT, ST_DEPTH, ST_PLEN, ST_POS, ST_PENDING, ST_TARGETS, ST_NEED, ST_TRIALS, \
    ST_BACKUPS, ST_STAMP, ST_NALPHA, ST_NPTS, ST_PDEAD, ST_NALIVE = range(16)
SF_GINV, SF_L, SF_U, SF_EPS, SF_LB0, SF_UB0 = range(6)
#: run_trials return codes
DONE, CONVERGED, NEED_EXPAND, NEED_BELIEFS, NEED_ALPHA_ROOM, NEED_POINT_ROOM, MAINTENANCE = range(7)


@njit(cache=True, inline="always")
def backup_update(n, st, tol, tree):
    """Bellman backup of both bounds at expanded node n from its children, and storage of the result.

    Refreshes the children's cached bounds (only vectors/points added since their last refresh are read),
    stores Q bounds per action, and keeps a new alpha vector (the point-based backup of the best lower
    action) when the lower bound improves, and a new sawtooth point (replacing n's old one) when the upper
    bound does, by more than ``tol`` (smaller gains are recomputed from the children at the next backup,
    so they are not lost, only not stored). ``tree`` is the tuple built by ``_Run._tree_args``: one
    argument, so that numba can inline this into run_trials. Returns DONE, or NEED_BELIEFS /
    NEED_ALPHA_ROOM / NEED_POINT_ROOM (then nothing was changed and the call can simply be repeated)."""
    (node_bs, node_bl, pool_idx, pool_val, aptr, e_child, e_prob, e_obs, node_rew, node_lb, node_ub, node_qlb,
     node_qub, node_bestk, node_aseen, node_pseen, node_touch, node_point, alphas, alpha_act, alive, used,
     corner, p_ptr, p_node, p_gap, p_alive, head, nxt, dense, Tp, Ti, Tv, Op, Oi, Ov, R, gamma, Z, kobs, h,
     new_alpha) = tree
    n_alpha = st[ST_NALPHA]
    n_pts = st[ST_NPTS]
    if n_alpha >= alphas.shape[0]:
        return NEED_ALPHA_ROOM
    if n_pts + 1 >= p_gap.shape[0]:
        return NEED_POINT_ROOM
    stamp = st[ST_STAMP] + 1
    A = aptr.shape[1] - 1
    S = h.shape[0]
    lb_here, k_here, ub_here = refresh_node(
        n, node_bs, node_bl, pool_idx, pool_val, node_lb, node_ub, node_bestk, node_aseen, node_pseen,
        alphas, n_alpha, alive, corner, p_ptr, pool_idx, pool_val, p_gap, p_alive, head, nxt, n_pts, dense)
    cut = lb_here - 1e-9 * (1.0 + abs(lb_here))  # pruning threshold, with room for rounding
    for a in range(A):
        if node_qub[n, a] >= cut:
            for e in range(aptr[n, a], aptr[n, a + 1]):
                if node_bs[e_child[e]] < 0:  # a child's belief was evicted: the caller recomputes it first
                    st[ST_NEED] = n
                    return NEED_BELIEFS
    if k_here >= 0:
        used[k_here] = stamp
    best_ql = NEG_INF
    best_qu = NEG_INF
    a_best = -1
    for a in range(A):
        if node_qub[n, a] < cut:
            # SARSOP's action pruning: upper bounds only fall and lower bounds only rise, so an action whose
            # Q upper bound is below the lower value here never becomes optimal; its stored Q bounds stay
            # valid and its children are neither refreshed nor needed in memory any more
            if node_qub[n, a] > best_qu:
                best_qu = node_qub[n, a]
            continue
        ql = node_rew[n, a]
        qu = ql
        for e in range(aptr[n, a], aptr[n, a + 1]):
            c = e_child[e]
            lv, k, uv = refresh_node(
                c, node_bs, node_bl, pool_idx, pool_val, node_lb, node_ub, node_bestk, node_aseen, node_pseen,
                alphas, n_alpha, alive, corner, p_ptr, pool_idx, pool_val, p_gap, p_alive, head, nxt, n_pts,
                dense)
            p = e_prob[e]
            ql += gamma * p * lv
            qu += gamma * p * uv
        node_qlb[n, a] = ql
        node_qub[n, a] = qu
        if ql > best_ql:
            best_ql = ql
            a_best = a
        if qu > best_qu:
            best_qu = qu
    if a_best >= 0:
        # the backed-up vector: observations impossible from b keep the vector best at b itself
        for o in range(Z):
            kobs[o] = k_here
        for e in range(aptr[n, a_best], aptr[n, a_best + 1]):
            k = node_bestk[e_child[e]]
            kobs[e_obs[e]] = k
            used[k] = stamp
        for s in range(S):
            acc = 0.0
            for j in range(Op[a_best, s], Op[a_best, s + 1]):
                acc += Ov[j] * alphas[kobs[Oi[j]], s]
            h[s] = acc
        for s in range(S):
            acc = 0.0
            for j in range(Tp[a_best, s], Tp[a_best, s + 1]):
                acc += Tv[j] * h[Ti[j]]
            new_alpha[s] = R[s, a_best] + gamma * acc
    a = a_best
    ql = best_ql
    qu = best_qu
    st[ST_STAMP] = stamp
    node_touch[n] = stamp
    st[ST_BACKUPS] += 1
    if ql > lb_here + tol:
        k = st[ST_NALPHA]
        alphas[k, :] = new_alpha
        alpha_act[k] = a
        alive[k] = True
        used[k] = stamp
        st[ST_NALPHA] = k + 1
        st[ST_NALIVE] += 1
        node_bestk[n] = k
        node_aseen[n] = k + 1
        lb_here = ql
    ub = min(qu, ub_here, node_ub[n])
    if ub < lb_here:
        ub = lb_here
    if ub < ub_here - tol:
        old = node_point[n]
        if old >= 0:
            p_alive[old] = False
            st[ST_PDEAD] += 1
        i = st[ST_NPTS]
        s0 = node_bs[n]
        m = node_bl[n]
        v0 = 0.0
        for t in range(m):
            v0 += corner[pool_idx[s0 + t]] * pool_val[s0 + t]
        p_node[i] = n
        p_ptr[i, 0] = s0
        p_ptr[i, 1] = s0 + m
        p_gap[i] = ub - v0
        p_alive[i] = True
        first = pool_idx[s0]
        nxt[i] = head[first]
        head[first] = i
        node_point[n] = i
        st[ST_NPTS] = i + 1
    node_lb[n] = lb_here
    node_ub[n] = ub
    return DONE


@njit(cache=True)
def run_trials(st, sf, path, max_trials, max_backups, precision, tol, kappa, max_depth, targets_enabled, pdead_limit,
               alive_limit, expanded, tree):
    """SARSOP trials (descent by upper-bound action and weighted excess gap with (L, U) targets, then
    bottom-up backups of the path) until ``max_trials`` more trials or ``max_backups`` more backups are
    done (checked between trials: numba has no CPU clock), the root gap is <= ``precision``,
    or Python is needed (see the return codes); ``st``/``sf``/``path`` carry a trial across such returns.
    Phase 0 = between trials, 1 = descending, 2 = backing up path[ST_POS] and then the nodes above it.
    Each pass of the loop does one step (one backup or one descent move), so backup_update is inlined once."""
    node_bs, aptr, e_child, e_prob, node_rew, node_lb, node_ub, node_qlb, node_qub = \
        tree[0], tree[4], tree[5], tree[6], tree[8], tree[9], tree[10], tree[11], tree[12]
    gamma = tree[37]
    done = 0
    b_start = st[ST_BACKUPS]
    while True:
        phase = st[ST_PHASE]
        # a backup is due: a node Python has just expanded (visited while descending) or the next path node
        if (phase == 1 and st[ST_PENDING] == 1) or (phase == 2 and st[ST_POS] >= 0):
            code = backup_update(st[ST_NODE] if phase == 1 else path[st[ST_POS]], st, tol, tree)
            if code != DONE:
                return code
            if phase == 1:
                st[ST_PENDING] = 0
            else:
                st[ST_POS] -= 1
            continue
        if phase == 0:
            if node_ub[0] - node_lb[0] <= precision:
                return CONVERGED
            if done >= max_trials or st[ST_BACKUPS] - b_start >= max_backups:
                return DONE
            if st[ST_PDEAD] > pdead_limit and st[ST_PDEAD] > st[ST_NPTS] // 2:
                return MAINTENANCE
            if st[ST_NALIVE] > alive_limit:
                return MAINTENANCE
            eps = max(kappa * (node_ub[0] - node_lb[0]), precision * 0.5)
            sf[SF_EPS] = eps
            sf[SF_L] = node_lb[0]
            sf[SF_U] = node_lb[0] + eps
            sf[SF_GINV] = 1.0
            sf[SF_LB0] = node_lb[0]
            sf[SF_UB0] = node_ub[0]
            st[ST_NODE] = 0
            st[ST_PARENT] = -1
            st[ST_DEPTH] = 0
            st[ST_PLEN] = 0
            st[ST_PENDING] = 0
            st[ST_PHASE] = 1
        elif phase == 1:
            n = st[ST_NODE]
            t = st[ST_DEPTH]
            ginv = sf[SF_GINV]
            eps = sf[SF_EPS]
            thr = eps * ginv
            stop = False
            if not expanded[n]:
                # leaves whose stored bounds already stop the trial are not expanded
                if node_ub[n] - node_lb[n] <= thr or t >= max_depth:
                    stop = True
                elif node_bs[n] < 0:
                    st[ST_NEED] = st[ST_PARENT]
                    return NEED_BELIEFS
                else:
                    st[ST_NEED] = n
                    st[ST_PENDING] = 1  # back n up (and go on from it) once Python has expanded it
                    return NEED_EXPAND
            if not stop:
                lb = node_lb[n]
                ub = node_ub[n]
                L = sf[SF_L]
                U = sf[SF_U]
                if ub - lb <= thr or (st[ST_TARGETS] == 1 and t > 0 and ub <= L and ub <= max(U, lb + thr)) \
                        or t >= max_depth:
                    stop = True
                else:
                    status, child, L, U = trial_step(n, t, node_qub, node_qlb, node_rew, aptr, e_child, e_prob,
                                                     node_lb, node_ub, eps, ginv, gamma, L, U)
                    sf[SF_L] = L
                    sf[SF_U] = U
                    if status == 1:
                        stop = True
                    else:
                        path[st[ST_PLEN]] = n
                        st[ST_PLEN] += 1
                        if status == 2:
                            stop = True
                        else:
                            st[ST_PARENT] = n
                            st[ST_NODE] = child
                            st[ST_DEPTH] = t + 1
                            if gamma < 1.0:
                                sf[SF_GINV] = ginv / gamma
            if stop:
                if expanded[n] and (st[ST_PLEN] == 0 or path[st[ST_PLEN] - 1] != n):
                    path[st[ST_PLEN]] = n
                    st[ST_PLEN] += 1
                st[ST_POS] = st[ST_PLEN] - 1
                st[ST_PHASE] = 2
        else:  # phase 2 with the whole path backed up: the trial is over
            st[ST_TRIALS] += 1
            done += 1
            if targets_enabled:
                # a targeted trial that changed nothing at the root makes the next one use the plain gap rule
                changed = node_lb[0] != sf[SF_LB0] or node_ub[0] != sf[SF_UB0]
                st[ST_TARGETS] = 1 if changed else 0
            st[ST_PHASE] = 0
