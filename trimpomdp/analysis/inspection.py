"""Inside a decode run: per-step routing decisions and belief trajectories.

The per-step table shows what the policy saw (PRM score, the filter's belief before and after the
observation) and what it did (keep/regenerate, with Q-values): what one needs to debug a policy on real
problems. The figure shows b(C), b(E), b(D) along each solution with the regenerated steps marked.
Problems are listed in id order (numbers by value), not in the order they finished, and a legend says
what the columns mean; ``routing_summary`` is the one line that says what a run shows and what it cannot.
"""
from __future__ import annotations

import re
from pathlib import Path

from trimpomdp.tables import fmt_belief, fmt_num, format_table
from trimpomdp.decode.trace import TraceRun
from trimpomdp.errors import TrimError

#: hidden states of the routing model: correct so far, fresh error in the latest step, derailed earlier
STATES = ("C", "E", "D")

LEGEND = ("legend: b_before/b_after = the filter's belief over C (correct so far), E (fresh error in this "
          "step), D (derailed earlier) before and after reading this step's PRM score; Q_keep/Q_regen = the "
          "policy's expected reward of keeping the cheap step or regenerating it with the strong model "
          "(net of the strong tokens' price; the larger one is taken); weak_tok/strong_tok = tokens "
          "written by each model for this step")

_DIGITS = re.compile(r"(\d+)")


def id_order(pid) -> tuple:
    """Sort key of a problem id: digit runs compare as numbers ("2" < "10"; "test/algebra/9" <
    "test/algebra/10"), the rest as text."""
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in _DIGITS.split(str(pid)) if t)


def in_id_order(records: list[dict]) -> list[dict]:
    return sorted(records, key=lambda r: id_order(r["id"]))


def select_problems(run: TraceRun, ids=(), max_problems: int = 10) -> list[dict]:
    """The records with the given ids (in that order), or the first ``max_problems`` in id order."""
    by_id = {r["id"]: r for r in run.records}
    missing = [p for p in ids if p not in by_id]
    if missing:
        some = ", ".join(sorted(by_id, key=id_order)[:5]) or "none"
        raise TrimError(f"{run.path}: no problem with id {missing[0]!r} (ids include: {some})")
    return [by_id[p] for p in ids] if ids else in_id_order(run.records)[:max_problems]


def step_rows(rec: dict) -> list[dict]:
    """The per-step view of one record (also the --json output)."""
    rows = []
    for st in rec["steps"]:
        rows.append({"step": st["index"], "model": st["model"], "action": st["action"],
                     "prm_score": st.get("prm_score"), "observation": st.get("observation"),
                     "obs_bin": st.get("obs_bin"),
                     "belief_before": st.get("belief_before"), "belief_after": st.get("belief_after"),
                     "q_keep": st.get("q_keep"), "q_regenerate": st.get("q_regenerate"),
                     "class_belief": st.get("class_belief"),
                     "weak_tokens": st.get("weak_tokens", 0), "strong_tokens": st.get("strong_tokens", 0),
                     "text": st["text"]})
    return rows


def step_table(rec: dict, width: int = 48) -> str:
    """One row per step; a spec with difficulty classes adds the class posterior after the score."""
    rows = []
    steps = step_rows(rec)
    classes = any(r["class_belief"] for r in steps)
    for r in steps:
        text = " ".join(r["text"].split())
        short = text[:width] + ("..." if len(text) > width else "")
        row = [r["step"], r["model"], fmt_num(r["prm_score"]), fmt_belief(r["belief_before"]),
               fmt_belief(r["belief_after"])]
        if classes:
            row.append(fmt_belief(r["class_belief"]))
        rows.append(row + [r["action"], fmt_num(r["q_keep"], 2), fmt_num(r["q_regenerate"], 2), r["weak_tokens"],
                           r["strong_tokens"], short])
    head = ["step", "model", "prm", "b_before C E D", "b_after C E D"] + (["P(class)"] if classes else [])
    return format_table(head + ["action", "Q_keep", "Q_regen", "weak_tok", "strong_tok", "text"], rows,
                        align="rlrll" + ("l" if classes else "") + "llrrrl")


def problem_summary(rec: dict) -> dict:
    steps = rec["steps"]
    return {"id": rec["id"], "finish": rec["finish"], "steps": len(steps),
            "regenerated": sum(s["action"] == "regenerate" for s in steps),
            "strong_tokens": rec["tokens"]["strong"], "answer": rec.get("answer"),
            "reference": rec.get("reference"), "correct": rec.get("correct"), "error": rec.get("error")}


