"""Exact integration of a reflected KDE over the bins of a regular grid on [0, 1]^d.

Each mirrored copy's Gaussian kernel is integrated over every bin in closed form: differences of the
normal CDF (``scipy.special.ndtr``) in 1-D and for a diagonal kernel in 2-D (products), and second
differences of the bivariate normal CDF (Genz's algorithm, numba) at the grid corners for a full kernel.
No sampling or quadrature error: the only approximation is the CDF's own ~1e-15.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

from trimpomdp.errors import ModelError
from trimpomdp.observation_models import _kde_kernels as K


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


def bin_centers(bin_size: float, d: int) -> np.ndarray:
    """Bin centres (m^d, d), row-major with the last coordinate fastest (the reference table's order)."""
    m = bins_per_dim(bin_size)
    c = (np.arange(m) + 0.5) / m
    grids = np.meshgrid(*([c] * d), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1)


def grid_masses(C: np.ndarray, csign: np.ndarray, H: np.ndarray, bin_size: float) -> np.ndarray:
    """Summed kernel mass of the copies C (k, d) in every bin, flat (m^d,) in row-major order."""
    m = bins_per_dim(bin_size)
    edges = np.linspace(0.0, 1.0, m + 1)
    d = C.shape[1]
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


def bin_probabilities(C: np.ndarray, csign: np.ndarray, H: np.ndarray, bin_size: float) -> np.ndarray:
    """P(bin) of the box-normalised reflected KDE: bin masses divided by their total (the box mass)."""
    mass = np.maximum(grid_masses(C, csign, H, bin_size), 0.0)
    total = mass.sum()
    if not total > 0:
        raise ModelError("the kernel puts no mass on the unit box (bandwidth far too small or data outside)")
    return mass / total
