"""Pruning: keeping the alpha vectors and sawtooth points few, and making room for more.

Vectors that were nobody's maximiser for a while are dropped (each expanded node's best is kept); points
replaced at their node pile up, and once they are many the points dominated by the others are dropped. Both
sets are then compacted, which renumbers what the tree's nodes remember of them. Action pruning happens
inside the backup (``backup.backup_update``); leaf beliefs leave memory in ``tree.BeliefTree.evict``.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from trimpomdp.solvers.sarsop.backup import bucket, lower_value, upper_value
from trimpomdp.solvers.sarsop.state import Alphas, Points, Tree, grown, link_alphas, new_alpha_rows, new_point_rows


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
    """Rebuild the buckets (newest first, ``state.Points``) of points 0..n_pts-1."""
    head, nxt, ptr = points.head, points.next, points.ptr
    head[:] = -1
    for i in range(n_pts):
        key = bucket(points, pool_idx[ptr[i, 0]])
        nxt[i] = head[key]
        head[key] = i
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


def prune_alphas(alphas: Alphas, st, tree: Tree, n_nodes: int, delay: int, n_floor: int, Y: int, protect=True,
                 leaves=False):
    """Drop vectors that were nobody's maximiser for ``delay`` backups, except the first ``n_floor`` (the
    blind policies' vectors, the floor every refresh starts from), the root's best and, with ``protect``,
    the best vector of every expanded node -- of every node with ``leaves``.

    Staleness alone is not enough: a vector is "act, then continue with the best vectors of the children"
    and the greedy policy only achieves its value if, at each child belief, the kept set still holds
    something as good. A node's best vector only ever improves at its own belief, so keeping it keeps that
    promise on the expanded part of the tree (dropping it made Tiger's policy worth -14 against a bound of
    19.37). A flat model's leaves, far more numerous, only rely on recent use: any vector is defined on
    every state, and the ones kept serve them well enough. A MOMDP's vectors of a visible value come only
    from beliefs with that value, so there the leaves keep their best vectors too (``leaves``: SARSOP's
    rule, a vector lives while it is the best at some belief of the tree); without it a RockSample[7,8]
    policy was worth 17.0 against a bound of 20.98 (20.7 against 20.7 with it). Under memory pressure
    ``protect=False`` drops the promise.
    """
    n, stamp = int(st["n_alpha"]), int(st["stamp"])
    if protect:
        bk = tree.best_alpha[:n_nodes]
        if not leaves:
            bk = bk[tree.expanded[:n_nodes]]
        alphas.used[bk[bk >= 0]] = stamp
    mark_used_at(np.zeros(1, np.int64), tree, alphas, n, stamp, Y)
    stale = alphas.alive[:n] & (alphas.used[:n] < stamp - delay)
    stale[:n_floor] = False
    alphas.alive[:n][stale] = False
    st["n_alive"] = int(alphas.alive[:n].sum())


def compact_alphas(alphas: Alphas, st, tree: Tree, n_nodes: int, shrink=False) -> Alphas:
    """Move the live vectors to the front, renumbering the nodes' references (a node whose best was dropped
    rescans everything at its next refresh); ``shrink`` also gives the freed rows back to the system."""
    live = np.flatnonzero(alphas.alive[: st["n_alpha"]])
    remap = np.full(alphas.alive.shape[0], -1, np.int64)
    remap[live] = np.arange(live.size)
    for name in ("vectors",) + tuple(new_alpha_rows(0)):  # the fields with one row per vector
        arr = getattr(alphas, name)
        arr[: live.size] = arr[live]
    alphas.alive[:] = False
    alphas.alive[: live.size] = True
    st["n_alpha"] = live.size
    link_alphas(alphas, live.size)
    bk = tree.best_alpha[:n_nodes]
    tree.best_alpha[:n_nodes] = np.where(bk >= 0, remap[np.maximum(bk, 0)], -1)
    tree.alphas_seen[:n_nodes] = np.searchsorted(live, tree.alphas_seen[:n_nodes])
    if not shrink:
        return alphas
    rows = min(alphas.alive.shape[0], max(64, live.size + live.size // 4))
    alphas.vectors.resize((rows, alphas.vectors.shape[1]), refcheck=False)
    return grown(alphas, new_alpha_rows(rows), live.size)


def make_alpha_room(alphas: Alphas, st, tree: Tree, n_nodes: int) -> Alphas:
    """Room for one more vector: compact when a quarter of the rows are dead, else grow by half."""
    n = int(st["n_alpha"])
    if alphas.alive[:n].sum() < 0.75 * n:
        return compact_alphas(alphas, st, tree, n_nodes)
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
    for arr in (points.ptr, points.node, points.gap, points.top):
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
