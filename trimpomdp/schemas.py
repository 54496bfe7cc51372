"""Declarative schemas of trimpomdp's artifact formats, checked whenever a file is loaded.

Each format states what a valid file holds -- arrays (number kind, shape relations through named sizes,
finiteness, ranges, increasing order), metadata fields (JSON type, range, choices, nested objects) and a
few cross-array rules (offsets that index other arrays) -- instead of every loader hand-coding checks.
Loaders validate through the schema before anything else touches the data, so numba kernels never see an
unchecked index, and a bad file gives one line naming the file and the array or field at fault:
``x.npz: array 'step_offsets': must be strictly increasing``. A new format only declares a schema here
(and registers it) to get the same checks from ``artifacts.load_npz``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from trimpomdp.errors import FormatError


class Invalid(Exception):
    """A broken rule found by a schema's cross-check: ``what`` names the array or field."""

    def __init__(self, what: str, message: str):
        super().__init__(f"{what}: {message}")


# ---------------------------------------------------------------------------------------- JSON fields
_IS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "list": lambda v: isinstance(v, list),
    "any": lambda v: True,
}
_A = {
    "int": "an integer",
    "number": "a number",
    "str": "a string",
    "bool": "true or false",
    "object": "an object",
    "list": "a list",
    "any": "a value",
}


@dataclass(frozen=True)
class Field:
    """One metadata / JSON field. ``rule(value)`` returns an error message or None for checks the
    declarative parts cannot say; ``file`` marks a path that must name a regular file."""

    name: str
    type: str
    required: bool = True
    null: bool = False
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple = ()
    fields: tuple = ()  # members of an object (other members are allowed and not checked)
    items: "Field | None" = None  # every element of a list
    min_len: int = 0
    max_len: int | None = None
    file: bool = False
    rule: Callable | None = None


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def quote(v) -> str:
    """``repr(v)`` cut to 40 characters: how a loader quotes a value from a file in a one-line error."""
    return _short(v)


def _field_error(f: Field, v) -> str | None:
    """What is wrong with value ``v`` of field ``f`` (None when it is fine); nested fields and the field's
    ``rule`` are not looked at (the rule runs once the members are known to be well-typed)."""
    if v is None:
        return None if f.null else f"must be {_A[f.type]}, got null"
    if not _IS[f.type](v):
        return f"must be {_A[f.type]}{' or null' if f.null else ''}, got {type(v).__name__} {_short(v)}"
    if f.type in ("int", "number"):
        if isinstance(v, int) and abs(v) > 2**63 or isinstance(v, float) and not math.isfinite(v):
            return f"must be a finite number in range, got {_short(v)}"
        for bound, ok, word in (
            (f.ge, lambda b: v >= b, "at least"),
            (f.gt, lambda b: v > b, "greater than"),
            (f.le, lambda b: v <= b, "at most"),
            (f.lt, lambda b: v < b, "less than"),
        ):
            if bound is not None and not ok(bound):
                return f"must be {word} {bound:g}, got {v!r}"
    if f.choices and v not in f.choices:
        return f"must be one of {', '.join(repr(c) for c in f.choices)}, got {_short(v)}"
    if f.type in ("list", "str", "object"):
        if len(v) < f.min_len:
            return f"needs at least {f.min_len} {'entries' if f.type != 'str' else 'characters'}, got {len(v)}"
        if f.max_len is not None and len(v) > f.max_len:
            return f"allows at most {f.max_len} entries, got {len(v)}"
    return None


def check_fields(fields, obj, path=None, prefix: str = "", base_dir=None, line: int | None = None) -> None:
    """Validate the JSON object ``obj`` against ``fields``; raise a FormatError naming the (dotted) field.

    ``base_dir``: where relative ``file`` paths are resolved; file paths are only checked when given.
    """
    if not isinstance(obj, dict):
        what = f"field {prefix[:-1]!r}" if prefix else "metadata"
        raise FormatError(f"{what}: must be a JSON object, got {type(obj).__name__}", _p(path), line)
    for f in fields:
        name = prefix + f.name
        if f.name not in obj:
            if f.required:
                raise FormatError(f"field {name!r}: is missing", _p(path), line)
            continue
        _check_value(f, obj[f.name], name, path, base_dir, line)


