"""Cost-accuracy plots (matplotlib Agg): several policy families, optionally the reference's real runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


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
    curves: dict, path, reference: dict | None = None, title: str = "", points: dict | None = None
) -> Path:
    """``curves``: name -> (costs, accs) drawn as lines; ``points``: name -> (cost, acc) single markers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.6))
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
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
