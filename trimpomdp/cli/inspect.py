"""``trimpomdp inspect``: look inside a decode run — per-step routing decisions and belief trajectories.

The per-step table shows what the policy saw (PRM score, the filter's belief before/after the
observation) and what it did (keep/regenerate, with Q-values), which is what one needs to debug a
policy on real problems; the figure shows b(C), b(E), b(D) along each solution with regenerated steps
marked.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from trimpomdp.decode.trace import read_run
from trimpomdp.errors import TrimError

STATES = ("C", "E", "D")


def format_table(headers: list[str], rows: list[list], align: str | None = None) -> str:
    """A plain fixed-width text table (numbers right-aligned)."""
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in r] for r in rows]
    widths = [max(len(r[k]) for r in cells) for k in range(len(headers))]
    if align is None:
        align = "".join("r" if rows and isinstance(rows[0][k], (int, float)) else "l"
                        for k in range(len(headers)))
    lines = []
    for i, r in enumerate(cells):
        parts = [c.rjust(w) if a == "r" else c.ljust(w) for c, w, a in zip(r, widths, align)]
        lines.append("  ".join(parts).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _fmt(x, nd: int = 3) -> str | None:
    if x is None:
        return None
    return f"{x:.{nd}f}"


def _belief(b) -> str | None:
    if not b:
        return None
    return " ".join(f"{v:.2f}" for v in b)


def step_rows(rec: dict) -> list[dict]:
    """The per-step view of one record (also the --json output)."""
    rows = []
    for st in rec["steps"]:
        rows.append({"step": st["index"], "model": st["model"], "action": st["action"],
                     "prm_score": st.get("prm_score"), "observation": st.get("observation"),
                     "obs_bin": st.get("obs_bin"),
                     "belief_before": st.get("belief_before"), "belief_after": st.get("belief_after"),
                     "q_keep": st.get("q_keep"), "q_regenerate": st.get("q_regenerate"),
                     "weak_tokens": st.get("weak_tokens", 0), "strong_tokens": st.get("strong_tokens", 0),
                     "text": st["text"]})
    return rows


def step_table(rec: dict, width: int = 48) -> str:
    rows = []
    for r in step_rows(rec):
        text = " ".join(r["text"].split())
        short = text[:width] + ("..." if len(text) > width else "")
        rows.append([r["step"], r["model"], _fmt(r["prm_score"]), _belief(r["belief_before"]),
                     _belief(r["belief_after"]), r["action"], _fmt(r["q_keep"], 2),
                     _fmt(r["q_regenerate"], 2), r["weak_tokens"], r["strong_tokens"], short])
    return format_table(["step", "model", "prm", "b_before C E D", "b_after C E D", "action", "Q_keep",
                         "Q_regen", "weak_tok", "strong_tok", "text"], rows, align="rlrllllrrrl")


def problem_summary(rec: dict) -> dict:
    steps = rec["steps"]
    return {"id": rec["id"], "finish": rec["finish"], "steps": len(steps),
            "regenerated": sum(s["action"] == "regenerate" for s in steps),
            "strong_tokens": rec["tokens"]["strong"], "answer": rec.get("answer"),
            "reference": rec.get("reference"), "correct": rec.get("correct"), "error": rec.get("error")}


def plot_trajectories(records: list[dict], path, title: str | None = None) -> Path:
    """One panel per problem: b(C), b(E), b(D) after each step's observation (solid) and the filter's prior
    (dotted); regenerated steps are marked with a red band and a cross on b(C)."""
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
        for s in regen:
            ax.axvspan(s["index"] - 0.4, s["index"] + 0.4, color="red", alpha=0.12, lw=0)
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
    axes[0][0].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


@click.command("inspect")
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--problem", "problems", multiple=True, metavar="ID",
              help="Show only this problem (repeatable).")
@click.option("--max-problems", default=10, show_default=True, type=click.IntRange(min=1),
              help="Step tables/panels shown when no --problem is given.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None,
              help="Write a PNG of belief trajectories per problem.")
@click.option("--json", "as_json", is_flag=True, help="Print the per-step data as JSON instead of tables.")
def inspect_cmd(trace, problems, max_problems, plot_path, as_json):
    """Belief trajectories and routing decisions of a decode run (TRACE is a decode output .jsonl)."""
    run = read_run(trace)
    by_id = {r["id"]: r for r in run.records}
    if problems:
        missing = [p for p in problems if p not in by_id]
        if missing:
            some = ", ".join(list(by_id)[:5]) or "none"
            raise TrimError(f"{trace}: no problem with id {missing[0]!r} (ids include: {some})")
        chosen = [by_id[p] for p in problems]
    else:
        chosen = run.records[:max_problems]
    if as_json:
        out = {"trace": str(trace), "policy": run.policy, "n_problems": len(run.records),
               "problems": [{**problem_summary(r), "step_rows": step_rows(r)} for r in chosen]}
        click.echo(json.dumps(out, indent=1))
    else:
        head = f"{trace}: {len(run.records)} problems, policy {run.policy or '-'}"
        if run.records:
            models = run.records[0].get("models") or {}
            if models:
                head += " (" + ", ".join(f"{k}={v}" for k, v in models.items()) + ")"
        click.echo(head)
        summ = [problem_summary(r) for r in (chosen if problems else run.records)]
        click.echo(format_table(["id", "finish", "steps", "regen", "strong_tok", "answer", "reference",
                                 "correct"],
                                [[s["id"], s["finish"], s["steps"], s["regenerated"], s["strong_tokens"],
                                  s["answer"], s["reference"], s["correct"]] for s in summ],
                                align="llrrrllll"))
        for rec in chosen:
            click.echo(f"\nproblem {rec['id']}: finish={rec['finish']}"
                       + (f" error={rec['error']}" if rec.get("error") else ""))
            click.echo(step_table(rec) if rec["steps"] else "(no steps)")
        if not problems and len(run.records) > len(chosen):
            click.echo(f"\n... {len(run.records) - len(chosen)} more problems "
                       "(use --problem ID or --max-problems)")
    if plot_path:
        out = plot_trajectories(chosen, plot_path, title=f"{Path(trace).name}: {run.policy or ''}")
        click.echo(f"wrote {out}", err=as_json)
