"""Decode traces (JSONL, one record per problem): a crash-safe writer and a validating reader.

Every record is appended, flushed and fsynced as soon as its problem finishes, so a killed run loses
at most the problems in flight; on ``resume`` a half-written last line is dropped (with a warning),
failed problems' records are removed (the file is rewritten atomically) so they are decoded again, and
the ids still written are skipped by the caller. A file holds one record per problem, always.
The schema is in ``TRACE_FORMAT``/``validate_record``.
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from trimpomdp import schemas
from trimpomdp.errors import FormatError, TrimError

TRACE_FORMAT = "trimpomdp.trace"
HEADER_FORMAT = "trimpomdp.trace_header"
TRACE_VERSION = schemas.TRACE_VERSIONS[-1]



class TraceWarning(UserWarning):
    """A recoverable problem in a trace file (e.g. a truncated last line from a killed run)."""


# ----------------------------------------------------------------------------------------------- checks
def validate_record(rec, path=None, line=None) -> None:
    """Check a trace record against its schema (``schemas.TRACE_RECORD``); raise FormatError naming the
    field. Versions 1 and 2 are read; the steps' own indices must run 1, 2, ... in order."""
    schemas.check_fields(schemas.TRACE_RECORD, rec, path, line=line)
    for k, step in enumerate(rec["steps"]):
        if step["index"] != k + 1:
            raise FormatError(f"field 'steps[{k}].index': must be {k + 1} (steps in order), got {step['index']}",
                              None if path is None else str(path), line)


def validate_header(rec, path=None, line=None) -> None:
    schemas.check_fields(schemas.TRACE_HEADER, rec, path, line=line)


# ---------------------------------------------------------------------------------------------- reading
@dataclass
class TraceRun:
    """One trace file: its optional header settings and its records in file order."""

    path: str
    header: dict | None = None
    records: list[dict] = field(default_factory=list)

    @property
    def policy(self) -> str | None:
        """The run's policy spec (the first record's ``policy``), used to find weak/strong-only runs."""
        return self.records[0]["policy"] if self.records else None

    @property
    def settings(self) -> dict:
        s = (self.header or {}).get("settings")
        return s if isinstance(s, dict) else {}

    @property
    def benchmark(self) -> str | None:
        """The benchmark decoded: the header's ``benchmark``, else the stem of its ``problems`` file (older
        headers); None for a trace without a header."""
        s = self.settings
        if isinstance(s.get("benchmark"), str) and s["benchmark"]:
            return s["benchmark"]
        if isinstance(s.get("problems"), str) and s["problems"]:
            return Path(s["problems"]).stem
        return None

    def answer_kind(self, problem_id: str) -> str | None:
        """How the problem's answer was graded (a ``decode.answers.Grading`` string), when the header says."""
        s = self.settings
        kinds = s.get("answer_kinds") if isinstance(s.get("answer_kinds"), dict) else {}
        return kinds.get(problem_id, s.get("answer_kind"))


def _scan(path: Path):
    """Yield (lineno, text, is_last, complete) for the non-blank lines of a file."""
    data = path.read_bytes()
    lines = data.split(b"\n")
    complete_last = data.endswith(b"\n")
    nonblank = [(i + 1, ln) for i, ln in enumerate(lines) if ln.strip()]
    for j, (lineno, raw) in enumerate(nonblank):
        is_last = j == len(nonblank) - 1
        yield lineno, raw.decode("utf-8", errors="replace"), is_last, (complete_last or not is_last)


def read_run(path, validate: bool = True) -> TraceRun:
    """Read one trace file. A truncated (unterminated, unparsable) last line is dropped with a warning;
    any other bad line is a FormatError with its line number."""
    p = Path(path)
    if not p.is_file():
        raise FormatError("file not found (expected a decode trace .jsonl)", str(p))
    run = TraceRun(path=str(p))
    ids: dict[str, int] = {}
    for lineno, text, is_last, complete in _scan(p):
        try:
            rec = json.loads(text)
        except json.JSONDecodeError as exc:
            if is_last and not complete:
                warnings.warn(f"{p}:{lineno}: dropping a truncated last line (interrupted run?)",
                              TraceWarning, stacklevel=2)
                continue
            raise FormatError(f"invalid JSON ({exc.msg} at column {exc.colno})", str(p), lineno) from None
        except RecursionError:
            raise FormatError("invalid JSON (nested too deeply)", str(p), lineno) from None
        if isinstance(rec, dict) and rec.get("format") == HEADER_FORMAT:
            if validate:
                validate_header(rec, str(p), lineno)
            if run.header is None and not run.records:
                run.header = rec
            continue
        if validate:
            validate_record(rec, str(p), lineno)
        if rec.get("id") in ids:
            raise FormatError(f"duplicate id {rec['id']!r} (first on line {ids[rec['id']]})", str(p), lineno)
        ids[rec.get("id")] = lineno
        run.records.append(rec)
    return run


