"""Pruning: keeping the alpha vectors and sawtooth points few, and making room for more.

Vectors that were nobody's maximiser for a while are dropped (each expanded node's best is kept); points
replaced at their node pile up, and once they are many the points dominated by the others are dropped. Both
sets are then compacted, which renumbers what the tree's nodes remember of them. Action pruning happens
inside the backup (``backup.backup_update``); leaf beliefs leave memory in ``tree.BeliefTree.evict``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from trimpomdp.solvers.sarsop.backup import lower_value, upper_value
from trimpomdp.solvers.sarsop.state import Alphas, Points, Tree, grown, new_alpha_rows, new_point_rows


@njit(cache=True)
def prune_dominated_points(points, n_pts, pool_idx, pool_val, dense):
    """Mark dead every point whose own value is no better than the sawtooth of the other live points at
    its belief (SARSOP's upper-bound pruning); returns how many were dropped. Checked newest first, so of
    two equal points the older one goes."""
    corner, ptr, gap, alive = points.corner, points.ptr, points.gap, points.alive
    dropped = 0
    for i in range(n_pts - 1, -1, -1):
        if not alive[i]:
            continue
        alive[i] = False
        ci = pool_idx[ptr[i, 0]:ptr[i, 1]]
        cv = pool_val[ptr[i, 0]:ptr[i, 1]]
        v0 = 0.0
        for t in range(ci.shape[0]):
            v0 += corner[ci[t]] * cv[t]
        u = upper_value(ci, cv, points, pool_idx, pool_val, dense, 0)
        if u - v0 <= gap[i] + 1e-12 * max(1.0, abs(v0)):
            dropped += 1
        else:
            alive[i] = True
    return dropped


@njit(cache=True)
def link_points(points, n_pts, pool_idx):
    """Rebuild the buckets (newest first per first support state) of points 0..n_pts-1."""
    head, nxt, ptr = points.head, points.next, points.ptr
    head[:] = -1
    for i in range(n_pts):
        s0 = pool_idx[ptr[i, 0]]
        nxt[i] = head[s0]
        head[s0] = i
    for i in range(n_pts, nxt.shape[0]):
        nxt[i] = -1


@njit(cache=True)
def mark_used_at(nodes, tree, alphas, n_alpha, stamp, Y):
    """Stamp the vector that is best at each of the given nodes (witnesses kept by pruning)."""
    for t in range(nodes.shape[0]):
        n = nodes[t]
        s0 = tree.b_start[n]
        s1 = s0 + tree.b_len[n]
        v, k = lower_value(tree.pool_idx[s0:s1], tree.pool_val[s0:s1], alphas, n_alpha, Y)
        if k >= 0:
            alphas.used[k] = stamp


@njit(cache=True)
def keep_successors(keep, alive, succ_start, succ_len, succ):
    """Extend ``keep`` (in place) to every live vector reachable through successor lists."""
    stack = np.empty(keep.shape[0], np.int64)
    top = 0
    for k in range(keep.shape[0]):
        if keep[k]:
            stack[top] = k
            top += 1
    while top > 0:
        top -= 1
        k = stack[top]
        for q in range(succ_start[k], succ_start[k] + succ_len[k]):
            c = succ[q]
            if c >= 0 and alive[c] and not keep[c]:
                keep[c] = True
                stack[top] = c
                top += 1


def prune_alphas(alphas: Alphas, st, tree: Tree, n_nodes: int, delay: int, n_floor: int, Y: int, protect=True):
    """Drop vectors that were nobody's maximiser for ``delay`` backups, except the first ``n_floor`` (the
    blind policies' vectors, the floor every refresh starts from), the root's best and, with ``protect``,
    the best vector of every expanded node and the successors of every vector kept.

    Staleness alone is not enough: a vector is "act, then continue with the vectors of the outcomes" and
    the greedy policy only achieves its value if, at each next belief, the kept set still holds something
    as good. Keeping every kept vector's successors keeps that promise everywhere: then V_policy(b) >=
    max_k alpha_k . b by induction over the steps (dropping the best vectors of expanded nodes made Tiger's
    policy worth -14 against a bound of 19.37; dropping successors made a RockSample[7,8] MOMDP policy worth
    17.0 against 20.98). Under memory pressure ``protect=False`` drops that guarantee.
    """
    n, stamp = int(st["n_alpha"]), int(st["stamp"])
    if protect:
        bk = tree.best_alpha[:n_nodes][tree.expanded[:n_nodes]]
        alphas.used[bk[bk >= 0]] = stamp
    mark_used_at(np.zeros(1, np.int64), tree, alphas, n, stamp, Y)
    alive = alphas.alive[:n]
    keep = alive & (alphas.used[:n] >= stamp - delay)
    keep[:n_floor] = alive[:n_floor]
    if protect:
        keep_successors(keep, alive, alphas.succ_start[:n], alphas.succ_len[:n], alphas.succ)
    alive &= keep
    st["n_alive"] = int(alive.sum())


def compact_alphas(alphas: Alphas, st, tree: Tree, n_nodes: int, shrink=False) -> Alphas:
    """Move the live vectors to the front, renumbering the nodes' references (a node whose best was dropped
    rescans everything at its next refresh); ``shrink`` also gives the freed rows back to the system."""
    live = np.flatnonzero(alphas.alive[: st["n_alpha"]])
    remap = np.full(alphas.alive.shape[0], -1, np.int64)
    remap[live] = np.arange(live.size)
    # the successor pool: the lists of live vectors, renumbered (dropped successors become -1), packed
    lens = alphas.succ_len[live]
    total = int(lens.sum())
    pos = np.repeat(alphas.succ_start[live] - (np.cumsum(lens) - lens), lens) + np.arange(total)
    old = alphas.succ[pos]
    alphas.succ[:total] = np.where(old >= 0, remap[np.maximum(old, 0)], -1)
    alphas.succ_start[live] = np.cumsum(lens) - lens
    st["n_succ"] = total
    for name in alphas._fields:
        if name != "succ":
            arr = getattr(alphas, name)
            arr[: live.size] = arr[live]
    alphas.alive[:] = False
    alphas.alive[: live.size] = True
    st["n_alpha"] = live.size
    bk = tree.best_alpha[:n_nodes]
    tree.best_alpha[:n_nodes] = np.where(bk >= 0, remap[np.maximum(bk, 0)], -1)
    tree.alphas_seen[:n_nodes] = np.searchsorted(live, tree.alphas_seen[:n_nodes])
    if not shrink:
        return alphas
    rows = min(alphas.alive.shape[0], max(64, live.size + live.size // 4))
    alphas.vectors.resize((rows, alphas.vectors.shape[1]), refcheck=False)
    alphas.succ.resize(max(1024, total + total // 4), refcheck=False)
    return grown(alphas, new_alpha_rows(rows), live.size)


def make_alpha_room(alphas: Alphas, st, tree: Tree, n_nodes: int, max_succ: int) -> Alphas:
    """Room for one more vector and its successors: compact when a quarter of the rows are dead, else grow
    the rows (or the successor pool) by half."""
    n = int(st["n_alpha"])
    if alphas.alive[:n].sum() < 0.75 * n:
        alphas = compact_alphas(alphas, st, tree, n_nodes)
    if int(st["n_succ"]) + max_succ > alphas.succ.shape[0]:
        alphas.succ.resize(int(st["n_succ"]) + max_succ + alphas.succ.shape[0] // 2, refcheck=False)
    n = int(st["n_alpha"])
    if n < alphas.vectors.shape[0]:
        return alphas
    rows = alphas.vectors.shape[0] + alphas.vectors.shape[0] // 2
    alphas.vectors.resize((rows, alphas.vectors.shape[1]), refcheck=False)  # in place, no transient copy
    return grown(alphas, new_alpha_rows(rows), n)


def make_point_room(points: Points, st) -> Points:
    return grown(points, new_point_rows(2 * points.gap.shape[0]), int(st["n_pts"]))


def compact_points(points: Points, st, tree: Tree, n_nodes: int, dense):
    """Drop dominated and replaced points so that bucket scans stop walking them.

    Point indices change, so every node rescans all points at its next refresh (its stored upper value is
    kept as a cap, so this never loosens a bound)."""
    n = int(st["n_pts"])
    prune_dominated_points(points, n, tree.pool_idx, tree.pool_val, dense)
    live = np.flatnonzero(points.alive[:n])
    for arr in (points.ptr, points.node, points.gap):
        arr[: live.size] = arr[live]
    points.alive[:n] = False
    points.alive[: live.size] = True
    remap = np.full(n, -1, np.int64)
    remap[live] = np.arange(live.size)
    own = tree.point[:n_nodes]
    has = own >= 0
    own[has] = remap[own[has]]
    link_points(points, live.size, tree.pool_idx)
    st["n_pts"] = live.size
    st["p_dead"] = 0
    tree.points_seen[:] = 0


def follow_pool(points: Points, st, tree: Tree):
    """Re-point the points at their nodes' beliefs after the pool was compacted."""
    n = int(st["n_pts"])
    points.ptr[:n, 0] = tree.b_start[points.node[:n]]
    points.ptr[:n, 1] = points.ptr[:n, 0] + tree.b_len[points.node[:n]]
