"""Solving a routing spec for one budget or a sweep of them, resumably, with the predicted curve.

``trimpomdp solve trim.json --budget ...`` / ``--sweep ...`` run ``solve_budgets``; a sweep that was
interrupted picks up the policies it already wrote (same spec fingerprint and budget).
"""
from __future__ import annotations

import csv
import json
import re
import time
from pathlib import Path

from trimpomdp.errors import TrimError
from trimpomdp.routing.budgets import Budget, mean_out_of_reach
from trimpomdp.routing.solver import solve_budget


def _row(policy, seconds: float, budget: Budget | None = None) -> dict:
    p = policy.predicted
    note = policy.meta.get("budget_note")
    if note and budget is not None and budget.mean is not None:
        note = mean_out_of_reach(budget.mean, p.get("strong_tokens"))
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
        "note": note,
    }


def _already_solved(path, tm, budget):
    """The policy already written at ``path`` for this spec and budget, else None."""
    if path is None or not path.exists():
        return None
    try:
        from trimpomdp.routing.registry import load_policy_file

        pol = load_policy_file(path)
    except TrimError:
        return None
    same = (
        pol.trim_model.fingerprint() == tm.fingerprint()
        and pol.meta.get("budget_request") == budget.describe()
    )
    return pol if same else None


def write_curve(rows: list[dict], path: Path) -> None:
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


def policy_paths(output, budgets: list[Budget]) -> list[Path | None]:
    """Where each budget's policy goes: ``output`` itself for one budget, numbered siblings for a sweep."""
    if not output:
        return [None] * len(budgets)
    o = Path(output)
    if len(budgets) == 1:
        return [o]
    return [o.with_name(f"{o.stem}-{i:02d}-{re.sub(r'[^A-Za-z0-9.=_-]+', '_', b.describe())}{o.suffix or '.npz'}")
            for i, b in enumerate(budgets)]


def solve_budgets(tm, budgets: list[Budget], output=None, spec_path=None, progress: bool = False) -> list[dict]:
    """Solve ``tm`` for each budget (saving each policy when ``output`` is given); one row per budget with
    the predicted accuracy, strong tokens, regenerations and solve time (and ``policy``, its file)."""
    if not budgets:
        raise TrimError("no budgets to solve")
    paths = policy_paths(output, budgets)
    it = zip(budgets, paths)
    if progress and len(budgets) > 1:
        import sys

        from tqdm import tqdm

        it = tqdm(list(it), desc="sweep", file=sys.stderr)
    rows = []
    for b, o in it:
        pol = _already_solved(o, tm, b) if len(budgets) > 1 else None
        if pol is not None:
            secs = float(pol.meta.get("solve_seconds_total", 0.0))
        else:
            t0 = time.perf_counter()
            pol = solve_budget(tm, b)
            secs = time.perf_counter() - t0
            pol.meta["solve_seconds_total"] = secs
            if spec_path is not None:
                pol.meta["spec_path"] = str(spec_path)
            pol.meta["budget_request"] = b.describe()
            if o is not None:
                pol.save(o)
        rows.append(_row(pol, secs, b))
        if o is not None:
            rows[-1]["policy"] = str(o)
    return rows


def solve_spec(spec_path, budget: str | None = None, sweep: str | None = None, output=None, curve=None,
               progress: bool = False) -> dict:
    """``trimpomdp solve SPEC.json``: one budget (``lambda=``, ``mean=``, ``cap=``) or a sweep; returns
    the rows, the policy files and, for each budget that could not be met, a note saying why."""
    from trimpomdp.routing.budgets import parse_budget, parse_sweep
    from trimpomdp.routing.spec import TrimModel

    if budget and sweep:
        raise TrimError("solve: give --budget or --sweep, not both")
    if not budget and not sweep:
        raise TrimError("solve: a TRIM model needs --budget (lambda=, mean=, cap=) or --sweep")
    tm = TrimModel.load(spec_path)
    budgets = [parse_budget(budget)] if budget else parse_sweep(sweep)
    rows = solve_budgets(tm, budgets, output=output, spec_path=spec_path, progress=progress)
    if curve:
        write_curve(rows, Path(curve))
    return {"model": str(spec_path), "points": rows, "policies": [r["policy"] for r in rows if "policy" in r]}


def sweep_text(summary: dict) -> str:
    from trimpomdp.tables import format_table

    rows = summary["points"]
    lines = [format_table(["budget", "lambda", "accuracy", "tokens", "regens", "seconds"],
                          [[r["budget"], f"{r['lambda']:.4g}", f"{r['predicted_accuracy']:.4f}",
                            f"{r['predicted_strong_tokens']:.2f}", f"{r['predicted_regenerations']:.3f}",
                            f"{r['solve_seconds']:.3f}"] for r in rows], align="lrrrrr")]
    lines += [f"note: {r['budget']}: {r['note']}" for r in rows if r.get("note")]
    lines += [f"wrote {p}" for p in summary["policies"]]
    return "\n".join(lines)