def _check_value(f: Field, v, name: str, path, base_dir, line) -> None:
    msg = _field_error(f, v)
    if msg:
        raise FormatError(f"field {name!r}: {msg}", _p(path), line)
    if v is None:
        return
    if f.type == "object" and f.fields:
        check_fields(f.fields, v, path, name + ".", base_dir, line)
    if f.type == "list" and f.items is not None:
        for i, item in enumerate(v):
            _check_value(f.items, item, f"{name}[{i}]", path, base_dir, line)
    msg = f.rule(v) if f.rule is not None else None
    if msg:
        raise FormatError(f"field {name!r}: {msg}", _p(path), line)
    if f.file and base_dir is not None:
        p = Path(v)
        if not p.is_absolute():
            p = Path(base_dir) / p
        problem = file_problem(p)
        if problem:
            raise FormatError(f"field {name!r}: {_short(v)} {problem}", _p(path), line)


def file_problem(path, kind: str = "npz") -> str | None:
    """Why ``path`` cannot be read as a file of ``kind`` ('npz': a zip archive), or None.

    Directories, FIFOs and devices are refused up front: reading one would fail obscurely or block."""
    p = Path(path)
    try:
        if not p.exists():
            return "does not exist"
        if not p.is_file():
            return "is not a regular file"
    except OSError as exc:  # e.g. a name too long for the file system
        return f"cannot be read ({exc.strerror})"
    except ValueError:  # a NUL byte in the name
        return "is not a valid file name"
    if kind == "npz":
        try:
            with open(p, "rb") as fh:
                magic = fh.read(4)
        except OSError as exc:
            return f"cannot be read ({exc.strerror})"
        if magic not in (b"PK\x03\x04", b"PK\x05\x06"):
            return "is not an .npz file (no zip header)"
    return None


def _p(path):
    return None if path is None else str(path)


# ---------------------------------------------------------------------------------------------- arrays
_SYM = re.compile(r"^([A-Za-z_]\w*)([+-]\d+)?$")
_KINDS = {"f": ("fiu", np.float64, "real numbers"), "i": ("iu", np.int64, "integers"), "b": ("b", bool, "booleans")}


@dataclass(frozen=True)
class Array:
    """One array of an ``.npz`` artifact.

    ``shape`` lists each axis as a fixed length, a named size shared with other arrays ("N", "T+1"), or
    None (any); ``shape=None`` allows any shape. Bounds may name a size. ``order`` "increasing" or
    "nondecreasing" applies along the last axis. Values are returned as float64 / int64 / bool."""

    name: str
    shape: tuple | None = ()
    kind: str = "f"
    finite: bool = True  # False: +-inf allowed, NaN never
    ge: float | str | None = None
    le: float | str | None = None
    gt: float | None = None
    order: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class Schema:
    """An artifact format: its header ``fmt``/``version``, fields, arrays (or a function of the validated
    metadata giving them), minimum values of named sizes and cross-checks ``rule(arrays, meta, sizes)``
    that raise ``Invalid``."""

    fmt: str | None
    version: int = 1
    fields: tuple = ()
    arrays: tuple | Callable = ()
    min_sizes: dict = field(default_factory=dict)
    rules: tuple = ()


