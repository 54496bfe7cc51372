"""Load benchmark problem files into uniform ``Problem`` records.

The layout is detected from the fields so that MATH-500 (``problem``/``answer``) and GSM8K
(``question``/``answer`` with the final answer after ``####``) work without options; other files name
their fields. A bad line is reported by number and skipped so that one broken record does not stop a
long decode run.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from trimpomdp.errors import FormatError, TrimError

#: Fields tried, in order, when the question field is not given.
QUESTION_FIELDS = ("problem", "question", "prompt", "input")
#: Fields tried, in order, when the answer field is not given.
ANSWER_FIELDS = ("answer", "reference", "final_answer", "target", "output")
ID_FIELDS = ("id", "unique_id")

_GSM8K_FINAL = re.compile(r"####\s*(.*?)\s*$", re.S)


@dataclass(frozen=True)
class Problem:
    """One problem: ``kind`` selects the answer comparison ("math", "gsm8k" or "plain")."""

    id: str
    question: str
    reference: str | None
    kind: str = "plain"


def gsm8k_final_answer(text: str) -> str | None:
    """The final answer of a GSM8K solution: what follows the last ``####``."""
    if "####" not in text:
        return None
    tail = text.rsplit("####", 1)[1].strip()
    return tail or None


def _detect_kind(question_key: str, reference_raw) -> str:
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
                  limit: int | None = None) -> tuple[list[Problem], list[str]]:
    """Read problems from a JSONL file (or a .json list).

    Returns ``(problems, errors)``: each error is a one-line ``path:line: reason`` for a skipped line.
    The id is the record's ``id``/``unique_id`` field, else the 0-based index of the line among the
    file's lines (so ids stay stable when ``limit`` changes or bad lines are fixed). A missing answer
    field only yields ``reference=None`` (problems without references still decode); a missing
    question is an error.
    """
    path = Path(path)
    if not path.is_file():
        raise TrimError(f"problem file not found: {path}")
    if limit is not None and limit < 0:
        raise TrimError(f"limit must be >= 0, got {limit}")
    problems: list[Problem] = []
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
        qkey = question_field or next((k for k in QUESTION_FIELDS if k in rec), None)
        if qkey is None or qkey not in rec:
            want = question_field or "/".join(QUESTION_FIELDS)
            errors.append(f"{where}: missing question field {want!r}")
            continue
        question = rec[qkey]
        if not isinstance(question, str) or not question.strip():
            errors.append(f"{where}: field {qkey!r} must be a non-empty string")
            continue
        akey = answer_field or next((k for k in ANSWER_FIELDS if k in rec), None)
        if answer_field is not None and answer_field not in rec:
            errors.append(f"{where}: missing answer field {answer_field!r}")
            continue
        raw = rec.get(akey) if akey is not None else None
        if raw is not None and not isinstance(raw, (str, int, float)):
            errors.append(f"{where}: field {akey!r} must be a string or number")
            continue
        kind = _detect_kind(qkey, raw)
        if kind == "gsm8k":
            reference = gsm8k_final_answer(raw)
        else:
            reference = None if raw is None else str(raw).strip()
        pid = next((rec[k] for k in ID_FIELDS if rec.get(k) is not None), None)
        pid = str(lineno - 1) if pid is None else str(pid)
        if pid in seen:
            errors.append(f"{where}: duplicate id {pid!r} (line skipped)")
            continue
        seen.add(pid)
        problems.append(Problem(id=pid, question=question, reference=reference, kind=kind))
    return problems, errors
