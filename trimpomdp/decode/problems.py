"""Load benchmark problem files into uniform ``Problem`` records.

Each shared benchmark keeps its own layout; the layout is recognised from the first record's fields
(``LAYOUTS``, documented in docs/formats.md) so every file decodes without options: where the question
is, where the reference answer is (a field, the text after GSM8K's ``####``, the last ``\\boxed{}`` of a
worked solution, a JSON list of answers), which field is the id, and how answers are compared
(``Problem.kind``, a ``decode.answers.Grading`` string). Other files name their fields. A bad line is
reported by number and skipped, so one broken record does not stop a long decode run; a problem whose
reference cannot be read still decodes but is reported (``ProblemWarning``), never graded silently as n/a.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path

from trimpomdp.decode.answers import extract_boxed
from trimpomdp.errors import FormatError, TrimError

#: Fields tried, in order, when the question field is not given.
QUESTION_FIELDS = ("problem", "question", "prompt", "input")
#: Fields tried, in order, when the answer field is not given (``solution`` only as a short answer or
#: through its ``\\boxed{}``).
ANSWER_FIELDS = ("answer", "reference", "final_answer", "target", "output", "solution")
ID_FIELDS = ("id", "unique_id")
#: A reference longer than this without ``\\boxed{}`` is a worked solution, not an answer.
MAX_PLAIN_REFERENCE = 200


class ProblemWarning(UserWarning):
    """Problems that load but cannot be graded (no usable reference answer)."""


@dataclass(frozen=True)
class Problem:
    """One problem: ``kind`` selects the answer comparison (a ``Grading`` string: "math", "gsm8k",
    "plain", with options such as ``;unit=km``)."""

    id: str
    question: str
    reference: str | None
    kind: str = "plain"


@dataclass(frozen=True)
class Layout:
    """One benchmark file layout: the fields that identify it and how its records are read.

    ``answer`` is read as ``extract`` says: ``text`` (the field itself, a number allowed), ``gsm8k``
    (after the last ``####``), ``boxed`` (the last ``\\boxed{}`` of a worked solution) or ``list`` (a JSON
    list of answers, joined by ", "); ``kind`` is the grading; OlympiadBench adds its record's ``unit`` and
    ``error`` (an absolute tolerance) to it."""

    name: str
    requires: tuple[str, ...]
    question: str
    answer: str
    extract: str = "text"
    kind: str = "math"
    ids: tuple[str, ...] = ID_FIELDS
    lacks: tuple[str, ...] = ()


#: The shared benchmarks' layouts, most specific first; the first whose ``requires`` fields are all in
#: the file's first record (and none of ``lacks``) is used. Files that match none are read generically.
LAYOUTS = (
    Layout("olympiadbench", ("question", "final_answer", "answer_type"), "question", "final_answer", "list"),
    Layout("aime", ("problem", "solution", "Year", "Problem Number"), "problem", "solution", ids=("ID",),
           lacks=("answer",)),
    Layout("minerva", ("problem", "solution", "type", "idx"), "problem", "solution", "boxed", "math;sigfig",
           ids=("idx",), lacks=("answer", "level")),
    Layout("gsm8k", ("question", "answer"), "question", "answer", "gsm8k", "gsm8k", lacks=("problem",)),
    Layout("math", ("problem", "answer"), "problem", "answer"),
    Layout("math-solution", ("problem", "solution"), "problem", "solution", "boxed", lacks=("answer",)),
)


class ProblemList(list):
    """The problems of one file (a list) with what was learned reading it: ``benchmark`` (the file's
    stem), ``layout`` (a ``LAYOUTS`` name, ``generic`` or ``custom``) and ``unreferenced`` (the ids of
    problems without a usable reference answer)."""

    def __init__(self, items=(), benchmark: str = "", layout: str = "generic"):
        super().__init__(items)
        self.benchmark = benchmark
        self.layout = layout
        self.unreferenced: list[str] = []


def gsm8k_final_answer(text: str) -> str | None:
    """The final answer of a GSM8K solution: what follows the last ``####``."""
    if "####" not in text:
        return None
    tail = text.rsplit("####", 1)[1].strip()
    return tail or None


