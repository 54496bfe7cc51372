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
    help="pomdp:PATH | pomdp:lambda=X | pomdp:mean=B | pomdp:cap=3regen | threshold:K | agg:FILE | seq:FILE | "
    "takeover:<policy> | query:K | query-oracle | weak | strong (repeatable).",
)
@click.option(
    "--sweep",
    "sweeps",
    multiple=True,
    help="A policy family: pomdp:lambda=0.01:1:12 | pomdp:mean=50,100 | threshold:0:1:21 | query:0:1:11 | "
    "agg:F1,F2 | seq:F1,F2 | takeover:<family> (repeatable).",
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
    help="Folder of real runs in the reference's format (e.g. shared/data/anchor_runs): their PGR / CPT / "
    "Delta-IBC and recorded costs are printed beside the in-model ones (and drawn on the plot).",
)
@click.option("--price", "price", default=None, metavar="KIND=PRICE,...",
              help="Price per token of each kind, to report each policy's total cost per question: strong "
                   "(written), cheap (written, kept or discarded), prm (read), e.g. "
                   "strong=5e-6,cheap=1e-7,prm=2e-7.")
@click.option("--cheap-step-tokens", type=click.FloatRange(0), default=None,
              help="Cheap tokens per step the in-model cost estimate assumes (default: the spec's mean strong "
                   "step tokens / tokens_per_weak_token).")
@click.option("--mode", type=click.Choice(["both", "independent", "sequence"]), default="both", show_default=True,
              help="Observation draws: independent pairs per step, coherent per-episode sequences, or both.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def simulate_routing(spec, policies, sweeps, points, episodes, seed, plot, reference, price, cheap_step_tokens,
                     mode, as_json):
    """Simulate routing policies on a TRIM spec, print accuracy, strong tokens, PGR, IBC, CPT, Delta-IBC
    (docs/metrics.md) and the full cost; with --reference, the same metrics of real runs beside them."""
    import sys

    from trimpomdp.routing.compare import compare_policies, comparison_text
    from trimpomdp.routing.costs import parse_prices

    prices = parse_prices(price)
    result = compare_policies(spec, policies, sweeps, points=points, episodes=episodes, seed=seed, plot=plot,
                              reference=reference, progress=not as_json and sys.stderr.isatty(),
                              modes=("independent", "sequence") if mode == "both" else (mode,),
                              prices=prices, cheap_step_tokens=cheap_step_tokens)
    if as_json:
        click.echo(json.dumps(result, indent=1, default=float))
        return
    click.echo(comparison_text(result))
    if plot:
        click.echo(f"wrote {plot}")