def validate(schema: Schema, arrays: dict, meta: dict, path=None) -> tuple[dict, dict]:
    """Check an artifact's arrays and metadata; returns (converted arrays, named sizes)."""
    check_fields(schema.fields, meta, path)
    specs = schema.arrays(meta) if callable(schema.arrays) else schema.arrays
    out = dict(arrays)
    sizes: dict[str, int] = {}
    bound_by: dict[str, str] = {}
    present = []
    for a in specs:
        if a.name not in arrays:
            if a.optional:
                continue
            raise FormatError(f"array {a.name!r}: is missing", _p(path))
        out[a.name] = _convert(a, arrays[a.name], path)
        _bind_shape(a, out[a.name], sizes, bound_by, path)
        present.append(a)
    for name, least in schema.min_sizes.items():
        if name in sizes and sizes[name] < least:
            raise FormatError(
                f"array {bound_by[name]!r}: gives size {name} = {sizes[name]}, must be at least {least}", _p(path)
            )
    for a in present:
        _check_values(a, out[a.name], sizes, path)
    try:
        for rule in schema.rules:
            rule(out, meta, sizes)
    except Invalid as exc:
        raise FormatError(str(exc), _p(path)) from None
    return out, sizes


def _convert(a: Array, x, path) -> np.ndarray:
    kinds, dtype, words = _KINDS[a.kind]
    x = np.asarray(x)
    if x.dtype.kind not in kinds:
        raise FormatError(f"array {a.name!r}: must hold {words}, found dtype {x.dtype}", _p(path))
    if a.kind == "i" and x.dtype.kind == "u" and x.size and x.max() > np.iinfo(np.int64).max:
        raise FormatError(f"array {a.name!r}: values exceed the int64 range", _p(path))
    return np.asarray(x, dtype=dtype, order="C")  # keeps 0-d arrays 0-d


def _bind_shape(a: Array, x: np.ndarray, sizes: dict, bound_by: dict, path) -> None:
    if a.shape is None:
        return
    want = "(" + ", ".join(str(d) for d in a.shape) + ("," if len(a.shape) == 1 else "") + ")"
    if x.ndim != len(a.shape):
        raise FormatError(f"array {a.name!r}: must have shape {want}, got {x.shape}", _p(path))
    for axis, (d, n) in enumerate(zip(a.shape, x.shape)):
        if d is None:
            continue
        if isinstance(d, int):
            if n != d:
                raise FormatError(f"array {a.name!r}: must have shape {want}, got {x.shape}", _p(path))
            continue
        sym, off = _parse(d)
        if sym in sizes:
            if n != sizes[sym] + off:
                raise FormatError(
                    f"array {a.name!r}: axis {axis} has length {n}, expected {d} = {sizes[sym] + off} "
                    f"({sym} from array {bound_by[sym]!r}; shape {want}, got {x.shape})",
                    _p(path),
                )
        else:
            if n - off < 0:
                raise FormatError(f"array {a.name!r}: must have shape {want}, got {x.shape}", _p(path))
            sizes[sym] = n - off
            bound_by[sym] = a.name


def _parse(d: str) -> tuple[str, int]:
    m = _SYM.match(d)
    if not m:
        raise ValueError(f"bad size expression {d!r} in a schema")
    return m.group(1), int(m.group(2) or 0)


def _bound(b, sizes):
    if isinstance(b, str):
        sym, off = _parse(b)
        return sizes[sym] + off
    return b