def detect_layout(rec: dict) -> Layout | None:
    """The ``LAYOUTS`` entry a record matches (GSM8K also needs ``####`` in its answer), or None."""
    for lay in LAYOUTS:
        if all(k in rec for k in lay.requires) and not any(k in rec for k in lay.lacks):
            if lay.extract == "gsm8k" and not (isinstance(rec.get("answer"), str) and "####" in rec["answer"]):
                continue
            return lay
    return None


def _reference(raw, extract: str, key: str) -> tuple[str | None, str | None]:
    """(reference, None) or (None, why it is unusable) for a raw answer field read as ``extract``
    (``auto``: a list is joined, ``####`` and ``\\boxed{}`` are followed, other text is taken whole)."""
    if raw is None:
        return None, f"field {key!r} is null"
    if isinstance(raw, list):
        if extract not in ("list", "auto"):
            return None, f"field {key!r} is a list, expected a string"
        items = [str(x).strip() for x in raw if isinstance(x, (str, int, float)) and not isinstance(x, bool)]
        if len(items) != len(raw):
            return None, f"field {key!r} must be a list of strings or numbers"
        items = [x for x in items if x]
        return (", ".join(items), None) if items else (None, f"field {key!r} is an empty list")
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        return None, f"field {key!r} must be a string or number, got {type(raw).__name__}"
    text = str(raw).strip()
    if extract == "list" and text.startswith("[") and text.endswith("]"):
        try:  # a list rendered as a string
            return _reference(json.loads(text), "list", key)
        except (json.JSONDecodeError, RecursionError):
            pass
    if extract == "gsm8k" or (extract == "auto" and "####" in text):
        ans = gsm8k_final_answer(text)
        return (ans, None) if ans else (None, f"field {key!r} has no final answer after '####'")
    if extract == "boxed" or "\\boxed" in text or "\\fbox" in text:
        ans = extract_boxed(text)
        return (ans, None) if ans else (None, f"field {key!r} has no \\boxed{{}} answer")
    if not text:
        return None, f"field {key!r} is empty"
    if len(text) > MAX_PLAIN_REFERENCE and key == "solution":
        return None, f"field {key!r} is a worked solution without a \\boxed{{}} answer"
    return text, None


def _olympiad_kind(rec: dict) -> str:
    """``math`` with the record's unit and error tolerance, as OlympiadBench's own grader uses them."""
    kind = "math"
    err = rec.get("error")
    if isinstance(err, (str, int, float)) and not isinstance(err, bool) and str(err).strip():
        try:
            tol = float(str(err).split(",")[0])
            if tol >= 0 and tol == tol and tol != float("inf"):
                kind += f";tol={tol:g}"
        except ValueError:
            pass
    unit = rec.get("unit")
    if isinstance(unit, str) and unit.strip() and ";" not in unit:
        kind += f";unit={unit.strip()}"
    return kind


def _generic_kind(question_key: str, reference_raw) -> str:
    if isinstance(reference_raw, str) and "####" in reference_raw:
        return "gsm8k"
    if question_key == "problem":
        return "math"
    return "plain"


def _iter_records(path: Path):
    """Yield (line number, record or None, error or None); a .json file may hold a list of records."""
    if not path.is_file():
        raise FormatError("file not found (expected problems as JSONL or a .json list)", str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(f"not UTF-8 text (byte {exc.start})", str(path)) from None
    stripped = text.lstrip()
    if path.suffix == ".json" and stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise FormatError(f"invalid JSON: {exc.msg}", str(path), exc.lineno) from None
        except RecursionError:
            raise FormatError("JSON nested too deeply", str(path)) from None
        for i, item in enumerate(items):
            yield i + 1, item, None
        return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line), None
        except json.JSONDecodeError as exc:
            yield lineno, None, f"invalid JSON ({exc.msg} at column {exc.colno})"
        except RecursionError:
            yield lineno, None, "JSON nested too deeply"


