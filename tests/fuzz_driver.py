"""End-to-end fuzzing of the command line: seeded mutations of every input format, run through the command
that reads it, in a child process so that a crash or a hang is reported with the case that caused it.

A *case* is a kind (an input format and the commands that consume it, ``KINDS``) and a seed: the seed's
mutation of the kind's pristine file (``seed`` None: the pristine file itself) is written to a fresh
folder and the commands run in-process through ``trimpomdp.cli.main.main(argv)``, with stdout/stderr
captured at the file-descriptor level and an alarm per command. ``check`` says what is wrong with a
result: exit status outside {0, 1, 2}, a traceback, a hang, anything on stderr but one ``Error:`` line
when the command failed, or commands that disagree (``info`` valid but ``solve`` refusing).

Three ways in:
  python tests/fuzz_driver.py KIND SEED [--keep DIR]   one case, verbose (reproduce a failure)
  python tests/fuzz_driver.py --list                   the kinds
  Driver(base, shared).run(kind, seed)                 from tests/test_fuzz.py: a long-lived child
                                                       ('serve' mode: one JSON case a line in, one
                                                       JSON result a line out), restarted after a crash
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRIMPOMDP_SHARED", ROOT.parent / "shared"))
COMMAND_SECONDS = 10.0  # per command, in the child (alarm)
CASE_SECONDS = 60.0  # per case, in the parent (kills the child: a hang inside compiled code)
MEMORY_BYTES = 6 << 30  # address-space cap of the child: a runaway allocation fails instead of swapping

WEAK, STRONG = "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct"
SPEC_FILES = ("trim_math_plain.json", "trim_math_obs_0.05.npz", "prm_obs_processbench_math.npz")
SMALL_CLASSICS = ("tiger.95.POMDP", "4x3.95.POMDP", "cheese.95.POMDP", "shuttle.95.POMDP", "parr95.95.POMDP",
                  "concert.POMDP", "ejs1.POMDP", "ejs2.POMDP", "ejs4.POMDP", "Tiger.pomdpx")
LARGE_CLASSICS = ("Hallway.pomdp", "Hallway.pomdpx")  # parsed and checked only (solving takes seconds)


# ============================================================================================ mutators
NUMBER = re.compile(rb"(?<![\w.])[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![\w.])")
WORD = re.compile(rb"[A-Za-z_][\w\-]*")
TAG = re.compile(rb"<[^<>]*>")
BAD_NUMBERS = (b"nan", b"NaN", b"inf", b"-inf", b"1e400", b"-1e400", b"1e-400", b"-1", b"-0.5", b"0", b"1",
               b"2", b"1.5", b"0.3333", b"99999999999999999999", b"4294967296", b"1e9", b"0x1F", b"1..2",
               b"abc",
               b"", b"1,5", b"+", b"-", b"*", b"1e", b"\xe2\x88\x9e")
WEIRD_BYTES = (b"\x00", b"\xff\xfe", b"\x80", b"\xc3(", b"\r", b"\t", b"\x0c", b"\xef\xbb\xbf", b"#", b":",
               b"<", b"&", b"]]>", b"\\", b'"', b"{", b"}")


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _pick_line(rng, lines) -> int:
    return rng.randrange(len(lines))


def _text_ops(xml: bool, cassandra: bool):
    """Byte-level mutations of a text file; each takes (data, rng) and returns new data."""

    def delete_lines(d, r):
        ls = _lines(d)
        i = _pick_line(r, ls)
        del ls[i:i + r.choice((1, 1, 2, 5))]
        return b"\n".join(ls)

    def duplicate_line(d, r):
        ls = _lines(d)
        i = _pick_line(r, ls)
        ls.insert(i, ls[i])
        return b"\n".join(ls)

    def swap_lines(d, r):
        ls = _lines(d)
        i, j = _pick_line(r, ls), _pick_line(r, ls)
        ls[i], ls[j] = ls[j], ls[i]
        return b"\n".join(ls)

    def replace_number(d, r):
        ms = list(NUMBER.finditer(d))
        if not ms:
            return d + r.choice(BAD_NUMBERS)
        m = r.choice(ms)
        return d[:m.start()] + r.choice(BAD_NUMBERS) + d[m.end():]

    def perturb_numbers_of_a_line(d, r):  # keeps the syntax, breaks the sums
        ls = _lines(d)
        i = _pick_line(r, ls)
        f = r.choice((0.0, -1.0, 0.5, 2.0, 1e6, 1e-9))
        ls[i] = NUMBER.sub(lambda m: repr(_num(m.group()) * f).encode(), ls[i])
        return b"\n".join(ls)

    def swap_words(d, r):
        ms = list(WORD.finditer(d))
        if len(ms) < 2:
            return d
        m, other = r.choice(ms), r.choice(ms)
        return d[:m.start()] + other.group() + d[m.end():]

    def truncate(d, r):
        return d[:r.randrange(len(d) + 1)]

    def inject(d, r):
        i = r.randrange(len(d) + 1)
        if r.random() < 0.6:
            junk = r.choice(WEIRD_BYTES)
        else:
            junk = bytes(r.randrange(256) for _ in range(r.randint(1, 16)))
        return d[:i] + junk + d[i:]

    def flip_byte(d, r):
        if not d:
            return b"\xff"
        i = r.randrange(len(d))
        return d[:i] + bytes([d[i] ^ (1 << r.randrange(8))]) + d[i + 1:]

    def empty(d, r):
        return r.choice((b"", b"\n", b" ", b"\xff"))

    def line_endings(d, r):
        return d.replace(b"\n", r.choice((b"\r\n", b"\r", b"")))

    def long_line(d, r):  # a line of 200,000 numbers: must be parsed, or refused, in bounded time
        ls = _lines(d)
        i = _pick_line(r, ls)
        ls.insert(i, b" ".join([r.choice((b"0.1", b"0", b"1"))] * 200_000))
        return b"\n".join(ls)

    def repeat_file(d, r):
        return d * r.choice((2, 3))

    ops = [delete_lines, duplicate_line, swap_lines, replace_number, replace_number,
           perturb_numbers_of_a_line, swap_words, truncate, inject, flip_byte, empty, line_endings, long_line,
           repeat_file]

    if cassandra:
        def header_count(d, r):
            ms = list(re.finditer(rb"(states|actions|observations)[ \t]*:[ \t]*(\S+)", d))
            if not ms:
                return d
            m = r.choice(ms)
            n = int(m.group(2)) if m.group(2).isdigit() else 3
            new = r.choice((0, 1, n - 1, n + 1, 2 * n, 1000, 10**6, 10**9, 10**18, -1, "x", "1.5"))
            return d[:m.start(2)] + str(new).encode() + d[m.end(2):]

        def header_names(d, r):  # drop or duplicate a name in "states: a b c"
            ms = list(re.finditer(rb"(?m)^(states|actions|observations)[ \t]*:([^\n]*)", d))
            names = [(m, list(WORD.finditer(m.group(2)))) for m in ms]
            names = [(m, ws) for m, ws in names if ws]
            if not names:
                return d
            m, ws = r.choice(names)
            w = r.choice(ws)
            s, e = m.start(2) + w.start(), m.start(2) + w.end()
            return d[:s] + (b"" if r.random() < 0.5 else d[s:e] + b" " + d[s:e]) + d[e:]

        def discount(d, r):
            m = re.search(rb"discount[ \t]*:[ \t]*(\S+)", d)
            if not m:
                return d
            new = r.choice((b"0", b"1", b"1.0000001", b"-0.5", b"2", b"nan", b"inf", b"1e-300",
                            b"0.99999999999"))
            return d[:m.start(1)] + new + d[m.end(1):]

        def keyword(d, r):  # a keyword or a special matrix word where a number was
            ms = list(NUMBER.finditer(d))
            word = r.choice((b"uniform", b"identity", b"reset", b"*", b"start:", b"values: cost", b"T:",
                             b"O:"))
            if not ms:
                return d + b"\n" + word
            m = r.choice(ms)
            return d[:m.start()] + word + d[m.end():]

        ops += [header_count, header_count, header_names, discount, keyword]

    if xml:
        def delete_tag(d, r):
            ms = list(TAG.finditer(d))
            if not ms:
                return d
            m = r.choice(ms)
            return d[:m.start()] + d[m.end():]

        def rename_tag(d, r):
            ms = list(re.finditer(rb"</?([A-Za-z_][\w]*)", d))
            if not ms:
                return d
            m = r.choice(ms)
            new = r.choice((b"Bogus", b"Parameter", b"Entry", b"Instance", b"ProbTable", b"Vector", b"Var",
                            b"x"))
            return d[:m.start(1)] + new + d[m.end(1):]

        def duplicate_element(d, r):
            ms = list(re.finditer(rb"<(\w+)[^<>]*>[^<]*</\1>", d))
            if not ms:
                return d
            m = r.choice(ms)
            return d[:m.end()] + m.group() + d[m.end():]

        def attribute(d, r):
            ms = list(re.finditer(rb'(\w+)="([^"]*)"', d))
            if not ms:
                return d
            m = r.choice(ms)
            new = r.choice((b"", b"-1", b"0", b"99999", b"1e9", b"nan", b"abc", b"1.5", b"3 4"))
            return d[:m.start(2)] + new + d[m.end(2):]

        def entities(d, r):  # entity expansion (must stay bounded) or an undefined / external entity
            decl = r.choice((
                b'<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
                b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
                b'<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>',
                b'<!DOCTYPE x [<!ENTITY ext SYSTEM "file:///etc/passwd">]>',
                b"",
            ))
            body = d.split(b"?>", 1)
            d = body[0] + b"?>" + decl + body[1] if len(body) == 2 else decl + d
            ms = list(re.finditer(rb">([^<]+)<", d))
            if ms:
                m = r.choice(ms)
                ref = r.choice((b"&f;", b"&ext;", b"&nope;", b"&#0;", b"&#x110000;"))
                d = d[:m.start(1)] + ref + d[m.end(1):]
            return d

        def drop_closing(d, r):
            ms = list(re.finditer(rb"</\w+>", d))
            if not ms:
                return d
            m = r.choice(ms)
            return d[:m.start()] + d[m.end():]

        ops += [delete_tag, rename_tag, duplicate_element, attribute, entities, drop_closing, replace_number]
    return ops


def _num(b: bytes) -> float:
    try:
        return float(b)
    except ValueError:
        return 0.0


def _n_ops(rng) -> int:
    return rng.choice((1, 1, 1, 2, 2, 3))


def mutate_text(data: bytes, rng, xml=False, cassandra=False) -> bytes:
    ops = _text_ops(xml, cassandra)
    for _ in range(_n_ops(rng)):
        data = rng.choice(ops)(data, rng)
    return data


# ------------------------------------------------------------------------------------------------ JSON
JSON_VALUES = (None, True, False, 0, 1, -1, 0.5, 2, 1e308, -1e308, 1e-320, math.nan, math.inf, -math.inf,
               10**30, -(10**30), 2**63, "", "x", "0.5", [], {}, [0], [1, 2, 3], {"a": 1}, "nope.npz",
               "/dev/null",
               ".", "/",
               "../../../../../../etc/passwd", "trimpomdp.trace", "weak", "keep")


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:50]):
            yield from _paths(v, prefix + (i,))


def _get(obj, path):
    for k in path:
        obj = obj[k]
    return obj


def _perturb(v, rng, extra_values=()):
    """A value of the same type nearby, or anything."""
    if rng.random() < 0.4:
        return rng.choice(JSON_VALUES + tuple(extra_values))
    if isinstance(v, bool):
        return not v
    if isinstance(v, (int, float)):
        return rng.choice((-v, v * 1e6, v + 1, v - 1, 0, v / 3, int(v * 1000) if math.isfinite(v) else 0))
    if isinstance(v, str):
        return rng.choice(("", v + "x", v[: len(v) // 2], v.upper(), v * 50, "\u00e9\u2603\U0001f600",
                           "\x00"))
    if isinstance(v, list):
        return rng.choice(([], v[:1], v[::-1], v * 3, v + [v[-1] if v else None], [v]))
    if isinstance(v, dict):
        return rng.choice(({}, dict(list(v.items())[: len(v) // 2]), {"unknown": v}, [v]))
    return rng.choice(JSON_VALUES)


def mutate_json_value(obj, rng, extra_values=()):
    """One structural change of a parsed JSON value at a random place (returns the new root)."""
    path = rng.choice(list(_paths(obj)))
    if not path:
        return _perturb(obj, rng, extra_values)
    parent = _get(obj, path[:-1])
    key = path[-1]
    op = rng.random()
    if op < 0.2:
        del parent[key]
    elif op < 0.3 and isinstance(parent, dict):
        parent[str(key) + "_x" if rng.random() < 0.5 else str(key).upper()] = parent.pop(key)
    elif op < 0.35 and isinstance(parent, list):
        parent.insert(key, parent[key])
    else:
        parent[key] = _perturb(parent[key], rng, extra_values)
    return obj


def dump_json(obj, rng) -> bytes:
    return json.dumps(obj, allow_nan=True, indent=rng.choice((None, 1))).encode()


def mutate_json(data: bytes, rng, extra_values=()) -> bytes:
    """Structural mutations of a JSON document (the usual case), or byte-level damage of it."""
    if rng.random() < 0.75:
        obj = json.loads(data)
        for _ in range(_n_ops(rng)):
            obj = mutate_json_value(obj, rng, extra_values)
        return dump_json(obj, rng)
    if rng.random() < 0.15:
        depth = rng.choice((1000, 100_000))
        return b"[" * depth + data + b"]" * depth
    return mutate_text(data, rng)


def mutate_jsonl(data: bytes, rng, extra_values=()) -> bytes:
    lines = [ln for ln in data.split(b"\n") if ln.strip()]
    for _ in range(_n_ops(rng)):
        op = rng.random()
        if op < 0.55 and lines:
            i = rng.randrange(len(lines))
            try:
                obj = json.loads(lines[i])
            except (ValueError, RecursionError):  # damaged by an earlier mutation
                continue
            obj = mutate_json_value(obj, rng, extra_values)
            lines[i] = json.dumps(obj, allow_nan=True).encode()
        elif op < 0.6:  # a line nested deeper than the JSON parser's recursion limit
            lines.insert(rng.randrange(len(lines) + 1), b"[" * 100_000 + b"]" * 100_000)
        elif op < 0.75 and lines:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            kind = rng.random()
            if kind < 0.4:
                lines.insert(i, lines[j])
            elif kind < 0.7:
                del lines[i]
            else:
                lines[i], lines[j] = lines[j], lines[i]
        else:
            joined = mutate_text(b"\n".join(lines) + b"\n", rng)
            lines = joined.split(b"\n")
    return b"\n".join(lines) + (b"\n" if rng.random() < 0.8 else b"")


# ------------------------------------------------------------------------------------------------- npz
def _array_edits():
    import numpy as np

    def numeric(a):
        return a.dtype.kind in "fiub" and a.size > 0

    def set_value(a, r):
        a = a.copy()
        i = r.randrange(a.size)
        if a.dtype.kind == "f":
            v = r.choice((math.nan, math.inf, -math.inf, 1e308, -1e308, -1.0, 0.0, 1.0, 2.0, 0.5, 1e-320, 1e6,
                          -1e-12))
        elif a.dtype.kind in "iu":
            info = np.iinfo(a.dtype)
            v = r.choice((-1, 0, 1, 2, a.size, a.size + 1, 10**6, 2**31, info.max, info.min))
        else:
            v = not a.flat[i]
        try:
            a.flat[i] = v
        except (OverflowError, ValueError):  # out of the dtype's range (e.g. 10**6 in an int8 array)
            a.flat[i] = 0
        return a

    def scale(a, r):
        with np.errstate(all="ignore"):
            if a.dtype.kind not in "fiu":
                return a
            f = r.choice((-1, 0, 2, 0.5, 1e300, 1 + 1e-6))
            try:
                return (a * f).astype(a.dtype)
            except OverflowError:  # -1 times an unsigned array
                return a

    def dtype(a, r):
        t = r.choice(("float32", "float16", "int8", "int32", "int64", "uint8", "uint64", "bool", "complex128",
                      "U8", "S4", "object", "float64", "datetime64[s]"))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return a.astype(t)
            except Exception:  # numpy refuses some conversions (object to datetime, datetime to short text)
                return a

    def shape(a, r):
        op = r.randrange(9)
        if op == 0:
            return a.ravel()
        if op == 1:
            return a[None]
        if op == 2:
            return a.T.copy()
        if op == 3 and a.ndim:
            return a[: r.randrange(a.shape[0] + 1)]
        if op == 4 and a.ndim:
            return np.concatenate([a, a[:1]]) if a.shape[0] else a
        if op == 5 and a.ndim:
            return a[::-1].copy()
        if op == 6 and a.size:
            return np.asarray(a.flat[0])
        if op == 7 and a.ndim >= 2:
            return a[..., :-1].copy()
        if op == 8:
            return np.zeros((0,) + a.shape[1:], a.dtype)
        b = a.copy()
        r.shuffle(b.reshape(-1)) if b.ndim == 1 else None
        return b

    return numeric, [set_value, set_value, set_value, scale, dtype, shape, shape]


def mutate_npz_arrays(members: dict, rng, meta_extra=()) -> dict:
    """Structural mutations of an .npz's arrays and JSON metadata header (``__meta__``)."""
    import numpy as np

    numeric, edits = _array_edits()
    members = dict(members)
    for _ in range(_n_ops(rng)):
        names = sorted(members)
        op = rng.random()
        if "__meta__" in members and op < 0.3:
            raw = members["__meta__"]
            r2 = rng.random()
            try:
                meta = json.loads(str(raw)) if r2 < 0.8 and raw.dtype.kind == "U" and raw.ndim == 0 else None
            except (ValueError, RecursionError):  # damaged by an earlier mutation
                meta = None
            if meta is not None:
                meta = mutate_json_value(meta, rng, meta_extra)
                members["__meta__"] = np.array(json.dumps(meta, allow_nan=True))
            else:
                members["__meta__"] = rng.choice((np.array("{bad json"), np.array("[]"), np.array(5),
                                                  np.array(b"{}"), np.array(["{}", "{}"]), np.array("null"),
                                                  np.array("[" * 100_000)))
        elif op < 0.8 and names:
            name = rng.choice([n for n in names if n != "__meta__"] or names)
            a = members[name]
            edit = rng.choice(edits)
            if edit.__name__ in ("set_value", "scale") and not numeric(a):
                edit = rng.choice((edits[-1], edits[-3]))
            members[name] = edit(a, rng)
        elif op < 0.87 and names:
            del members[rng.choice(names)]
        elif op < 0.92 and len(names) >= 2:
            a, b = rng.sample(names, 2)
            members[a], members[b] = members[b], members[a]
        elif op < 0.96 and names:
            n = rng.choice(names)
            members[n + rng.choice(("_x", "", "2"))] = members.pop(n)
        else:
            members[rng.choice(("junk", "x/y", "__meta", "alphas"))] = np.arange(3.0)
    return members


