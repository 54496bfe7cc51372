"""Safe, versioned artifact files: ``.npz`` arrays (never pickled) plus a JSON metadata header.

Every artifact we write stores its metadata as a JSON string under the key ``__meta__`` with a ``format``
name and ``version`` so that a reader can refuse files it does not understand with a clear message.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from trimpomdp.errors import FormatError

META_KEY = "__meta__"


def save_npz(path, arrays: dict, meta: dict, fmt: str, version: int = 1) -> Path:
    """Write arrays and metadata atomically (temp file + rename) so a crash never leaves half a file."""
    path = Path(path)
    header = dict(meta, format=fmt, version=version)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    payload[META_KEY] = np.array(json.dumps(header, sort_keys=True, default=_jsonable))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    os.close(fd)
    try:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **payload)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_npz(path, fmt: str | None = None, max_version: int = 1) -> tuple[dict, dict]:
    """Read an artifact written by ``save_npz``; returns (arrays, meta). Refuses pickled content."""
    path = Path(path)
    if not path.exists():
        raise FormatError("file not found", str(path))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # zipfile/ValueError: not an npz or pickled
        raise FormatError(f"not a readable .npz file ({exc.__class__.__name__}: {exc})", str(path)) from None
    meta = {}
    if META_KEY in arrays:
        try:
            meta = json.loads(str(arrays.pop(META_KEY)))
        except json.JSONDecodeError as exc:
            raise FormatError(f"corrupt metadata header ({exc})", str(path)) from None
    if fmt is not None:
        if meta.get("format") != fmt:
            raise FormatError(f"expected a {fmt!r} file, found format {meta.get('format')!r}", str(path))
        if int(meta.get("version", 0)) > max_version:
            raise FormatError(
                f"{fmt} version {meta.get('version')} is newer than this trimpomdp understands ({max_version})",
                str(path),
            )
    return arrays, meta


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