def _check_values(a: Array, x: np.ndarray, sizes: dict, path) -> None:
    if x.size == 0 or a.kind == "b":
        return
    if a.kind == "f":
        bad = np.isnan(x) if not a.finite else ~np.isfinite(x)
        if bad.any():
            i = tuple(int(v) for v in np.argwhere(bad)[0])
            what = "NaN" if not a.finite else "non-finite"
            raise FormatError(f"array {a.name!r}: {what} value {x[i].item()!r} at index {_idx(i)}", _p(path))
    for bound, test, word in (
        (a.ge, lambda b: x < b, "at least"),
        (a.gt, lambda b: x <= b, "greater than"),
        (a.le, lambda b: x > b, "at most"),
    ):
        if bound is None:
            continue
        b = _bound(bound, sizes)
        bad = test(b)
        if bad.any():
            i = tuple(int(v) for v in np.argwhere(bad)[0])
            raise FormatError(
                f"array {a.name!r}: values must be {word} {b:g}{f' ({bound})' if isinstance(bound, str) else ''}"
                f", got {x[i].item()!r} at index {_idx(i)}",
                _p(path),
            )
    if a.order and x.shape[-1] > 1:
        d = np.diff(x, axis=-1)
        bad = d <= 0 if a.order == "increasing" else d < 0
        if bad.any():
            i = tuple(int(v) for v in np.argwhere(bad)[0])
            word = "strictly increasing" if a.order == "increasing" else "non-decreasing"
            raise FormatError(f"array {a.name!r}: must be {word} (fails at index {_idx(i)})", _p(path))


def _idx(i: tuple) -> str:
    return str(i[0]) if len(i) == 1 else str(list(i))


# ---------------------------------------------------------------------------------------- the formats
def _num(name, **kw) -> Field:
    return Field(name, "number", **kw)


def _divides_one(v) -> str | None:
    m = round(1.0 / v) if v >= 1e-9 else 0  # 1 / 1e-320 is inf
    return None if m and abs(m * v - 1.0) <= 1e-9 else f"must divide [0, 1] into whole bins (e.g. 0.05), got {v!r}"


def _unique(v) -> str | None:
    return None if len(set(v)) == len(v) else f"entries must be distinct, got {_short(v)}"


NUMBERS = Field("", "number")
NON_NEGATIVE = Field("", "number", ge=0)
#: magnitudes a spec may hold: sums and products of these stay far from float overflow (a reward or a token
#: count of 1e308 made every total inf, and pmf weights of 1e308 a pmf of NaN)
MAX_REWARD = 1e9
MAX_STEP_TOKENS = 1e6
MAX_WEIGHT = 1e12
WEIGHT = Field("", "number", ge=0, le=MAX_WEIGHT)
TOKENS = Field("", "number", ge=0, le=MAX_STEP_TOKENS)

#: a TRIM routing model spec (JSON); paths are relative to the spec file and must be regular files
_SPEC_COMMON = (
    Field("format", "str", choices=("trimpomdp.trim_model",)),
    Field("version", "int", ge=1, le=3),
    Field("observation", "str", required=False, choices=("current", "pair", "conditional", "reference")),
    _num("p_weak", required=False, gt=0, lt=1),  # required unless 'classes' is given (checked by the loader)
    _num("p_strong", required=False, gt=0, lt=1),
    Field("classes", "object", required=False, null=True, fields=(
        Field("weights", "list", items=WEIGHT, min_len=1, max_len=8),
        Field("p_weak", "list", items=Field("", "number", gt=0, lt=1), min_len=1, max_len=8),
        Field("p_strong", "list", items=Field("", "number", gt=0, lt=1), min_len=1, max_len=8),
    )),
    _num("derailed_as_error", required=False, ge=0, lt=1),
    _num("derailed_repair", required=False, ge=0, le=1),
    _num("reward", required=False, gt=0, le=MAX_REWARD),
    _num("discount", required=False, gt=0, le=1),
    Field("max_steps", "int", required=False, ge=1, le=100_000),
    Field(
        "length_distribution",
        "object",
        fields=(
            Field("pmf", "list", required=False, items=WEIGHT, min_len=1, max_len=100_000),
            Field("hazard", "list", required=False, items=Field("", "number", ge=0, le=1), min_len=1,
                  max_len=100_000),
        ),
        rule=lambda d: None if ("pmf" in d or "hazard" in d) else "needs a 'pmf' or a 'hazard' list",
    ),
    Field(
        "strong_step_tokens",
        "object",
        fields=(
            Field("values", "list", required=False, items=TOKENS, min_len=1),
            Field("probs", "list", required=False, items=WEIGHT, min_len=1),
            Field("samples", "list", required=False, items=TOKENS, min_len=1),
            Field("bins", "int", required=False, ge=1, le=10_000),
            Field(
                "lognormal",
                "object",
                required=False,
                fields=(
                    _num("mean", gt=0, le=MAX_STEP_TOKENS),
                    _num("sigma", required=False, gt=0, le=10),
                    Field("bins", "int", required=False, ge=1, le=10_000),
                ),
            ),
        ),
        rule=lambda d: None
        if ("values" in d or "samples" in d or "lognormal" in d)
        else "needs 'values' (+ 'probs'), 'samples' or 'lognormal'",
    ),
    _num("tokens_per_weak_token", required=False, ge=0, le=1000),
    Field("info", "object", required=False),
)
SPEC_FIELDS = _SPEC_COMMON + (
    Field("observation_model", "str", min_len=1, file=True),
    Field("observation_points", "str", required=False, null=True, min_len=1, file=True),
)
#: the spec as embedded in a routing policy: the observation table travels as arrays beside it
EMBEDDED_SPEC_FIELDS = _SPEC_COMMON + (
    Field("observation_model", "str", required=False, null=True),
    _num("obs_bin_size", gt=0, le=1, rule=_divides_one),
)
SPEC = Schema("trimpomdp.trim_model", 3, SPEC_FIELDS)


