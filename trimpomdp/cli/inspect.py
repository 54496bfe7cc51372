"""``trimpomdp inspect``: per-step routing decisions and belief trajectories of a decode run."""
from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("inspect")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--problem", "problems", multiple=True, metavar="ID",
              help="Show only this problem (repeatable).")
@click.option("--max-problems", default=10, show_default=True, type=click.IntRange(min=1),
              help="Step tables/panels shown when no --problem is given.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of belief trajectories per problem.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-step data as JSON instead of tables.")
def inspect_cmd(trace, problems, max_problems, plot_path, as_json):
    """Belief trajectories and routing decisions of a decode run (TRACE is a decode output .jsonl)."""
    from trimpomdp.analysis.inspection import (inspection_json, inspection_text, plot_trajectories, routing_summary,
                                               select_problems)
    from trimpomdp.decode.trace import read_run

    run = read_run(trace)
    chosen = select_problems(run, problems, max_problems)
    if as_json:
        click.echo(json.dumps(inspection_json(run, chosen), indent=1))
    else:
        click.echo(inspection_text(run, chosen, all_listed=not problems))
        if run.records:
            click.echo("\n" + routing_summary(run))
    if plot_path:
        out = plot_trajectories(chosen, plot_path, title=f"{Path(trace).name}: {run.policy or ''}")
        click.echo(f"wrote {out}", err=as_json)
