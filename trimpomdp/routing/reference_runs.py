"""The reference implementation's real runs (``anchor_runs/*.jsonl``) as metric curves: every line is
checked, the cheap-only and strong-only runs are found, and each file (a policy family) gets the same
PGR / CPT / IBC / Delta-IBC as simulated or decoded families (``routing.metrics``), with its recorded
token costs (``routing.costs``).

A file holds one operating point a line (format in ``docs/formats.md``). The cheap-only run is the line
with no strong tokens and no strong calls; the strong-only run the line with strong tokens and no cheap
tokens (kept or discarded). They are the PGR anchors of every other line on the same benchmark (named by
the file: ``trim_thr_math500_...`` is MATH-500) and are not part of any family's curve; each family's
front starts at the cheap-only point.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trimpomdp import schemas
from trimpomdp.errors import FormatError, TrimError
from trimpomdp.routing import costs as C
from trimpomdp.routing import metrics as M

_N = "number"
#: one line of a reference run file (other fields are allowed and ignored)
REFERENCE_RUN = (
    schemas.Field("accuracy", _N, ge=0, le=1),
    schemas.Field("avg_target_tokens_per_question", _N, ge=0),
    schemas.Field("avg_target_calls_per_question", _N, ge=0, required=False),
    schemas.Field("avg_draft_tokens_per_question", _N, ge=0, required=False),
    schemas.Field("avg_discarded_draft_tokens_per_question", _N, ge=0, required=False),
    schemas.Field("num_correct", "int", ge=0, required=False),
    schemas.Field("num_questions", "int", ge=1, required=False),
    schemas.Field("threshold", _N, required=False, null=True),
    schemas.Field("cost_per_token", _N, required=False, null=True),
)
#: fields that name an operating point within its family
_KNOBS = ("threshold", "cost_per_token", "lambda", "budget")


@dataclass(frozen=True)
class RealPoint:
    """One real operating point (per-question means) and where it was read."""

    path: str
    line: int
    label: str
    accuracy: float
    strong_tokens: float
    strong_calls: float | None
    cheap_kept: float | None
    cheap_discarded: float | None
    knob: tuple[str, float] | None = None  # (field, value) of the policy's knob, e.g. ("threshold", 0.5)
    n_correct: int | None = None
    n_questions: int | None = None

    @property
    def role(self) -> str | None:
        """'weak' (cheap-only), 'strong' (strong-only) or None (a routed point)."""
        if self.strong_tokens == 0 and not self.strong_calls:
            return "weak"
        if self.strong_tokens > 0 and self.cheap_kept == 0 and self.cheap_discarded == 0:
            return "strong"
        return None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"

    def costs(self) -> dict:
        return {"strong_tokens": self.strong_tokens, "cheap_kept": self.cheap_kept,
                "cheap_discarded": self.cheap_discarded, "prm_tokens": None, "seconds": None}


def read_reference_file(path) -> list[RealPoint]:
    """Every operating point of one reference run file; a bad line is a FormatError naming file and line."""
    p = Path(path)
    problem = schemas.file_problem(p, kind="text")
    if problem:
        raise FormatError(f"{problem} (expected a reference run .jsonl)", str(p))
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise FormatError("not UTF-8 text (expected a reference run .jsonl)", str(p)) from None
    out = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise FormatError(f"invalid JSON ({exc.msg} at column {exc.colno})", str(p), lineno) from None
        except RecursionError:
            raise FormatError("invalid JSON (nested too deeply)", str(p), lineno) from None
        schemas.check_fields(REFERENCE_RUN, rec, str(p), line=lineno)
        kv = next(((k, float(rec[k])) for k in _KNOBS if isinstance(rec.get(k), (int, float))
                   and not isinstance(rec.get(k), bool)), None)
        knob = f"{kv[0]}={kv[1]:g}" if kv else f"line {lineno}"
        get = rec.get
        out.append(RealPoint(str(p), lineno, knob, float(rec["accuracy"]),
                             float(rec["avg_target_tokens_per_question"]),
                             None if get("avg_target_calls_per_question") is None
                             else float(get("avg_target_calls_per_question")),
                             None if get("avg_draft_tokens_per_question") is None
                             else float(get("avg_draft_tokens_per_question")),
                             None if get("avg_discarded_draft_tokens_per_question") is None
                             else float(get("avg_discarded_draft_tokens_per_question")),
                             kv, get("num_correct"), get("num_questions")))
    if not out:
        raise FormatError("no operating points (expected one JSON object a line with accuracy and "
                          "avg_target_tokens_per_question)", str(p))
    return out


def read_reference_folder(folder) -> dict[str, list[RealPoint]]:
    """{file stem: its points} for every ``*.jsonl`` in ``folder``."""
    d = Path(folder)
    if not d.is_dir():
        raise FormatError("folder not found (expected a folder of reference runs, *.jsonl)", str(d))
    files = sorted(d.glob("*.jsonl"))
    if not files:
        raise FormatError("no *.jsonl reference run files in this folder", str(d))
    return {f.stem: read_reference_file(f) for f in files}


def _anchor(points: list[RealPoint], role: str, folder, bench) -> RealPoint | None:
    hits = [p for p in points if p.role == role]
    distinct = {(p.accuracy, p.strong_tokens) for p in hits}
    if len(distinct) > 1:
        raise TrimError(f"{folder}: several different {'cheap' if role == 'weak' else role}-only runs on {bench} "
                        f"({', '.join(p.where for p in hits)}); keep one")
    return hits[0] if hits else None


def _point_row(p: RealPoint, aw, as_, cs, prices) -> dict:
    row = {"label": p.label, "where": p.where, "accuracy": p.accuracy, "strong_tokens": p.strong_tokens,
           "strong_calls": p.strong_calls, **p.costs()}
    row.update(M.summarize([{"accuracy": p.accuracy, "strong_tokens": p.strong_tokens}], aw, as_, cs)[0])
    row["cost"] = C.price(p.costs(), prices)
    return M.jsonable(row)


def reference_metrics(folder, prices: dict | None = None) -> dict:
    """The metrics of every family in a reference folder, per benchmark: {"folder", "benchmarks": [{
    "benchmark", "weak", "strong", "acc_weak", "acc_strong", "cost_strong", "families": {stem: {curve
    metrics..., "points": [...]}}, "note"?}]}; JSON-ready (not-reached CPTs are None and listed)."""
    from trimpomdp.routing.plots import benchmark_key

    runs = read_reference_folder(folder)
    groups: dict[str | None, dict[str, list[RealPoint]]] = {}
    for stem, pts in runs.items():
        groups.setdefault(benchmark_key(stem), {})[stem] = pts
    out = []
    for bench, fams in groups.items():
        every = [p for pts in fams.values() for p in pts]
        weak, strong = (_anchor(every, r, folder, bench) for r in ("weak", "strong"))
        res: dict = {"benchmark": bench, "files": list(fams), "families": {}}
        if weak is None or strong is None:
            missing = " and ".join(r for r, x in (("cheap-only", weak), ("strong-only", strong)) if x is None)
            res["note"] = (f"no {missing} run among {', '.join(fams)}: PGR, CPT and Delta-IBC need both "
                           "(a cheap-only line has no strong tokens or calls; a strong-only line no cheap tokens)")
            out.append(res)
            continue
        aw, as_, cs = weak.accuracy, strong.accuracy, strong.strong_tokens
        res.update(acc_weak=aw, acc_strong=as_, cost_strong=cs,
                   weak=_point_row(weak, aw, as_, cs, prices), strong=_point_row(strong, aw, as_, cs, prices))
        if as_ <= aw:
            res["note"] = (f"the strong-only run ({strong.where}) is not more accurate than the cheap-only run "
                           f"({weak.where}): PGR, CPT and Delta-IBC are undefined")
        for stem, pts in fams.items():
            routed = [p for p in pts if p.role is None]
            if not routed:
                continue
            cm = M.curve_metrics([0.0] + [p.strong_tokens for p in routed], [aw] + [p.accuracy for p in routed],
                                 aw, as_, cs)
            res["families"][stem] = M.jsonable(
                {**cm, "points": [_point_row(p, aw, as_, cs, prices) for p in routed]})
        out.append(res)
    return {"folder": str(folder), "benchmarks": out}
