"""The belief tree: belief updates, node storage and growth, expansion, eviction of leaf beliefs.

The tree is a DAG rooted at b0: a child b^{a,o} that equals a belief already stored (same 64-bit hash of
support and values rounded to 1e-11, checked on a hit) is that node. Beliefs are sparse (sorted states +
probabilities) because the large benchmarks keep small supports; they live in one pool that only grows, so
that sawtooth points can reference them. Under a memory cap the beliefs of unexpanded leaves leave the pool;
their cached bounds stay valid and the belief is recomputed from a parent when needed again.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from trimpomdp.solvers.sarsop.state import Model, Scratch, Tree, grown, new_edges, new_nodes, new_tree

#: children with P(o | b, a) at or below this are dropped from the tree
MIN_OBS_PROB = 1e-12


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
def successors(bi, bv, model, min_prob, scratch):
    """Every child b^{a,o} of belief (bi, bv) with P(o | b, a) > min_prob, grouped by action.

    Returns (act_ptr (A+1), obs, prob, child_ptr, child_idx, child_val, reward (A)); children of action a
    are act_ptr[a]..act_ptr[a+1]. Uses ``scratch.pred/touched/pz/cnt``.
    """
    Tp, Ti, Tv, Op, Oi, Ov = model.Tp, model.Ti, model.Tv, model.Op, model.Oi, model.Ov
    R = model.R
    pred, touched, pz, cnt = scratch.pred, scratch.touched, scratch.pz, scratch.cnt
    A = Tp.shape[0]
    n_b = bi.shape[0]
    act_ptr = np.zeros(A + 1, np.int64)
    olist = np.empty(16, np.int64)  # the observations reached, so that nothing loops over all Z of them
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
        lo = pred.shape[0]
        hi = -1
        for k in range(n_b):
            s = bi[k]
            w = bv[k]
            r += R[s, a] * w
            for j in range(Tp[a, s], Tp[a, s + 1]):
                sp = Ti[j]
                if pred[sp] == 0.0:
                    touched[nt] = sp
                    nt += 1
                    lo = min(lo, sp)
                    hi = max(hi, sp)
                pred[sp] += w * Tv[j]
        rew[a] = r
        if hi - lo < 8 * nt:
            # a dense prediction (a MOMDP's full-support beliefs): collect it in order, no sort needed
            tl = touched[:nt]
            q = 0
            for sp in range(lo, hi + 1):
                if pred[sp] != 0.0:
                    tl[q] = sp
                    q += 1
        else:
            tl = np.sort(touched[:nt])
        no = 0
        for k in range(nt):
            sp = tl[k]
            p = pred[sp]
            for j in range(Op[a, sp], Op[a, sp + 1]):
                o = Oi[j]
                if cnt[o] == 0:
                    olist = _grow_i(olist, no + 1)
                    olist[no] = o
                    no += 1
                pz[o] += p * Ov[j]
                cnt[o] += 1
        ol = np.sort(olist[:no])
        # lay out the children of this action
        for i in range(no):
            o = ol[i]
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
        for i in range(no):
            pz[ol[i]] = 0.0
            cnt[ol[i]] = 0
        act_ptr[a + 1] = nc
        ne = cptr[nc]
    return (act_ptr, obs[:nc].copy(), prob[:nc].copy(), cptr[: nc + 1].copy(), cidx[:ne].copy(),
            cval[:ne].copy(), rew)


@njit(cache=True)
def successors_momdp(bi, bv, model, min_prob, scratch):
    """``successors`` on a MOMDP (X > 1), same output: the predicted belief is read block by block over the
    visible values x' the action can reach from b's x (``Model.xr_idx``), and the children come out in the
    order of their flat observation o * X + x' without collecting or sorting what was touched (half the
    time of the general version on RockSample[11,11]'s 2,048-long beliefs)."""
    Tp, Ti, Tv, Op, Oi, Ov, R = model.Tp, model.Ti, model.Tv, model.Op, model.Oi, model.Ov, model.R
    X, Y, Zo = model.X, model.Y, model.Zo
    xr_ptr, xr_idx = model.xr_ptr, model.xr_idx
    pred, pz, cnt = scratch.pred, scratch.pz, scratch.cnt
    A = Tp.shape[0]
    n_b = bi.shape[0]
    x = bi[0] // Y
    act_ptr = np.zeros(A + 1, np.int64)
    obs = np.empty(16, np.int64)
    prob = np.empty(16, np.float64)
    cptr = np.zeros(17, np.int64)
    cidx = np.empty(n_b * 4, np.int64)
    cval = np.empty(n_b * 4, np.float64)
    rew = np.zeros(A)
    nc = 0
    for a in range(A):
        r = 0.0
        for k in range(n_b):
            s = bi[k]
            w = bv[k]
            r += R[s, a] * w
            for j in range(Tp[a, s], Tp[a, s + 1]):
                pred[Ti[j]] += w * Tv[j]
        rew[a] = r
        p0 = xr_ptr[a, x]
        p1 = xr_ptr[a, x + 1]
        for jx in range(p0, p1):
            y0 = xr_idx[jx] * Y
            for sp in range(y0, y0 + Y):
                p = pred[sp]
                if p != 0.0:
                    for j in range(Op[a, sp], Op[a, sp + 1]):
                        o = Oi[j]
                        pz[o] += p * Ov[j]
                        cnt[o] += 1
        # children in order of flat observation o * X + x' (o outer, x' ascending)
        start = nc
        for o in range(Zo):
            for jx in range(p0, p1):
                of = o * X + xr_idx[jx]
                if cnt[of] > 0 and pz[of] > min_prob:
                    obs = _grow_i(obs, nc + 1)
                    prob = _grow_f(prob, nc + 1)
                    cptr = _grow_i(cptr, nc + 2)
                    obs[nc] = of
                    prob[nc] = pz[of]
                    cptr[nc + 1] = cptr[nc] + cnt[of]
                    cnt[of] = nc
                    nc += 1
                else:
                    cnt[of] = -1
        total = cptr[nc]
        cidx = _grow_i(cidx, total)
        cval = _grow_f(cval, total)
        fill = cptr[start:nc].copy()
        for jx in range(p0, p1):
            y0 = xr_idx[jx] * Y
            for sp in range(y0, y0 + Y):
                p = pred[sp]
                if p != 0.0:
                    for j in range(Op[a, sp], Op[a, sp + 1]):
                        c = cnt[Oi[j]]
                        if c >= 0:
                            q = fill[c - start]
                            cidx[q] = sp
                            cval[q] = p * Ov[j] / prob[c]
                            fill[c - start] = q + 1
                pred[sp] = 0.0
        for c in range(start, nc):
            z = 0.0
            for q in range(cptr[c], cptr[c + 1]):
                z += cval[q]
            for q in range(cptr[c], cptr[c + 1]):
                cval[q] /= z
        for o in range(Zo):
            for jx in range(p0, p1):
                of = o * X + xr_idx[jx]
                pz[of] = 0.0
                cnt[of] = 0
        act_ptr[a + 1] = nc
    ne = cptr[nc]
    return (act_ptr, obs[:nc].copy(), prob[:nc].copy(), cptr[: nc + 1].copy(), cidx[:ne].copy(),
            cval[:ne].copy(), rew)


