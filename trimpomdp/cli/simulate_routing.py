"""``trimpomdp simulate-routing``: compare routing policies on real PRM observations (metrics, plot)."""

from __future__ import annotations

import json

import click



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
@click.option("--mode", type=click.Choice(["both", "independent", "sequence"]), default="both", show_default=True,
              help="Observation draws: independent pairs per step, coherent per-episode sequences, or both.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def simulate_routing(spec, policies, sweeps, points, episodes, seed, plot, reference, mode, as_json):
    """Simulate routing policies on a TRIM spec, print accuracy, strong tokens, PGR, IBC, CPT."""
    import sys

    from trimpomdp.routing.compare import compare_policies, comparison_text

    result = compare_policies(spec, policies, sweeps, points=points, episodes=episodes, seed=seed, plot=plot,
                              reference=reference, progress=not as_json and sys.stderr.isatty(),
                              modes=("independent", "sequence") if mode == "both" else (mode,))
    if as_json:
        click.echo(json.dumps(result, indent=1, default=float))
        return
    click.echo(comparison_text(result))
    if plot:
        click.echo(f"wrote {plot}")
