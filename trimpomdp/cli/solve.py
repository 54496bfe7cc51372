"""``trimpomdp solve MODEL``: solve a POMDP file (SARSOP / QMDP / exact) or hand a TRIM spec to its solver."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from click.core import ParameterSource

from trimpomdp.errors import TrimError


@click.command(name="solve")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--solver", type=click.Choice(["auto", "sarsop", "staged", "qmdp", "exact"]), default="auto",
              show_default=True, help="auto: staged for a MOMDP whose visible values only move forward, else sarsop.")
@click.option("--precision", type=click.FloatRange(0, min_open=True), default=1e-3, show_default=True, help="Target gap at the initial belief.")
@click.option("--timeout", type=click.FloatRange(0, min_open=True), default=None, help="CPU seconds before stopping with the bounds reached.")
@click.option("--max-iterations", type=click.IntRange(0), default=None, help="Maximum number of trials (sarsop).")
@click.option("--memory", "memory_mb", type=click.FloatRange(0, min_open=True), default=1024, show_default=True,
              help="Cap (MB) on the SARSOP tree: least recently used leaf beliefs are dropped, then it stops.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Policy file (.npz; .policy/.xml for pomdpsol-style XML). Default: <model stem>.policy.npz")
@click.option("--flat", is_flag=True,
              help="Solve a .pomdpx file flat even when it has fully observed variables (default: as a MOMDP).")
@click.option("--progress", type=click.Choice(["table", "bar", "none"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="End stdout with one JSON object of the results.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--budget", type=str, default=None, help="TRIM models (.json) only: one budget.")
@click.option("--sweep", type=str, default=None, help="TRIM models (.json) only: a budget sweep.")
@click.option("--curve", type=click.Path(dir_okay=False), default=None, help="TRIM models only: curve output.")
def solve(model, solver, precision, timeout, max_iterations, memory_mb, output, flat, progress, as_json, seed,
          budget, sweep, curve):
    """Solve MODEL (.pomdp/.pomdpx with SARSOP, QMDP or the exact solver; .json TRIM specs).

    ``--solver auto`` (default) picks the staged solver (finite horizon: point-based backups in reverse
    topological order of the visible values, HSVI trials) for a MOMDP whose visible values only move forward,
    SARSOP otherwise. SARSOP solves a .pomdpx file with fully observed variables (``fullyObs="true"``) as a MOMDP: beliefs and
    alpha vectors over the hidden variables only, one set per value of the visible ones (``--flat`` folds
    them into the observations instead). The policy then records each vector's visible value.

    A model with discount 1 is solved only when its value is certified finite (see ``trimpomdp info``);
    otherwise the solve is refused with the reason.
    """
    path = Path(model)
    if path.suffix.lower() == ".json":
        # a TRIM spec is solved exactly by its structured solver: the point-based options do not apply
        ctx = click.get_current_context()
        for name in ("solver", "precision", "timeout", "max_iterations", "memory_mb", "seed", "flat"):
            if ctx.get_parameter_source(name) is not ParameterSource.DEFAULT:
                opt = "--" + ("memory" if name == "memory_mb" else name.replace("_", "-"))
                raise TrimError(f"solve: {opt} applies to POMDP files (.pomdp/.pomdpx); a TRIM spec ({path.name}) "
                                "is solved exactly by its structured solver (give --budget or --sweep)")
        from trimpomdp.routing.sweep import solve_spec, sweep_text

        summary = solve_spec(path, budget=budget, sweep=sweep, output=output, curve=curve,
                             progress=progress != "none")
        click.echo(json.dumps(summary, indent=1) if as_json else sweep_text(summary))
        return
    for name, val in (("--budget", budget), ("--sweep", sweep), ("--curve", curve)):
        if val is not None:
            raise TrimError(f"solve: {name} applies only to TRIM model specs (.json), not {path.name}")
    if output and Path(output).suffix.lower() not in (".npz", ".policy", ".xml"):
        raise TrimError(f"solve: {output}: a policy file must end with .npz, .policy or .xml")
    from trimpomdp.pipeline import build_solver, solve_model
    from trimpomdp.policies.files import save_alpha_policy
    from trimpomdp.pomdp.io import load_model

    bar = None
    if progress == "bar":
        from tqdm import tqdm

        bar = tqdm(total=None, file=sys.stderr, unit="trial", desc="solve")

    def on_progress(entry):
        bar.n = entry["trials"]
        bar.set_postfix(lower=f"{entry['lower']:.5g}", upper=f"{entry['upper']:.5g}")
        bar.refresh()

    if solver in ("auto", "sarsop", "staged") and not flat and path.suffix.lower() == ".pomdpx":
        pomdp = _as_momdp(path)
    else:
        pomdp = load_model(path)
    if solver == "auto":
        from trimpomdp.solvers.staged import is_staged

        solver = "staged" if getattr(pomdp, "n_visible", 1) > 1 and is_staged(pomdp) else "sarsop"
    engine = build_solver(solver, precision=precision, timeout=timeout, max_iterations=max_iterations, seed=seed,
                          memory_mb=memory_mb, verbose=(progress == "table"),
                          callback=on_progress if bar is not None else None,
                          report_every=1.0 if progress == "table" else 0.2)
    try:
        res = solve_model(pomdp, engine)
    finally:
        if bar is not None:
            bar.close()
    written = save_alpha_policy(res.policy, pomdp, output or path.with_name(path.stem + ".policy.npz"))
    summary = res.summary()
    summary["output"] = written
    summary["solver"] = solver
    X = getattr(pomdp, "n_visible", 1)
    if X > 1:
        summary["momdp"] = {"visible": X, "hidden": pomdp.n_hidden}
    kind = f" (MOMDP, {X} visible x {pomdp.n_hidden} hidden values)" if X > 1 else ""
    click.echo(f"{solver}{kind}: lower {res.lower:.6g}  upper {res.upper:.6g}  gap {res.gap:.3g}  "
               f"time {res.solve_seconds:.3f} s CPU (+{res.jit_seconds:.2f} s JIT)  alphas {res.alphas}  "
               f"beliefs {res.beliefs}{'  converged' if res.converged else ''}")
    click.echo(f"policy written to {written}")
    if as_json:
        click.echo(json.dumps(summary))


def _as_momdp(path: Path):
    """The MOMDP of a .pomdpx file with fully observed variables, else its flat model: when it has none, or
    when the initial belief is unsure of them (the MOMDP solver starts from one visible value)."""
    from trimpomdp.pomdp.io import load_model

    m = load_model(path, momdp=True)
    if m.n_visible == 1:
        return m.flat
    if m.initial_visible() is None:
        click.echo(f"warning: {path.name}: the initial belief is unsure of the fully observed variables; "
                   "solving it flat", err=True)
        return load_model(path)  # the flat path's state order, which the policy's fingerprint then matches
    return m
