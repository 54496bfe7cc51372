"""One entry point for model files: ``load_model``/``save_model`` pick the format from the suffix."""
from __future__ import annotations

from pathlib import Path

from trimpomdp.errors import FormatError
from trimpomdp.pomdp.model import POMDP

#: suffix (lower case) -> format name
FORMATS = {".pomdp": "cassandra", ".pomdpx": "pomdpx"}


def _format_of(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FormatError(f"unknown model file type {path.suffix or '(none)'!r}: expected "
                          + " or ".join(sorted(FORMATS)), str(path))
    return fmt


def load_model(path, validate: bool = True, max_memory_mb: float | None = None) -> POMDP:
    """Read a ``.pomdp`` (Cassandra) or ``.pomdpx`` (SARSOP XML) file into a validated POMDP.

    Rows of T and O are renormalised exactly after passing validation (files print rounded numbers);
    ``validate=False`` returns the model as written, for tools that report problems instead of failing.
    A model estimated to need more than ``max_memory_mb`` (default ``$TRIMPOMDP_MODEL_MEMORY_MB`` or
    4096) is refused before it is built.
    """
    path = Path(path)
    fmt = _format_of(path)
    if not path.is_file():
        raise FormatError("no such file", str(path))
    if fmt == "cassandra":
        from trimpomdp.pomdp.cassandra import read_pomdp

        return read_pomdp(path, validate, max_memory_mb)
    from trimpomdp.pomdp.pomdpx import read_pomdpx

    return read_pomdpx(path, validate, max_memory_mb)


def save_model(model: POMDP, path) -> Path:
    """Write ``model``; only the Cassandra ``.pomdp`` format is written."""
    path = Path(path)
    if _format_of(path) != "cassandra":
        raise FormatError("only .pomdp files can be written", str(path))
    from trimpomdp.pomdp.cassandra import write_pomdp

    return write_pomdp(model, path)
