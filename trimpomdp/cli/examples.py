"""``trimpomdp examples``: where the shipped spec, observation table and example models are."""
from __future__ import annotations

import click


@click.command("examples")
@click.option("--path", "name", default=None, metavar="NAME", help="Print only the path of the file NAME.")
def examples(name):
    """List the data files shipped with trimpomdp (the default routing spec and its tables, Tiger), so a
    wheel install can run ``trimpomdp solve "$(trimpomdp examples --path trim_math.json)" ...``."""
    from trimpomdp.packaged import data_path, packaged_files

    if name is not None:
        click.echo(str(data_path(name)))
        return
    for p in packaged_files():
        click.echo(f"{p.name:32s} {p}")
