"""What SARSOP's kernels share with Python, as named structures.

Arrays are grouped by what they describe: the model, the belief tree, the alpha vectors (lower bound), the
sawtooth points (upper bound) and scratch space. Each group is a NamedTuple, which numba passes as one
argument and reads by field name; reallocating an array means replacing it in its group (``_replace``), so
the next kernel call sees it. The scalars that kernels change (where a trial stands, counters) are the
fields of one numpy record, ``STATE``: kernels update ``state[0].field`` in place and Python reads the same
names. The ``new_*`` functions are the one place that gives each array its type, shape and initial value;
growth reuses them, so a field left out of either the class or its ``new_*`` fails loudly.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from trimpomdp.solvers.sparse import SparseModel

i8, f8 = np.int64, np.float64

#: what run_trials and backup_update return: finished, or what Python must do before calling again (the
#: kernel then resumes where it stopped)
DONE, CONVERGED, NEED_EXPAND, NEED_BELIEFS, NEED_ALPHA_ROOM, NEED_POINT_ROOM, MAINTENANCE = range(7)

#: ``state[0]``: where the current trial stands (run_trials may hand control back to Python mid-trial) and
#: the counters that kernels advance
STATE = np.dtype([
    ("phase", i8),        # sample.BETWEEN trials, DESCENDING, or BACKING_UP the path
    ("node", i8),         # where the descent is
    ("parent", i8),       # the node it came from (-1 at the root)
    ("depth", i8),
    ("path_len", i8),     # nodes on ``path``, root first
    ("pos", i8),          # the path entry backed up next
    ("pending", np.bool_),  # back ``node`` up before going on (Python has just expanded it)
    ("targeted", np.bool_),  # this trial also stops at SARSOP's (L, U) targets
    ("need", i8),         # the node a NEED_EXPAND / NEED_BELIEFS request is about
    ("ginv", f8),         # gamma^-depth
    ("L", f8), ("U", f8),  # the targets propagated to ``node``
    ("eps", f8),          # the trial's gap threshold at the root
    ("lb0", f8), ("ub0", f8),  # root bounds when the trial started
    ("trials", i8), ("backups", i8),
    ("stamp", i8),        # one tick per backup: when a vector was last useful, a node last backed up
    ("n_alpha", i8),      # vector rows in use (dead ones included)
    ("n_alive", i8),      # live vectors
    ("n_pts", i8),        # point rows in use (dead ones included)
    ("p_dead", i8),       # dead points among them
], align=True)


def new_state(targets: bool) -> np.ndarray:
    state = np.zeros(1, STATE)
    state[0]["targeted"] = targets
    return state


class Settings(NamedTuple):
    """The constants of one solve that the trial loop reads."""

    precision: float  # target gap at the root
    tol: float  # a backup stores a vector/point only when it improves the bound by more than this
    kappa: float  # a trial aims to shrink gaps below this fraction of the root gap
    max_depth: int
    targets: bool  # SARSOP's (L, U) targets on
    dead_points: int  # dead points past which (and past half the points) Python compacts them


class Model(NamedTuple):
    """The sparse model (``sparse.SparseModel``) as the kernels read it, with its mixed observability.

    Joint states are s = x * Y + y and flat observations o * X + x' (``pomdp.momdp``); a flat POMDP has
    X = 1. Alpha vectors are Y long and belong to one visible value; the visible values x' that action a
    can lead to from x are ``xr_idx[xr_ptr[a, x]:xr_ptr[a, x + 1]]``, and ``floor[x]`` is a vector of x
    that is never pruned (a backup's default for an outcome the belief cannot reach)."""

    Tp: np.ndarray
    Ti: np.ndarray
    Tv: np.ndarray
    Op: np.ndarray
    Oi: np.ndarray
    Ov: np.ndarray
    R: np.ndarray  # (S, A)
    gamma: float
    Z: int  # flat observations, Zo * X
    X: int
    Y: int
    Zo: int
    xr_ptr: np.ndarray  # (A, X + 1)
    xr_idx: np.ndarray
    floor: np.ndarray  # (X,)


def reachable_visible(sm: SparseModel) -> tuple[np.ndarray, np.ndarray]:
    """(xr_ptr, xr_idx): for each action and visible value x, the sorted visible values x' that some
    transition from a state (x, y) reaches."""
    X, Y, A = sm.X, sm.Y, sm.A
    ptr = np.zeros((A, X + 1), i8)
    idx = []
    for a in range(A):
        rows = np.repeat(np.arange(sm.S), np.diff(sm.Tp[a]))
        pairs = np.unique((rows // Y) * X + sm.Ti[sm.Tp[a, 0]:sm.Tp[a, -1]] // Y)
        ptr[a, 1:] = np.cumsum(np.bincount(pairs // X, minlength=X))
        idx.append(pairs % X)
    off = np.concatenate([[0], np.cumsum([len(i) for i in idx])[:-1]])
    return np.ascontiguousarray(ptr + off[:, None]), np.concatenate(idx).astype(i8)


def kernel_model(sm: SparseModel, floor: np.ndarray) -> Model:
    xr_ptr, xr_idx = reachable_visible(sm)
    return Model(Tp=sm.Tp, Ti=sm.Ti, Tv=sm.Tv, Op=sm.Op, Oi=sm.Oi, Ov=sm.Ov, R=sm.R, gamma=sm.discount,
                 Z=sm.Z, X=sm.X, Y=sm.Y, Zo=sm.Zo, xr_ptr=xr_ptr, xr_idx=xr_idx,
                 floor=np.ascontiguousarray(floor, dtype=i8))


class Tree(NamedTuple):
    """The belief tree: nodes with cached bounds, edges (node, a, o) -> child, and the belief pool.

    Node n's belief is ``pool_idx/pool_val[b_start[n]:b_start[n] + b_len[n]]`` (sorted support as int32,
    values).
    The edges of action a at node n are ``act_ptr[n, a]..act_ptr[n, a + 1]``."""

    # one row per node
    b_start: np.ndarray  # -1 once evicted (recomputed from a parent when needed again)
    b_len: np.ndarray
    expanded: np.ndarray
    act_ptr: np.ndarray  # (N, A + 1)
    reward: np.ndarray  # (N, A) R(b, a)
    lower: np.ndarray  # the value of vector ``best_alpha`` at b
    upper: np.ndarray  # the least valid sawtooth value seen at b
    q_lower: np.ndarray  # (N, A)
    q_upper: np.ndarray  # (N, A) +inf until the first backup, so nothing is pruned before it
    best_alpha: np.ndarray  # -1 when unknown
    alphas_seen: np.ndarray  # vectors below this index were compared at the last refresh
    points_seen: np.ndarray  # points below this index were read at the last refresh
    last_backup: np.ndarray  # stamp of the node's last backup (eviction order)
    point: np.ndarray  # the node's sawtooth point, -1 if none
    # one entry per edge
    child: np.ndarray
    prob: np.ndarray  # P(o | b, a)
    obs: np.ndarray
    # the beliefs
    pool_idx: np.ndarray
    pool_val: np.ndarray


def new_nodes(n: int, A: int) -> dict:
    """Fresh rows for n nodes (the Tree fields that have one row per node)."""
    return dict(b_start=np.zeros(n, i8), b_len=np.zeros(n, i8), expanded=np.zeros(n, bool),
                act_ptr=np.zeros((n, A + 1), i8), reward=np.zeros((n, A)), lower=np.full(n, -np.inf),
                upper=np.full(n, np.inf), q_lower=np.zeros((n, A)), q_upper=np.full((n, A), np.inf),
                best_alpha=np.full(n, -1, i8), alphas_seen=np.zeros(n, i8), points_seen=np.zeros(n, i8),
                last_backup=np.zeros(n, i8), point=np.full(n, -1, i8))


def new_edges(n: int) -> dict:
    return dict(child=np.zeros(n, i8), prob=np.zeros(n), obs=np.zeros(n, i8))


def new_tree(A: int, nodes: int = 256, edges: int = 1024, pool: int = 1024) -> Tree:
    # 32-bit states: the pool is most of the memory (a quarter less per entry, fewer evictions)
    return Tree(**new_nodes(nodes, A), **new_edges(edges), pool_idx=np.zeros(pool, np.int32),
                pool_val=np.zeros(pool))


class Alphas(NamedTuple):
    """The lower bound: alpha vectors (row k is the value of doing ``action[k]`` then following the vectors
    it was backed up from, over the hidden values of visible value ``xval[k]``); dead rows are reused once
    compacted. The vectors of each visible value form a list, newest first (``xhead``/``xnext``), so that a
    belief only reads the vectors of its own visible value."""

    vectors: np.ndarray  # (K, Y)
    action: np.ndarray
    xval: np.ndarray  # the visible value each vector belongs to
    alive: np.ndarray
    used: np.ndarray  # stamp of the last backup where the vector was some node's maximiser
    xnext: np.ndarray  # the next older vector of the same visible value (-1: none)
    xhead: np.ndarray  # (X,) the newest vector of each visible value


def new_alpha_rows(n: int) -> dict:
    """Fresh rows for n vectors, but the vectors themselves (grown in place: they are most of the memory)."""
    return dict(action=np.zeros(n, i8), xval=np.zeros(n, i8), alive=np.zeros(n, bool), used=np.zeros(n, i8),
                xnext=np.full(n, -1, i8))


def new_alphas(n: int, Y: int, X: int = 1) -> Alphas:
    return Alphas(vectors=np.zeros((n, Y)), **new_alpha_rows(n), xhead=np.full(X, -1, i8))


def link_alphas(alphas: Alphas, n: int) -> None:
    """Rebuild the per-visible-value lists of vectors 0..n-1 (newest first)."""
    alphas.xhead[:] = -1
    order = np.argsort(alphas.xval[:n], kind="stable")
    xs = alphas.xval[order]
    nxt = np.full(n, -1, i8)
    same = xs[1:] == xs[:-1]
    nxt[order[1:][same]] = order[:-1][same]
    alphas.xnext[:n] = nxt
    last = np.r_[~same, True]
    alphas.xhead[xs[last]] = order[last]


class Points(NamedTuple):
    """The upper bound: FIB corner values plus sawtooth points (belief, value).

    Point i's belief is node ``node[i]``'s pool slice ``ptr[i, 0]:ptr[i, 1]`` (shared, not copied: half the
    memory on large supports; ``prune.follow_pool`` re-points them when the pool is compacted), its value
    ``corner . b + gap[i]``, ``top[i]`` the offset of its largest entry in that slice. Points are bucketed
    (``head[key]`` the newest point of a bucket, ``next[i]`` the one before i): on a flat model by the
    first state of their support, so a sawtooth evaluation reads only the buckets of supp(b); on a MOMDP by
    visible value (``head`` has X entries), so it reads that value's points alone instead of walking a
    bucket per state of a support that is often all Y hidden values."""

    corner: np.ndarray  # (S,)
    head: np.ndarray  # (S,) on a flat model, (X,) on a MOMDP
    # one row per point
    ptr: np.ndarray  # (P, 2)
    node: np.ndarray
    gap: np.ndarray
    alive: np.ndarray
    next: np.ndarray
    top: np.ndarray


def new_point_rows(n: int) -> dict:
    return dict(ptr=np.zeros((n, 2), i8), node=np.zeros(n, i8), gap=np.zeros(n), alive=np.zeros(n, bool),
                next=np.full(n, -1, i8), top=np.zeros(n, i8))


def new_points(corner: np.ndarray, X: int = 1, n: int = 256) -> Points:
    buckets = corner.shape[0] if X == 1 else X
    return Points(corner=np.ascontiguousarray(corner), head=np.full(buckets, -1, i8), **new_point_rows(n))


class Scratch(NamedTuple):
    """Work arrays of the kernels; ``dense``, ``pred``, ``pz`` and ``cnt`` are left zeroed by every call."""

    dense: np.ndarray  # (S,) a belief spread out, for sawtooth ratios
    kobs: np.ndarray  # (Z,) the child vector per flat observation in a backup
    h: np.ndarray  # (S,) sum_o O(o | a, s') alpha_o(y') in a backup
    new_alpha: np.ndarray  # (Y,) the backed-up vector
    pred: np.ndarray  # (S,) predicted belief in ``successors``
    touched: np.ndarray  # (S,) its support
    pz: np.ndarray  # (Z,) P(o | b, a)
    cnt: np.ndarray  # (Z,) children's support sizes


def new_scratch(S: int, Z: int, Y: int) -> Scratch:
    return Scratch(dense=np.zeros(S), kobs=np.zeros(Z, i8), h=np.zeros(S), new_alpha=np.zeros(Y),
                   pred=np.zeros(S), touched=np.zeros(S, i8), pz=np.zeros(Z), cnt=np.zeros(Z, i8))


def grown(group: NamedTuple, rows: dict, old: int) -> NamedTuple:
    """``group`` with the fields in ``rows`` (fresh, larger arrays) replacing its own, first ``old`` rows
    copied over."""
    for name, arr in rows.items():
        arr[:old] = getattr(group, name)[:old]
    return group._replace(**rows)