def _trim_policy_rules(a, meta, n):
    so, lo, lb = a["step_offsets"], a["level_offsets"], a["line_breaks"]
    if so[0] != 0 or so[-1] != n["N"]:
        raise Invalid(
            "array 'step_offsets'", f"must run from 0 to the number of lines {n['N']}, got {int(so[0])}..{int(so[-1])}"
        )
    if not (np.array_equal(lo[:, 0], so[:-1]) and np.array_equal(lo[:, -1], so[1:])):
        t = int(np.flatnonzero((lo[:, 0] != so[:-1]) | (lo[:, -1] != so[1:]))[0])
        raise Invalid(
            "array 'level_offsets'",
            f"row {t} must run from step_offsets[{t}] = {int(so[t])} to step_offsets[{t + 1}] = "
            f"{int(so[t + 1])}, got {int(lo[t, 0])}..{int(lo[t, -1])}",
        )
    ends = lo[:, 1:].ravel() - 1
    if not np.all(lb[ends] == np.inf):
        raise Invalid("array 'line_breaks'", "the last line of every envelope must have breakpoint +inf")
    inner = np.ones(max(lb.size - 1, 0), dtype=bool)
    starts = lo[:, :-1].ravel()
    inner[starts[starts > 0] - 1] = False
    if np.any(lb[1:][inner] < lb[:-1][inner]):
        raise Invalid("array 'line_breaks'", "must be non-decreasing within each envelope")
    if meta["max_steps"] != n["T"]:
        raise Invalid("field 'max_steps'", f"is {meta['max_steps']} but the file holds {n['T']} steps")
    cap = meta.get("cap")
    if cap:
        ratio = cap["limit"] if cap["kind"] == "regen" else cap["limit"] / cap["unit"]
        levels = int(math.floor(ratio + (0 if cap["kind"] == "regen" else 1e-9))) + 1 if ratio < 1e9 else None
    else:
        levels = 1
    if levels != n["L"]:
        raise Invalid(
            "field 'cap'",
            f"{cap!r} gives {levels or 'too many'} budget levels but level_offsets has {n['L']} per step",
        )


def _obs_rules(probs_names):
    """Rows of bin probabilities sum to 1 (each state's table is a distribution)."""

    def rule(a, meta, n):
        for name in probs_names:
            if name not in a:
                continue
            s = np.atleast_2d(a[name]).sum(axis=-1)
            bad = np.flatnonzero(np.abs(s - 1.0) > 1e-3)
            if bad.size:
                raise Invalid(f"array {name!r}", f"row {bad[0]} sums to {s[bad[0]]:.6g}, not 1")

    return rule


