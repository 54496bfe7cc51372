"""Labelled observation data for fitting observation models.

Two sources:

(a) observation vectors with state labels: ``.npz`` with one (n, d) array per state (the layout of
    ``shared/data/prm_obs_processbench_math.npz``) or with arrays ``X`` (n, d) and ``y`` (n,); a CSV file
    with a header row, feature columns then a label column; a JSONL file of ``{"obs": [...], "state": ...}``.
(b) ProcessBench items (``problem``, ``steps``, ``label`` = 0-based first wrong step or -1) plus a JSONL
    of per-step PRM scores ``{"id": ..., "scores": [...]}`` (``id`` = the item's ``id`` field or its
    0-based index). Prefixes are labelled as in the TRIM formulation: every prefix of a fully correct
    solution -> ``correct``; the prefix ending at the first wrong step -> ``fresh_error``; longer
    prefixes -> ``derailed``. Prefixes of a flawed solution *before* its first error are not used by
    the formulation (they are correct, but come from solutions that go wrong); ``pre_error_correct=True``
    adds them to ``correct``. The 2-D observation of the prefix ending at step t is (min of the scores
    of steps before t, 1.0 for the first step; score of step t); 1-D uses the score of step t.

Every error names the file and (1-based) line.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trimpomdp.errors import FormatError, ModelError
from trimpomdp.observation_models.binned import TRIM_STATES


@dataclass
class LabelledData:
    """Observations X (n, d) in [0, 1]^d with string state labels y (n,)."""

    X: np.ndarray
    y: np.ndarray
    source: str = ""

    @property
    def states(self) -> tuple[str, ...]:
        present = list(dict.fromkeys(self.y.tolist()))
        rest = sorted(s for s in present if s not in TRIM_STATES)
        return tuple(s for s in TRIM_STATES if s in present) + tuple(rest)

    def counts(self) -> dict:
        return {s: int(np.sum(self.y == s)) for s in self.states}

    def by_state(self) -> dict:
        return {s: self.X[self.y == s] for s in self.states}

    def select_dims(self, dims: int | None) -> "LabelledData":
        """``dims=1`` on 2-D data keeps the last coordinate (the current step's score)."""
        if dims is None or dims == self.X.shape[1]:
            return self
        if dims == 1:
            return LabelledData(self.X[:, -1:], self.y, self.source)
        raise ModelError(f"{self.source}: the data have {self.X.shape[1]} coordinate(s), {dims} were asked for")


def _check_range(X: np.ndarray, path, lines=None):
    bad = np.flatnonzero(~np.all(np.isfinite(X) & (X >= 0) & (X <= 1), axis=1))
    if bad.size:
        i = int(bad[0])
        raise FormatError(f"observation {X[i].tolist()} is not in [0, 1]", str(path),
                          None if lines is None else lines[i])


def load_observations(path) -> LabelledData:
    """Labelled observation vectors from .npz, .csv or .jsonl (chosen by the file extension)."""
    path = Path(path)
    if not path.exists():
        raise FormatError("file not found", str(path))
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path)
    if suffix == ".csv":
        return _load_csv(path)
    if suffix in (".jsonl", ".json"):
        return _load_jsonl(path)
    raise FormatError("unknown data format: expected .npz, .csv or .jsonl", str(path))


def _load_npz(path: Path) -> LabelledData:
    from trimpomdp.artifacts import read_npz

    data = {k: v for k, v in read_npz(path).items() if k != "__meta__"}
    if "X" in data and "y" in data:
        X = np.asarray(data["X"], dtype=np.float64)
        X = X[:, None] if X.ndim == 1 else X
        y = np.asarray(data["y"]).astype(str)
        if X.ndim != 2 or y.ndim != 1 or len(y) != len(X):
            raise FormatError(f"X has shape {data['X'].shape} but y has shape {data['y'].shape}; "
                              "expected (n, d) and (n,)", str(path))
        if len(y) == 0:
            raise FormatError("arrays X and y are empty: no observations", str(path))
    else:
        Xs, ys = [], []
        for name, a in data.items():
            a = np.asarray(a)
            if a.dtype.kind not in "fiu":
                raise FormatError(f"array {name!r} is not numeric; expected one (n, d) array per state "
                                  "or arrays X and y", str(path))
            a = a.astype(np.float64)
            a = a[:, None] if a.ndim == 1 else a
            if a.ndim != 2:
                raise FormatError(f"array {name!r} has shape {a.shape}, expected (n, d)", str(path))
            if a.shape[0] == 0:
                raise FormatError(f"array {name!r} is empty (shape {a.shape}): state {name!r} needs at least one "
                                  "observation; fill it, or leave the array out (fit-obs then needs "
                                  "--partial-states)", str(path))
            Xs.append(a)
            ys.append(np.full(len(a), name))
        if not Xs:
            raise FormatError("no arrays: expected one (n, d) array per state or arrays X and y", str(path))
        if len({a.shape[1] for a in Xs}) > 1:
            raise FormatError("the state arrays have different numbers of columns", str(path))
        X, y = np.concatenate(Xs), np.concatenate(ys)
    _check_range(X, path)
    return LabelledData(X, y, str(path))


