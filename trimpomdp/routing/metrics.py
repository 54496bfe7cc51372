"""Routing metrics of the TRIM paper (arXiv 2601.10245, after RouteLLM and AutoMix): PGR, normalised cost,
CPT(x%), IBC and Delta-IBC, as defined in ``docs/metrics.md``.

Plain functions of (cost, accuracy) numbers so that the simulator, ``eval`` of real runs, the reference's
real anchor curves and plots share one definition. Cost is strong-model tokens per question; the
cheap-only point has cost ``cost_weak`` (0 for a cheap-only run: it writes no strong token). With a
cheap-only accuracy A_w, a strong-only accuracy A_s and cost C_s:

- PGR(A) = (A - A_w) / (A_s - A_w); normalised cost = C / C_s;
- IBC(A, C) = (A - A_w) / (C - C_w), undefined (NaN) at no extra cost;
- Delta-IBC = (IBC - IBC_s) / IBC_s with IBC_s = (A_s - A_w) / (C_s - C_w): 0 is the strong model's own
  gain per token, 1 twice it;
- a family's front is its Pareto front (the points more accurate than every cheaper one), linearly
  interpolated between consecutive points: what mixing two adjacent operating points question by
  question achieves. CPT(x) is the least normalised cost at which that front reaches PGR x, NaN when it
  never does ("not reached": reported as such, never as a blank).

A family's Delta-IBC is reported three ways (``curve_metrics``): the mean and the max over its operating
points, and the mean over ``FRONT_LEVELS`` PGR levels of the front (the paper's table average).
Undefined baselines (A_s <= A_w or C_s <= C_w) give NaN, never a division error.
"""

from __future__ import annotations

import math

import numpy as np

#: PGR levels at which CPT is reported
LEVELS = (0.5, 0.8, 0.95)
#: the front-averaged Delta-IBC is the mean over PGR levels 1/n, 2/n, ..., 1 with n = FRONT_LEVELS
FRONT_LEVELS = 100


def _baseline_ok(acc_weak, acc_strong, cost_strong, cost_weak=0.0) -> bool:
    return acc_strong > acc_weak and cost_strong > cost_weak


def pgr(acc, acc_weak: float, acc_strong: float):
    """Performance gap recovered: (acc - acc_w) / (acc_s - acc_w); NaN when the two anchors are equal."""
    gap = acc_strong - acc_weak
    return (np.asarray(acc, dtype=np.float64) - acc_weak) / gap if gap != 0 else np.nan * np.asarray(acc)


def ibc(acc, cost, acc_weak: float, cost_weak: float = 0.0):
    """Incremental benefit per cost: (acc - acc_w) / (C - C_w); NaN at zero extra cost."""
    acc = np.asarray(acc, dtype=np.float64)
    dc = np.asarray(cost, dtype=np.float64) - cost_weak
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(dc > 0, (acc - acc_weak) / np.where(dc > 0, dc, 1.0), np.nan)


def delta_ibc(acc, cost, acc_weak: float, acc_strong: float, cost_strong: float, cost_weak: float = 0.0):
    """(IBC(pi) - IBC_s) / IBC_s, IBC_s from the strong-only point; NaN when IBC_s is not positive."""
    if not _baseline_ok(acc_weak, acc_strong, cost_strong, cost_weak):
        return np.nan * np.asarray(ibc(acc, cost, acc_weak, cost_weak))
    base = (acc_strong - acc_weak) / (cost_strong - cost_weak)
    return (ibc(acc, cost, acc_weak, cost_weak) - base) / base


def front(costs, accs) -> tuple[np.ndarray, np.ndarray]:
    """Every point sorted by cost with its accuracy raised to the running maximum (a monotone envelope
    through all points; ``front_accuracy`` reads it). CPT uses ``pareto_front``."""
    c = np.asarray(costs, dtype=np.float64)
    a = np.asarray(accs, dtype=np.float64)
    order = np.lexsort((-a, c))
    c, a = c[order], np.maximum.accumulate(a[order])
    return c, a


def front_accuracy(costs, accs, at_cost):
    """Accuracy of the running-maximum envelope (``front``) at ``at_cost``, linearly interpolated (flat
    beyond the last point, NaN before the first): a conservative accuracy at equal cost."""
    c, a = front(costs, accs)
    return np.interp(at_cost, c, a, left=np.nan, right=a[-1])


def pareto_front(costs, accs) -> tuple[np.ndarray, np.ndarray]:
    """The family's Pareto front: points sorted by cost (ties: most accurate first), keeping each point
    strictly more accurate than every cheaper one. Non-finite points are ignored."""
    c = np.asarray(costs, dtype=np.float64).ravel()
    a = np.asarray(accs, dtype=np.float64).ravel()
    ok = np.isfinite(c) & np.isfinite(a)
    c, a = c[ok], a[ok]
    order = np.lexsort((-a, c))
    c, a = c[order], a[order]
    keep = np.ones(c.size, dtype=bool)
    if c.size > 1:
        keep[1:] = a[1:] > np.maximum.accumulate(a)[:-1]
    return c[keep], a[keep]


