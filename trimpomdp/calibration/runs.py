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


def load_runs(path) -> list[RunPoint]:
    """The run points of one summary file (see the module docstring): read and schema-checked by
    ``routing.reference_runs``, then held to what a calibration needs."""
    from trimpomdp.routing.reference_runs import read_reference_file

    out = []
    for p in read_reference_file(path):
        where = (p.path, p.line)
        got = {"num_correct": p.n_correct, "avg_target_calls_per_question": p.strong_calls,
               "avg_draft_tokens_per_question": p.cheap_kept,
               "avg_discarded_draft_tokens_per_question": p.cheap_discarded}
        missing = [k for k, v in got.items() if v is None]
        if missing:
            raise FormatError(f"missing field {missing[0]!r} (a run summary needs {', '.join(REQUIRED)})", *where)
        n = p.n_questions if p.n_questions is not None else round(p.n_correct / p.accuracy) if p.accuracy else None
        if n is None or n < 1 or abs(p.n_correct / n - p.accuracy) > 1e-3:
            raise FormatError(f"num_correct {p.n_correct} and accuracy {p.accuracy:g} give no whole number of "
                              "questions (add num_questions)", *where)
        if p.knob is None or p.knob[0] not in ("threshold", "cost_per_token"):
            raise FormatError("no policy knob: expected 'threshold' or 'cost_per_token'", *where)
        name, knob = p.knob
        if name == "threshold":
            if not 0 <= knob <= 1:
                raise FormatError(f"field 'threshold': expected a number in [0, 1], found {knob:g}", *where)
            family = "cheap" if knob == 0.0 else "strong" if knob == 1.0 else "threshold"
        else:
            family = "pomdp"
        r = RunPoint(family, knob, p.accuracy, int(n), p.strong_tokens, p.strong_calls, p.cheap_kept,
                     p.cheap_discarded, p.where)
        if family == "strong" and r.strong_calls <= 0:
            raise FormatError("a strong-only run (threshold 1) with no strong calls", *where)
        if family == "cheap" and r.strong_calls > 0:
            raise FormatError("a cheap-only run (threshold 0) with strong calls", *where)
        if r.strong_calls == 0 and r.strong_tokens > 0:
            raise FormatError("strong tokens without strong calls", *where)
        out.append(r)
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