def load_problems(path, question_field: str | None = None, answer_field: str | None = None,
                  limit: int | None = None) -> tuple[ProblemList, list[str]]:
    """Read problems from a JSONL file (or a .json list).

    Returns ``(problems, errors)``: ``problems`` is a ``ProblemList`` (its benchmark and layout
    attached); each error is a one-line ``path:line: reason`` for a skipped line. The layout comes from
    the first record (``LAYOUTS``) unless ``question_field``/``answer_field`` name the fields. The id is
    the layout's id field, else the 0-based index of the line among the file's lines (so ids stay stable
    when ``limit`` changes or bad lines are fixed). A missing or unreadable answer only yields
    ``reference=None`` (such problems still decode) and one ``ProblemWarning`` for the file; a missing
    question is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise FormatError("file not found (expected problems as JSONL or a .json list)", str(path))
    if limit is not None and limit < 0:
        raise TrimError(f"limit must be >= 0, got {limit}")
    custom = question_field is not None or answer_field is not None
    problems = ProblemList(benchmark=path.stem, layout="custom" if custom else "generic")
    layout: Layout | None = None
    detected = custom
    missing: list[tuple[int, str]] = []
    errors: list[str] = []
    seen: set[str] = set()
    for lineno, rec, err in _iter_records(path):
        if limit is not None and len(problems) >= limit:
            break
        where = f"{path}:{lineno}"
        if err is not None:
            errors.append(f"{where}: {err}")
            continue
        if not isinstance(rec, dict):
            errors.append(f"{where}: expected a JSON object, got {type(rec).__name__}")
            continue
        if not detected:
            layout, detected = detect_layout(rec), True
            problems.layout = layout.name if layout is not None else "generic"
        if layout is not None:
            qkey, akey, extract, ids = layout.question, layout.answer, layout.extract, layout.ids
        else:
            qkey = question_field or next((k for k in QUESTION_FIELDS if k in rec), None)
            akey = answer_field or next((k for k in ANSWER_FIELDS if k in rec), None)
            extract, ids = "auto", ID_FIELDS
        if qkey is None or qkey not in rec:
            want = qkey or "/".join(QUESTION_FIELDS)
            errors.append(f"{where}: missing question field {want!r}"
                          + (f" (a {layout.name} file)" if layout is not None else ""))
            continue
        question = rec[qkey]
        if not isinstance(question, str) or not question.strip():
            errors.append(f"{where}: field {qkey!r} must be a non-empty string")
            continue
        if answer_field is not None and answer_field not in rec:
            errors.append(f"{where}: missing answer field {answer_field!r}")
            continue
        raw = rec.get(akey) if akey is not None else None
        if layout is None and raw is not None and not isinstance(raw, (str, int, float, list)):
            errors.append(f"{where}: field {akey!r} must be a string, number or list")
            continue
        if akey is None or akey not in rec:
            reference, why = None, (f"no {akey!r} field" if akey else
                                    f"no answer field ({'/'.join(ANSWER_FIELDS)})")
        else:
            reference, why = _reference(raw, extract, akey)
        if why is not None:
            missing.append((lineno, why))
        if layout is None:
            kind = _generic_kind(qkey, raw)
        elif layout.name == "olympiadbench":
            kind = _olympiad_kind(rec)
        else:
            kind = layout.kind
        pid = next((rec[k] for k in ids if rec.get(k) is not None), None)
        pid = str(lineno - 1) if pid is None else str(pid)
        if pid in seen:
            errors.append(f"{where}: duplicate id {pid!r} (line skipped)")
            continue
        seen.add(pid)
        problems.append(Problem(id=pid, question=question, reference=reference, kind=kind))
        if reference is None:
            problems.unreferenced.append(pid)
    if missing:
        lines = ", ".join(str(n) for n, _ in missing[:5]) + (", ..." if len(missing) > 5 else "")
        warnings.warn(f"{path}: {len(missing)} of {len(problems)} problems have no usable reference answer "
                      f"({missing[0][1]}; line{'s' if len(missing) > 1 else ''} {lines}): they decode but "
                      "are not graded (name the field with --answer-field)", ProblemWarning, stacklevel=2)
    return problems, errors
