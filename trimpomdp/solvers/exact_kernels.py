"""Numba kernel of the exact solver: the upper envelope of lines for two-state models (hot inner loop)."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def upper_envelope(a, m, order, min_width):
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
