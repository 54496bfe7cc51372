"""``trimpomdp models``: list the packaged small LLMs and convert them once into the local cache."""
from __future__ import annotations

import click

from trimpomdp.errors import TrimError


@click.command("models")
@click.option("--prepare", "prepare_names", multiple=True, metavar="NAME",
              help="Convert this packaged model (repeatable; 'all' for every installed one).")
@click.option("--force", is_flag=True, help="Convert again even if a cached conversion exists.")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON lines.")
def models(prepare_names, force, as_json):
    """List packaged models (installed? converted?) and optionally convert them once (GGUF ->
    transformers folder in $TRIMPOMDP_CACHE/models, default ~/.cache/trimpomdp/models)."""
    import json

    from trimpomdp.decode import models as M

    names = list(prepare_names)
    if "all" in names:
        names = [n for n in M.PACKAGED if M.is_installed(n)]
        if not names:
            raise TrimError("no packaged model is installed; install one with: "
                            + " ; ".join(pm.install for pm in M.PACKAGED.values()))
    for name in names:
        if name not in M.PACKAGED:
            raise TrimError(f"unknown packaged model {name!r}; expected one of {', '.join(M.PACKAGED)} or all")
        path = M.prepare(name, force=force)  # says what it converts and that it happens once
        click.echo(f"{name}: ready at {path}", err=True)
    for row in M.list_models():
        if as_json:
            click.echo(json.dumps(row))
        else:
            state = ("converted" if row["prepared"] else "installed, not converted") if row["installed"] \
                else f"not installed ({row['install']})"
            click.echo(f"{row['name']:8s} {state:28s} {row['description']}  [{row['path']}]")
