"""Run summaries of real routed decoding, the data a routing model is calibrated against.

One line per operating point in the reference implementation's format (``../shared/data/anchor_runs``):
``accuracy``, ``num_correct``, ``avg_target_tokens_per_question`` (strong tokens), ``avg_target_calls_per_question``
(strong calls), ``avg_draft_tokens_per_question`` (cheap tokens kept), ``avg_discarded_draft_tokens_per_question``,
and the policy's knob: ``threshold`` (a threshold run; 0 is cheap-only, 1 strong-only) or
``cost_per_token`` (a POMDP run); ``num_questions`` is optional (the count follows from ``num_correct`` and
``accuracy`` unless the accuracy is 0). Every field is checked; a bad line is one error naming file and line.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from trimpomdp.errors import FormatError

#: fields every run line needs
REQUIRED = ("accuracy", "num_correct", "avg_target_tokens_per_question", "avg_target_calls_per_question",
            "avg_draft_tokens_per_question", "avg_discarded_draft_tokens_per_question")


@dataclass(frozen=True)
class RunPoint:
    """One real operating point: ``family`` 'cheap', 'strong', 'threshold' or 'pomdp' and its ``knob``."""

    family: str
    knob: float
    accuracy: float
    questions: int
    strong_tokens: float
    strong_calls: float
    cheap_tokens: float
    discarded_tokens: float
    source: str

    @property
    def name(self) -> str:
        return {"cheap": "cheap only", "strong": "strong only", "threshold": f"threshold {self.knob:g}",
                "pomdp": f"pomdp cost {self.knob:g}"}[self.family]


def _num(rec, key, path, ln, lo=0.0, hi=math.inf) -> float:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise FormatError(f"field {key!r}: expected a number in [{lo:g}, {hi:g}], found {v!r}", str(path), ln)
    return float(v)


def load_runs(path) -> list[RunPoint]:
    """The run points of one summary file (see the module docstring)."""
    from trimpomdp.observation_models.data import read_jsonl

    path = Path(path)
    if not path.is_file():
        raise FormatError("file not found", str(path))
    out = []
    for ln, rec in read_jsonl(path):
        if not isinstance(rec, dict):
            raise FormatError("expected a JSON object (one run summary a line)", str(path), ln)
        missing = [k for k in REQUIRED if k not in rec]
        if missing:
            raise FormatError(f"missing field {missing[0]!r} (a run summary needs {', '.join(REQUIRED)})",
                              str(path), ln)
        acc = _num(rec, "accuracy", path, ln, 0.0, 1.0)
        correct = _num(rec, "num_correct", path, ln)
        if correct != int(correct):
            raise FormatError(f"field 'num_correct': expected a whole number, found {correct:g}", str(path), ln)
        if "num_questions" in rec:  # optional; needed when the accuracy is 0
            n = int(_num(rec, "num_questions", path, ln, 1.0))
        else:
            n = round(correct / acc) if acc > 0 else None
        if n is None or n < 1 or abs(correct / n - acc) > 1e-3:
            raise FormatError(f"num_correct {correct:g} and accuracy {acc:g} give no whole number of questions",
                              str(path), ln)
        if "threshold" in rec:
            knob = _num(rec, "threshold", path, ln, 0.0, 1.0)
            family = "cheap" if knob == 0.0 else "strong" if knob == 1.0 else "threshold"
        elif "cost_per_token" in rec:
            knob, family = _num(rec, "cost_per_token", path, ln), "pomdp"
        else:
            raise FormatError("no policy knob: expected 'threshold' or 'cost_per_token'", str(path), ln)
        p = RunPoint(family, knob, acc, int(n), _num(rec, "avg_target_tokens_per_question", path, ln),
                     _num(rec, "avg_target_calls_per_question", path, ln),
                     _num(rec, "avg_draft_tokens_per_question", path, ln),
                     _num(rec, "avg_discarded_draft_tokens_per_question", path, ln), f"{path}:{ln}")
        if family == "strong" and p.strong_calls <= 0:
            raise FormatError("a strong-only run (threshold 1) with no strong calls", str(path), ln)
        if family == "cheap" and p.strong_calls > 0:
            raise FormatError("a cheap-only run (threshold 0) with strong calls", str(path), ln)
        if p.strong_calls == 0 and p.strong_tokens > 0:
            raise FormatError("strong tokens without strong calls", str(path), ln)
        out.append(p)
    if not out:
        raise FormatError("no run summaries", str(path))
    return out


def load_run_dir(folder) -> list[RunPoint]:
    """Every ``*.jsonl`` of a folder; their question counts must agree (one problem set)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.jsonl")) if folder.is_dir() else [folder]
    if not files:
        raise FormatError("no *.jsonl run summaries", str(folder))
    runs = [p for f in files for p in load_runs(f)]
    sizes = {p.questions for p in runs}
    if len(sizes) > 1:
        first = runs[0]
        other = next(p for p in runs if p.questions != first.questions)
        raise FormatError(f"{other.questions} questions here but {first.questions} in {first.source}: runs of "
                          "different problem sets cannot be calibrated together", other.source)
    return runs
