"""Decode runs as operating points: accuracy, strong-model cost and routing metrics of one or more decode runs.

Each input trace is one operating point (accuracy, strong tokens per question). Given a weak-only and
a strong-only run (found from the ``policy`` field, or named with --weak-run/--strong-run) the routed
runs get PGR, normalised cost, IBC and Delta-IBC, and each policy family (pomdp, threshold, ...) its
CPT(50/80/95%) and Delta-IBC (mean and max over its runs, mean over its front) over its runs. The
formulas live in ``trimpomdp.routing.metrics`` (shared with the simulator, ``docs/metrics.md``) and the
full cost (cheap tokens kept and discarded, PRM tokens read, wall time, priced with ``prices``) in
``trimpomdp.routing.costs``; this module turns traces into points and reports. Runs are grouped by the benchmark their
trace header names (a run on GSM8K is never a baseline for one on MATH-500), and within a benchmark are
compared on the problems they share.
"""
from __future__ import annotations

import math
from pathlib import Path

from trimpomdp.tables import fmt_num, fmt_pct, format_table
from trimpomdp.decode.answers import extract_answer, is_equivalent
from trimpomdp.decode.trace import TraceRun, read_run
from trimpomdp.errors import TrimError


def run_label(run: TraceRun) -> str:
    return Path(run.path).stem


def policy_family(policy: str | None) -> str:
    """``pomdp:x.npz`` -> ``pomdp``; ``threshold:0.5`` -> ``threshold``; ``weak``/``strong`` as is."""
    return (policy or "unknown").split(":", 1)[0]


def record_correct(rec: dict, recheck: bool = False, kind: str | None = None) -> bool:
    """Whether a record counts as solved. Errors and unchecked answers count as wrong; ``recheck``
    recomputes the verdict from the answer (or the solution) against the reference, graded as ``kind``
    (the trace header's grading; guessed from the reference for older traces)."""
    if recheck and rec.get("reference") is not None:
        answer = rec.get("answer") or extract_answer(rec.get("solution") or "")
        if kind is None:
            kind = "gsm8k" if _looks_numeric(rec["reference"]) else "math"
        return is_equivalent(answer, rec["reference"], kind)
    return rec.get("correct") is True


def _looks_numeric(s: str) -> bool:
    try:
        float(s.replace(",", ""))
        return True
    except ValueError:
        return False


def run_point(run: TraceRun, ids: set[str] | None = None, recheck: bool = False,
              prices: dict | None = None) -> dict:
    """One run's operating point over the given problem ids (all when None), with its full cost per
    question (``routing.costs.trace_costs``; ``cost`` priced with ``prices``, None without)."""
    from trimpomdp.routing import costs as C

    recs = [r for r in run.records if ids is None or r["id"] in ids]
    n = len(recs)
    if n == 0:
        raise TrimError(f"{run.path}: no problems to evaluate")
    steps = sum(len(r["steps"]) for r in recs)
    regen = sum(s["action"] == "regenerate" for r in recs for s in r["steps"])
    n_correct = sum(record_correct(r, recheck, run.answer_kind(r["id"])) for r in recs)
    cost = C.trace_costs(recs)
    return {
        "name": run_label(run), "path": run.path, "benchmark": run.benchmark, "policy": run.policy,
        "family": policy_family(run.policy),
        "n": n, "n_correct": n_correct, "accuracy": n_correct / n,
        "n_unchecked": sum(r.get("reference") is None for r in recs),
        "n_errors": sum(r["finish"] == "error" for r in recs),
        "strong_tokens": cost["strong_tokens"],
        "weak_tokens": cost["cheap_kept"],
        "weak_discarded": cost["cheap_discarded"],
        "prm_tokens": cost["prm_tokens"],
        "steps": steps / n, "regen_frac": regen / steps if steps else 0.0,
        "seconds": cost["seconds"], "seconds_known": cost["seconds_known"],
        "cost": C.price(cost, prices),
    }


def _find_baseline(runs: list[TraceRun], name: str, explicit: TraceRun | None) -> TraceRun | None:
    if explicit is not None:
        for r in runs:
            if Path(r.path).resolve() == Path(explicit.path).resolve():
                return r
        return explicit
    hits = [r for r in runs if policy_family(r.policy) == name]
    if len(hits) > 1:
        raise TrimError(f"several {name}-only runs ({', '.join(r.path for r in hits)}); choose one with "
                        f"--{name}-run")
    return hits[0] if hits else None


