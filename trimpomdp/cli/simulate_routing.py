"""``trimpomdp simulate-routing``: compare routing policies on real PRM observations (metrics, plot)."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np

from trimpomdp.errors import TrimError


def _fmt(v, spec):
    return format(v, spec) if v is not None and np.isfinite(v) else "-".rjust(int(spec.split(".")[0] or 0))


@click.command(name="simulate-routing")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--policy",
    "policies",
    multiple=True,
    help="pomdp:PATH | pomdp:lambda=X | pomdp:mean=B | pomdp:cap=3regen | threshold:K | weak | strong "
    "(repeatable).",
)
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    help="A policy family: pomdp:lambda=0.01:1:12 | pomdp:mean=50,100 | threshold:0:1:21 (repeatable).",
)
@click.option(
    "--points",
    type=click.Path(dir_okay=False),
    default=None,
    help="Labelled PRM points .npz (default: the spec's observation_points).",
)
@click.option("--episodes", type=click.IntRange(1), default=100_000, show_default=True,
              help="Episodes per policy (at most 100,000,000; run in chunks of about a million).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Cost-accuracy PNG to write.")
@click.option(
    "--reference",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder of reference runs (*.jsonl) to draw on the plot.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def simulate_routing(spec, policies, sweeps, points, episodes, seed, plot, reference, as_json):
    """Simulate routing policies on a TRIM spec, print accuracy, strong tokens, PGR, IBC, CPT."""
    import sys

    from trimpomdp.resource_limits import check_episodes
    from trimpomdp.routing import load_policy
    from trimpomdp.routing.metrics import curve_metrics, summarize
    from trimpomdp.routing.simulator import load_observation_points, run_family, simulate_summary
    from trimpomdp.routing.spec import TrimModel

    check_episodes(episodes, "--episodes")
    progress = not as_json and sys.stderr.isatty()
    tm = TrimModel.load(spec)
    pts_path = points or tm.absolute_points_path(Path(spec).parent)
    if pts_path is None:
        raise TrimError("simulate-routing: the spec names no observation_points; pass --points")
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
        fam = run_family(tm, sw, pts, episodes, seed, progress=True)
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
    if as_json:
        click.echo(json.dumps(result, indent=1, default=float))
        return
    click.echo(f"{'policy':<34}{'accuracy':>9}{'tokens':>9}{'regens':>8}{'PGR':>7}{'cost':>7}{'dIBC':>8}")
    for r in table:
        click.echo(
            f"{r['name'][:33]:<34}{r['accuracy']:>9.4f}{r['strong_tokens']:>9.2f}{r['regenerations']:>8.3f}"
            f"{_fmt(r['pgr'], '7.3f')}{_fmt(r['norm_cost'], '7.3f')}{_fmt(r['delta_ibc'], '8.3f')}"
        )
    for k, v in curves.items():
        click.echo(
            f"{k}: CPT50 {_fmt(v['cpt50'], '.4f')}  CPT80 {_fmt(v['cpt80'], '.4f')}  "
            f"CPT95 {_fmt(v['cpt95'], '.4f')}  best dIBC {_fmt(v['best_delta_ibc'], '.3f')}"
        )
    if plot:
        click.echo(f"wrote {plot}")
