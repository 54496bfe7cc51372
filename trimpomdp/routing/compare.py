"""Comparing routing policies in the simulator (``trimpomdp simulate-routing``): the weak-only and
strong-only anchors, single policies and policy families (sweeps), with PGR / IBC / CPT per the
definitions in ``routing.metrics``, and an optional cost-accuracy plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trimpomdp.errors import TrimError


def compare_policies(spec, policies=(), sweeps=(), points=None, episodes: int = 100_000, seed: int = 0,
                     plot=None, reference=None, progress: bool = False) -> dict:
    """Simulate every policy (and family) on the same seeded episodes; returns the metrics table."""
    from trimpomdp.resource_limits import check_episodes
    from trimpomdp.routing.registry import load_policy
    from trimpomdp.routing.metrics import curve_metrics, summarize
    from trimpomdp.routing.simulator import run_family, simulate_summary
    from trimpomdp.routing.spec import load_observation_points
    from trimpomdp.routing.spec import TrimModel

    check_episodes(episodes, "--episodes")
    tm = TrimModel.load(spec)
    pts_path = points or tm.absolute_points_path(Path(spec).parent)
    if pts_path is None:
        raise TrimError("the spec names no observation_points; pass --points")
    pts = load_observation_points(pts_path)
    if not policies and not sweeps:
        policies = ("threshold:0.5",)
    weak = simulate_summary(tm, load_policy("weak"), pts, episodes, seed, progress)
    strong = simulate_summary(tm, load_policy("strong"), pts, episodes, seed, progress)
    aw, as_, cs = weak["accuracy"], strong["accuracy"], strong["strong_tokens"]
    rows = [dict(weak, name="weak"), dict(strong, name="strong")]
    for p in dict.fromkeys(policies):  # weak and strong are always simulated as the anchors
        if p in ("weak", "strong"):
            continue
        r = simulate_summary(tm, load_policy(p, tm), pts, episodes, seed, progress)
        rows.append(dict(r, name=p))
    families = {}
    for sw in sweeps:
        fam = run_family(tm, sw, pts, episodes, seed, progress=progress)
        families[sw] = fam
        rows.extend(dict(r, name=r["policy"], family=sw) for r in fam)
    table = summarize(rows, aw, as_, cs)
    curves = {}
    for sw, fam in families.items():
        c = [0.0] + [r["strong_tokens"] for r in fam]
        a = [aw] + [r["accuracy"] for r in fam]
        curves[sw] = dict(curve_metrics(c, a, aw, as_, cs), costs=c, accuracies=a)
    if plot:
        from trimpomdp.routing.plots import load_reference_runs, plot_cost_accuracy

        ref = load_reference_runs(reference) if reference else None
        pts_plot = {r["name"]: (r["strong_tokens"], r["accuracy"]) for r in table if "family" not in r}
        plot_cost_accuracy(
            {k: (v["costs"], v["accuracies"]) for k, v in curves.items()},
            plot,
            reference=ref,
            points=pts_plot,
            title=f"{Path(spec).name}: {episodes} simulated questions",
        )
    result = {
        "spec": str(spec),
        "episodes": episodes,
        "seed": seed,
        "acc_weak": aw,
        "acc_strong": as_,
        "cost_strong": cs,
        "policies": table,
        "families": {k: {m: v[m] for m in v if m not in ("costs", "accuracies")} for k, v in curves.items()},
    }
    return result


def _fmt(v, spec):
    return format(v, spec) if v is not None and np.isfinite(v) else "-".rjust(int(spec.split(".")[0] or 0))


def comparison_text(result: dict) -> str:
    """One line per policy (accuracy, strong tokens, regenerations, PGR, cost, dIBC), one per family."""
    lines = []
    lines.append(f"{'policy':<34}{'accuracy':>9}{'tokens':>9}{'regens':>8}{'PGR':>7}{'cost':>7}{'dIBC':>8}")
    for r in result["policies"]:
        lines.append(
            f"{r['name'][:33]:<34}{r['accuracy']:>9.4f}{r['strong_tokens']:>9.2f}{r['regenerations']:>8.3f}"
            f"{_fmt(r['pgr'], '7.3f')}{_fmt(r['norm_cost'], '7.3f')}{_fmt(r['delta_ibc'], '8.3f')}"
        )
    for k, v in result["families"].items():
        lines.append(
            f"{k}: CPT50 {_fmt(v['cpt50'], '.4f')}  CPT80 {_fmt(v['cpt80'], '.4f')}  "
            f"CPT95 {_fmt(v['cpt95'], '.4f')}  best dIBC {_fmt(v['best_delta_ibc'], '.3f')}"
        )
    return "\n".join(lines)
