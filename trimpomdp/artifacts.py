"""Safe, versioned artifact files: ``.npz`` arrays (never pickled) plus a JSON metadata header.

Every artifact we write stores its metadata as a JSON string under the key ``__meta__`` with a ``format``
name and ``version`` so that a reader can refuse files it does not understand with a clear message, and a
``sha256`` digest of the metadata and arrays, so that a file altered or damaged after it was written is
refused even where every value is still well-formed (a changed slope of a routing policy passes any schema
and silently changes its decisions). Files without the digest are read as before.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from trimpomdp.errors import FormatError

META_KEY = "__meta__"
#: metadata field holding the digest of a file's metadata (less this field) and arrays
DIGEST_KEY = "sha256"


def save_npz(path, arrays: dict, meta: dict, fmt: str, version: int = 1) -> Path:
    """Write arrays and metadata atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    header = dict(meta, format=fmt, version=version)
    header.pop(DIGEST_KEY, None)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    header[DIGEST_KEY] = _digest(payload, header)
    payload[META_KEY] = np.array(json.dumps(header, sort_keys=True, default=_jsonable))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it 0600; an artifact gets the usual permissions
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_npz(path) -> dict:
    """Every array of an ``.npz`` file, read in full and never unpickled. A missing or irregular file, one
    that is not a zip archive, a damaged one (bad CRC, truncated member) or a member that is not a ``.npy``
    array (numpy hands those back as raw bytes) is a one-line FormatError naming the file."""
    from trimpomdp import schemas

    problem = schemas.file_problem(path)
    if problem:
        raise FormatError("file not found" if problem == "does not exist" else problem, str(path))
    try:  # our own handle: numpy leaves its file open when the archive is not a zip
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, ValueError (pickled), MemoryError (header)
        detail = _brief(str(exc), 160)  # may quote the damaged bytes of a zip header
        raise FormatError(f"not a readable .npz file ({exc.__class__.__name__}: {detail})",
                          str(path)) from None
    for name, value in arrays.items():
        if not isinstance(value, np.ndarray):
            raise FormatError(f"member {name!r} is not a .npy array", str(path))
    return arrays


def load_npz(path, fmt: str | None = None, max_version: int | None = None) -> tuple[dict, dict]:
    """Read an artifact written by ``save_npz``; returns (arrays, meta). Refuses pickled content.

    With ``fmt``, the header must name that format at a version up to ``max_version`` (default: the
    registered schema's version, else 1), and a format registered in ``trimpomdp.schemas`` is validated
    (arrays converted to float64/int64, shapes, ranges, offsets, metadata) before it is returned.
    """
    from trimpomdp import schemas

    path = Path(path)
    arrays = read_npz(path)
    meta = {}
    if META_KEY in arrays:
        raw = arrays.pop(META_KEY)
        if raw.dtype.kind != "U" or raw.ndim != 0:
            raise FormatError(f"metadata header {META_KEY!r} must be one JSON string", str(path))
        try:
            meta = json.loads(str(raw))
        except (json.JSONDecodeError, RecursionError) as exc:
            raise FormatError(f"corrupt metadata header ({exc.__class__.__name__}: {exc})", str(path)) from None
        if not isinstance(meta, dict):
            raise FormatError(f"metadata header must be a JSON object, got {type(meta).__name__}", str(path))
    schema = None
    if fmt is not None:
        schema = schemas.SCHEMAS.get(fmt)
        if max_version is None:
            max_version = schema.version if schema is not None else 1
        if meta.get("format") != fmt:
            found = _brief(repr(meta.get("format")))
            raise FormatError(f"expected a {fmt!r} file, found format {found}", str(path))
        version = meta.get("version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise FormatError(f"field 'version': must be a positive integer, got {_brief(repr(version))}",
                              str(path))
        if version > max_version:
            raise FormatError(
                f"{fmt} version {version} is newer than this trimpomdp understands ({max_version})", str(path)
            )
    stored = arrays
    if schema is not None:
        arrays, _ = schemas.validate(schema, arrays, meta, path)
    if DIGEST_KEY in meta:  # what the schema cannot see; the digest is not handed on as metadata
        if meta[DIGEST_KEY] != _digest(stored, meta):
            raise FormatError(f"field {DIGEST_KEY!r}: the metadata or arrays differ from those written with "
                              "it (the file was altered or damaged after it was saved; write it again)",
                              str(path))
        del meta[DIGEST_KEY]
    return arrays, meta


def _digest(arrays: dict, header: dict) -> str:
    """sha256 of the metadata (less the digest itself) and of every array's name, dtype, shape and bytes."""
    h = hashlib.sha256(json.dumps({k: v for k, v in header.items() if k != DIGEST_KEY}, sort_keys=True,
                                  default=_jsonable).encode())
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _brief(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[: n - 3] + "..."


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
