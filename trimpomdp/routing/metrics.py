"""Routing metrics after AutoMix / the TRIM paper: PGR, normalised cost, CPT(x%), IBC and Delta-IBC.

Plain functions of (cost, accuracy) numbers so that the simulator, ``eval`` of real runs and plots share
them. Costs are strong-model tokens per question; the weak-only point has cost ``cost_weak`` (0 by default).
"""

from __future__ import annotations

import math

import numpy as np


def pgr(acc, acc_weak: float, acc_strong: float):
    """Performance gap recovered: (acc - acc_w) / (acc_s - acc_w)."""
    gap = acc_strong - acc_weak
    return (np.asarray(acc, dtype=np.float64) - acc_weak) / gap if gap != 0 else np.nan * np.asarray(acc)


def ibc(acc, cost, acc_weak: float, cost_weak: float = 0.0):
    """Incremental benefit per cost: (acc - acc_w) / (C - C_w); NaN at zero extra cost."""
    acc = np.asarray(acc, dtype=np.float64)
    dc = np.asarray(cost, dtype=np.float64) - cost_weak
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dc > 0, (acc - acc_weak) / np.where(dc > 0, dc, 1.0), np.nan)


def delta_ibc(acc, cost, acc_weak: float, acc_strong: float, cost_strong: float, cost_weak: float = 0.0):
    """(IBC(pi) - IBC_strong) / IBC_strong, IBC_strong from the strong-only point."""
    base = (acc_strong - acc_weak) / (cost_strong - cost_weak)
    return (ibc(acc, cost, acc_weak, cost_weak) - base) / base


def front(costs, accs) -> tuple[np.ndarray, np.ndarray]:
    """The monotone cost-accuracy front: points sorted by cost, accuracy replaced by its running maximum."""
    c = np.asarray(costs, dtype=np.float64)
    a = np.asarray(accs, dtype=np.float64)
    order = np.lexsort((-a, c))
    c, a = c[order], np.maximum.accumulate(a[order])
    return c, a


def front_accuracy(costs, accs, at_cost):
    """Accuracy of the linearly interpolated front at ``at_cost`` (flat beyond the last point)."""
    c, a = front(costs, accs)
    return np.interp(at_cost, c, a, left=np.nan, right=a[-1])


def cpt(costs, accs, acc_weak: float, acc_strong: float, cost_strong: float, level: float) -> float:
    """Least normalised cost c / C_strong at which the interpolated front reaches PGR ``level`` (0..1).

    NaN when the front never reaches it.
    """
    c, a = front(costs, accs)
    p = pgr(a, acc_weak, acc_strong)
    hit = np.flatnonzero(p >= level - 1e-12)
    if hit.size == 0:
        return math.nan
    i = hit[0]
    if i == 0:
        return float(c[0] / cost_strong)
    # linear interpolation between point i-1 (below) and i (at or above)
    p0, p1 = p[i - 1], p[i]
    frac = (level - p0) / (p1 - p0) if p1 > p0 else 1.0
    return float((c[i - 1] + frac * (c[i] - c[i - 1])) / cost_strong)


def summarize(
    points, acc_weak: float, acc_strong: float, cost_strong: float, cost_weak: float = 0.0
) -> list[dict]:
    """Add pgr, norm_cost, ibc and delta_ibc to each point ({'name', 'accuracy', 'strong_tokens', ...})."""
    out = []
    for p in points:
        acc, cost = float(p["accuracy"]), float(p["strong_tokens"])
        q = dict(p)
        q["pgr"] = float(pgr(acc, acc_weak, acc_strong))
        q["norm_cost"] = cost / cost_strong if cost_strong > 0 else math.nan
        q["ibc"] = float(ibc(acc, cost, acc_weak, cost_weak))
        q["delta_ibc"] = float(delta_ibc(acc, cost, acc_weak, acc_strong, cost_strong, cost_weak))
        out.append(q)
    return out


def curve_metrics(costs, accs, acc_weak, acc_strong, cost_strong, levels=(0.5, 0.8, 0.95)) -> dict:
    """CPT at each PGR level and the best Delta-IBC over a family of operating points."""
    d = {
        f"cpt{int(round(lv * 100))}": cpt(costs, accs, acc_weak, acc_strong, cost_strong, lv) for lv in levels
    }
    dib = delta_ibc(np.asarray(accs), np.asarray(costs), acc_weak, acc_strong, cost_strong)
    d["best_delta_ibc"] = float(np.nanmax(dib)) if np.any(np.isfinite(dib)) else math.nan
    return d