def evaluate(paths, weak_run: str | None = None, strong_run: str | None = None, recheck: bool = False,
             common: bool = True, prices: dict | None = None) -> dict:
    """All the numbers ``eval`` prints, as a dict (the --json output).

    Runs of one benchmark (older traces that name none count as that one): that benchmark's result, with
    ``benchmark`` set.
    Runs of several: ``benchmarks``, one such result per benchmark (in the order first met), and ``runs``,
    every run's point; an explicit weak/strong run serves the benchmark it was decoded on. ``prices``
    ({kind: price per token}, ``routing.costs.parse_prices``) adds each run's priced ``cost``.
    """
    runs = [read_run(p) for p in paths]
    explicit = {role: None if p is None else read_run(p) for role, p in (("weak", weak_run), ("strong", strong_run))}
    named = list(dict.fromkeys(r.benchmark for r in runs if r.benchmark is not None))
    groups: dict[str | None, list[TraceRun]] = {}
    for r in runs:  # a run that names no benchmark (older trace) joins the only one named, if so
        groups.setdefault(r.benchmark if r.benchmark is not None or len(named) != 1 else named[0], []).append(r)
    for role, r in explicit.items():
        if r is not None and r.benchmark not in groups and not (len(groups) == 1 and None in (r.benchmark, *groups)):
            raise TrimError(f"--{role}-run {r.path} decoded {r.benchmark or 'an unnamed benchmark'}, but the runs "
                            f"evaluated are on {', '.join(str(b) for b in groups)}")
    results = []
    for bench, group in groups.items():
        base = {role: r for role, r in explicit.items()
                if r is not None and (r.benchmark == bench or len(groups) == 1)}
        res = _evaluate_benchmark(group, base.get("weak"), base.get("strong"), recheck, common, prices)
        results.append({"benchmark": bench, **res})
    if len(results) == 1:
        return results[0]
    return {"benchmark": None, "benchmarks": results, "runs": [p for res in results for p in res["runs"]]}


def _evaluate_benchmark(runs: list[TraceRun], weak_run: TraceRun | None, strong_run: TraceRun | None,
                        recheck: bool, common: bool, prices: dict | None = None) -> dict:
    """``evaluate`` for the runs of one benchmark."""
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
    points = [run_point(r, ids, recheck, prices) for r in every]
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
        cm = metrics.curve_metrics(costs, accs, acc_w, acc_s, c_s, cost_weak=c_w)
        out["families"][fam] = {"runs": [p["name"] for p in pts], **metrics.jsonable(cm)}
    return out


def _finite(x):
    x = float(x)
    return x if math.isfinite(x) else None


def plot_cost_accuracy(result: dict, path, reference: str | None = None) -> Path:
    """Accuracy against strong tokens per question (one line per policy family, starting at the weak
    point; weak/strong-only runs as markers), drawn by ``trimpomdp.routing.plots``; ``reference`` is a
    folder of reference runs (``anchor_runs/*.jsonl``) to draw beside them. One benchmark per plot."""
    from trimpomdp.routing import plots

    if "benchmarks" in result:
        names = ", ".join(str(r["benchmark"]) for r in result["benchmarks"])
        raise TrimError(f"--plot draws one benchmark's runs; these runs are on several ({names}): plot each "
                        "benchmark's runs separately")
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
    ref, note = None, None
    if reference is not None:
        ref = plots.load_reference_runs(reference)
        if not ref:
            raise TrimError(f"--reference {reference}: no runs with accuracy/avg_target_tokens_per_question "
                            "found")
        ref, note = plots.select_references(ref, result.get("benchmark"))  # only the same benchmark's
    title = (f"{result['benchmark']}: " if result.get("benchmark") else "") + f"{len(result['runs'])} runs"
    if result["n_common"]:
        title += f", {result['n_common']} common problems"
    return plots.plot_cost_accuracy(curves, path, reference=ref, title=title, points=points, note=note)


def evaluation_text(result: dict) -> str:
    """The ``eval`` report: per benchmark, one row per run, then one per policy family, then any note."""
    if "benchmarks" in result:
        return "\n\n".join(f"== {res['benchmark'] or 'runs without a benchmark (no trace header)'} ==\n"
                            + _benchmark_text(res) for res in result["benchmarks"])
    text = _benchmark_text(result)
    return f"benchmark: {result['benchmark']}\n{text}" if result.get("benchmark") else text


def _benchmark_text(result: dict) -> str:
    from trimpomdp.routing import report

    lines = []
    if result["n_common"] is not None:
        lines.append(f"compared on the {result['n_common']} problems common to all runs")
    rows = []
    for p in result["runs"]:
        role = next((k for k, v in result["baselines"].items() if v == p["name"]), "")
        rows.append([p["name"] + (f" [{role}]" if role else ""), p["policy"], p["n"], fmt_pct(p["accuracy"]),
                     fmt_num(p["strong_tokens"], 1), fmt_num(p["weak_tokens"], 1), fmt_pct(p["regen_frac"]),
                     p["n_errors"], fmt_num(p.get("pgr")), fmt_num(p.get("norm_cost")), fmt_num(p.get("ibc"), 5),
                     fmt_num(p.get("delta_ibc"))])
    lines.append(format_table(["run", "policy", "n", "accuracy", "strong_tok/q", "weak_tok/q", "regen",
                               "errors", "PGR", "cost/C_s", "IBC", "dIBC"], rows, align="llrrrrrrrrrr"))
    if result["families"]:
        lines.append("")
        lines.append(report.family_table(result["families"], "runs"))
    lines.append("")
    lines.append("full cost per question (PRM tokens read: the solution so far at every scored step, in the "
                 "generating models' tokens, question and prompt not counted; wall time per problem)")
    lines.append(report.cost_table([
        {**p, "name": p["name"], "cheap_kept": p["weak_tokens"], "cheap_discarded": p["weak_discarded"]}
        for p in result["runs"]]))
    unchecked = [f"{p['name']} {p['n_unchecked']}/{p['n']}" for p in result["runs"] if p.get("n_unchecked")]
    if unchecked:
        lines.append(f"note: problems without a reference answer count as wrong ({', '.join(unchecked)})")
    if result.get("note"):
        lines.append(f"note: {result['note']}")
    return "\n".join(lines)

