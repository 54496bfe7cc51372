"""``trimpomdp solve trim.json --budget ...`` / ``--sweep ...``: the TRIM branch of the ``solve`` command.

The ``solve`` command (trimpomdp/cli/solve.py) calls ``run_trim_solve`` with its option values for
``.json`` models: model, budget, sweep, curve, output, precision, timeout, json, progress.
"""

from __future__ import annotations

import csv
import json
import re
import sys
import time
from pathlib import Path

import click

from trimpomdp.errors import TrimError


def _row(policy, seconds: float) -> dict:
    p = policy.predicted
    return {
        "budget": policy.meta.get("budget"),
        "lambda": policy.lam,
        "predicted_accuracy": p.get("accuracy"),
        "predicted_strong_tokens": p.get("strong_tokens"),
        "predicted_regenerations": p.get("regenerations"),
        "value": p.get("value"),
        "solve_seconds": seconds,
        "backup_seconds": policy.meta.get("solve_seconds"),
        "alpha_vectors": policy.meta.get("alpha_vectors"),
    }


def _resume(path, tm, budget):
    """The policy already written at ``path`` for this spec and budget, else None."""
    if path is None or not path.exists():
        return None
    from trimpomdp.routing.policies import PomdpPolicy

    try:
        pol = PomdpPolicy.load(path)
    except TrimError:
        return None
    same = (
        pol.trim_model.fingerprint() == tm.fingerprint()
        and pol.meta.get("budget_request") == budget.describe()
    )
    return pol if same else None


def _write_curve(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with open(path, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    else:
        path.write_text(
            json.dumps({"format": "trimpomdp.trim_curve", "version": 1, "points": rows}, indent=1) + "\n"
        )


def _table(rows: list[dict]) -> str:
    head = f"{'budget':<26}{'lambda':>10}{'accuracy':>10}{'tokens':>10}{'regens':>8}{'seconds':>9}"
    lines = [head]
    for r in rows:
        lines.append(
            f"{str(r['budget']):<26}{r['lambda']:>10.4g}{r['predicted_accuracy']:>10.4f}"
            f"{r['predicted_strong_tokens']:>10.2f}{r['predicted_regenerations']:>8.3f}"
            f"{r['solve_seconds']:>9.3f}"
        )
    return "\n".join(lines)


def run_trim_solve(params: dict) -> dict:
    """Solve a TRIM spec for one budget or a sweep; returns (and prints) the summary."""
    from trimpomdp.routing.budgets import parse_budget, parse_sweep
    from trimpomdp.routing.solver import solve_budget
    from trimpomdp.routing.spec import TrimModel

    model = params.get("model")
    if not model:
        raise TrimError("solve: a TRIM model spec (.json) is required")
    budget, sweep = params.get("budget"), params.get("sweep")
    if budget and sweep:
        raise TrimError("solve: give --budget or --sweep, not both")
    if not budget and not sweep:
        raise TrimError("solve: a TRIM model needs --budget (lambda=, mean=, cap=) or --sweep")
    tm = TrimModel.load(model)
    budgets = [parse_budget(budget)] if budget else parse_sweep(sweep)
    out = params.get("output")
    as_json = bool(params.get("json"))
    show = bool(params.get("progress"))
    rows, saved = [], []
    it = budgets
    if show and len(budgets) > 1:
        from tqdm import tqdm

        it = tqdm(budgets, desc="sweep", file=sys.stderr)
    for i, b in enumerate(it):
        o = None
        if out:
            o = Path(out)
            if len(budgets) > 1:
                tag = re.sub(r"[^A-Za-z0-9.=_-]+", "_", b.describe())
                o = o.with_name(f"{o.stem}-{i:02d}-{tag}{o.suffix or '.npz'}")
        pol = _resume(o, tm, b) if len(budgets) > 1 else None
        if pol is not None:  # a sweep that was interrupted picks up the policies it already wrote
            secs = float(pol.meta.get("solve_seconds_total", 0.0))
        else:
            t0 = time.perf_counter()
            pol = solve_budget(tm, b)
            secs = time.perf_counter() - t0
            pol.meta["solve_seconds_total"] = secs
            pol.meta["spec_path"] = str(model)
            pol.meta["budget_request"] = b.describe()
            if o is not None:
                pol.save(o)
        rows.append(_row(pol, secs))
        if o is not None:
            saved.append(str(o))
            rows[-1]["policy"] = str(o)
    if params.get("curve"):
        _write_curve(rows, Path(params["curve"]))
    summary = {"model": str(model), "points": rows, "policies": saved}
    if as_json:
        click.echo(json.dumps(summary, indent=1))
    else:
        click.echo(_table(rows))
        for s in saved:
            click.echo(f"wrote {s}")
    return summary
