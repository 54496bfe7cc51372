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
    label: str | None = None  # the policy spec of a decode trace

    @property
    def name(self) -> str:
        if self.label:
            return self.label
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


def runs_from_traces(paths) -> list[RunPoint]:
    """Run points of our own decode traces, one per file: ``weak`` is the cheap-only run, ``strong`` the
    strong-only run, ``threshold:K`` a threshold run; ``pomdp:...`` runs are held out (predicted, not
    fitted). Every problem must have a verdict, and all files must hold the same problems."""
    from trimpomdp.analysis.runs import run_point
    from trimpomdp.decode.trace import read_run

    out, ids = [], None
    for path in paths:
        run = read_run(path)
        if not run.records:
            raise FormatError("no problems in this trace", str(path))
        pol = run.policy or ""
        kind, _, arg = pol.partition(":")
        if kind == "weak":
            family, knob = "cheap", 0.0
        elif kind == "strong":
            family, knob = "strong", 1.0
        elif kind in ("threshold", "pomdp"):
            family = kind
            try:
                knob = float(arg) if kind == "threshold" else float(arg.split("=", 1)[1]) if "=" in arg else math.nan
            except ValueError:
                knob = math.nan
            if kind == "threshold" and not 0 <= knob <= 1:
                raise FormatError(f"policy {pol!r}: expected threshold:K with K in [0, 1]", str(path))
        else:
            raise FormatError(f"policy {pol!r}: calibration reads weak, strong, threshold:K and pomdp:... runs",
                              str(path))
        these = {r["id"] for r in run.records}
        if ids is not None and these != ids:
            raise FormatError(f"its {len(these)} problems differ from the {len(ids)} of {paths[0]}: decode the "
                              "same problems with every policy", str(path))
        ids = these
        unchecked = [r["id"] for r in run.records if r.get("correct") is None]
        if unchecked:
            raise FormatError(f"{len(unchecked)} problems without a verdict (first: {unchecked[0]!r}); calibration "
                              "needs problems with reference answers", str(path))
        pt = run_point(run)
        calls = pt["regen_frac"] * pt["steps"]
        if family == "strong" and calls <= 0:
            raise FormatError("a strong-only run with no strong steps", str(path))
        out.append(RunPoint(family, knob, pt["accuracy"], pt["n"], pt["strong_tokens"], calls, pt["weak_tokens"],
                            pt["weak_discarded"], str(path), label=None if family in ("cheap", "strong") else pol))
    if not out:
        raise FormatError("no traces given", "")
    return out


def length_pmf_from_traces(paths, max_steps: int = 30):
    """P(L = t), t = 1..max_steps, from the step counts of the cheap-only (``weak``) trace."""
    import numpy as np

    from trimpomdp.decode.trace import read_run

    for path in paths:
        run = read_run(path)
        if run.policy == "weak":
            n = np.array([len(r["steps"]) for r in run.records if r["steps"]], dtype=np.int64)
            if n.size == 0:
                raise FormatError("the cheap-only trace has no steps", str(path))
            return np.bincount(np.minimum(n, max_steps) - 1, minlength=max_steps) / n.size
    raise FormatError("no cheap-only (weak) trace among --traces to read solution lengths from", str(paths[0]))