def _obs_dims(a, meta, n):
    if n["D"] > 2:
        raise Invalid("array 'obs_centers'", f"observations have 1 or 2 coordinates, got {n['D']}")


TRIM_POLICY = Schema(
    "trimpomdp.trim_policy",
    1,
    fields=(
        _num("lam", ge=0),
        Field(
            "cap",
            "object",
            required=False,
            null=True,
            fields=(
                Field("kind", "str", choices=("regen", "tokens")),
                _num("limit", ge=0),
                _num("unit", gt=0),
            ),
        ),
        Field("max_steps", "int", ge=1),
        Field(
            "predicted",
            "object",
            required=False,
            null=True,
            fields=tuple(
                _num(k, required=False, null=True) for k in ("accuracy", "strong_tokens", "regenerations", "value")
            ),
        ),
        Field("spec", "object", fields=EMBEDDED_SPEC_FIELDS),
        Field("model_fingerprint", "str", required=False),
        Field("spec_path", "str", required=False, null=True),
        Field("spec_source", "str", required=False, null=True),
        Field("budget", "str", required=False),
        Field("budget_request", "str", required=False),
    ),
    arrays=(
        Array("line_slopes", ("N",)),
        Array("line_intercepts", ("N",)),
        Array("line_breaks", ("N",), finite=False),
        Array("step_offsets", ("T+1",), kind="i", ge=0, le="N", order="increasing"),
        Array("level_offsets", ("T", "L+1"), kind="i", ge=0, le="N", order="increasing"),
        Array("A", ("T",), ge=0),
        Array("B", ("T",), ge=0, le=1),
        Array("obs_probs", (3, "M"), ge=0, le=1),
        Array("obs_centers", ("M", "D"), ge=0, le=1),  # D = 1: current score; 2: (min earlier, current)
        Array("obs_truth", (3, "M"), ge=0, le=1, optional=True),
    ),
    min_sizes={"T": 1, "L": 1, "M": 1, "D": 1},
    rules=(_trim_policy_rules, _obs_rules(("obs_probs", "obs_truth")), _obs_dims),
)

TRIM_CLASS_POLICY = Schema(
    "trimpomdp.trim_class_policy",
    1,
    fields=(
        _num("lam", ge=0),
        Field("max_steps", "int", ge=1),
        Field("predicted", "object", required=False, null=True, fields=tuple(
            _num(k, required=False, null=True) for k in ("accuracy", "strong_tokens", "regenerations", "value"))),
        Field("spec", "object", fields=EMBEDDED_SPEC_FIELDS),
        Field("model_fingerprint", "str", required=False),
        Field("spec_source", "str", required=False, null=True),
        Field("budget", "str", required=False),
    ),
    arrays=(
        Array("keep", ("N", "Y")),
        Array("keep_offsets", ("T+1",), kind="i", ge=0, le="N", order="increasing"),
        Array("regen", ("R", "Y")),
        Array("regen_offsets", ("T+1",), kind="i", ge=0, le="R", order="increasing"),
        Array("obs_probs", (3, "M"), ge=0, le=1),
        Array("obs_centers", ("M", "D"), ge=0, le=1),
        Array("obs_truth", (3, "M"), ge=0, le=1, optional=True),
    ),
    min_sizes={"T": 1, "M": 1, "D": 1, "N": 1, "R": 1, "Y": 3},
    rules=(_obs_rules(("obs_probs", "obs_truth")), _obs_dims),
)


def _alpha_visible(a, meta, n):
    if "visible" in a and n["K"] and a["visible"].max() >= meta.get("n_visible", 1):
        k = int(np.argmax(a["visible"] >= meta.get("n_visible", 1)))
        raise Invalid("array 'visible'", f"vector {k} belongs to visible value {int(a['visible'][k])}, but "
                      f"n_visible is {meta.get('n_visible', 1)}")