def _is_number(v: str) -> bool:
    try:
        float(v)
        return True
    except ValueError:
        return False


def _load_csv(path: Path) -> LabelledData:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise FormatError("empty CSV file; expected a header row (features..., label)", str(path), 1)
    header = rows[0]
    if len(header) < 2:
        raise FormatError("header must name at least one feature column and a label column", str(path), 1)
    if all(_is_number(v) for v in header[:-1]):
        raise FormatError("the first row looks like data; a header row (features..., label) is required",
                          str(path), 1)
    X, y, lines = [], [], []
    for ln, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise FormatError(f"{len(row)} fields, expected {len(header)} like the header", str(path), ln)
        try:
            X.append([float(v) for v in row[:-1]])
        except ValueError:
            raise FormatError(f"non-numeric feature in {row[:-1]}", str(path), ln) from None
        y.append(row[-1].strip())
        lines.append(ln)
    if not X:
        raise FormatError("no data rows after the header", str(path))
    X = np.asarray(X, dtype=np.float64)
    _check_range(X, path, lines)
    return LabelledData(X, np.asarray(y, dtype=str), str(path))


def read_jsonl(path: Path):
    """(line number, value) of each non-blank JSONL line; a bad line is a FormatError naming it."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for ln, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield ln, json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(f"invalid JSON ({exc.msg})", str(path), ln) from None
            except RecursionError:
                raise FormatError("invalid JSON (nested too deeply)", str(path), ln) from None


def _load_jsonl(path: Path) -> LabelledData:
    X, y, lines = [], [], []
    for ln, rec in read_jsonl(path):
        if not isinstance(rec, dict) or "obs" not in rec or "state" not in rec:
            raise FormatError('expected an object {"obs": [...], "state": "..."}', str(path), ln)
        obs = rec["obs"]
        obs = [obs] if isinstance(obs, (int, float)) else obs
        if not isinstance(obs, list) or not obs or not all(isinstance(v, (int, float)) for v in obs):
            raise FormatError(f'"obs" must be a number or a list of numbers, got {rec["obs"]!r}', str(path), ln)
        if X and len(obs) != len(X[0]):
            raise FormatError(f'"obs" has {len(obs)} values, earlier lines have {len(X[0])}', str(path), ln)
        X.append([float(v) for v in obs])
        y.append(str(rec["state"]))
        lines.append(ln)
    if not X:
        raise FormatError("no observations", str(path))
    X = np.asarray(X, dtype=np.float64)
    _check_range(X, path, lines)
    return LabelledData(X, np.asarray(y, dtype=str), str(path))


# ---------------------------------------------------------------------------------------- ProcessBench
def load_processbench(path, need_problem: bool = False) -> list[dict]:
    """ProcessBench items (a JSON list, or JSONL), normalised to ``{"id", "problem", "steps", "label"}``:
    ``id`` the item's own id or its 0-based position, ``problem`` from ``problem`` or ``question`` (None
    if absent, an error with ``need_problem``), ``steps`` a list of strings, ``label`` the 0-based index
    of the first wrong step or -1. The one reader of this layout (``fit-obs --labels``, ``score-steps``)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError("file not found (expected ProcessBench items: a JSON list or JSONL)", str(path))
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        items = json.loads(text)
        if not isinstance(items, list):
            raise FormatError("expected a JSON list of ProcessBench items", str(path))
        lines = [None] * len(items)
    except (json.JSONDecodeError, RecursionError):
        pairs = list(read_jsonl(path))
        items, lines = [p[1] for p in pairs], [p[0] for p in pairs]
    out = []
    for i, (it, ln) in enumerate(zip(items, lines)):
        where = f"item {i}: " if ln is None else ""
        steps = it.get("steps") if isinstance(it, dict) else None
        label = it.get("label") if isinstance(it, dict) else None
        if (not isinstance(steps, list) or not all(isinstance(x, str) for x in steps)
                or isinstance(label, bool) or not isinstance(label, int)):
            raise FormatError(where + 'expected an object with "steps" (list of strings) and "label" (int)',
                              str(path), ln)
        if not -1 <= label < len(steps):
            raise FormatError(where + f"label {label} is not -1 or a step index below {len(steps)}", str(path), ln)
        problem = it.get("problem", it.get("question"))
        if not (isinstance(problem, str) or (problem is None and not need_problem)):
            raise FormatError(where + 'expected the question as a string in "problem" (or "question")',
                              str(path), ln)
        out.append({"id": str(it.get("id", i)), "problem": problem, "steps": steps, "label": label})
    return out


