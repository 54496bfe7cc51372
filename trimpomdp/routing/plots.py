"""Cost-accuracy plots (matplotlib Agg): several policy families, optionally the reference's real runs.

Every figure carries a caption saying what its lines and markers are. Reference runs are real results
on one benchmark (the shared ``anchor_runs`` are MATH-500): ``select_references`` keeps only those on the
benchmark of the runs being plotted, so a GSM8K run is never drawn against MATH-500 curves.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

#: benchmark names as they appear in problem files and reference run names (longest first)
KNOWN_BENCHMARKS = ("olympiadbench", "minerva_math", "aime_train", "aime_test", "math500", "aime24", "amc23",
                    "cmimc", "gsm8k", "aime", "minerva")


def benchmark_key(name: str | None) -> str | None:
    """The benchmark a file or run name refers to: ``gsm8k_test`` -> ``gsm8k``,
    ``trim_thr_math500_qwen1.5b_7b`` -> ``math500``; an unknown name is returned lower-cased."""
    if not name:
        return None
    low = str(name).lower()
    for b in KNOWN_BENCHMARKS:
        if re.search(rf"(?<![a-z0-9]){re.escape(b)}(?![a-z0-9])", low.replace("-", "_")):
            return {"minerva": "minerva_math"}.get(b, b)
    return low


def select_references(reference: dict, benchmark: str | None) -> tuple[dict, str | None]:
    """(the reference runs on ``benchmark``, a note naming the ones left out and why)."""
    want = benchmark_key(benchmark)
    kept = {k: v for k, v in reference.items() if want is not None and benchmark_key(k) == want}
    left = [k for k in reference if k not in kept]
    if not left:
        return kept, None
    theirs = ", ".join(sorted({str(benchmark_key(k)) for k in left}))
    why = (f"these runs are on {benchmark}" if benchmark else "these runs name no benchmark (no trace header)")
    return kept, f"reference runs not drawn: they are on {theirs}; {why}, so they are not comparable"


def load_reference_runs(folder) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{file stem: (strong tokens per question, accuracy)} from ``anchor_runs/*.jsonl``."""
    out = {}
    for f in sorted(Path(folder).glob("*.jsonl")):
        costs, accs = [], []
        for line in f.read_text().splitlines():
            if line.strip():
                r = json.loads(line)
                if "accuracy" in r and "avg_target_tokens_per_question" in r:
                    costs.append(float(r["avg_target_tokens_per_question"]))
                    accs.append(float(r["accuracy"]))
        if costs:
            o = np.argsort(costs)
            out[f.stem] = (np.asarray(costs)[o], np.asarray(accs)[o])
    return out


def plot_cost_accuracy(
    curves: dict, path, reference: dict | None = None, title: str = "", points: dict | None = None,
    note: str | None = None,
) -> Path:
    """``curves``: name -> (costs, accs) drawn as lines; ``points``: name -> (cost, acc) single markers;
    ``reference``: name -> (costs, accs) of real reference runs (dashed); ``note``: an extra caption line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.9))
    for name, (c, a) in curves.items():
        o = np.argsort(c)
        ax.plot(np.asarray(c)[o], np.asarray(a)[o], marker="o", ms=3, label=name)
    for name, (c, a) in (points or {}).items():
        ax.scatter([c], [a], marker="*", s=80, label=name, zorder=3)
    for name, (c, a) in (reference or {}).items():
        ax.plot(c, a, ls="--", marker="x", ms=4, alpha=0.7, label=f"reference: {name}")
    ax.set_xlabel("strong-model tokens per question")
    ax.set_ylabel("accuracy")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    caption = ["solid lines: a policy family's operating points (budget varied); stars: single runs"
               + ("; dashed x: published reference runs on the same benchmark" if reference else "")]
    if note:
        caption.append(note)
    fig.text(0.5, 0.005, "\n".join(caption), ha="center", va="bottom", fontsize=6.5, color="dimgray", wrap=True)
    fig.tight_layout(rect=(0, 0.035 * (len(caption) + 1), 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
