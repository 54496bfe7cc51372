"""``trimpomdp eval``: accuracy, strong-model cost and routing metrics of one or more decode runs.

Each input trace is one operating point (accuracy, strong tokens per question). Given a weak-only and
a strong-only run (found from the ``policy`` field, or named with --weak-run/--strong-run) the routed
runs get PGR, normalised cost, IBC and Delta-IBC, and each policy family (pomdp, threshold, ...) its
CPT(50/80/95%) over its runs. The formulas live in ``trimpomdp.routing.metrics`` (shared with the
simulator); this module only turns traces into points. Runs are compared on the problems they share.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import click

from trimpomdp.cli.inspect import format_table
from trimpomdp.decode.answers import extract_answer, is_equivalent
from trimpomdp.decode.trace import TraceRun, read_run
from trimpomdp.errors import TrimError


def run_label(run: TraceRun) -> str:
    return Path(run.path).stem


def policy_family(policy: str | None) -> str:
    """``pomdp:x.npz`` -> ``pomdp``; ``threshold:0.5`` -> ``threshold``; ``weak``/``strong`` as is."""
    return (policy or "unknown").split(":", 1)[0]


def record_correct(rec: dict, recheck: bool = False) -> bool:
    """Whether a record counts as solved. Errors and unchecked answers count as wrong; ``recheck``
    recomputes the verdict from the answer (or the solution) against the reference."""
    if recheck and rec.get("reference") is not None:
        answer = rec.get("answer") or extract_answer(rec.get("solution") or "")
        kind = "gsm8k" if _looks_numeric(rec["reference"]) else "math"
        return is_equivalent(answer, rec["reference"], kind)
    return rec.get("correct") is True


def _looks_numeric(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


def run_point(run: TraceRun, ids: set[str] | None = None, recheck: bool = False) -> dict:
    """One run's operating point over the given problem ids (all when None)."""
    recs = [r for r in run.records if ids is None or r["id"] in ids]
    n = len(recs)
    if n == 0:
        raise TrimError(f"{run.path}: no problems to evaluate")
    steps = sum(len(r["steps"]) for r in recs)
    regen = sum(s["action"] == "regenerate" for r in recs for s in r["steps"])
    n_correct = sum(record_correct(r, recheck) for r in recs)
    return {
        "name": run_label(run), "path": run.path, "policy": run.policy, "family": policy_family(run.policy),
        "n": n, "n_correct": n_correct, "accuracy": n_correct / n,
        "n_unchecked": sum(r.get("reference") is None for r in recs),
        "n_errors": sum(r["finish"] == "error" for r in recs),
        "strong_tokens": sum(r["tokens"]["strong"] for r in recs) / n,
        "weak_tokens": sum(r["tokens"]["weak_kept"] for r in recs) / n,
        "weak_discarded": sum(r["tokens"]["weak_discarded"] for r in recs) / n,
        "steps": steps / n, "regen_frac": regen / steps if steps else 0.0,
        "seconds": sum(float(r.get("seconds", 0.0)) for r in recs) / n,
    }


def _find_baseline(runs: list[TraceRun], name: str, explicit: str | None) -> TraceRun | None:
    if explicit is not None:
        for r in runs:
            if Path(r.path).resolve() == Path(explicit).resolve():
                return r
        return read_run(explicit)
    hits = [r for r in runs if policy_family(r.policy) == name]
    if len(hits) > 1:
        raise TrimError(f"several {name}-only runs ({', '.join(r.path for r in hits)}); choose one with "
                        f"--{name}-run")
    return hits[0] if hits else None


def evaluate(paths, weak_run: str | None = None, strong_run: str | None = None, recheck: bool = False,
             common: bool = True) -> dict:
    """All the numbers ``eval`` prints, as a dict (the --json output)."""
    runs = [read_run(p) for p in paths]
    weak = _find_baseline(runs, "weak", weak_run)
    strong = _find_baseline(runs, "strong", strong_run)
    every = runs + [r for r in (weak, strong) if r is not None and r not in runs]
    ids = None
    if common:
        sets = [{rec["id"] for rec in r.records} for r in every]
        ids = set.intersection(*sets) if sets else set()
        if not ids:
            raise TrimError("the runs share no problem ids; pass --no-common to evaluate each on its own "
                            "problems")
        if all(len(s) == len(ids) for s in sets):
            ids = None  # same problems everywhere
    points = [run_point(r, ids, recheck) for r in every]
    stems = [p["name"] for p in points]
    for p in points:  # same file name in two folders: fall back to the path
        if stems.count(p["name"]) > 1:
            p["name"] = p["path"]
    by_path = {p["path"]: p for p in points}
    out = {"n_common": None if ids is None else len(ids), "runs": points, "baselines": {}, "families": {}}
    if weak is not None:
        out["baselines"]["weak"] = by_path[weak.path]["name"]
    if strong is not None:
        out["baselines"]["strong"] = by_path[strong.path]["name"]
    if weak is None or strong is None:
        out["note"] = ("routing metrics need a weak-only and a strong-only run (policy 'weak'/'strong' or "
                       "--weak-run/--strong-run)")
        return out
    from trimpomdp.routing import metrics

    wp, sp = by_path[weak.path], by_path[strong.path]
    acc_w, acc_s, c_w, c_s = wp["accuracy"], sp["accuracy"], wp["strong_tokens"], sp["strong_tokens"]
    out.update(acc_weak=acc_w, acc_strong=acc_s, cost_weak=c_w, cost_strong=c_s)
    if acc_s == acc_w or c_s <= c_w:
        out["note"] = ("the weak and strong runs have equal accuracy or the strong run is not costlier: "
                       "PGR/IBC are undefined")
        return out
    summ = metrics.summarize(points, acc_w, acc_s, c_s, c_w)
    for p, s in zip(points, summ):
        p.update({k: _finite(s[k]) for k in ("pgr", "norm_cost", "ibc", "delta_ibc")})
    fams: dict[str, list[dict]] = {}
    for p in points:
        if p["path"] not in (weak.path, strong.path):
            fams.setdefault(p["family"], []).append(p)
    for fam, pts in fams.items():
        costs = [c_w] + [p["strong_tokens"] for p in pts]
        accs = [acc_w] + [p["accuracy"] for p in pts]
        cm = metrics.curve_metrics(costs, accs, acc_w, acc_s, c_s)
        out["families"][fam] = {"runs": [p["name"] for p in pts], **{k: _finite(v) for k, v in cm.items()}}
    return out


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def _pct(x):
    return None if x is None else f"{100 * x:.1f}%"


