"""Comparing routing policies in the simulator (``trimpomdp simulate-routing``): the weak-only and
strong-only anchors, single policies and policy families (sweeps), with PGR / IBC / CPT / Delta-IBC per the
definitions in ``routing.metrics`` (``docs/metrics.md``), each policy's full cost (``routing.costs``:
expected cheap and PRM tokens derived from its step counts, optionally priced), the same metrics on the
reference's real runs (``routing.reference_runs``) beside the in-model ones, and an optional plot."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.routing import report


def compare_policies(spec, policies=(), sweeps=(), points=None, episodes: int = 100_000, seed: int = 0,
                     plot=None, reference=None, progress: bool = False,
                     modes=("independent", "sequence"), prices=None, cheap_step_tokens=None) -> dict:
    """Simulate every policy (and family) on the same seeded episodes in each observation mode
    (``simulator.MODES``); returns {"spec", "episodes", "seed", "modes": {mode: metrics table},
    "cost_model", "reference"?}. ``prices``: {kind: price per token} (``costs.parse_prices``);
    ``cheap_step_tokens``: the cheap step length the cost estimate assumes (default: the spec's);
    ``reference``: a folder of real runs, whose metrics are computed too (``reference_runs``)."""
    from trimpomdp.resource_limits import check_episodes
    from trimpomdp.routing import costs as C
    from trimpomdp.routing.registry import load_policy
    from trimpomdp.routing.metrics import curve_metrics, jsonable, summarize
    from trimpomdp.routing.registry import family_policies
    from trimpomdp.routing.simulator import MODES, SEQUENCE_RULES, simulate_summary
    from trimpomdp.routing.spec import load_observation_points
    from trimpomdp.routing.spec import TrimModel

    check_episodes(episodes, "--episodes")
    modes = tuple(dict.fromkeys(modes))
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise TrimError(f"--mode {bad[0] if bad else ''!r}: expected {', '.join(MODES)} or both")
    tm = TrimModel.load(spec)
    ref_metrics = None
    if reference:  # read (and check) the real runs before simulating anything
        from trimpomdp.routing.reference_runs import reference_metrics

        ref_metrics = reference_metrics(reference, prices)
    if cheap_step_tokens is None:
        m_cheap, m_source = C.spec_cheap_step_tokens(tm)
    else:
        m_cheap, m_source = float(cheap_step_tokens), "--cheap-step-tokens"
    pts_path = points or tm.absolute_points_path(Path(spec).parent)
    if pts_path is None:
        raise TrimError("the spec names no observation_points; pass --points")
    pts = load_observation_points(pts_path)
    if not policies and not sweeps:
        policies = ("threshold:0.5",)
    # every policy is built (and every family solved) once and simulated in each mode
    singles = {p: load_policy(p, tm) for p in dict.fromkeys(("weak", "strong") + tuple(policies))}
    fams = {sw: family_policies(tm, sw) for sw in sweeps}
    result = {"spec": str(spec), "episodes": episodes, "seed": seed, "observation": tm.observation, "modes": {},
              "cost_model": {"cheap_step_tokens": m_cheap, "source": m_source, "prices": prices}}
    if "sequence" in modes:
        result["sequence_rules"] = SEQUENCE_RULES
    for mode in modes:
        def run(p, name):
            r = simulate_summary(tm, p, pts, episodes, seed, progress, mode=mode)
            if hasattr(p, "predicted"):
                r["predicted_accuracy"] = p.predicted.get("accuracy")
                r["predicted_strong_tokens"] = p.predicted.get("strong_tokens")
            cost = C.simulated_costs(r, tm, m_cheap)  # in-model expected cheap / PRM tokens
            r.update(cheap_kept=cost["cheap_kept"], cheap_discarded=cost["cheap_discarded"],
                     prm_tokens=cost["prm_tokens"], cost=C.price(cost, prices))
            return dict(r, name=name)

        rows = [run(p, name) for name, p in singles.items()]
        aw, as_, cs = rows[0]["accuracy"], rows[1]["accuracy"], rows[1]["strong_tokens"]
        families = {sw: [dict(run(p, p.name), family=sw) for p in pols] for sw, pols in fams.items()}
        table = summarize(rows + [r for fam in families.values() for r in fam], aw, as_, cs)
        curves = {}
        for sw, fam in families.items():
            c = [0.0] + [r["strong_tokens"] for r in fam]
            a = [aw] + [r["accuracy"] for r in fam]
            if family_level(sw) == "query":  # sending every question to the strong model is query-level too
                c, a = c + [cs], a + [as_]
            curves[sw] = dict(curve_metrics(c, a, aw, as_, cs), costs=c, accuracies=a)
        result["modes"][mode] = {
            "acc_weak": aw, "acc_strong": as_, "cost_strong": cs, "policies": jsonable(table),
            "paper": jsonable(paper_rows(table, curves, aw, as_, cs)),
            "fallback": max((r.get("fallback", 0.0) for r in table), default=0.0),
            "families": {k: jsonable({m: v[m] for m in v if m not in ("costs", "accuracies")})
                         for k, v in curves.items()},
            "_curves": curves,
        }
    if ref_metrics is not None:
        result["reference"] = ref_metrics
    if plot:
        from trimpomdp.routing.plots import load_reference_runs, plot_cost_accuracy

        ref = load_reference_runs(reference) if reference else None
        last = modes[-1]
        res = result["modes"][last]
        pts_plot = {family_label(r["name"]): (r["strong_tokens"], r["accuracy"]) for r in res["policies"]
                    if "family" not in r}
        plot_cost_accuracy(
            {f"{family_label(k)} [{m}]": (v["costs"], v["accuracies"]) for m in modes
             for k, v in result["modes"][m]["_curves"].items()},
            plot,
            reference=ref,
            points=pts_plot,
            title=f"{Path(spec).name}: {episodes} simulated questions (points: {last} mode)",
        )
    for m in modes:
        result["modes"][m].pop("_curves")
    return result


def _fmt(v, spec):
    return format(v, spec) if v is not None and np.isfinite(v) else "-".rjust(int(spec.split(".")[0] or 0))


def comparison_text(result: dict) -> str:
    """Per observation mode: one line per policy (accuracy, strong tokens, regenerations, PGR, cost, dIBC)
    and one per family; sequence mode says how it continues where the data end."""
    lines = []
    for mode, res in result["modes"].items():
        head = f"== {mode} observations"
        if mode == "sequence":
            head += f" ({result.get('sequence_rules', '')}; {100 * res.get('fallback', 0.0):.1f}% of scores borrowed)"
        else:
            head += " (each step's (min earlier, current) pair drawn independently given the state)"
        lines.append(head)
        lines.append(f"{'policy':<34}{'accuracy':>9}{'tokens':>9}{'regens':>8}{'PGR':>7}{'cost':>7}{'dIBC':>8}")
        for r in res["policies"]:
            lines.append(
                f"{r['name'][:33]:<34}{r['accuracy']:>9.4f}{r['strong_tokens']:>9.2f}{r['regenerations']:>8.3f}"
                f"{_fmt(r['pgr'], '7.3f')}{_fmt(r['norm_cost'], '7.3f')}{_fmt(r['delta_ibc'], '8.3f')}"
            )
        if res.get("paper"):
            lines.append(f"paper layout, in-model ({mode} observations; acc / tokens / PGR at each family's most "
                         "accurate point, CPT in % of the strong-only cost, dIBC mean over its points):")
            lines.append(paper_table(res["paper"]))
        if res["families"]:
            lines.append(f"families, in-model ({mode} observations; CPT in % of the strong-only cost):")
            lines.append(report.family_table(res["families"], "delta_ibc_points", name="sweep", count_label="points"))
        lines.append(_cost_text(result, res["policies"]))
    if result.get("reference") is not None:
        lines.append(reference_text(result["reference"]))
    return "\n".join(lines)


def family_label(name: str, width: int = 40) -> str:
    """A family's name for tables and legends: ``agg:F1,F2,...`` as ``agg (2 routers)``, long names cut."""
    kind, _, arg = name.partition(":")
    inner = arg.partition(":")[2] if kind == "takeover" else arg
    if (kind in ("agg", "seq") or (kind == "takeover" and arg.split(":")[0] in ("agg", "seq"))) and inner:
        files = [f.strip() for f in inner.split(",") if f.strip()]
        k = arg.split(":")[0] if kind == "takeover" else kind
        base = f"{k}:{Path(files[0]).name}" if len(files) == 1 else f"{k} ({len(files)} routers)"
        return f"takeover:{base}" if kind == "takeover" else base
    return name if len(name) <= width else name[:width - 3] + "..."


def family_level(name: str) -> str:
    """'query' for query-level routers, 'step+takeover' for the takeover ablation, else 'step'."""
    kind = name.split(":", 1)[0].lower()
    if kind in ("query", "query-oracle", "oracle"):
        return "query"
    return "step+takeover" if kind == "takeover" else "step"


def paper_rows(table: list[dict], curves: dict, aw: float, as_: float, cs: float) -> list[dict]:
    """One row per family in the layout of the paper's main table: the anchors, every ``--sweep`` family and
    every other single policy as a one-point family (its front is the mix of cheap-only and that point).
    Accuracy, strong tokens and PGR are those of the family's most accurate point (ties: the cheaper)."""
    from trimpomdp.routing.metrics import curve_metrics

    rows = []
    for r in table[:2]:
        rows.append({"family": f"{r['name']}-only", "level": "anchor", "points": 1, "accuracy": r["accuracy"],
                     "strong_tokens": r["strong_tokens"], "pgr": r["pgr"]})
    groups = {sw: [r for r in table if r.get("family") == sw] for sw in curves}
    groups.update({r["name"]: [r] for r in table[2:] if "family" not in r})
    for name, pts in groups.items():
        if not pts:
            continue
        m = curves[name] if name in curves else curve_metrics(
            [0.0, pts[0]["strong_tokens"]], [aw, pts[0]["accuracy"]], aw, as_, cs)
        top = min(pts, key=lambda r: (-r["accuracy"], r["strong_tokens"]))
        rows.append({"family": family_label(name), "sweep": name, "level": family_level(name), "points": len(pts),
                     "accuracy": top["accuracy"],
                     "strong_tokens": top["strong_tokens"], "pgr": top["pgr"],
                     **{k: m.get(k) for k in ("cpt50", "cpt80", "cpt95", "max_pgr", "delta_ibc_mean",
                                              "delta_ibc_max")}})
    return rows


def paper_table(rows: list[dict]) -> str:
    """The paper-layout rows as text (CPT 'not reached' where the family's front never gets there)."""
    from trimpomdp.routing.metrics import cpt_text
    from trimpomdp.tables import fmt_num, format_table

    out = []
    for r in rows:
        anchor = r["level"] == "anchor"
        out.append([r["family"], r["level"], r["points"], fmt_num(r["accuracy"], 4), fmt_num(r["strong_tokens"], 1),
                    fmt_num(r["pgr"], 3), *(None if anchor else cpt_text(r.get(k)) for k in ("cpt50", "cpt80", "cpt95")),
                    None if anchor else fmt_num(r.get("delta_ibc_mean")),
                    None if anchor else fmt_num(r.get("delta_ibc_max"))])
    return format_table(["family", "level", "points", "accuracy", "strong tok", "PGR", "CPT50", "CPT80", "CPT95",
                         "dIBC mean", "dIBC max"], out, align="llrrrrrrrrr")


def _cost_text(result: dict, rows: list[dict]) -> str:
    cm = result.get("cost_model", {})
    head = ("full cost per question, in-model (expected values: the simulator draws no cheap tokens, so "
            f"cheap steps are taken as {cm.get('cheap_step_tokens', 0):.1f} tokens on average, from "
            f"{cm.get('source', '?')}; PRM tokens read = the solution so far at every step; wall time not "
            "modelled):")
    return head + "\n" + report.cost_table(rows, unknown_prm="not modelled", unknown_seconds="not modelled")


def reference_text(ref: dict) -> str:
    """The real runs' metrics per benchmark: anchors, the family table, each point's full cost as recorded."""
    lines = [f"== real runs (the reference's recorded results in {ref['folder']}; not simulated)"]
    for b in ref["benchmarks"]:
        if b.get("note"):
            lines.append(f"{b['benchmark']}: {b['note']}")
        if "acc_weak" not in b:
            continue
        lines.append(f"{b['benchmark']}: cheap-only accuracy {b['acc_weak']:.4f} ({b['weak']['where']}); strong-only "
                     f"{b['acc_strong']:.4f} at {b['cost_strong']:.2f} strong tokens ({b['strong']['where']})")
        if b["families"]:
            lines.append(f"families, real runs ({b['benchmark']}; CPT in % of the strong-only cost):")
            lines.append(report.family_table(b["families"], "delta_ibc_points", name="file", count_label="points"))
        lines.append("full cost per question, real runs (as recorded; the reference records no PRM tokens or "
                     "wall time):")
        rows = [dict(b[r], name=f"{r}-only") for r in ("weak", "strong")]
        rows += [dict(p, name=f"{stem} {p['label']}") for stem, f in b["families"].items() for p in f["points"]]
        lines.append(report.cost_table(rows, unknown_prm="not recorded", unknown_seconds="not recorded"))
    return "\n".join(lines)