def load_scores(path) -> list[tuple[int, object, list]]:
    """(line, id, scores) per line of a per-step PRM scores JSONL."""
    path = Path(path)
    if not path.exists():
        raise FormatError("file not found", str(path))
    out = []
    for ln, rec in read_jsonl(path):
        if not isinstance(rec, dict) or "id" not in rec or "scores" not in rec:
            raise FormatError('expected an object {"id": ..., "scores": [...]}', str(path), ln)
        sc = rec["scores"]
        if not isinstance(sc, list) or not all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in sc):
            raise FormatError('"scores" must be a list of numbers in [0, 1]', str(path), ln)
        out.append((ln, rec["id"], [float(v) for v in sc]))
    if not out:
        raise FormatError("no score records", str(path))
    return out


def prefix_observations(scores, label: int, dims: int = 2, pre_error_correct: bool = False):
    """Observations and states of the labelled prefixes of one scored solution (see the module doc)."""
    X, y = [], []
    for t, s in enumerate(scores):
        if label == -1:
            state = "correct"
        elif t < label:
            if not pre_error_correct:
                continue
            state = "correct"
        elif t == label:
            state = "fresh_error"
        else:
            state = "derailed"
        prev = min(scores[:t]) if t > 0 else 1.0
        X.append([prev, s] if dims == 2 else [s])
        y.append(state)
    return X, y


def processbench_prefixes(items, scores, dims: int = 2, pre_error_correct: bool = False,
                          items_path: str = "items", scores_path: str = "scores") -> LabelledData:
    """Labelled prefixes from ProcessBench items and ``load_scores`` records (or a dict id -> scores)."""
    if dims not in (1, 2):
        raise ModelError(f"dims must be 1 or 2, not {dims}")
    if isinstance(scores, dict):
        scores = [(None, k, v) for k, v in scores.items()]
    by_id = {str(i): i for i in range(len(items))}
    by_id.update({str(it["id"]): i for i, it in enumerate(items) if "id" in it})  # an id field wins
    X, y, seen = [], [], set()
    for ln, key, sc in scores:
        if str(key) not in by_id:
            raise FormatError(f"id {key!r} matches no item of {items_path} (by 'id' field or 0-based index)",
                              scores_path, ln)
        i = by_id[str(key)]
        if i in seen:
            raise FormatError(f"item {key!r} is scored twice", scores_path, ln)
        seen.add(i)
        n_steps = len(items[i]["steps"])
        if len(sc) != n_steps:
            raise FormatError(f"{len(sc)} scores for item {key!r}, which has {n_steps} steps", scores_path, ln)
        xi, yi = prefix_observations(sc, items[i]["label"], dims, pre_error_correct)
        X += xi
        y += yi
    if not X:
        raise FormatError("no labelled prefixes", scores_path)
    return LabelledData(np.asarray(X, dtype=np.float64), np.asarray(y, dtype=str), str(scores_path))


def load_labelled(path, labels=None, dims: int | None = None, pre_error_correct: bool = False) -> LabelledData:
    """Labelled data from ``path``: observation vectors, or PRM scores JSONL with ProcessBench ``labels``."""
    if labels is not None:
        items = load_processbench(labels)
        return processbench_prefixes(items, load_scores(path), dims or 2, pre_error_correct,
                                     items_path=str(labels), scores_path=str(path))
    return load_observations(path).select_dims(dims)