@njit(cache=True)
def belief_hashes(cptr, cidx, cval):
    """A 64-bit hash per belief ``cidx/cval[cptr[j]:cptr[j + 1]]`` of its support and its values rounded to
    1e-11 (``belief_key``), computed in one pass instead of hashing a byte copy of each in Python."""
    n = cptr.shape[0] - 1
    out = np.empty(n, np.int64)
    for c in range(n):
        h = np.uint64(0x9E3779B97F4A7C15) * np.uint64(cptr[c + 1] - cptr[c] + 1)
        for q in range(cptr[c], cptr[c + 1]):
            v = np.uint64(np.int64(np.floor(cval[q] * 1e11 + 0.5)))
            z = (np.uint64(cidx[q]) * np.uint64(0xBF58476D1CE4E5B9)) ^ v
            h = (h ^ z) * np.uint64(0x94D049BB133111EB)
            h ^= h >> np.uint64(31)
        out[c] = np.int64(h)
    return out


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
def evict_leaves(order, tree, to_free):
    """Drop the pool beliefs of unexpanded children: first those under pruned actions (never read again),
    then those of the expanded nodes in ``order`` (least recently backed up first) until ``to_free`` entries
    are freed; marks them with ``b_start = -1`` and returns the count."""
    act_ptr, child, expanded = tree.act_ptr, tree.child, tree.expanded
    b_start, b_len = tree.b_start, tree.b_len
    A = act_ptr.shape[1] - 1
    freed = 0
    for t in range(order.shape[0]):
        n = order[t]
        cut = tree.lower[n] - 1e-9 * (1.0 + abs(tree.lower[n]))  # as in backup_update
        for a in range(A):
            if tree.q_upper[n, a] < cut:
                for e in range(act_ptr[n, a], act_ptr[n, a + 1]):
                    c = child[e]
                    if not expanded[c] and b_start[c] >= 0:
                        b_start[c] = -1
                        freed += b_len[c]
    for t in range(order.shape[0]):
        if freed >= to_free:
            break
        n = order[t]
        for e in range(act_ptr[n, 0], act_ptr[n, A]):
            c = child[e]
            if not expanded[c] and b_start[c] >= 0:
                b_start[c] = -1
                freed += b_len[c]
    return freed