# version 2: ``visible`` (the visible value of each vector of a MOMDP policy) and ``n_visible``; the vectors
# are then over the hidden values (S = Y). Version 1 files have neither and are flat policies.
ALPHA_POLICY = Schema(
    "trimpomdp.alpha_policy",
    2,
    fields=(Field("model_fingerprint", "str", required=False),
            Field("n_visible", "int", required=False, ge=1, le=2**31)),
    arrays=(Array("alphas", ("K", "S")), Array("actions", ("K",), kind="i", ge=0),
            Array("visible", ("K",), kind="i", ge=0, optional=True)),
    min_sizes={"K": 1, "S": 1},
    rules=(_alpha_visible,),
)


def _obs_kde_arrays(meta):
    k = len(meta["states"])
    return tuple(Array(f"points_{i}", (f"n{i}", "D"), ge=0, le=1) for i in range(k)) + tuple(
        Array(f"bandwidth_{i}", shape=None) for i in range(k)
    )


def _obs_kde_rules(a, meta, n):
    if n["D"] != meta["dims"]:
        raise Invalid("field 'dims'", f"is {meta['dims']} but the points have {n['D']} coordinates")
    for i in range(len(meta["states"])):
        if n[f"n{i}"] < 1:
            raise Invalid(f"array 'points_{i}'", "holds no points")
        bw = a[f"bandwidth_{i}"]
        if bw.shape not in ((), (n["D"],), (n["D"], n["D"])):
            raise Invalid(
                f"array 'bandwidth_{i}'", f"must be a scalar, ({n['D']},) or ({n['D']}, {n['D']}), got {bw.shape}"
            )


OBS_KDE = Schema(
    "trimpomdp.obs_kde",
    1,
    fields=(
        Field("states", "list", items=Field("", "str", min_len=1), min_len=1, max_len=64, rule=_unique),
        Field("dims", "int", ge=1, le=2),
        _num("bin_size", gt=0, le=1, rule=_divides_one),
        Field("bandwidth_rule", "str", required=False),
        Field("covariance", "str", required=False, choices=("full", "diag")),
        Field("counts", "object", required=False),
        Field("cv_scales", "object", required=False),
    ),
    arrays=_obs_kde_arrays,
    rules=(_obs_kde_rules,),
)


def bins_table(states) -> Schema:
    """The reference bins-table layout (no header): ``<state>_centers`` (M, d) and ``<state>_probs`` (M,)."""
    arrays = [Array("bin_size", (), gt=0, le=1, optional=True)]
    for s in states:
        arrays += [Array(f"{s}_centers", ("M", "D"), ge=0, le=1), Array(f"{s}_probs", ("M",), ge=-1e-12, le=1)]
    return Schema(None, 1, arrays=tuple(arrays), min_sizes={"M": 1, "D": 1},
                  rules=(_obs_rules([f"{s}_probs" for s in states]),))


def observation_points(states) -> Schema:
    """Labelled PRM observations (no header): one (n, 2) array of scores in [0, 1] per state, n >= 1."""
    return Schema(None, 1, arrays=tuple(Array(s, (f"n_{s}", 2), ge=0, le=1) for s in states),
                  min_sizes={f"n_{s}": 1 for s in states})


def _belief(v) -> str | None:
    if len(v) != 3 or not all(-1e-6 <= x <= 1 + 1e-6 for x in v) or abs(sum(v) - 1.0) > 2e-3:
        return f"must be a probability vector [C, E, D] summing to 1, got {_short(v)}"
    return None


def _distribution(v) -> str | None:
    if not v or not all(-1e-6 <= x <= 1 + 1e-6 for x in v) or abs(sum(v) - 1.0) > 2e-3:
        return f"must be a probability vector summing to 1, got {_short(v)}"
    return None


