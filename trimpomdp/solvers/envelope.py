"""The upper envelope of lines on [0, 1] (the convex hull trick), the one kernel behind two-state pruning in
the exact solver and the envelopes of the structured routing solver, whose value functions are lines in
one belief coordinate."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def envelope_mask(a, m, order, min_width):
    """Mask of the lines ``a + m p`` (visited in ``order``: slope ascending, intercept descending) that are
    the strict maximum on a sub-interval of [0, 1] wider than ``min_width``."""
    n = order.shape[0]
    hull = np.empty(n, dtype=np.int64)
    starts = np.empty(n, dtype=np.float64)
    h = 0
    have_last = False
    last_m = 0.0
    for t in range(n):
        k = order[t]
        if have_last and m[k] == last_m:
            continue
        have_last = True
        last_m = m[k]
        while h > 0:
            j = hull[h - 1]
            x = (a[j] - a[k]) / (m[k] - m[j])
            if x <= starts[h - 1]:
                h -= 1
            else:
                break
        if h == 0:
            starts[h] = -np.inf
        else:
            j = hull[h - 1]
            starts[h] = (a[j] - a[k]) / (m[k] - m[j])
        hull[h] = k
        h += 1
    keep = np.zeros(a.shape[0], dtype=np.bool_)
    for i in range(h):
        lo = starts[i]
        hi = starts[i + 1] if i + 1 < h else np.inf
        if min(hi, 1.0) - max(lo, 0.0) > min_width:
            keep[hull[i]] = True
    return keep


@njit(cache=True)
def envelope_lines(s, c):
    """The lines y = s x + c that form the upper envelope on [0, 1], left to right, as (slopes,
    intercepts, right breakpoints with the last one inf)."""
    n = s.shape[0]
    by_c = np.argsort(-c, kind="mergesort")
    order = by_c[np.argsort(s[by_c], kind="mergesort")]  # slope ascending, highest intercept first on ties
    keep = envelope_mask(c, s, order, 1e-12)  # a line that only touches the envelope is dropped
    k = 0
    for t in range(n):
        if keep[order[t]]:
            k += 1
    os_ = np.empty(k)
    oc = np.empty(k)
    j = 0
    for t in range(n):
        i = order[t]
        if keep[i]:
            os_[j] = s[i]
            oc[j] = c[i]
            j += 1
    ob = np.empty(k)
    for i in range(k - 1):
        ob[i] = (oc[i] - oc[i + 1]) / (os_[i + 1] - os_[i])
    ob[k - 1] = np.inf
    return os_, oc, ob
