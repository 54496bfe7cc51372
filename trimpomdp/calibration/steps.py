"""The spread of reasoning-step lengths, measured on real step-split solutions (ProcessBench layout).

A step's token count varies a lot within a solution; how much matters to any policy that weighs the
draft's length (the reference's POMDP charges lambda times it). The log-sd of step lengths is unit-free,
so character counts of real steps measure it without the models' tokenizers. Pooled within the states
correct / first wrong / after the first error, since the calibrated model gives each state its own mean.
"""
from __future__ import annotations

import json

import numpy as np

from trimpomdp.errors import FormatError

#: the value measured on ../shared/data/processbench/math.json (``step_log_sd``), the default when no file is given
STEP_LOG_SD = 0.689


def step_lengths(path) -> dict:
    """Character counts of the non-empty steps of each state: 'correct', 'fresh_error', 'derailed'."""
    try:
        items = json.loads(open(path, encoding="utf-8").read())
    except (OSError, ValueError) as e:
        raise FormatError(f"cannot read step-split solutions: {e}", str(path)) from None
    if not isinstance(items, list):
        raise FormatError("expected a JSON list of solutions with 'steps' and 'label'", str(path))
    out = {"correct": [], "fresh_error": [], "derailed": []}
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("steps"), list) or not isinstance(it.get("label"), int):
            raise FormatError(f"item {i}: expected 'steps' (a list of strings) and 'label' (an integer)", str(path))
        lab = it["label"]
        for k, s in enumerate(it["steps"]):
            if not isinstance(s, str):
                raise FormatError(f"item {i}: step {k} is not a string", str(path))
            if s.strip():
                key = "correct" if lab < 0 or k < lab else "fresh_error" if k == lab else "derailed"
                out[key].append(len(s))
    if not out["correct"]:
        raise FormatError("no correct steps to measure", str(path))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def step_log_sd(path) -> float:
    """Pooled within-state standard deviation of log step length."""
    lens = step_lengths(path)
    dev = np.concatenate([np.log(v) - np.log(v).mean() for v in lens.values() if v.size > 1])
    return float(np.sqrt(np.mean(dev ** 2)))


def error_length_ratio(path) -> float:
    """Mean length of a first wrong step over that of a correct step (a cross-check of the fit)."""
    lens = step_lengths(path)
    return float(lens["fresh_error"].mean() / lens["correct"].mean())