_STEP = (
    Field("index", "int"),
    Field("text", "str"),
    Field("model", "str", choices=("weak", "strong")),
    Field("weak_text", "str", required=False, null=True),
    Field("weak_tokens", "int", required=False, ge=0),
    Field("strong_tokens", "int", required=False, ge=0),
    _num("prm_score", required=False, null=True),
    Field("observation", "list", required=False, null=True, items=NUMBERS, min_len=2, max_len=2),
    Field("obs_bin", "int", required=False, null=True),
    Field("belief_before", "list", required=False, null=True, items=NUMBERS, rule=_belief),
    Field("belief_after", "list", required=False, null=True, items=NUMBERS, rule=_belief),
    Field("action", "str", choices=("keep", "regenerate")),
    _num("q_keep", required=False, null=True),
    _num("q_regenerate", required=False, null=True),
    Field("policy_state", "any", required=False, null=True),  # v2: the policy's state before deciding
    # v3: P(difficulty class) after the step's score (specs with difficulty classes)
    Field("class_belief", "list", required=False, null=True, items=NUMBERS, rule=_distribution),
)
#: trace versions the reader accepts (the writer writes the last); v2 adds ``steps[].policy_state``, v3
#: ``steps[].class_belief``
TRACE_VERSIONS = (1, 2, 3)
#: one record (line) of a decode trace JSONL; the reader lives in trimpomdp/decode/trace.py
TRACE_RECORD = (
    Field("format", "str", choices=("trimpomdp.trace",)),
    Field("version", "int", choices=TRACE_VERSIONS),
    Field("id", "str", min_len=1),
    Field("question", "str"),
    Field("policy", "str"),
    Field("solution", "str"),
    Field("reference", "str", required=False, null=True),
    Field("answer", "str", required=False, null=True),
    Field("error", "str", required=False, null=True),
    Field("correct", "bool", required=False, null=True),
    Field("tokens", "object", fields=tuple(Field(k, "int", ge=0) for k in ("weak_kept", "weak_discarded", "strong"))),
    Field("finish", "str", choices=("answer", "max_steps", "eos", "error")),
    _num("seconds", required=False),
    Field("models", "object", required=False, null=True),
    Field("steps", "list", items=Field("", "object", fields=_STEP)),
)


def _grading_error(kind) -> str | None:
    from trimpomdp.decode.answers import Grading  # sympy: loaded only when a header names a grading

    try:
        Grading.parse(kind)
    except ValueError as exc:
        return str(exc)
    return None


def _gradings_error(kinds: dict) -> str | None:
    for pid, kind in kinds.items():
        msg = "must be a string" if not isinstance(kind, str) else _grading_error(kind)
        if msg:
            return f"problem {_short(pid)}: {msg}"
    return None


#: the optional first line of a trace: the settings of the run that wrote it (compared on --resume); the
#: benchmark and answer grading were added later and are optional (older headers lack them)
TRACE_HEADER = (
    Field("format", "str", choices=("trimpomdp.trace_header",)),
    Field("version", "int", choices=TRACE_VERSIONS),
    Field("settings", "object", fields=(
        Field("benchmark", "str", required=False, null=True, min_len=1),
        Field("layout", "str", required=False, null=True),
        Field("answer_kind", "str", required=False, rule=_grading_error),
        Field("answer_kinds", "object", required=False, rule=_gradings_error),
    )),
)

#: header-carrying ``.npz`` formats, validated by ``artifacts.load_npz``
SCHEMAS: dict[str, Schema] = {s.fmt: s for s in (TRIM_POLICY, TRIM_CLASS_POLICY, ALPHA_POLICY, OBS_KDE)}


def register(schema: Schema) -> Schema:
    """Declare a new ``.npz`` format so that ``load_npz(path, fmt)`` validates it."""
    SCHEMAS[schema.fmt] = schema
    return schema
