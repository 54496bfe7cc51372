"""What the commands that save as they go (``decode``, ``score-steps``) say when Ctrl-C stops them."""
from __future__ import annotations

import click

#: the exit status of a run stopped by Ctrl-C (128 + SIGINT), as shells report it
INTERRUPTED = 130


def interrupted(ctx: click.Context, saved: int, unit: str, out) -> None:
    """Say what is on disk and how to go on, then exit with status 130 (no traceback, no 'Aborted.')."""
    click.echo(f"\ninterrupted: {saved} {unit}{'' if saved == 1 else 's'} saved in {out} (each is written as "
               f"it finishes; those in progress are lost); run the same command with --resume to continue",
               err=True)
    ctx.exit(INTERRUPTED)


def saved_trace_records(path) -> int:
    """Complete problem records in a decode trace (0 when it does not exist yet)."""
    import warnings
    from pathlib import Path

    from trimpomdp.decode.trace import read_run
    from trimpomdp.errors import TrimError

    if not Path(path).is_file():
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a half-written last line is dropped, not reported here
        try:
            return len(read_run(path).records)
        except TrimError:
            return 0