def _num(x, nd=3):
    return None if x is None else f"{x:.{nd}f}"


def plot_cost_accuracy(result: dict, path, reference: str | None = None) -> Path:
    """Accuracy against strong tokens per question (one line per policy family, starting at the weak
    point; weak/strong-only runs as markers), drawn by ``trimpomdp.routing.plots``; ``reference`` is a
    folder of reference runs (``anchor_runs/*.jsonl``) to draw beside them."""
    from trimpomdp.routing import plots

    base = result.get("baselines", {})
    by_name = {p["name"]: p for p in result["runs"]}
    weak = by_name.get(base.get("weak"))
    curves: dict[str, tuple[list, list]] = {}
    for p in result["runs"]:
        if p["name"] in base.values():
            continue
        costs, accs = curves.setdefault(p["family"], ([], []))
        if weak is not None and not costs:
            costs.append(weak["strong_tokens"])
            accs.append(weak["accuracy"])
        costs.append(p["strong_tokens"])
        accs.append(p["accuracy"])
    points = {f"{role} only ({name})": (by_name[name]["strong_tokens"], by_name[name]["accuracy"])
              for role, name in base.items()}
    ref = None
    if reference is not None:
        ref = plots.load_reference_runs(reference)
        if not ref:
            raise TrimError(f"--reference {reference}: no runs with accuracy/avg_target_tokens_per_question "
                            "found")
    title = f"{len(result['runs'])} runs"
    if result["n_common"]:
        title += f", {result['n_common']} common problems"
    return plots.plot_cost_accuracy(curves, path, reference=ref, title=title, points=points)


@click.command("eval")
@click.argument("traces", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--weak-run", type=click.Path(dir_okay=False), default=None,
              help="The weak-only run (default: the input whose policy is 'weak').")
@click.option("--strong-run", type=click.Path(dir_okay=False), default=None,
              help="The strong-only run (default: the input whose policy is 'strong').")
@click.option("--recheck", is_flag=True,
              help="Re-grade answers against references instead of trusting 'correct'.")
@click.option("--common/--no-common", default=True, show_default=True,
              help="Evaluate every run on the problems all runs share.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a cost-accuracy PNG.")
@click.option("--reference", type=click.Path(file_okay=False, exists=True), default=None,
              help="Folder of reference runs (e.g. shared/data/anchor_runs) to draw on the plot.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def eval_cmd(traces, weak_run, strong_run, recheck, common, plot_path, reference, as_json):
    """Accuracy, strong tokens per question and routing metrics (PGR, CPT, IBC, Delta-IBC) of decode runs."""
    result = evaluate(traces, weak_run, strong_run, recheck=recheck, common=common)
    if plot_path:
        out = plot_cost_accuracy(result, plot_path, reference=reference)
        result["plot"] = str(out)
    if as_json:
        click.echo(json.dumps(result, indent=1))
        return
    if result["n_common"] is not None:
        click.echo(f"compared on the {result['n_common']} problems common to all runs")
    rows = []
    for p in result["runs"]:
        role = next((k for k, v in result["baselines"].items() if v == p["name"]), "")
        rows.append([p["name"] + (f" [{role}]" if role else ""), p["policy"], p["n"], _pct(p["accuracy"]),
                     _num(p["strong_tokens"], 1), _num(p["weak_tokens"], 1), _pct(p["regen_frac"]),
                     p["n_errors"], _num(p.get("pgr")), _num(p.get("norm_cost")), _num(p.get("ibc"), 5),
                     _num(p.get("delta_ibc"))])
    click.echo(format_table(["run", "policy", "n", "accuracy", "strong_tok/q", "weak_tok/q", "regen",
                             "errors", "PGR", "cost/C_s", "IBC", "dIBC"], rows, align="llrrrrrrrrrr"))
    if result["families"]:
        click.echo("")
        click.echo(format_table(["family", "runs", "CPT50", "CPT80", "CPT95", "best dIBC"],
                                [[f, len(v["runs"]), _pct(v.get("cpt50")), _pct(v.get("cpt80")),
                                  _pct(v.get("cpt95")), _num(v.get("best_delta_ibc"))]
                                 for f, v in result["families"].items()], align="lrrrrr"))
    if result.get("note"):
        click.echo(f"note: {result['note']}")
    if plot_path:
        click.echo(f"wrote {result['plot']}")