def cost_at_accuracy(costs, accs, target: float) -> float:
    """Least cost at which the linearly interpolated Pareto front reaches accuracy ``target``: the first
    point's cost when it already does, NaN when the front never does."""
    c, a = pareto_front(costs, accs)
    if c.size == 0 or target > a[-1] + 1e-12:
        return math.nan
    i = int(np.searchsorted(a, target - 1e-12))  # a is strictly increasing on the Pareto front
    if i == 0:
        return float(c[0])
    frac = (target - a[i - 1]) / (a[i] - a[i - 1])
    return float(c[i - 1] + min(1.0, max(0.0, frac)) * (c[i] - c[i - 1]))


def cpt(costs, accs, acc_weak: float, acc_strong: float, cost_strong: float, level: float) -> float:
    """CPT(level): least normalised cost C / C_s at which the interpolated Pareto front reaches PGR
    ``level`` (0..1), i.e. accuracy A_w + level (A_s - A_w). NaN when the front never reaches it (or the
    baselines leave PGR undefined)."""
    if not (acc_strong > acc_weak and cost_strong > 0):
        return math.nan
    cost = cost_at_accuracy(costs, accs, acc_weak + level * (acc_strong - acc_weak))
    return cost / cost_strong if math.isfinite(cost) else math.nan


def front_delta_ibc(costs, accs, acc_weak: float, acc_strong: float, cost_strong: float,
                    cost_weak: float = 0.0, n_levels: int = FRONT_LEVELS) -> tuple[float, int]:
    """(mean Delta-IBC over the PGR levels k/n, k = 1..n, that the front reaches, how many it reaches).

    At level p the front's cost is C(p) = its least cost reaching A_w + p (A_s - A_w), and
    Delta-IBC(p) = (p (A_s - A_w) / (C(p) - C_w) - IBC_s) / IBC_s; levels reached at no extra cost
    have no IBC and are skipped like levels not reached. (NaN, 0) when none is reached."""
    if not _baseline_ok(acc_weak, acc_strong, cost_strong, cost_weak):
        return math.nan, 0
    gap = acc_strong - acc_weak
    base = gap / (cost_strong - cost_weak)
    vals = []
    for k in range(1, n_levels + 1):
        p = k / n_levels
        cost = cost_at_accuracy(costs, accs, acc_weak + p * gap)
        if math.isfinite(cost) and cost > cost_weak:
            vals.append((p * gap / (cost - cost_weak) - base) / base)
    return (float(np.mean(vals)), len(vals)) if vals else (math.nan, 0)


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


def curve_metrics(costs, accs, acc_weak, acc_strong, cost_strong, levels=LEVELS, cost_weak: float = 0.0) -> dict:
    """A family's metrics from its operating points (``costs``/``accs``; include the cheap-only point as
    the front's origin): ``cpt50``... (NaN when not reached, and then named in ``cpt_not_reached``),
    ``max_pgr`` (how far the front gets), ``delta_ibc_mean`` and ``delta_ibc_max`` over the points with
    extra cost (``best_delta_ibc`` is the max), ``delta_ibc_front`` over ``front_levels_reached`` of
    ``FRONT_LEVELS`` PGR levels, and ``delta_ibc_points`` (how many points have an IBC)."""
    c = np.asarray(costs, dtype=np.float64).ravel()
    a = np.asarray(accs, dtype=np.float64).ravel()
    d: dict = {}
    for lv in levels:
        d[f"cpt{int(round(lv * 100))}"] = cpt(c, a, acc_weak, acc_strong, cost_strong, lv)
    d["cpt_not_reached"] = [k for k in list(d) if k.startswith("cpt") and not math.isfinite(d[k])]
    fa = pareto_front(c, a)[1]
    d["max_pgr"] = float(pgr(fa[-1], acc_weak, acc_strong)) if fa.size else math.nan
    dib = delta_ibc(a, c, acc_weak, acc_strong, cost_strong, cost_weak)
    fin = np.asarray(dib)[np.isfinite(dib)]
    d["delta_ibc_mean"] = float(fin.mean()) if fin.size else math.nan
    d["delta_ibc_max"] = float(fin.max()) if fin.size else math.nan
    d["best_delta_ibc"] = d["delta_ibc_max"]
    d["delta_ibc_front"], d["front_levels_reached"] = front_delta_ibc(
        c, a, acc_weak, acc_strong, cost_strong, cost_weak)
    d["front_levels"] = FRONT_LEVELS
    d["delta_ibc_points"] = int(fin.size)
    return d


def cpt_text(value, max_pgr=None) -> str:
    """A CPT for reports: a percentage of C_s, or 'not reached' (with how far the front got)."""
    if value is not None and math.isfinite(value):
        return f"{100 * value:.1f}%"
    if max_pgr is not None and math.isfinite(max_pgr):
        return f"not reached (front tops at PGR {max_pgr:.2f})"
    return "not reached"


def jsonable(obj):
    """``obj`` (dicts, lists, numbers) with every non-finite number replaced by None: JSON has no NaN, and
    a metric that is undefined or not reached is reported as such beside it (e.g. ``cpt_not_reached``)."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
