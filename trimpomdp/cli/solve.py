"""``trimpomdp solve MODEL``: solve a POMDP file (SARSOP / QMDP / exact) or hand a TRIM spec to its solver."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from trimpomdp.errors import TrimError


def _default_output(model: Path) -> Path:
    return model.with_name(model.stem + ".policy.npz")


def _progress_callback(kind: str):
    if kind != "bar":
        return None, None
    from tqdm import tqdm

    bar = tqdm(total=None, file=sys.stderr, unit="trial", desc="solve")

    def cb(entry):
        bar.n = entry["trials"]
        bar.set_postfix(lower=f"{entry['lower']:.5g}", upper=f"{entry['upper']:.5g}")
        bar.refresh()

    return cb, bar


def _write_policy(result, model, out: Path) -> str:
    if out.suffix.lower() in (".policy", ".xml"):
        try:
            from trimpomdp.policy_xml import write_policy_xml
        except ImportError:
            raise TrimError(f"{out}: XML policy export is unavailable; use a .npz output") from None
        write_policy_xml(result.policy, model, out)
    else:
        if out.suffix.lower() != ".npz":
            raise TrimError(f"{out}: output must end with .npz, .policy or .xml")
        result.policy.save(out)
    return str(out)


@click.command(name="solve")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--solver", type=click.Choice(["sarsop", "qmdp", "exact"]), default="sarsop", show_default=True)
@click.option("--precision", type=float, default=1e-3, show_default=True, help="Target gap at the initial belief.")
@click.option("--timeout", type=float, default=None, help="CPU seconds before stopping with the bounds reached.")
@click.option("--max-iterations", type=int, default=None, help="Maximum number of trials (sarsop).")
@click.option("--memory", "memory_mb", type=float, default=1024, show_default=True,
              help="Cap (MB) on the SARSOP tree: least recently used leaf beliefs are dropped, then it stops.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None,
              help="Policy file (.npz; .policy/.xml for pomdpsol-style XML). Default: <model stem>.policy.npz")
@click.option("--progress", type=click.Choice(["table", "bar", "none"]), default="table", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="End stdout with one JSON object of the results.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--budget", type=str, default=None, help="TRIM models (.json) only: one budget.")
@click.option("--sweep", type=str, default=None, help="TRIM models (.json) only: a budget sweep.")
@click.option("--curve", type=click.Path(dir_okay=False), default=None, help="TRIM models only: curve output.")
def solve(model, solver, precision, timeout, max_iterations, memory_mb, output, progress, as_json, seed, budget,
          sweep, curve):
    """Solve MODEL (.pomdp/.pomdpx with SARSOP, QMDP or the exact solver; .json TRIM specs).

    A model with discount 1 is solved only when its value is certified finite (see ``trimpomdp info``);
    otherwise the solve is refused with the reason.
    """
    path = Path(model)
    if path.suffix.lower() == ".json":
        from trimpomdp.cli.solve_trim import run_trim_solve

        run_trim_solve({"model": str(path), "budget": budget, "sweep": sweep, "curve": curve, "output": output,
                        "precision": precision, "timeout": timeout, "json": as_json,
                        "progress": progress != "none", "solver": solver, "max_iterations": max_iterations,
                        "seed": seed})
        return
    for name, val in (("--budget", budget), ("--sweep", sweep), ("--curve", curve)):
        if val is not None:
            raise TrimError(f"solve: {name} applies only to TRIM model specs (.json), not {path.name}")
    if precision <= 0:
        raise TrimError(f"solve: --precision must be > 0, got {precision}")
    if timeout is not None and timeout <= 0:
        raise TrimError(f"solve: --timeout must be > 0, got {timeout}")
    if max_iterations is not None and max_iterations < 0:
        raise TrimError(f"solve: --max-iterations must be >= 0, got {max_iterations}")
    if memory_mb <= 0:
        raise TrimError(f"solve: --memory must be > 0 (MB), got {memory_mb}")
    from trimpomdp.pomdp.io import load_model

    pomdp = load_model(path)
    pomdp.check_value_finite()  # discount 1: refuse a possibly infinite value before any solver runs
    out = Path(output) if output else _default_output(path)
    cb, bar = _progress_callback(progress)
    if solver == "sarsop":
        from trimpomdp.solvers.sarsop import SARSOPSolver

        res = SARSOPSolver(precision=precision, timeout=timeout, max_iterations=max_iterations, seed=seed,
                           memory_mb=memory_mb, verbose=(progress == "table"), callback=cb,
                           report_every=1.0 if progress == "table" else 0.2).solve(pomdp)
    elif solver == "qmdp":
        from trimpomdp.solvers.bounds import QMDPSolver

        res = QMDPSolver().solve(pomdp)
    else:
        from trimpomdp.solvers.exact import ExactSolver

        res = ExactSolver(tol=precision, timeout=timeout, verbose=(progress == "table")).solve(pomdp)
    if bar is not None:
        bar.close()
    res.check(pomdp.name or path.name)  # never report non-finite or crossed bounds as a result
    written = _write_policy(res, pomdp, out)
    summary = res.summary()
    summary["output"] = written
    summary["solver"] = solver
    click.echo(f"{solver}: lower {res.lower:.6g}  upper {res.upper:.6g}  gap {res.gap:.3g}  "
               f"time {res.solve_seconds:.3f} s CPU (+{res.jit_seconds:.2f} s JIT)  alphas {res.alphas}  "
               f"beliefs {res.beliefs}{'  converged' if res.converged else ''}")
    click.echo(f"policy written to {written}")
    if as_json:
        click.echo(json.dumps(summary))