def write_npz(path: Path, members: dict, rng) -> None:
    import numpy as np

    with open(path, "wb") as fh:
        (np.savez_compressed if rng.random() < 0.5 else np.savez)(fh, **members)


def mutate_npz_bytes(data: bytes, rng) -> bytes:
    op = rng.randrange(7)
    if op == 0:
        return data[: rng.randrange(len(data) + 1)]
    if op == 1:  # flip bytes anywhere (compressed data, local headers, central directory)
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        return bytes(b)
    if op == 2:  # damage the central directory at the end
        b = bytearray(data)
        i = len(b) - rng.randint(1, min(len(b), 120))
        b[i] = rng.randrange(256)
        return bytes(b)
    if op == 3:
        return data + bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    if op == 4:
        return rng.choice((b"", b"PK\x03\x04", b"PK\x05\x06" + b"\x00" * 18, b"\x93NUMPY", b"not a zip"))
    if op == 5:  # a zip whose member is not an .npy array
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr(rng.choice(("alphas.npy", "__meta__.npy", "x.npy", "correct.npy")),
                       rng.choice((b"", b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'}", b"junk" * 10)))
        return buf.getvalue()
    # a member whose .npy header claims a huge shape
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("alphas.npy", _npy_header("<f8", (10**12, 2)) + b"\x00" * 16)
    return buf.getvalue()


def _npy_header(descr: str, shape) -> bytes:
    h = repr({"descr": descr, "fortran_order": False, "shape": tuple(shape)}).encode()
    h += b" " * (63 - (len(h) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h


def mutate_npz_file(src: Path, dst: Path, rng, meta_extra=()) -> None:
    import numpy as np

    if rng.random() < 0.7:
        with np.load(src, allow_pickle=False) as z:
            members = {k: z[k] for k in z.files}
        write_npz(dst, mutate_npz_arrays(members, rng, meta_extra), rng)
        if rng.random() < 0.1:
            dst.write_bytes(mutate_npz_bytes(dst.read_bytes(), rng))
    else:
        dst.write_bytes(mutate_npz_bytes(src.read_bytes(), rng))


# =============================================================================================== kinds
@dataclass
class Kind:
    """An input format: the pristine file (in the base folder), how to mutate it, the commands to run.

    ``commands(case_dir, input, base, shared)`` gives the argv lists; a command whose first element is
    ``"?"`` runs only when every earlier command exited 0 (it consumes what they wrote)."""

    name: str
    source: str  # path relative to the base folder
    suffix: str
    mutate: callable
    commands: callable
    expect: tuple = (0,)  # exit statuses of the pristine input's commands (one each, or one for all)
    companions: tuple = field(default=())  # base files copied beside the input (a spec's tables)


def _classic_commands(small: bool):
    def cmds(d, inp, base, shared):
        out = [["info", inp]]
        if small:
            out += [["solve", inp, "--timeout", "2", "--progress", "none", "-o", f"{d}/p.npz"],
                    ["?", "simulate", inp, f"{d}/p.npz", "--episodes", "50"]]
        return out

    return cmds


def _text_mutator(xml=False, cassandra=False):
    def mutate(src: Path, dst: Path, rng, base: Path):
        dst.write_bytes(mutate_text(src.read_bytes(), rng, xml=xml, cassandra=cassandra))

    return mutate


def _npz_mutator(src: Path, dst: Path, rng, base: Path):
    mutate_npz_file(src, dst, rng)


def _spec_mutator(src: Path, dst: Path, rng, base: Path):
    # file fields may be pointed at the wrong file kinds: the points, the spec itself, a folder, a model
    others = ("prm_obs_processbench_math.npz", "trim_math_obs_0.05.npz", "trim_math_plain.json", ".",
              "tiger.policy.npz", str(base / "route.npz"), str(base / "obs.npz"),
              str(SHARED / "pomdp" / "tiger.95.POMDP"))
    dst.write_bytes(mutate_json(src.read_bytes(), rng, others))


def _trace_mutator(src: Path, dst: Path, rng, base: Path):
    answers = ("\\frac{1}{0}", "10^{10^{10}}", "2**2**2**2**2**2", "(" * 500, "9" * 5000,
               "\\sqrt{\\sqrt{-1}}", "1e999999", "x^x^x^x", "\\boxed{", "#### 1,000,000", "0.1 + 0.2")
    dst.write_bytes(mutate_jsonl(src.read_bytes(), rng,
                                 ("regenerate", "strong", "error", "eos", [0.2, 0.3, 0.5]) + answers))


def _sequences_mutator(src: Path, dst: Path, rng, base: Path):
    dst.write_bytes(mutate_jsonl(src.read_bytes(), rng, (-1, 0, 7, 10**9, [0.5] * 1000, [], "q1", "s1")))


def _obs_commands(d, inp, base, shared):
    return [["trim-model", "--step-stats", f"{shared}/data/step_stats_math_train.npz", "--weak", WEAK,
             "--strong", STRONG, "--obs", inp, "--points", f"{base}/spec/prm_obs_processbench_math.npz",
             "-o", f"{d}/spec.json"],
            ["?", "simulate-routing", f"{d}/spec.json", "--episodes", "200"]]


def _kinds() -> dict:
    ks = {}
    for f in SMALL_CLASSICS + LARGE_CLASSICS:
        xml = f.endswith(".pomdpx")
        ks[f"classic:{f}"] = Kind(
            f"classic:{f}", f"classic/{f}", Path(f).suffix, _text_mutator(xml=xml, cassandra=not xml),
            _classic_commands(f in SMALL_CLASSICS),
            # the undiscounted ejs problems are well-formed but unbounded: info 1, solve refuses (2)
            # concert: discount 1 (a certified finite value), no terminal states: simulate needs --horizon
            expect=(1, 2) if f.startswith("ejs") else (0, 0, 2) if f.startswith("concert") else (0,))
    def simulate_tiger(d, i, b, s):
        return [["simulate", f"{b}/classic/tiger.95.POMDP", i, "--episodes", "50"]]

    ks["alpha-policy"] = Kind("alpha-policy", "tiger.policy.npz", ".npz", _npz_mutator, simulate_tiger)
    ks["policy-xml"] = Kind("policy-xml", "tiger.policy", ".policy", _text_mutator(xml=True), simulate_tiger)
    ks["routing-policy"] = Kind(
        "routing-policy", "route.npz", ".npz", _npz_mutator,
        lambda d, i, b, s: [["simulate-routing", f"{b}/spec/trim_math_plain.json", "--policy", f"pomdp:{i}",
                             "--episodes", "200"]])
    ks["obs-model"] = Kind("obs-model", "obs.npz", ".npz", _npz_mutator, _obs_commands)
    ks["bins-table"] = Kind("bins-table", "spec/trim_math_obs_0.05.npz", ".npz", _npz_mutator, _obs_commands)
    ks["spec"] = Kind(
        "spec", "spec/trim_math_plain.json", ".json", _spec_mutator,
        lambda d, i, b, s: [["solve", i, "--budget", "lambda=0.15", "-o", f"{d}/r.npz"],
                            ["simulate-routing", i, "--episodes", "200"]],
        companions=SPEC_FILES[1:])
    ks["points"] = Kind(
        "points", "spec/prm_obs_processbench_math.npz", ".npz", _npz_mutator,
        lambda d, i, b, s: [["simulate-routing", f"{b}/spec/trim_math_plain.json", "--points", i,
                             "--episodes", "200"],
                            ["fit-obs", i, "--bandwidth", "scott", "--no-diagnostics", "-o", f"{d}/o.npz"]])
    ks["step-stats"] = Kind(
        "step-stats", "step_stats.npz", ".npz", _npz_mutator,
        lambda d, i, b, s: [["trim-model", "--step-stats", i, "--weak", WEAK, "--strong", STRONG, "--obs",
                             f"{b}/spec/trim_math_obs_0.05.npz", "-o", f"{d}/s.json"]])
    ks["score-sequences"] = Kind(
        "score-sequences", "sequences.jsonl", ".jsonl", _sequences_mutator,
        lambda d, i, b, s: [["fit-obs", i, "--bandwidth", "scott", "--no-diagnostics", "-o", f"{d}/o.npz"],
                            ["fit-obs", f"{b}/spec/prm_obs_processbench_math.npz", "--bandwidth", "scott",
                             "--no-diagnostics", "--evaluate", i, "-o", f"{d}/o2.npz"]])
    ks["trace"] = Kind(
        "trace", "traces/routed.jsonl", ".jsonl", _trace_mutator,
        lambda d, i, b, s: [["inspect", i], ["inspect", i, "--json"],
                            ["eval", f"{b}/traces/weak.jsonl", f"{b}/traces/strong.jsonl", i],
                            ["eval", i, "--recheck", "--json"]])
    return ks


KINDS = _kinds()


# ========================================================================================== base files
def _trace_record(pid: str, policy: str, n_steps: int, regen_every: int, correct: bool) -> dict:
    steps, strong = [], 0
    for k in range(n_steps):
        regen = regen_every > 0 and k % regen_every == regen_every - 1
        strong += 12 if regen else 0
        steps.append({"index": k + 1, "text": f"step {k} of {pid}", "model": "strong" if regen else "weak",
                      "weak_text": f"w{k}", "weak_tokens": 10, "strong_tokens": 12 if regen else 0,
                      "prm_score": 0.3 if regen else 0.9, "observation": [1.0, 0.3 if regen else 0.9],
                      "obs_bin": 17, "belief_before": [0.9, 0.06, 0.04], "belief_after": [0.8, 0.15, 0.05],
                      "action": "regenerate" if regen else "keep", "q_keep": 1.0, "q_regenerate": 0.5,
                      "policy_state": None})
    return {"format": "trimpomdp.trace", "version": 2, "id": pid, "question": f"question {pid}",
            "reference": "1", "policy": policy, "models": {"weak": "w", "strong": "s", "prm": "p"},
            "solution": "s\n\n1",
            "answer": "1" if correct else "2", "correct": correct,
            "tokens": {"weak_kept": 10 * n_steps, "weak_discarded": 10 * (strong // 12), "strong": strong},
            "finish": "answer", "error": None, "seconds": 0.5, "steps": steps}


def _write_trace(path: Path, policy: str, regen_every: int) -> None:
    header = {"format": "trimpomdp.trace_header", "version": 2, "settings": {"policy": policy}}
    recs = [_trace_record(str(i), policy, 2 + i % 3, regen_every, (i + regen_every) % 3 != 0)
            for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in [header] + recs))


def _write_sequences(path: Path) -> None:
    """PRM score sequences as score-steps writes them: scores high until the first wrong step (label)."""
    r = random.Random(0)
    lines = []
    for i in range(60):
        n = r.randint(2, 8)
        label = r.choice([-1, -1, r.randrange(n)])
        scores = [round(r.uniform(0.6, 1.0) if label < 0 or t < label else r.uniform(0.0, 0.6), 3)
                  for t in range(n)]
        lines.append(json.dumps({"id": f"s{i}", "scores": scores, "label": label, "prm": "p",
                                 "group": f"q{i // 2}"}))
    path.write_text("\n".join(lines) + "\n")


def build_base(base: Path, shared: Path = SHARED) -> Path:
    """The pristine inputs, made by the real commands: a solved alpha-vector policy (.npz and .policy XML),
    a routing policy, a fitted observation model, copies of the spec and its tables, decode traces."""
    from trimpomdp.cli.main import main

    base = Path(base)
    if (base / "READY").exists():
        return base
    (base / "classic").mkdir(parents=True, exist_ok=True)
    (base / "spec").mkdir(exist_ok=True)
    (base / "traces").mkdir(exist_ok=True)
    for f in SMALL_CLASSICS + LARGE_CLASSICS:
        shutil.copy(shared / "pomdp" / f, base / "classic" / f)
    for f in SPEC_FILES:
        shutil.copy(ROOT / "data" / f, base / "spec" / f)
    shutil.copy(shared / "data" / "step_stats_math_train.npz", base / "step_stats.npz")
    tiger = str(base / "classic" / "tiger.95.POMDP")
    quiet = io.StringIO()
    steps = [["solve", tiger, "--progress", "none", "-o", str(base / "tiger.policy.npz")],
             ["solve", tiger, "--progress", "none", "-o", str(base / "tiger.policy")],
             ["solve", str(base / "spec" / "trim_math_plain.json"), "--budget", "lambda=0.15",
              "-o", str(base / "route.npz")],
             ["fit-obs", str(shared / "data" / "prm_obs_processbench_math.npz"), "--bandwidth", "scott",
              "--no-diagnostics", "-o", str(base / "obs.npz")]]
    for argv in steps:
        from contextlib import redirect_stdout

        with redirect_stdout(quiet):
            rc = main(argv)
        if rc != 0:
            raise RuntimeError(f"building the fuzz inputs failed: trimpomdp {' '.join(argv)} exited {rc}")
    _write_sequences(base / "sequences.jsonl")
    _write_trace(base / "traces" / "weak.jsonl", "weak", 0)
    _write_trace(base / "traces" / "strong.jsonl", "strong", 1)
    _write_trace(base / "traces" / "routed.jsonl", "threshold:0.5", 2)
    (base / "READY").write_text("ok\n")
    return base


# ================================================================================ running one case
class CaseTimeout(BaseException):
    """Raised by the alarm: a command ran past COMMAND_SECONDS (BaseException so no handler swallows it)."""


def _on_alarm(signum, frame):
    raise CaseTimeout()


def make_input(kind: Kind, seed, case_dir: Path, base: Path) -> Path:
    src = base / kind.source
    for f in kind.companions:
        shutil.copy(base / Path(kind.source).parent / f, case_dir / f)
    dst = case_dir / Path(kind.source).name
    if seed is None:
        shutil.copy(src, dst)
    else:
        rng = random.Random(f"{kind.name}:{seed}")
        kind.mutate(src, dst, rng, base)
    return dst


def run_argv(argv: list, limit: float = COMMAND_SECONDS) -> dict:
    """Run ``trimpomdp ARGV`` in this process: exit status, stdout, stderr (file descriptors 1 and 2, so
    output from compiled code counts), Python warnings, the traceback of an escaping exception."""
    from trimpomdp.cli.main import main

    res = {"argv": argv, "rc": None, "stdout": "", "stderr": "", "warnings": [], "traceback": None,
           "timeout": False, "seconds": 0.0}
    sys.stdout.flush()
    sys.stderr.flush()
    out_f, err_f = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    saved = os.dup(1), os.dup(2)
    os.dup2(out_f.fileno(), 1)
    os.dup2(err_f.fileno(), 2)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            old = signal.signal(signal.SIGALRM, _on_alarm)
            signal.setitimer(signal.ITIMER_REAL, limit)
            try:
                res["rc"] = main([str(a) for a in argv])
            except CaseTimeout:
                res["timeout"] = True
            except BaseException:  # noqa: B036 -- anything escaping main() is a traceback for the user
                res["traceback"] = traceback.format_exc()
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
            res["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught]
    except CaseTimeout:  # the alarm fired just as the command returned
        res["timeout"] = True
    finally:
        res["seconds"] = round(time.perf_counter() - t0, 3)
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
    for key, f in (("stdout", out_f), ("stderr", err_f)):
        f.seek(0)
        data = f.read()
        f.close()
        if key == "stdout" and len(data) > 20_000:  # the head holds info's verdict, the tail a summary
            data = data[:5_000] + b"\n[...]\n" + data[-15_000:]
        res[key] = data.decode("utf-8", errors="replace")
    return res


def run_case(kind_name: str, seed, base: Path, shared: Path = SHARED, work: Path | None = None,
             keep: bool = False, input_path: str | None = None, limit: float = COMMAND_SECONDS) -> dict:
    """Mutate (or take ``input_path`` as the input), run the kind's commands, return the runs."""
    kind = KINDS[kind_name]
    case_dir = Path(tempfile.mkdtemp(prefix="case-", dir=work))
    result = {"kind": kind_name, "seed": seed, "dir": str(case_dir), "runs": []}
    try:
        if input_path is not None:
            for f in kind.companions:
                shutil.copy(base / Path(kind.source).parent / f, case_dir / f)
            inp = case_dir / Path(input_path).name
            shutil.copy(input_path, inp)
        else:
            inp = make_input(kind, seed, case_dir, base)
        result["input"] = str(inp)
        ok_so_far = True
        for argv in kind.commands(case_dir, str(inp), base, shared):
            if argv[0] == "?":
                if not ok_so_far:
                    continue
                argv = argv[1:]
            r = run_argv(argv, limit)
            ok_so_far = ok_so_far and r["rc"] == 0
            result["runs"].append(r)
            if r["timeout"] or r["traceback"]:
                break
    finally:
        if not keep:
            shutil.rmtree(case_dir, ignore_errors=True)
    return result


# ================================================================================= what counts as a bug
MAX_ERROR_LINE = 1000  # characters: a longer "one line" quotes the input instead of naming what is wrong
NUMERIC_TROUBLE = re.compile(r"overflow|invalid value|divide by zero")


def _error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.strip() and not ln.lower().startswith("warning:")]


def check(result: dict) -> list[str]:
    """Problems of one case's result (empty: fine)."""
    if result.get("status") in ("crash", "hang"):
        how = "crashed" if result["status"] == "crash" else "hung"
        return [f"the fuzz child {how} on this case: {result.get('detail', '')}"]
    problems = []
    kind = KINDS[result["kind"]]
    for r in result["runs"]:
        cmd = "trimpomdp " + " ".join(map(str, r["argv"]))
        if r["timeout"]:
            problems.append(f"{cmd}: no answer within {COMMAND_SECONDS:g} s")
            continue
        if r["traceback"]:
            problems.append(f"{cmd}: raised instead of an Error line:\n{r['traceback'][-3000:]}")
            continue
        rc, lines = r["rc"], _error_lines(r["stderr"])
        if rc not in (0, 1, 2):
            problems.append(f"{cmd}: exit status {rc!r}, expected 0, 1 or 2")
        if "Traceback (most recent call last)" in r["stderr"] + r["stdout"]:
            problems.append(f"{cmd}: a traceback in the output:\n{r['stderr'][-3000:]}")
        if rc == 1 and r["argv"][0] == "info":
            if lines or not re.search(r"\b(INVALID|UNBOUNDED)\b", r["stdout"]):
                problems.append(f"{cmd}: exit 1 must come with an INVALID/UNBOUNDED report and a quiet "
                                "stderr, "
                                f"got stdout {r['stdout'][-500:]!r} stderr {r['stderr'][-500:]!r}")
        elif rc != 0:
            if len(lines) != 1 or not lines[0].startswith("Error: "):
                problems.append(f"{cmd}: exit {rc} must print exactly one 'Error: ...' line on stderr, got "
                                f"{len(lines)} lines: {r['stderr'][-1500:]!r}")
            elif len(lines[0]) > MAX_ERROR_LINE:
                problems.append(f"{cmd}: a {len(lines[0])}-character error line: {lines[0][:300]!r}...")
        elif any(ln.startswith("Error") for ln in lines):
            problems.append(f"{cmd}: exit 0 with an error on stderr: {r['stderr'][-500:]!r}")
        numeric = [w for w in r["warnings"] if w.startswith("RuntimeWarning") and NUMERIC_TROUBLE.search(w)]
        if rc == 0 and numeric:  # the result was computed through inf or NaN: likely a silent wrong answer
            problems.append(f"{cmd}: exit 0 after numeric trouble ({numeric[0]}); "
                            f"stdout: {r['stdout'][-600:]!r}")
    runs = {r["argv"][0]: r for r in result["runs"]}
    if kind.name.startswith("classic:") and "info" in runs and "solve" in runs:
        # a model info calls invalid (or cannot read) is never solved; a valid one may still be refused with
        # an Error line (e.g. the solver's guard on crossed bounds), which the checks above cover
        i, s = runs["info"]["rc"], runs["solve"]["rc"]
        if i != 0 and s == 0:
            problems.append(f"info exited {i} but solve exited 0 on the same file: solve must refuse a "
                            "model that info does not call valid "
                            f"(info: {runs['info']['stdout'].strip()[-300:]!r})")
    return problems


def expected_pristine(kind_name: str, result: dict) -> list[str]:
    """The pristine input must give the kind's expected exit statuses."""
    kind = KINDS[kind_name]
    got = [r["rc"] for r in result["runs"]]
    want = list(kind.expect) if len(kind.expect) == len(got) else [kind.expect[0]] * len(got)
    if got != want:
        return [f"pristine {kind_name}: exit statuses {got}, expected {want}: "
                + "; ".join(r["stderr"].strip()[:300] for r in result["runs"])]
    return []


def repro_command(kind_name: str, seed) -> str:
    return f"python tests/fuzz_driver.py {kind_name} {seed} --keep /tmp/fuzz-case"


def describe(result: dict, problems: list[str]) -> str:
    head = f"fuzz case {result['kind']} seed {result['seed']}: {len(problems)} problem(s)"
    cmds = "\n".join("  trimpomdp " + " ".join(map(str, r["argv"])) + f"   -> exit {r['rc']}"
                     for r in result.get("runs", []))
    return (f"{head}\n" + "\n".join(" - " + p for p in problems)
            + (f"\ncommands:\n{cmds}" if cmds else "")
            + f"\nreproduce (keeps the mutated input): {repro_command(result['kind'], result['seed'])}")


# ============================================================================== the long-lived child
def _limit_memory() -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = MEMORY_BYTES if hard == resource.RLIM_INFINITY else min(MEMORY_BYTES, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (ImportError, ValueError, OSError):
        pass


def serve(base: Path, shared: Path, work: Path, warm_up: bool = True) -> None:
    """Read one JSON case a line on stdin, write one JSON result a line (results go to the original
    stdout; the commands' own output is captured per case)."""
    import faulthandler

    faulthandler.enable(file=sys.__stderr__, all_threads=False)
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray output outside a case (while building the base) must not reach the result pipe
    build_base(base, shared)
    for kind in KINDS if warm_up else ():  # compile every numba kernel before any case runs against the clock
        run_case(kind, None, base, shared, work, limit=600)
    out.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        if case["kind"] == "__selftest_crash__":  # the parent's crash and hang detection, tested
            faulthandler._sigsegv()
        if case["kind"] == "__selftest_hang__":
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(3600)
        try:
            res = run_case(case["kind"], case.get("seed"), base, shared, work, input_path=case.get("input"))
        except Exception:  # a bug of the driver itself, not of trimpomdp
            res = {"kind": case["kind"], "seed": case.get("seed"), "status": "driver-error",
                   "detail": traceback.format_exc(), "runs": []}
        out.write(json.dumps(res) + "\n")


class Driver:
    """The parent's handle on a serving child: ``run(kind, seed)`` returns the result dict; a child that
    dies (segfault, abort) or stops answering is reported as status 'crash' / 'hang' and restarted."""

    def __init__(self, base: Path, shared: Path = SHARED, work: Path | None = None):
        self.base, self.shared = Path(base), Path(shared)
        self.work = Path(work) if work else self.base.parent / "fuzz-work"
        self.work.mkdir(parents=True, exist_ok=True)
        self.proc = None
        self.started = False  # a child has warmed the numba cache up already: restarts skip that
        self._buf = b""
        self.stderr_path = self.work / "child-stderr.txt"

    def _start(self) -> None:
        self._err = open(self.stderr_path, "wb")
        env = dict(os.environ, PYTHONFAULTHANDLER="1", MPLBACKEND="Agg")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "serve", "--base", str(self.base), "--shared", str(self.shared),
             "--work", str(self.work)] + (["--no-warm-up"] if self.started else []),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, env=env, cwd=str(self.work))
        self._buf = b""
        first = self._read_line(300.0)
        if first is None or not json.loads(first).get("ready"):
            detail = self._stop()
            raise RuntimeError(f"the fuzz driver did not start: {detail}")
        self.started = True

    def _read_line(self, timeout: float):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, 1 << 16)
            if not chunk:  # the child closed its end: it is dying; let it be reaped so poll() tells
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
                return None
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def _stop(self) -> str:
        """Kill the child (if alive); return how it ended and the tail of its stderr."""
        if self.proc is None:
            return ""
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        self._err.close()
        self.proc = None
        tail = self.stderr_path.read_text(errors="replace")[-3000:]
        how = f"signal {-rc} ({signal.Signals(-rc).name})" if rc < 0 else f"exit status {rc}"
        return f"child ended with {how}; its stderr:\n{tail}"

    def base_file(self, kind: str) -> Path:
        """The pristine input of ``kind`` (the child builds the base folder when it starts)."""
        if self.proc is None:
            self._start()
        return self.base / KINDS[kind].source

    def run(self, kind: str, seed=None, input_path: str | None = None, timeout: float = CASE_SECONDS) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            if self.proc is not None:
                self._stop()
            self._start()
        case = {"kind": kind, "seed": seed, "input": input_path}
        self.proc.stdin.write((json.dumps(case) + "\n").encode())
        self.proc.stdin.flush()
        t0 = time.monotonic()
        line = self._read_line(timeout)
        if line is None:
            alive = self.proc.poll() is None
            detail = self._stop()
            return {"kind": kind, "seed": seed, "status": "hang" if alive else "crash", "runs": [],
                    "detail": (f"no result after {time.monotonic() - t0:.0f} s; " if alive else "") + detail}
        res = json.loads(line)
        if res.get("status") == "driver-error":
            raise RuntimeError(f"fuzz driver error on {kind} seed {seed}:\n{res['detail']}")
        return res

    def close(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self._stop()


# ================================================================================================ main
def _cli(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", nargs="?")
    p.add_argument("seed", nargs="?", help="an integer, or 'none' for the pristine input")
    p.add_argument("--keep", default=None, help="folder to keep the base inputs and the case in")
    p.add_argument("--list", action="store_true")
    p.add_argument("--base")
    p.add_argument("--shared", default=str(SHARED))
    p.add_argument("--work")
    p.add_argument("--no-warm-up", action="store_true", help="serve: the numba cache is known to be filled")
    a = p.parse_args(argv)
    if a.list:
        print("\n".join(KINDS))
        return 0
    if a.kind == "serve":
        _limit_memory()
        serve(Path(a.base), Path(a.shared), Path(a.work), warm_up=not a.no_warm_up)
        return 0
    if a.kind not in KINDS or a.seed is None:
        p.error(f"give a kind ({', '.join(KINDS)}) and a seed")
    seed = None if a.seed.lower() == "none" else int(a.seed)
    top = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="fuzz-"))
    top.mkdir(parents=True, exist_ok=True)
    base = build_base(Path(a.base) if a.base else top / "base", Path(a.shared))
    res = run_case(a.kind, seed, base, Path(a.shared), work=top, keep=bool(a.keep))
    for r in res["runs"]:
        print(f"$ trimpomdp {' '.join(map(str, r['argv']))}\n  exit {r['rc']} in {r['seconds']} s"
              + (" (TIMEOUT)" if r["timeout"] else ""))
        for key in ("stdout", "stderr"):
            if r[key].strip():
                print(f"  {key}:\n    " + "\n    ".join(r[key].rstrip()[-2000:].splitlines()))
        for w in r["warnings"]:
            print(f"  warning: {w}")
        if r["traceback"]:
            print("  traceback:\n" + r["traceback"])
    problems = check(res) + (expected_pristine(a.kind, res) if seed is None else [])
    if a.keep:
        print(f"input kept: {res['input']}")
    print("OK" if not problems else describe(res, problems))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(_cli())
