"""Flat sparse arrays of a POMDP for the numba kernels (shared by every point-based solver).

Numba cannot take scipy matrices, so each per-action CSR matrix is flattened into one ``indptr`` row per
action (absolute offsets into shared ``indices``/``data`` arrays). Terminal states are made absorbing with
zero reward here, once, so that no kernel needs to know about them. A ``MOMDP`` gives the arrays of its flat
form plus its sizes (X visible x Y hidden values, Zo observations); a flat POMDP is X = 1, Y = S, Zo = Z.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from trimpomdp.pomdp.model import POMDP, effective_dynamics


@dataclass(frozen=True)
class SparseModel:
    """``Tp[a, s]..Tp[a, s+1]`` index the successors ``Ti`` (s') with probabilities ``Tv`` of (s, a);
    ``Op[a, s']..Op[a, s'+1]`` index the observations ``Oi`` with probabilities ``Ov`` of (a, s')."""

    S: int
    A: int
    Z: int
    discount: float
    Tp: np.ndarray
    Ti: np.ndarray
    Tv: np.ndarray
    Op: np.ndarray
    Oi: np.ndarray
    Ov: np.ndarray
    R: np.ndarray  # (S, A), C-contiguous
    b0: np.ndarray
    terminal: np.ndarray  # (S,) bool, all False when the model has none
    T: tuple  # per-action scipy CSR with terminal rows made absorbing (for the bound computations)
    O: tuple
    X: int = 1  # visible values (joint state s = x * Y + y; flat observation o * X + x')
    Y: int = 0  # hidden values (S when X == 1)
    Zo: int = 0  # observations proper (Z when X == 1)


def _flatten(mats) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ptrs, idx, val, off = [], [], [], 0
    for m in mats:
        ptrs.append(m.indptr.astype(np.int64) + off)
        idx.append(m.indices.astype(np.int64))
        val.append(m.data.astype(np.float64))
        off += m.nnz
    return np.ascontiguousarray(np.stack(ptrs)), np.concatenate(idx), np.concatenate(val)


def to_sparse(model) -> SparseModel:
    """Convert (and cache on the model) the flat arrays the kernels read; ``model`` is a POMDP or a MOMDP."""
    cached = model._cache.get("sparse_model")
    if cached is not None:
        return cached
    if not isinstance(model, POMDP):  # a MOMDP: its flat form's arrays, with its sizes
        from dataclasses import replace

        sm = replace(to_sparse(model.flat), X=model.n_visible, Y=model.n_hidden, Zo=model.n_observations)
        model._cache["sparse_model"] = sm
        return sm
    S, A = model.n_states, model.n_actions
    term = np.zeros(S, dtype=bool) if model.terminal is None else np.asarray(model.terminal, dtype=bool)
    T, R = effective_dynamics(model)  # terminal states absorbing at zero reward
    R = np.ascontiguousarray(R)
    O = [sp.csr_matrix(m) for m in model.O]
    Tp, Ti, Tv = _flatten(T)
    Op, Oi, Ov = _flatten(O)
    b0 = np.asarray(model.initial_belief, dtype=np.float64)
    b0 = b0 / b0.sum()
    sm = SparseModel(S, A, model.n_observations, float(model.discount), Tp, Ti, Tv, Op, Oi, Ov, R, b0, term,
                     tuple(T), tuple(O), 1, S, model.n_observations)
    model._cache["sparse_model"] = sm
    return sm
