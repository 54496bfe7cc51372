"""Real per-step PRM score sequences with the position of their first wrong step.

An observation model P(obs | state) is fitted on labelled *steps* but used by a filter that runs along
*sequences*; judging it needs held-out sequences, not just held-out points. A ``ScoreSequence`` is one
solution (or a known prefix of one): its PRM scores in step order and the 0-based index of its first
wrong step (None: every step is correct). Step t is in state ``correct`` before the first error,
``fresh_error`` at it and ``derailed`` after it.

Sources:

- ``trimpomdp score-steps`` output (``{"id", "scores", "label", ...}`` a line; ``label`` -1 or the
  first wrong step), optionally with ``group`` (solutions sharing it are kept in one fold) and ``kind``.
  ``save_sequences`` writes this layout.
- The ReasonEval perturbation set scored by the math-shepherd PRM (``id``, ``scores``, ``error_type``,
  ``first_perturbed_step``, ``question``, ...). Only ``random number`` and ``random operation`` make the
  perturbed step wrong (``ERROR_KINDS``); the other kinds (redundant, missing, misplaced steps or another
  question's solution) are loaded with ``first_error=None`` and ``labelled=False``, their released index
  in ``perturbed_step`` (for ``swap solutions`` it is no step index: 161 of 184 lie past the last step).
  Perturbations of one reference solution share their unperturbed prefix (same scores), so the group is
  the question.
- ``reconstruct_processbench``: the labelled points of ``prm_obs_processbench_math.npz`` mapped back to
  the ProcessBench items they came from (see its docstring for the structure verified there).

Every error names the file and line.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trimpomdp.errors import FormatError, ModelError
from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.observation_models.data import read_jsonl

#: ReasonEval perturbations that make the perturbed step wrong
ERROR_KINDS = ("random number", "random operation")
#: ReasonEval perturbations that alter a solution without a wrong step
OTHER_KINDS = ("repeat step", "remove step", "swap steps", "swap solutions")

C, E, D = TRIM_STATES


@dataclass(frozen=True)
class ScoreSequence:
    """One scored solution (or a known prefix of one).

    ``first_error``: 0-based index of the first wrong step, None when every step is correct (or, with
    ``labelled=False``, when the solution's state is unknown). ``group``: solutions that must share a
    fold (same question). ``kind``: where it came from (a ReasonEval error type, ``correct``/``flawed``)."""

    id: str
    scores: tuple
    first_error: int | None = None
    source: str = ""
    kind: str = ""
    group: str = ""
    labelled: bool = True
    perturbed_step: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "scores", tuple(float(s) for s in self.scores))
        if not self.scores:
            raise ModelError(f"sequence {self.id!r} has no steps")
        if not all(math.isfinite(s) and 0.0 <= s <= 1.0 for s in self.scores):
            raise ModelError(f"sequence {self.id!r}: scores must be numbers in [0, 1]")
        fe = self.first_error
        if fe is not None and not (isinstance(fe, int) and 0 <= fe < len(self.scores)):
            raise ModelError(f"sequence {self.id!r}: first_error {fe!r} is not a step index below {len(self.scores)}")
        if not self.group:
            object.__setattr__(self, "group", str(self.id))

    def __len__(self) -> int:
        return len(self.scores)

    def states(self) -> list[str]:
        """The hidden state after each step."""
        fe = len(self.scores) if self.first_error is None else self.first_error
        return [C if t < fe else E if t == fe else D for t in range(len(self.scores))]

    def pairs(self) -> np.ndarray:
        """(T, 2) observations (min score of the earlier steps, 1.0 for the first; score of the step)."""
        s = np.asarray(self.scores)
        prev = np.minimum.accumulate(np.concatenate([[1.0], s[:-1]]))
        return np.stack([prev, s], axis=1)


# -------------------------------------------------------------------------------------- labelled steps
def step_table(seqs):
    """Every step of ``seqs`` in order: pairs (n, 2), states (n,), sequence index (n,), step index (n,)
    and a mask of the first occurrence of each (group, state, score prefix).

    Sequences of one group often share a prefix (perturbations of one reference solution); such a step is
    the same observation with the same belief, so it is counted once (``unique``)."""
    pairs, states, seq_i, step_i, unique, seen = [], [], [], [], [], set()
    for i, q in enumerate(seqs):
        if not q.labelled:
            raise ModelError(f"sequence {q.id!r} ({q.kind}) has no first-error label")
        pairs.append(q.pairs())
        st = q.states()
        states += st
        seq_i.append(np.full(len(q), i))
        step_i.append(np.arange(len(q)))
        for t in range(len(q)):
            key = (q.group, st[t], q.scores[:t + 1])
            unique.append(key not in seen)
            seen.add(key)
    if not pairs:
        raise ModelError("no sequences")
    return (np.concatenate(pairs), np.asarray(states, dtype=str), np.concatenate(seq_i), np.concatenate(step_i),
            np.asarray(unique, dtype=bool))


def labelled_steps(seqs, dims: int = 2, dedupe: bool = True):
    """(LabelledData, groups): one labelled observation per step (per distinct prefix with ``dedupe``),
    2-D pairs or 1-D current scores, for fitting; ``groups[i]`` is the group of point i."""
    from trimpomdp.observation_models.data import LabelledData

    if dims not in (1, 2):
        raise ModelError(f"dims must be 1 or 2, not {dims}")
    X, y, seq_i, _, unique = step_table(seqs)
    keep = unique if dedupe else np.ones(len(y), dtype=bool)
    groups = np.asarray([seqs[i].group for i in seq_i], dtype=str)[keep]
    X = X[keep] if dims == 2 else X[keep][:, 1:]
    source = ",".join(dict.fromkeys(q.source for q in seqs))
    return LabelledData(X, y[keep], source), groups


def hazard_p_weak(n_steps, first_errors) -> float:
    """P(a step keeps a correct-so-far solution correct), from solutions' lengths and first-error indices
    (None/-1: correct): 1 - first errors / steps taken while correct so far (the error step included)."""
    at_risk = errors = 0
    for n, fe in zip(n_steps, first_errors):
        if fe is None or fe < 0:
            at_risk += int(n)
        else:
            at_risk += int(fe) + 1
            errors += 1
    if at_risk == 0:
        raise ModelError("no steps to estimate p_weak from")
    return 1.0 - errors / at_risk


def estimate_p_weak(seqs) -> float:
    """``hazard_p_weak`` over labelled sequences."""
    seqs = [q for q in seqs if q.labelled]
    return hazard_p_weak([len(q) for q in seqs], [q.first_error for q in seqs])


# -------------------------------------------------------------------------------------- files
def _records(path: Path):
    for ln, rec in read_jsonl(path):
        if not isinstance(rec, dict):
            raise FormatError("expected a JSON object", str(path), ln)
        yield ln, rec


def _scores(rec, path, ln) -> list:
    sc = rec.get("scores")
    if (not isinstance(sc, list) or not sc
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= 1
                       for v in sc)):
        raise FormatError('field "scores": expected a non-empty list of numbers in [0, 1]', str(path), ln)
    return [float(v) for v in sc]


def _index(rec, key, path, ln) -> int:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, int):
        raise FormatError(f'field "{key}": expected an integer, got {json.dumps(v)[:40]}', str(path), ln)
    return v


def _id(rec, path, ln) -> str:
    v = rec.get("id")
    if not isinstance(v, (str, int)) or isinstance(v, bool):
        raise FormatError('field "id": expected a string or an integer', str(path), ln)
    return str(v)


def _group_of(text: str) -> str:
    return "q:" + hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def detect_format(path) -> str:
    """'reasoneval' or 'score-steps' from the first record of a JSONL file; FormatError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise FormatError("file not found", str(path))
    for ln, rec in _records(path):
        if "first_perturbed_step" in rec:
            return "reasoneval"
        if "scores" in rec and "label" in rec:
            return "score-steps"
        raise FormatError('not a sequence file: expected {"id", "scores", "label"} (score-steps) or ReasonEval '
                          'records with "first_perturbed_step"', str(path), ln)
    raise FormatError("no records", str(path))


def is_sequence_file(path) -> bool:
    """True for a JSONL file whose first record is a score sequence (no exception for other files)."""
    p = Path(path)
    if p.suffix.lower() not in (".jsonl", ".json") or not p.is_file():
        return False
    try:
        detect_format(p)
    except FormatError:
        return False
    return True


def load_sequences(path) -> list[ScoreSequence]:
    """Sequences from a score-steps or ReasonEval JSONL file (detected from the first record)."""
    fmt = detect_format(path)
    return load_reasoneval(path) if fmt == "reasoneval" else load_score_steps(path)


def load_score_steps(path) -> list[ScoreSequence]:
    """``score-steps`` output: ``label`` -1 (all correct) or the 0-based first wrong step; optional
    ``group`` and ``kind`` strings."""
    path = Path(path)
    out, ids = [], set()
    for ln, rec in _records(path):
        sid = _id(rec, path, ln)
        sc = _scores(rec, path, ln)
        label = _index(rec, "label", path, ln)
        if not -1 <= label < len(sc):
            raise FormatError(f'field "label": {label} is not -1 or a step index below {len(sc)}', str(path), ln)
        if sid in ids:
            raise FormatError(f"id {sid!r} appears twice", str(path), ln)
        ids.add(sid)
        extra = {}
        for key in ("group", "kind"):
            if key in rec:
                if not isinstance(rec[key], str):
                    raise FormatError(f'field "{key}": expected a string', str(path), ln)
                extra[key] = rec[key]
        out.append(ScoreSequence(sid, sc, None if label == -1 else label, str(path),
                                 extra.get("kind", "correct" if label == -1 else "flawed"), extra.get("group", "")))
    if not out:
        raise FormatError("no sequences", str(path))
    return out


def load_reasoneval(path) -> list[ScoreSequence]:
    """The ReasonEval perturbation JSONL (see the module docstring); group = the question."""
    path = Path(path)
    out = []
    for ln, rec in _records(path):
        sid = _id(rec, path, ln)
        sc = _scores(rec, path, ln)
        kind = rec.get("error_type")
        if kind not in ERROR_KINDS + OTHER_KINDS:
            raise FormatError(f'field "error_type": {json.dumps(kind)[:40]} is not one of '
                              f'{", ".join(ERROR_KINDS + OTHER_KINDS)}', str(path), ln)
        ps = _index(rec, "first_perturbed_step", path, ln)
        if ps < 0:
            raise FormatError(f'field "first_perturbed_step": {ps} is negative', str(path), ln)
        steps = rec.get("steps")
        if steps is not None and (not isinstance(steps, list) or len(steps) != len(sc)):
            raise FormatError(f'field "steps": expected a list of {len(sc)} steps, one per score', str(path), ln)
        question = rec.get("question")
        if not isinstance(question, str):
            raise FormatError('field "question": expected a string', str(path), ln)
        if kind in ERROR_KINDS:
            if ps >= len(sc):
                raise FormatError(f'field "first_perturbed_step": {ps} is not a step index below {len(sc)}',
                                  str(path), ln)
            out.append(ScoreSequence(sid, sc, ps, str(path), kind, _group_of(question), True, ps))
        else:
            out.append(ScoreSequence(sid, sc, None, str(path), kind, _group_of(question), False, ps))
    if not out:
        raise FormatError("no sequences", str(path))
    return out


def save_sequences(seqs, path) -> Path:
    """Write labelled sequences in the score-steps layout (plus ``group`` and ``kind``)."""
    path = Path(path)
    with open(path, "w", encoding="utf-8") as fh:
        for q in seqs:
            if not q.labelled:
                raise ModelError(f"sequence {q.id!r} ({q.kind}) has no first-error label to write")
            fh.write(json.dumps({"id": q.id, "scores": list(q.scores),
                                 "label": -1 if q.first_error is None else q.first_error,
                                 "group": q.group, "kind": q.kind}) + "\n")
    return path


# -------------------------------------------------------------------------------------- ProcessBench
@dataclass
class ProcessBenchReconstruction:
    """The npz points with the item each came from, and the sequences the points determine fully.

    ``points`` (LabelledData of every row, states in the npz's order) with ``groups`` (the item's
    problem) and ``item_index`` (into ``items``); ``items``: the ProcessBench items used (dicts with
    ``id``, ``problem``, ``steps``, ``label``, ``group``); ``sequences``: see ``reconstruct_processbench``;
    ``checks``: the verified figures."""

    points: object
    groups: np.ndarray
    item_index: np.ndarray
    items: list
    sequences: list
    checks: dict


def partition_ends(n: int, parts: int = 4) -> list[int]:
    """Prefix lengths a correct solution of n steps contributes: multiples of ceil(n / parts), capped at n."""
    size = max(1, math.ceil(n / parts))
    out = []
    for k in range(1, parts + 1):
        out.append(min(k * size, n))
        if out[-1] >= n:
            break
    return out


def reconstruct_processbench(npz_path, items_path, exclude_path=None) -> ProcessBenchReconstruction:
    """Map ``prm_obs_processbench_math.npz`` back to ProcessBench items and rebuild what sequences it holds.

    Verified on the shared files (``checks`` repeats the figures; any mismatch raises FormatError):

    - Items: ProcessBench ``math.json`` without the problems of MATH-500 (``exclude_path``), in file order:
      888 items, 360 correct and 528 flawed, of which 499 have a step after the first error.
    - ``correct`` (1,233 rows): item by item, one row per prefix length in ``partition_ends(n)`` (multiples
      of ceil(n/4), at most 4 prefixes): sum over the 360 items = 1,233 exactly. Within an item every row's
      first coordinate is <= the min of the row before (873 of 873 pairs); for n <= 4 the prefixes are
      every step, and then the first row is (1.0, s_0) and each next first coordinate equals the min of
      the row before exactly (116 items; 295 of 295 pairs).
    - ``fresh_error`` (528 rows): one per flawed item in order, the prefix through the first wrong step;
      all 100 items whose first step is wrong have first coordinate 1.0.
    - ``derailed`` (499 rows): one per flawed item with a later step, in order; its first coordinate is
      <= min(matching fresh_error row) in 499 of 499 (equal in 380); for the 91 items with exactly one
      later step it is that step, and the equality holds in all 91. For longer items the derailed step
      was drawn at random among up to 4 later prefixes, so its position is unknown.

    ``sequences`` therefore holds what is determined step by step: the 116 correct items of <= 4 steps
    (every score), and the flawed items whose first error is step 0 or 1 (for step 1 the min of one earlier
    score is that score), up to their first error, plus the derailed step when it is the only later step.
    That is 344 sequences: 116 correct (411 steps), 100 flawed at step 0 and 128 at step 1 (31 of them with
    their derailed step). These are short solutions and early errors, not a sample of all solutions."""
    from trimpomdp.artifacts import read_npz
    from trimpomdp.observation_models.data import LabelledData, load_processbench

    npz_path = str(npz_path)
    arrays = read_npz(npz_path)
    for k in (C, E, D):
        if k not in arrays or arrays[k].ndim != 2 or arrays[k].shape[1] != 2:
            raise FormatError(f"array {k!r}: expected shape (n, 2)", npz_path)
    Ca, Fa, Da = (np.asarray(arrays[k], dtype=np.float64) for k in (C, E, D))
    excluded = set()
    if exclude_path is not None:
        for ln, rec in _records(Path(exclude_path)):
            if not isinstance(rec.get("problem"), str):
                raise FormatError('field "problem": expected a string', str(exclude_path), ln)
            excluded.add(rec["problem"])
    items = [dict(it, group=_group_of(it["problem"])) for it in load_processbench(items_path, need_problem=True)
             if it["problem"] not in excluded]
    correct = [i for i, it in enumerate(items) if it["label"] < 0]
    flawed = [i for i, it in enumerate(items) if it["label"] >= 0]
    later = [i for i in flawed if items[i]["label"] < len(items[i]["steps"]) - 1]

    def refuse(msg):
        raise FormatError(f"does not match the items of {items_path}: {msg}", npz_path)

    ends = [partition_ends(len(items[i]["steps"])) for i in correct]
    if sum(map(len, ends)) != len(Ca):
        refuse(f"{len(Ca)} correct rows, the partition of {len(correct)} correct items gives {sum(map(len, ends))}")
    if len(Fa) != len(flawed) or len(Da) != len(later):
        refuse(f"{len(Fa)} fresh_error / {len(Da)} derailed rows for {len(flawed)} flawed items "
               f"({len(later)} with a later step)")
    c_item = np.repeat(correct, [len(e) for e in ends])
    seqs, checks = [], {"items": len(items), "correct_items": len(correct), "flawed_items": len(flawed),
                        "flawed_with_later_step": len(later), "monotone_pairs": 0, "exact_pairs": 0,
                        "full_correct": 0}
    row = 0
    for i, e in zip(correct, ends):
        rows = Ca[row:row + len(e)]
        row += len(e)
        for a, b in zip(rows[:-1], rows[1:]):
            if b[0] > min(a):
                refuse(f"item {items[i]['id']}: a correct row's min exceeds the min of the row before")
            checks["monotone_pairs"] += 1
        if e == list(range(1, len(e) + 1)):  # every step
            if rows[0][0] != 1.0 or any(b[0] != min(a) for a, b in zip(rows[:-1], rows[1:])):
                refuse(f"item {items[i]['id']}: its rows are not one prefix chain")
            checks["exact_pairs"] += len(rows) - 1
            checks["full_correct"] += 1
            seqs.append(ScoreSequence(items[i]["id"], rows[:, 1], None, npz_path, "correct", items[i]["group"]))
    f_of = {i: k for k, i in enumerate(flawed)}
    d_of = {i: k for k, i in enumerate(later)}
    checks["derailed_le"] = checks["derailed_eq"] = checks["forced_derailed"] = 0
    for i in flawed:
        f = Fa[f_of[i]]
        label, n = items[i]["label"], len(items[i]["steps"])
        if label == 0 and f[0] != 1.0:
            refuse(f"item {items[i]['id']}: first step wrong but the fresh_error min is {f[0]}, not 1.0")
        sc = [f[1]] if label == 0 else [f[0], f[1]] if label == 1 else None
        if i in d_of:
            d = Da[d_of[i]]
            if d[0] > min(f):
                refuse(f"item {items[i]['id']}: the derailed min exceeds the min through the first error")
            checks["derailed_le"] += 1
            checks["derailed_eq"] += int(d[0] == min(f))
            if label == n - 2:  # one later step: the derailed row is that step
                if d[0] != min(f):
                    refuse(f"item {items[i]['id']}: the only later step's min differs from the min through the error")
                checks["forced_derailed"] += 1
                if sc is not None:
                    sc = sc + [d[1]]
        if sc is not None:
            seqs.append(ScoreSequence(items[i]["id"], sc, label, npz_path, "flawed", items[i]["group"]))
    checks["sequences"] = len(seqs)
    X = np.concatenate([Ca, Fa, Da])
    y = np.array([C] * len(Ca) + [E] * len(Fa) + [D] * len(Da))
    idx = np.concatenate([c_item, flawed, later]).astype(int)
    groups = np.array([items[i]["group"] for i in idx], dtype=str)
    return ProcessBenchReconstruction(LabelledData(X, y, npz_path), groups, idx, items, seqs, checks)
