"""``trimpomdp info``: what is in a model file (sizes, discount, sparsity, rewards) and whether it is valid.

The file is read without validation so that an invalid model is described and its problems listed
rather than rejected at the first one; a file that cannot be parsed is still a one-line error. The exit
status is the verdict, so scripts can use ``info`` as a validator.
"""
from __future__ import annotations

import json

import click


@click.command(name="info")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text.")
@click.pass_context
def info(ctx, file, as_json):
    """Print FILE's (.pomdp/.pomdpx) sizes, discount, sparsity, reward range and validity.

    The verdict is "valid"; "INVALID" with its problems listed; or "UNBOUNDED" for a well-formed model
    with discount 1 whose value may be infinite (``solve`` refuses it). Exit status: 0 valid, 1 INVALID
    or UNBOUNDED, 2 when the file cannot be read or parsed.
    """
    from trimpomdp.pomdp.io import describe

    d = describe(file)
    if as_json:
        click.echo(json.dumps(d))
    else:
        nz, sparsity = d["nnz"], d["sparsity"]
        click.echo(f"{d['file']}: {d['name']}")
        click.echo(f"  states {d['states']}, actions {d['actions']}, observations {d['observations']}, "
                   f"discount {d['discount']:g}")
        if d["visible"] > 1:
            click.echo(f"  mixed observability: {d['visible']} visible x {d['hidden']} hidden values "
                       "(fully observed variables; solve uses the MOMDP solver)")
        click.echo(f"  T: {nz['T']} non-zeros (sparsity {sparsity['T']:.4f}); "
                   f"O: {nz['O']} non-zeros (sparsity {sparsity['O']:.4f})")
        click.echo(f"  rewards in [{d['reward_min']:g}, {d['reward_max']:g}]; "
                   f"initial belief on {d['initial_support']} of {d['states']} states")
        if d["verdict"] == "valid":
            click.echo("  valid")
        elif d["verdict"] == "unbounded":
            click.echo(f"  UNBOUNDED (valid, but not solvable): {d['unbounded']}")
        else:
            click.echo(f"  INVALID ({len(d['problems'])} problems):")
            for p in d["problems"]:
                click.echo(f"    - {p}")
    if d["verdict"] != "valid":
        ctx.exit(1)
