"""The one Bayes correction of the TRIM belief, as numba kernels every part calls.

The decode filter (``filter.BeliefFilter``), the simulator, the structured solver's backups and
reachable points and its exact forward evaluation all turn a prior over (correct, fresh error, derailed)
and an observation bin into a posterior. They call ``correct`` (one belief) or ``correct_rows`` (many), so
the filter the planner assumes and the filter that runs are the same code.

A prior under which the observation has probability at most ``ZERO_PROB`` has no posterior: the kernels
return ``ok = False`` and leave what to do to the caller (the decode filter raises, the simulator and the
solver keep the prior).
"""
from __future__ import annotations

import numpy as np
from numba import njit

#: an observation whose probability under the prior is at most this is treated as impossible
ZERO_PROB = 1e-300


@njit(cache=True)
def correct(y0, y1, y2, O, o):
    """Posterior (bC, bE, bD), the observation's probability Z under the prior (y0, y1, y2), and ok."""
    w0 = y0 * O[0, o]
    w1 = y1 * O[1, o]
    w2 = y2 * O[2, o]
    Z = w0 + w1 + w2
    if not Z > ZERO_PROB:
        return y0, y1, y2, Z, False
    return w0 / Z, w1 / Z, w2 / Z, Z, True


@njit(cache=True)
def correct_rows(priors, O, bins):
    """Posteriors (N, 3) of N priors, each with its observation bin, and which rows had one (N,)."""
    N = priors.shape[0]
    out = np.empty((N, 3))
    ok = np.empty(N, dtype=np.bool_)
    for i in range(N):
        b0, b1, b2, _, good = correct(priors[i, 0], priors[i, 1], priors[i, 2], O, bins[i])
        out[i, 0] = b0
        out[i, 1] = b1
        out[i, 2] = b2
        ok[i] = good
    return out, ok


@njit(cache=True)
def correct_rows_wide(priors, O, bins):
    """``correct_rows`` for beliefs of any width n (difficulty classes: n = 3K, O (n, M))."""
    N, n = priors.shape
    out = np.empty((N, n))
    ok = np.empty(N, dtype=np.bool_)
    for i in range(N):
        Z = 0.0
        for j in range(n):
            out[i, j] = priors[i, j] * O[j, bins[i]]
            Z += out[i, j]
        ok[i] = Z > ZERO_PROB
        for j in range(n):
            out[i, j] = out[i, j] / Z if ok[i] else priors[i, j]
    return out, ok


def posteriors(priors, O, bins) -> tuple[np.ndarray, np.ndarray]:
    """``correct_rows`` for array-likes (contiguous float64 priors and O, int64 bins); beliefs wider than
    3 (difficulty classes) go through ``correct_rows_wide``."""
    P = np.ascontiguousarray(np.atleast_2d(priors), dtype=np.float64)
    kernel = correct_rows if P.shape[1] == 3 else correct_rows_wide
    return kernel(P, np.ascontiguousarray(O, dtype=np.float64),
                  np.ascontiguousarray(np.atleast_1d(bins), dtype=np.int64))
