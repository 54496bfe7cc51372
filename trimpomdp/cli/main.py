"""Entry point: a click group whose commands are imported only when used, so that ``trimpomdp info``
does not pay for torch or numba start-up, and every ``TrimError`` becomes a one-line message."""
from __future__ import annotations

import importlib
import os
import sys
import warnings

import click

from trimpomdp import __version__
from trimpomdp.errors import TrimError

_default_showwarning = warnings.showwarning

#: what click (8.2+) raises for a group called without a command; older click exits 0 after the help
_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())

#: command name -> ("module:function", short help). Order is the order shown by --help.
COMMANDS = {
    "info": ("trimpomdp.cli.info:info", "Print a model file's sizes, discount, sparsity and validity."),
    "solve": ("trimpomdp.cli.solve:solve", "Solve a POMDP (.pomdp/.pomdpx) or a TRIM model (.json) into a policy."),
    "simulate": ("trimpomdp.cli.simulate:simulate", "Evaluate a policy on a model by simulation."),
    "fit-obs": ("trimpomdp.cli.fit_obs:fit_obs", "Fit reflected-KDE observation models from labelled PRM data."),
    "trim-model": ("trimpomdp.cli.trim_model:trim_model", "Build a TRIM routing model spec (JSON) from data."),
    "simulate-routing": ("trimpomdp.cli.simulate_routing:simulate_routing",
                         "Compare routing policies on real PRM observations."),
    "train-router": ("trimpomdp.cli.train_router:train_router_cmd",
                     "Train a TRIM-Agg or TRIM-Seq step router with PPO (simulator or live decoding)."),
    "calibrate": ("trimpomdp.cli.calibrate:calibrate", "Fit question difficulty and step accuracies to real runs."),
    "models": ("trimpomdp.cli.models:models", "Locate or prepare the packaged small LLMs for decoding."),
    "score-steps": ("trimpomdp.cli.score_steps:score_steps", "Score labelled solution steps with a PRM."),
    "decode": ("trimpomdp.cli.decode:decode", "Routed step-level generation on a problem file."),
    "inspect": ("trimpomdp.cli.inspect:inspect_cmd", "Belief trajectories and routing decisions of a decode run."),
    "eval": ("trimpomdp.cli.evaluate:eval_cmd", "Accuracy, strong-token cost and routing metrics of runs."),
    "examples": ("trimpomdp.cli.examples:examples", "List the shipped default spec, tables and example models."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        target, short = COMMANDS[name]
        module, func = target.split(":")
        try:
            cmd = getattr(importlib.import_module(module), func)
        except (ImportError, AttributeError) as exc:
            @click.command(name=name, help=short, short_help=short,
                           context_settings={"ignore_unknown_options": True})
            @click.argument("args", nargs=-1, type=click.UNPROCESSED)
            def unavailable(args, _exc=exc):
                raise TrimError(f"command {name!r} is unavailable: {_exc}")
            return unavailable
        cmd.short_help = cmd.short_help or short
        return cmd

    def format_commands(self, ctx, formatter):
        rows = [(name, short) for name, (_, short) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="trimpomdp")
def cli():
    """trimpomdp: route LLM reasoning steps between a cheap and a strong model, planned as a POMDP."""


def main(argv=None) -> int:
    """Run the CLI; user errors are printed as one line on stderr with exit status 2."""
    try:
        rc = cli.main(args=argv, prog_name="trimpomdp", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except _NO_ARGS_IS_HELP as exc:  # bare ``trimpomdp``: the help, as click prints it (not an Error line)
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        msg = exc.format_message().replace("\n", " ")
        ctx = getattr(exc, "ctx", None)
        where = f"{ctx.command_path}: " if ctx is not None else ""
        click.echo(f"Error: {where}{msg}", err=True)
        return exc.exit_code
    except TrimError as exc:
        click.echo(f"Error: {str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        return 130
    return rc if type(rc) is int else 0  # a command's ctx.exit(code), e.g. decode's 1 when problems failed


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Our own warnings (e.g. a truncated trace line dropped) as one ``warning:`` line, without a source
    path; third-party warnings keep Python's format."""
    if issubclass(category, UserWarning) and f"{os.sep}trimpomdp{os.sep}" in str(filename):
        click.echo(f"warning: {str(message).splitlines()[0]}", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


def _passive_openmp_waits() -> None:
    """Let OpenMP threads sleep while they wait rather than spin (``OMP_WAIT_POLICY=PASSIVE``, read when
    torch loads), unless the user chose: a spinning thread waits for a peer that another process has
    descheduled, and small-model decoding on 2 shared cores ran 5-15x slower (SmolLM2-135M, 3 x 48 tokens
    batched: 67 s spinning vs 4.6 s passive at load ~4; on a quiet machine passive cost ~10%, 3.1 vs 2.8 s).
    ``OMP_WAIT_POLICY=ACTIVE`` restores spinning on a dedicated machine."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run() -> None:  # console-script entry point
    warnings.showwarning = _show_warning
    _passive_openmp_waits()
    sys.exit(main())


if __name__ == "__main__":  # pragma: no cover
    run()