def read_traces(paths, validate: bool = True) -> list[dict]:
    """All records of one or more trace files, in order (headers skipped, each record validated)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out: list[dict] = []
    for path in paths:
        out.extend(read_run(path, validate=validate).records)
    return out


# ---------------------------------------------------------------------------------------------- writing
def check_resume_settings(path, header: dict, compare: Sequence[str]) -> None:
    """The check ``TraceWriter(resume=True)`` makes, on its own: callers run it before loading models so a
    mismatch is reported at once. A missing file, or one without records, passes."""
    p = Path(path)
    if not p.is_file():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TraceWarning)  # the writer reports a truncated line itself
        run = read_run(p, validate=False)
    if run.records:
        _check_same_settings(p, run, header, compare)


def _check_same_settings(path: Path, run: TraceRun, header: dict, compare: Sequence[str]) -> None:
    """Refuse to resume a run with settings that differ from the file's on any ``compare`` field (fields
    the file does not record are not compared; a header-less file is compared on its records' policy)."""
    if not compare:
        return
    if run.header is not None:
        old = run.header.get("settings")
        old = old if isinstance(old, dict) else {}
    else:
        old = {"policy": run.policy}
    for key in compare:
        if key in old and key in header and old[key] != header[key]:
            raise TrimError(f"{path}: cannot resume: this run's {key} is {header[key]!r} but the trace was "
                            f"written with {key} {old[key]!r} (same settings, a new output file, or "
                            "--force-mixed to append anyway)")


class TraceWriter:
    """Append-only writer: one record per line, flushed and fsynced so finished problems survive a kill.

    ``resume=False`` starts a fresh file (an existing one is replaced); ``resume=True`` keeps the
    finished records, cuts off a half-written last line, drops the records of failed problems
    (``finish: error``) unless ``retry_errors=False``, and ``done_ids()`` tells the caller what to
    skip. On resume the new ``header`` must agree with the file's on every field named in ``compare``
    (a run is one policy with one set of models), else a TrimError names the field; ``compare=()``
    allows mixing. Use as a context manager or call ``close()``.
    """

    def __init__(self, path, resume: bool = False, header: dict | None = None, validate: bool = True,
                 retry_errors: bool = True, compare: Sequence[str] = ()):
        self.path = Path(path)
        self.validate = validate
        self._done: set[str] = set()
        self._errors: set[str] = set()
        self.header: dict | None = None
        if self.path.parent and not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume and self.path.exists():
            self._recover(header, compare, retry_errors)
        if self._done or (self.header is not None and header is None):
            self._fh = open(self.path, "a", encoding="utf-8")
        else:  # no records to keep: start afresh, under this run's header
            self.header = None
            self._fh = open(self.path, "w", encoding="utf-8")
        if header is not None and self.header is None and not self._done:
            self.write_header(header)

    def _recover(self, header: dict | None, compare: Sequence[str], retry_errors: bool) -> None:
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            cut = data.rfind(b"\n") + 1
            tail = data[cut:]
            try:
                json.loads(tail)
                # a complete record that only lacks its newline: keep it, add the newline
                with open(self.path, "ab") as fh:
                    fh.write(b"\n")
            except json.JSONDecodeError:
                warnings.warn(f"{self.path}: dropping a truncated last line of {len(tail)} bytes "
                              "(interrupted run?)", TraceWarning, stacklevel=3)
                with open(self.path, "r+b") as fh:
                    fh.truncate(cut)
        run = read_run(self.path, validate=False)
        if header is not None and run.records:
            _check_same_settings(self.path, run, header, compare)
        failed = {str(r.get("id")) for r in run.records if r.get("finish") == "error"}
        if failed and retry_errors:
            self._rewrite_without(failed)
            run = read_run(self.path, validate=False)
        self.header = run.header
        self._done = {str(r.get("id")) for r in run.records}
        self._errors = {str(r.get("id")) for r in run.records if r.get("finish") == "error"}

    def _rewrite_without(self, ids: set[str]) -> None:
        """Drop the records of ``ids``: a copy without them is written, fsynced and renamed over the file,
        so a kill at any moment leaves either the old file or the new one."""
        keep = []
        for _, text, _, _ in _scan(self.path):
            rec = json.loads(text)  # read_run has parsed every line already
            if isinstance(rec, dict) and rec.get("format") != HEADER_FORMAT and str(rec.get("id")) in ids:
                continue
            keep.append(text)
        tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "w", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for line in keep))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        finally:
            tmp.unlink(missing_ok=True)
        try:  # make the rename itself durable
            fd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        except OSError:
            pass
        finally:
            os.close(fd)

    def done_ids(self) -> set[str]:
        """Ids of the problems already in the file (to skip on resume)."""
        return set(self._done)

    def error_ids(self) -> set[str]:
        """Ids of failed problems kept in the file (``retry_errors=False``)."""
        return set(self._errors)

    def _write_line(self, obj: dict) -> None:
        line = json.dumps(obj, ensure_ascii=False, allow_nan=False)
        self._fh.write(line + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def write_header(self, settings: dict) -> None:
        """Write the optional header line (only as the file's first line)."""
        if self._done or self.header is not None:
            raise TrimError(f"{self.path}: a trace header must be the first line")
        self.header = {"format": HEADER_FORMAT, "version": TRACE_VERSION, "settings": settings}
        self._write_line(self.header)

    def write(self, record: dict) -> None:
        """Append one finished problem's record (fills format/version if missing)."""
        rec = {"format": TRACE_FORMAT, "version": TRACE_VERSION, **record}
        if self.validate:
            validate_record(rec, str(self.path))
        if rec["id"] in self._done:
            raise TrimError(f"{self.path}: problem {rec['id']!r} is already in the trace")
        try:
            self._write_line(rec)
        except ValueError as exc:  # NaN/inf: not JSON
            raise TrimError(f"{self.path}: record {rec['id']!r} is not valid JSON: {exc}") from None
        self._done.add(rec["id"])
        if rec["finish"] == "error":
            self._errors.add(rec["id"])

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