def plot_trajectories(records: list[dict], path, title: str | None = None) -> Path:
    """One panel per problem: b(C), b(E), b(D) after each step's observation (solid) and the filter's prior
    (dotted); regenerated steps are marked with a red band and a cross on b(C). The figure's caption says
    so, and the legend names the dotted lines and the band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    n = len(records)
    if n == 0:
        raise TrimError("nothing to plot: no problems selected")
    ncols = min(3, n)
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 2.9 * nrows), squeeze=False, sharey=True)
    colors = {"C": "tab:green", "E": "tab:orange", "D": "tab:red"}
    for ax, rec in zip(axes.flat, records):
        steps = rec["steps"]
        xs = [s["index"] for s in steps]
        for k, name in enumerate(STATES):
            post = [s["belief_after"][k] if s.get("belief_after") else float("nan") for s in steps]
            prior = [s["belief_before"][k] if s.get("belief_before") else float("nan") for s in steps]
            ax.plot(xs, post, "-o", ms=3, color=colors[name], label=f"b({name})")
            ax.plot(xs, prior, ":", color=colors[name], lw=1)
        regen = [s for s in steps if s["action"] == "regenerate"]
        for j, s in enumerate(regen):
            ax.axvspan(s["index"] - 0.4, s["index"] + 0.4, color="red", alpha=0.12, lw=0,
                       label="regenerated step" if j == 0 else None)
        if regen:
            ax.plot([s["index"] for s in regen],
                    [s["belief_after"][0] if s.get("belief_after") else 0.5 for s in regen],
                    "x", color="red", ms=8, mew=2, label="regenerate")
        mark = {True: "correct", False: "wrong", None: "unchecked"}[rec.get("correct")]
        ax.set_title(f"{rec['id'][:28]} ({mark})", fontsize=9)
        ax.set_ylim(-0.03, 1.03)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes[0][0].set_ylabel("belief")
    from matplotlib.lines import Line2D

    handles, labels = axes[0][0].get_legend_handles_labels()
    handles.append(Line2D([], [], ls=":", color="grey", lw=1))
    labels.append("belief before the step's PRM score")
    axes[0][0].legend(handles, labels, fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.text(0.5, 0.005, "solid: belief after reading the step's PRM score (C correct so far, E fresh error, "
             "D derailed); dotted: before it; red band and cross: the policy regenerated that step",
             ha="center", va="bottom", fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def inspection_json(run: TraceRun, chosen: list[dict]) -> dict:
    return {"trace": run.path, "policy": run.policy, "n_problems": len(run.records),
            "problems": [{**problem_summary(r), "step_rows": step_rows(r)} for r in chosen]}


def inspection_text(run: TraceRun, chosen: list[dict], all_listed: bool = True) -> str:
    """The run's headline, a summary row per problem (all of them when ``all_listed``), then the step
    table of each chosen problem."""
    head = f"{run.path}: {len(run.records)} problems, policy {run.policy or '-'}"
    models = (run.records[0].get("models") or {}) if run.records else {}
    if models:
        head += " (" + ", ".join(f"{k}={v}" for k, v in models.items()) + ")"
    lines = [head]
    summ = [problem_summary(r) for r in (in_id_order(run.records) if all_listed else chosen)]
    lines.append(format_table(["id", "finish", "steps", "regen", "strong_tok", "answer", "reference", "correct"],
                              [[s["id"], s["finish"], s["steps"], s["regenerated"], s["strong_tokens"],
                                s["answer"], s["reference"], s["correct"]] for s in summ],
                              align="llrrrllll"))
    for rec in chosen:
        lines.append(f"\nproblem {rec['id']}: finish={rec['finish']}"
                     + (f" error={rec['error']}" if rec.get("error") else ""))
        lines.append(step_table(rec) if rec["steps"] else "(no steps)")
    if any(rec["steps"] for rec in chosen):
        import textwrap

        lines.append("\n" + textwrap.fill(LEGEND, width=110, subsequent_indent="  "))
    if all_listed and len(run.records) > len(chosen):
        lines.append(f"\n... {len(run.records) - len(chosen)} more problems (use --problem ID or --max-problems)")
    return "\n".join(lines)


#: how the same command reaches real models (the README's vLLM recipe)
SERVERS_HINT = ("for real models run the same command against servers: --weak/--strong "
                "'http://HOST:PORT/v1?model=NAME' --prm 'vllm-pooling:http://HOST:PORT?model=Qwen/Qwen2.5-Math-PRM-7B' "
                "(README: Serving models with vLLM)")


def routing_summary(run: TraceRun) -> str:
    """One line: steps kept vs regenerated; for the packaged judge PRM how well it told wrong steps from
    right ones on labelled data (why its scores move the belief little); for the packaged 135M/270M
    models why accuracy is about 0; for in-process models how to point the command at servers."""
    from trimpomdp.decode.models import PACKAGED
    from trimpomdp.packaged import prm_calibration

    c = step_counts(run.records)
    parts = [f"summary: {c['kept']} of {c['steps']} steps kept, {c['regenerated']} regenerated by the strong "
             "model"]
    models = (run.records[0].get("models") or {}) if run.records else {}
    cal = prm_calibration(models.get("prm"))
    if cal is not None:
        parts.append(f"{models['prm']} told a solution's first wrong step from a correct one with AUC "
                     f"{cal['prm_auc']:.2f} (0.5 = chance) on {cal['prm_correct_steps'] + cal['prm_first_wrong_steps']:,} "
                     f"labelled {cal['prm_data']} steps, so one score moves the belief little")
    if models.get("weak") in PACKAGED and models.get("strong") in (*PACKAGED, None):
        right = sum(r.get("correct") is True for r in run.records)
        parts.append(f"{right} of {len(run.records)} correct: 135M/270M models rarely solve these problems; "
                     "they are here to show the mechanics on a CPU")
    if not any(str(models.get(k) or "").startswith(("http://", "https://")) for k in ("weak", "strong")):
        parts.append(SERVERS_HINT)
    return "; ".join(parts)


def step_counts(records: list[dict]) -> dict:
    """Steps kept and regenerated over a run's records."""
    steps = [s for r in records for s in r["steps"]]
    regen = sum(s["action"] == "regenerate" for s in steps)
    return {"steps": len(steps), "kept": len(steps) - regen, "regenerated": regen}
