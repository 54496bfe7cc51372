"""``trimpomdp eval``: accuracy, strong-model cost and routing metrics of decode runs."""
from __future__ import annotations

import json

import click


@click.command("eval")
@click.argument("traces", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--weak-run", type=click.Path(dir_okay=False), default=None,
              help="The weak-only run (default: the input whose policy is 'weak').")
@click.option("--strong-run", type=click.Path(dir_okay=False), default=None,
              help="The strong-only run (default: the input whose policy is 'strong').")
@click.option("--recheck", is_flag=True,
              help="Re-grade answers against references (with the grading the trace header records) instead of "
                   "trusting 'correct'.")
@click.option("--common/--no-common", default=True, show_default=True,
              help="Evaluate every run on the problems all runs share.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a cost-accuracy PNG (runs of one benchmark).")
@click.option("--reference", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of reference runs (e.g. shared/data/anchor_runs) to draw on the plot.")
@click.option("--price", "price", default=None, metavar="KIND=PRICE,...",
              help="Price per token of each kind, to report each run's total cost per question: strong "
                   "(written), cheap (written, kept or discarded), prm (read), e.g. "
                   "strong=5e-6,cheap=1e-7,prm=2e-7.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def eval_cmd(traces, weak_run, strong_run, recheck, common, plot_path, reference, price, as_json):
    """Accuracy, strong tokens per question and routing metrics (PGR, CPT, IBC, Delta-IBC; docs/metrics.md)
    of decode runs, per benchmark (the one each trace's header names; baselines serve their own benchmark),
    and each run's full cost: cheap tokens kept and discarded, PRM tokens read, wall time."""
    from trimpomdp.analysis.runs import evaluate, evaluation_text, plot_cost_accuracy
    from trimpomdp.routing.costs import parse_prices

    prices = parse_prices(price)
    result = evaluate(traces, weak_run, strong_run, recheck=recheck, common=common, prices=prices)
    if plot_path:
        result["plot"] = str(plot_cost_accuracy(result, plot_path, reference=reference))
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    click.echo(evaluation_text(result))
    if plot_path:
        click.echo(f"wrote {result['plot']}")