@njit(cache=True)
def compact_pool(live, tree):
    """Slide the beliefs of ``live`` nodes (sorted by pool offset) to the front of the pool, in place;
    returns the new pool length."""
    b_start, b_len, pool_idx, pool_val = tree.b_start, tree.b_len, tree.pool_idx, tree.pool_val
    pos = 0
    for t in range(live.shape[0]):
        n = live[t]
        s0 = b_start[n]
        m = b_len[n]
        if s0 != pos:
            for j in range(m):
                pool_idx[pos + j] = pool_idx[s0 + j]
                pool_val[pos + j] = pool_val[s0 + j]
            b_start[n] = pos
        pos += m
    return pos


def belief_key(bi, bv) -> int:
    """Beliefs are merged by a 64-bit hash of (support, values rounded to 1e-11), checked on a hit."""
    return int(belief_hashes(np.array([0, bi.shape[0]], np.int64), bi, bv)[0])


class BeliefTree:
    """Nodes, edges and belief pool (``arrays``, a ``state.Tree``, replaced when an array is reallocated),
    the index from belief hashes to nodes (a Python dict, hashing the belief's bytes) and the counts of
    what is in use."""

    def __init__(self, model: Model, scratch: Scratch, A: int):
        self.model, self.scratch, self.A = model, scratch, A
        self.arrays: Tree = new_tree(A)
        self.n_nodes = self.n_edges = self.pool_n = 0
        self.index: dict[int, int] = {}

    def add(self, bi, bv, key) -> int:
        """A new node holding belief (bi, bv), indexed under ``key`` unless None."""
        n = self.n_nodes
        if n == self.arrays.b_start.shape[0]:
            self.arrays = grown(self.arrays, new_nodes(2 * n, self.A), n)
        self.store_belief(n, bi, bv)
        self.n_nodes += 1
        if key is not None:
            self.index[key] = n
        return n

    def store_belief(self, n, bi, bv):
        """Append node n's belief to the pool (new nodes, and evicted ones recomputed)."""
        t = self.arrays
        m = bi.shape[0]
        end = self.pool_n + m
        if end > t.pool_idx.shape[0]:
            # the pool is most of the memory: grow it in place (realloc/mremap, no transient copy); nothing
            # holds a view of it across this call
            size = max(end, t.pool_idx.shape[0] + t.pool_idx.shape[0] // 2)
            t.pool_idx.resize(size, refcheck=False)
            t.pool_val.resize(size, refcheck=False)
        t.pool_idx[self.pool_n: end] = bi
        t.pool_val[self.pool_n: end] = bv
        t.b_start[n] = self.pool_n
        t.b_len[n] = m
        self.pool_n = end

    def belief(self, n):
        t = self.arrays
        s = t.b_start[n]
        return t.pool_idx[s: s + t.b_len[n]], t.pool_val[s: s + t.b_len[n]]

    def same_belief(self, n, bi, bv) -> bool:
        t = self.arrays
        return same_belief(t.pool_idx, t.pool_val, t.b_start[n], t.b_len[n], bi, bv, 1e-10)

    def successors(self, n):
        """Every child belief of node n, grouped by action (see ``successors``)."""
        bi, bv = self.belief(n)
        kernel = successors_momdp if self.model.X > 1 else successors
        return kernel(bi, bv, self.model, MIN_OBS_PROB, self.scratch)

    def expand(self, n):
        """Create (or find) node n's children and its edges to them."""
        act_ptr, obs, prob, cptr, cidx, cval, rew = self.successors(n)
        m = obs.shape[0]
        ids = np.empty(m, np.int64)
        index = self.index
        keys = belief_hashes(cptr, cidx, cval).tolist()
        for j in range(m):
            c0, c1 = int(cptr[j]), int(cptr[j + 1])
            ci = cidx[c0: c1]
            cv = cval[c0: c1]
            key = keys[j]
            c = index.get(key)
            if c is not None and self.arrays.b_start[c] < 0:
                self.store_belief(c, ci, cv)  # an evicted belief met again: store it back
            elif c is not None and not self.same_belief(c, ci, cv):
                c = -1  # hash collision: keep the beliefs apart (the new one is not indexed)
            if c is None or c < 0:
                c = self.add(ci, cv, key if c is None else None)
            ids[j] = c
        e0 = self.n_edges
        t = self.arrays
        if e0 + m > t.child.shape[0]:
            self.arrays = t = grown(t, new_edges(max(e0 + m, t.child.shape[0] + t.child.shape[0] // 2)), e0)
        t.child[e0: e0 + m] = ids
        t.prob[e0: e0 + m] = prob
        t.obs[e0: e0 + m] = obs
        self.n_edges += m
        t.act_ptr[n] = act_ptr + e0
        t.reward[n] = rew
        t.expanded[n] = True

    def materialise(self, n):
        """Recompute the evicted beliefs among the children of expanded node n (same order as expand)."""
        _, obs, _, cptr, cidx, cval, _ = self.successors(n)
        t = self.arrays
        e0 = t.act_ptr[n, 0]
        assert obs.shape[0] == t.act_ptr[n, -1] - e0, "successors changed between expansion and recomputation"
        for j in range(obs.shape[0]):
            c = int(t.child[e0 + j])
            if t.b_start[c] < 0:
                self.store_belief(c, cidx[cptr[j]: cptr[j + 1]].copy(), cval[cptr[j]: cptr[j + 1]].copy())

    def evict(self, to_free: int):
        """Drop leaf beliefs (see ``evict_leaves``) until about ``to_free`` pool entries are free, compact the
        pool and give the memory back. Beliefs move: whoever points into the pool must follow ``b_start``."""
        t = self.arrays
        N = self.n_nodes
        exp = np.flatnonzero(t.expanded[:N])
        order = exp[np.argsort(t.last_backup[exp], kind="stable")]
        evict_leaves(order, t, to_free)
        live = np.flatnonzero(t.b_start[:N] >= 0)
        live = live[np.argsort(t.b_start[live], kind="stable")]
        self.pool_n = int(compact_pool(live, t))
        size = max(1024, self.pool_n + self.pool_n // 8)
        t.pool_idx.resize(size, refcheck=False)
        t.pool_val.resize(size, refcheck=False)

    def nbytes(self) -> int:
        """Bytes held by the arrays and (roughly) the index."""
        return sum(a.nbytes for a in self.arrays) + 100 * len(self.index)
