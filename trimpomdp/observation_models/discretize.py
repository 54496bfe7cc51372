"""Exact integration of a reflected KDE over the bins of a regular grid on [0, 1]^d.

Each mirrored copy's Gaussian kernel is integrated over every bin in closed form: differences of the
normal CDF (``scipy.special.ndtr``) in 1-D and for a diagonal kernel in 2-D (products), and second
differences of the bivariate normal CDF (Genz's algorithm, numba) at the grid corners for a full kernel.
No sampling or quadrature error: the only approximation is the CDF's own ~1e-15.

Grids are bounded before anything is allocated: at most ``MAX_BINS`` bins (the routing POMDP has one
observation per bin, and each kernel copy is integrated over every bin), and at most ``MAX_WORK`` copy x
grid-corner integrals per state (about a minute of CPU); big jobs run in chunks and can show progress.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from trimpomdp.errors import ModelError
from trimpomdp.observation_models import _kde_kernels as K
from trimpomdp.resource_limits import MAX_BINS

#: most kernel-copy x grid-corner integrals of one state's discretisation (~20 ns each in 2-D)
MAX_WORK = 3_000_000_000
#: above this many integrals the work runs in chunks (with a progress bar when asked)
_CHUNK_WORK = 10_000_000


def bins_per_dim(bin_size: float) -> int:
    """Number of bins per coordinate; the bin size must divide 1."""
    try:
        b = float(bin_size)
    except (TypeError, ValueError):
        raise ModelError(f"bin size must be a number, not {bin_size!r}") from None
    if not (0 < b <= 1):
        raise ModelError(f"bin size must lie in (0, 1], got {bin_size}")
    m = int(round(1.0 / b))
    if abs(m * b - 1.0) > 1e-9:
        raise ModelError(f"bin size {bin_size} does not divide [0, 1] into whole bins (use e.g. 0.05, 0.1, 0.125)")
    return m


def check_grid(bin_size: float, d: int) -> int:
    """Bins per coordinate of a grid in d dimensions, refused when the grid has more than ``MAX_BINS`` bins."""
    m = bins_per_dim(bin_size)
    n = m ** int(d)
    if n > MAX_BINS:
        smallest = 1.0 / int(MAX_BINS ** (1.0 / d) + 1e-9)
        raise ModelError(f"bin size {bin_size:g} makes {n:,} bins in {d}-D, over the limit of {MAX_BINS:,} (bin size "
                         f">= {smallest:g} in {d}-D): every bin is an observation of the routing POMDP and each "
                         "kernel copy is integrated over every bin")
    return m


def bin_centers(bin_size: float, d: int) -> np.ndarray:
    """Bin centres (m^d, d), row-major with the last coordinate fastest (the reference table's order)."""
    m = check_grid(bin_size, d)
    c = (np.arange(m) + 0.5) / m
    grids = np.meshgrid(*([c] * d), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def grid_masses(C: np.ndarray, csign: np.ndarray, H: np.ndarray, bin_size: float, progress=None) -> np.ndarray:
    """Summed kernel mass of the copies C (k, d) in every bin, flat (m^d,) in row-major order.

    ``progress``: an optional callable taking the number of copies done, called between chunks."""
    d = C.shape[1]
    m = check_grid(bin_size, d)
    work = C.shape[0] * (m + 1) ** d
    if work > MAX_WORK:
        raise ModelError(f"discretising {C.shape[0]:,} kernel copies on {m ** d:,} bins takes {work:,} integrals, "
                         f"over the limit of {MAX_WORK:,} (about a minute): use a larger bin size or fewer points")
    if work > _CHUNK_WORK:
        step = max(1, _CHUNK_WORK // (m + 1) ** d)
        out = 0.0
        for lo in range(0, C.shape[0], step):
            out = out + grid_masses(C[lo:lo + step], csign[lo:lo + step], H, bin_size)
            if progress is not None:
                progress(min(step, C.shape[0] - lo))
        return out
    edges = np.linspace(0.0, 1.0, m + 1)
    sd = np.sqrt(np.diag(H))
    if d == 1:
        cdf = ndtr((edges[None, :] - C[:, :1]) / sd[0])
        return np.diff(cdf, axis=1).sum(axis=0)
    if abs(H[0, 1]) == 0.0:
        p0 = np.diff(ndtr((edges[None, :] - C[:, :1]) / sd[0]), axis=1)
        p1 = np.diff(ndtr((edges[None, :] - C[:, 1:2]) / sd[1]), axis=1)
        return np.einsum("ki,kj->ij", p0, p1).ravel()
    rho = float(H[0, 1] / (sd[0] * sd[1]))
    out = K.grid_masses_2d(np.ascontiguousarray(C), csign.astype(np.float64), sd, rho, edges, edges)
    return out.ravel()


def bin_probabilities(C: np.ndarray, csign: np.ndarray, H: np.ndarray, bin_size: float,
                      progress=None) -> np.ndarray:
    """P(bin) of the box-normalised reflected KDE: bin masses divided by their total (the box mass)."""
    mass = np.maximum(grid_masses(C, csign, H, bin_size, progress), 0.0)
    total = mass.sum()
    if not total > 0:
        raise ModelError("the kernel puts no mass on the unit box (bandwidth far too small or data outside)")
    return mass / total
