"""Tony Cassandra's ``.pomdp`` text format: a fast reader and an exact writer.

The reader tokenises the whole file with one ``str.split`` (token lines are recovered only for error
messages), classifies the sections after the header with numpy so that the one-line point entries that
make up big files (``T: a : s : s' p``) are decoded in bulk. Every ``T:``/``O:``/``R:`` entry becomes an
*operation* stamped with its position in the file, and only at the end is one CSR matrix built per
action: the last operation that covers a whole matrix (a matrix, ``identity``, ``uniform`` or an all-``*``
entry) becomes the background and later operations are layered on top, the latest winning. That keeps the
"later entries overwrite earlier ones" rule of the spec exact without ever materialising dense S x S
arrays for large sparse models (TagAvoid's ``T: * : * : * 0.0`` costs nothing).

Rewards given per (s, a, s', o) are folded into ``R[s, a]`` by expectation over T and O; rules that do
not depend on s'/o (the common case) go straight into an (S, A) table.

Declared sizes are checked against a memory estimate before anything of that size is allocated (see
``trimpomdp.resource_limits``): ``states: 100000000`` is refused at its header line, and the entries that
cover many cells (``uniform``, wildcard rows) are counted before the matrices are built.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from itertools import repeat
from operator import itemgetter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from trimpomdp.errors import FormatError, ModelError
from trimpomdp.pomdp.model import POMDP, ROW_SUM_TOL
from trimpomdp.resource_limits import MemoryBudget, check_actions

_HEADERS = ("discount", "values", "states", "actions", "observations", "start")
_SECTIONS = frozenset(_HEADERS + ("T", "O", "R"))
_ALL = -1  # the '*' wildcard
#: token -> small code for the vectorised section scan (1 is ':', >1 a section keyword)
_CODE = {":": 1, **{k: j for j, k in enumerate(sorted(_SECTIONS), 2)}}
_COMMENT = re.compile(r"#[^\n]*")

# Memory estimates, bytes (measured on CPython 3.11 / numpy 2): a name with its list slot and the two
# lookup dicts; one nonzero of a finished CSR matrix (kept raw and renormalised); one entry while a
# matrix is assembled (rows, columns, values, stamps, their concatenation and the sort keys).
NAME_BYTES = 220
NNZ_BYTES = 40
BUILD_BYTES = 100


def _clean(text: str) -> str:
    if "#" in text:
        text = _COMMENT.sub("", text)
    return text.replace(":", " : ")


def _tokenize(text: str) -> list[str]:
    """Whitespace tokens with ':' split off and '#' comments removed (one C-level split: fast)."""
    return _clean(text).split()


def _token_lines(text: str) -> np.ndarray:
    """The 1-based line of every token; computed only when an error message needs it."""
    counts = [len(_clean(line).split()) for line in text.split("\n")]
    return np.repeat(np.arange(1, len(counts) + 1), counts)


@dataclass
class _Block:
    """A T/O operation other than a fully specified point: a row, a matrix or a wildcard point."""

    seq: int
    a: int
    r: int | None  # None: the whole matrix; _ALL: every row
    kind: str  # 'point' | 'row' | 'matrix' | 'uniform' | 'identity' | 'reset'
    value: object
    pos: int  # token index, turned into a line number only for error messages
    c: int = _ALL

    @property
    def full(self) -> bool:
        return self.r is None or (self.r == _ALL and self.kind in ("row", "uniform", "reset")) or (
            self.kind == "point" and self.r == _ALL and self.c == _ALL)


class _Ops:
    """Operations on one stochastic matrix family (T or O), in file order."""

    def __init__(self):
        self.seq, self.a, self.r, self.c, self.v, self.pos = [], [], [], [], [], []
        self.blocks: list[_Block] = []
        self.bulk: list[tuple] = []  # (seq, a, r, c, v, pos) arrays from the bulk path
        self._arr = None

    def arrays(self):
        """All fully specified point entries as arrays (seq, a, r, c, v, pos)."""
        if self._arr is None:
            parts = [tuple(np.asarray(x, dtype=np.float64 if j == 4 else np.int64)
                           for j, x in enumerate((self.seq, self.a, self.r, self.c, self.v, self.pos)))]
            parts += self.bulk
            self._arr = tuple(np.concatenate([p[j] for p in parts]) for j in range(6))
        return self._arr


class _Parser:
    def __init__(self, text: str, path: str, bulk: bool = True, max_memory_mb: float | None = None):
        self.path = path
        self.bulk = bulk
        self.text = text
        self.budget = MemoryBudget(path, max_memory_mb)
        self.toks = _tokenize(text)
        self._lines: np.ndarray | None = None
        self.n = len(self.toks)
        self.i = 0
        self.seq = 0
        self.discount: float | None = None
        self.cost = False
        self.states: list[str] | None = None
        self.actions: list[str] | None = None
        self.observations: list[str] | None = None
        self.index: dict[str, dict[str, int]] = {}
        self.start: np.ndarray | None = None
        self.T, self.O = _Ops(), _Ops()
        self.rules: list[tuple] = []  # (seq, a, s, s', o, value, token position)
        self.flat_rewards: list[tuple] = []  # (seq, a, s, value) arrays from the bulk path
        self._declared: dict[str, int] | None = None

    # ------------------------------------------------------------------ token helpers
    def line_at(self, i: int | None = None) -> int:
        i = self.i if i is None else i
        if self._lines is None:
            self._lines = _token_lines(self.text)
        if not self._lines.size:
            return 1
        return int(self._lines[max(0, min(i, self.n - 1))])

    def fail(self, msg: str, i: int | None = None):
        raise FormatError(msg, self.path, self.line_at(i))

    def peek(self, k: int = 0) -> str | None:
        j = self.i + k
        return self.toks[j] if j < self.n else None

    def take(self, what: str) -> str:
        if self.i >= self.n:
            self.fail(f"file ends early: expected {what}")
        t = self.toks[self.i]
        self.i += 1
        return t

    def colon(self, after: str):
        if self.peek() != ":":
            got = self.peek()
            self.fail(f"expected ':' after {after}, got {got!r}" if got is not None else
                      f"file ends early: expected ':' after {after}")
        self.i += 1

    def at_section(self, j: int | None = None) -> bool:
        j = self.i if j is None else j
        if j >= self.n:
            return True
        t = self.toks[j]
        if t in _SECTIONS and j + 1 < self.n and self.toks[j + 1] == ":":
            return True
        return t == "start" and j + 1 < self.n and self.toks[j + 1] in ("include", "exclude")

    def number(self, what: str) -> float:
        t = self.take(what)
        try:
            x = float(t)
        except ValueError:
            self.fail(f"expected a number for {what}, got {t!r}", self.i - 1)
        if not math.isfinite(x):
            self.fail(f"{what} must be finite, got {t!r}", self.i - 1)
        return x

    def prob(self, what: str) -> float:
        x = self.number(what)
        if not 0.0 <= x <= 1.0 + 1e-9:
            self.fail(f"{what} = {x:g} is not a probability in [0, 1]", self.i - 1)
        return x

    def numbers(self, n: int, what: str, probs: bool) -> np.ndarray:
        lo = self.i
        chunk = self.toks[lo:lo + n]
        if len(chunk) < n:
            self.fail(f"file ends early: {what} needs {n} values, found {len(chunk)}", self.n - 1)
        try:
            arr = np.array(chunk, dtype=np.float64)
        except ValueError:
            for k, t in enumerate(chunk):
                try:
                    float(t)
                except ValueError:
                    self.fail(f"{what} needs {n} values, got {t!r} after {k}", lo + k)
            raise  # pragma: no cover
        bad = ~np.isfinite(arr)
        if probs:
            bad |= (arr < 0) | (arr > 1 + 1e-9)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            kind = "a probability in [0, 1]" if probs else "finite"
            self.fail(f"{what}: value {chunk[k]!r} is not {kind}", lo + k)
        self.i = lo + n
        if self.i < self.n and not self.at_section() and _is_number(self.toks[self.i]):
            self.fail(f"too many values: {what} needs {n}", self.i)
        return arr

    def name_list(self) -> list[str]:
        out = []
        while not self.at_section():
            out.append(self.take("a name"))
        return out

    def resolve(self, kind: str, t: str, i: int) -> int:
        if t == "*":
            return _ALL
        idx = self.index[kind].get(t)
        if idx is not None:
            return idx
        if t.isdecimal():
            k = int(t)
            size = len(self.index[kind])
            if k < size:
                return k
            self.fail(f"{kind} index {k} out of range 0..{size - 1}", i)
        self.fail(f"unknown {kind} {t!r}", i)

    def ref(self, kind: str) -> int:
        i = self.i
        return self.resolve(kind, self.take(f"a {kind}"), i)

    def need_header(self, what: str):
        for kind, names in (("states", self.states), ("actions", self.actions),
                            ("observations", self.observations)):
            if names is None:
                self.fail(f"'{kind}:' must be declared before {what}")

    # ------------------------------------------------------------------ sections
    def lookup(self, kind: str) -> dict[str, int]:
        """name or index string -> index, with '*' -> _ALL (names win over indices, as in resolve)."""
        names = self.index[kind]
        d = {str(j): j for j in range(len(names))}
        d.update(names)
        d["*"] = _ALL
        return d

    def parse(self):
        """Headers one by one; then every later section, the one-line point entries in bulk."""
        while self.i < self.n and (self.states is None or self.actions is None or self.observations is None):
            self.section()
        names = set(self.states or ()) | set(self.actions or ()) | set(self.observations or ())
        if not self.bulk or self.i >= self.n or names & (_SECTIONS | {"include", "exclude", ":"}):
            while self.i < self.n:  # names that look like keywords: no bulk path
                self.section()
            return
        toks, lo = self.toks, self.i
        rest = toks[lo:]
        code = np.fromiter(map(_CODE.get, rest, repeat(0)), dtype=np.int8, count=len(rest))
        colon = np.concatenate([code == 1, np.zeros(11, dtype=bool)])  # padded for the shape tests below
        cand = np.flatnonzero(code > 1)
        nxt = colon[cand + 1]
        starts = cand[nxt]
        extra = [j for j in cand[~nxt] if rest[j] == "start" and j + 1 < len(rest)
                 and rest[j + 1] in ("include", "exclude")]
        if extra:
            starts = np.union1d(starts, np.asarray(extra, dtype=np.int64))
        if starts.size == 0 or starts[0] != 0:
            self.fail(f"expected a section such as 'T:' or 'states:', got {toks[lo]!r}")
        length = np.diff(np.append(starts, len(rest)))
        first = code[starts]
        base = self.seq + 1
        done = np.zeros(starts.size, dtype=bool)
        shape_to = (length == 8) & colon[starts + 3] & colon[starts + 5] & ~colon[starts + 2] \
            & ~colon[starts + 4] & ~colon[starts + 6] & ~colon[starts + 7]
        la, ls, lob = self.lookup("action"), self.lookup("state"), self.lookup("observation")
        for key, ops, cols in ((_CODE["T"], self.T, ls), (_CODE["O"], self.O, lob)):
            k = np.flatnonzero(shape_to & (first == key))
            if not k.size:
                continue
            pos = starts[k]
            a = _codes(la, rest, pos + 2)
            r = _codes(ls, rest, pos + 4)
            c = _codes(cols, rest, pos + 6)
            v = _floats(rest, pos + 7)
            ok = (a != -2) & (r >= 0) & (c >= 0) & (v >= 0) & (v <= 1 + 1e-9)
            k = k[ok]
            ops.bulk.append((base + k, a[ok], r[ok], c[ok], v[ok], lo + starts[k]))
            done[k] = True
        shape_r = (length == 10) & (first == _CODE["R"]) & colon[starts + 3] & colon[starts + 5] \
            & colon[starts + 7] & ~colon[starts + 2] & ~colon[starts + 4] & ~colon[starts + 6] \
            & ~colon[starts + 8] & ~colon[starts + 9]
        k = np.flatnonzero(shape_r)
        if k.size:
            pos = starts[k]
            a, s1 = _codes(la, rest, pos + 2), _codes(ls, rest, pos + 4)
            s2, o = _codes(ls, rest, pos + 6), _codes(lob, rest, pos + 8)
            v = _floats(rest, pos + 9)
            ok = (a != -2) & (s1 != -2) & (s2 != -2) & (o != -2) & np.isfinite(v)
            flat = ok & (a >= 0) & (s1 >= 0) & (s2 == _ALL) & (o == _ALL)
            self.flat_rewards.append((base + k[flat], a[flat], s1[flat], v[flat]))
            for j in np.flatnonzero(ok & ~flat):
                self.rules.append((base + int(k[j]), int(a[j]), int(s1[j]), int(s2[j]), int(o[j]), float(v[j]),
                                   lo + int(starts[k[j]])))
            done[k[ok]] = True
        ends = np.append(starts[1:], len(rest)) + lo
        for k in np.flatnonzero(~done):
            self.i = lo + int(starts[k])
            self.seq = base + int(k) - 1
            self.section()
            if self.i != ends[k]:
                self.fail(f"expected a section such as 'T:' or 'states:', got {toks[self.i]!r}")
        self.seq = base + starts.size

    def section(self):
        """Parse one section starting at the current token."""
        t = self.toks[self.i]
        line0 = self.i
        self.seq += 1
        if t == "start" and self.peek(1) in ("include", "exclude"):
            self.i += 2
            self.colon("start " + self.toks[self.i - 1])
            self.parse_start_list(self.toks[line0 + 1] == "include", line0)
            return
        if not self.at_section():
            self.fail(f"expected a section such as 'T:' or 'states:', got {t!r}")
        self.i += 2
        if t == "discount":
            self.discount = self.number("discount")
        elif t == "values":
            v = self.take("'reward' or 'cost'")
            if v in ("reward", "rewards"):
                self.cost = False
            elif v in ("cost", "costs"):
                self.cost = True
            else:
                self.fail(f"values must be 'reward' or 'cost', got {v!r}", self.i - 1)
        elif t in ("states", "actions", "observations"):
            if getattr(self, t) is not None:
                self.fail(f"'{t}:' is declared twice", line0)
            self.parse_names(t, line0)
        elif t == "start":
            self.parse_start(line0)
        elif t == "T":
            self.need_header("T:")
            self.parse_prob_entry(self.T, "T", "state")
        elif t == "O":
            self.need_header("O:")
            self.parse_prob_entry(self.O, "O", "observation")
        else:
            self.need_header("R:")
            self.parse_reward()

    # ------------------------------------------------------------------ memory
    def declared_counts(self) -> dict[str, int]:
        """Counts declared as numbers in the preamble ('states: 5'), read ahead for the memory estimate."""
        if self._declared is None:
            out, toks, n = {}, self.toks, self.n
            for j in range(n - 2):
                t = toks[j]
                if toks[j + 1] != ":":
                    continue
                if t in ("T", "O", "R"):
                    break
                if t in ("states", "actions", "observations") and t not in out and toks[j + 2].isdecimal() \
                        and self.at_section(j + 3):
                    out[t] = int(toks[j + 2])
            self._declared = out
        return self._declared

    def sizes(self, **known) -> tuple[int, int, int]:
        """(S, A, Z) from the declarations so far, ``known`` and the read-ahead counts (1 if unknown)."""
        ahead = self.declared_counts()
        out = []
        for kind in ("states", "actions", "observations"):
            names = getattr(self, kind)
            out.append(known.get(kind) or (len(names) if names is not None else ahead.get(kind, 1)))
        return tuple(out)

    def base_bytes(self, S: int, A: int, Z: int) -> int:
        """What any model of these sizes needs: names, start, rewards and one entry per row of T and O."""
        return NAME_BYTES * (S + A + Z) + 8 * S + 32 * S * A + 2 * NNZ_BYTES * S * A

    def check_memory(self, ops_t=None, ops_o=None, line: int | None = None):
        S, A, Z = self.sizes()
        base = self.base_bytes(S, A, Z)
        if ops_t is None:
            self.budget.check(base, f"a model of {S:,} states, {A:,} actions and {Z:,} observations", line)
            return
        b0 = self.start if self.start is not None else np.full(S, 1.0 / S)
        cover_t = [_cover(ops_t, a, S, S, b0) for a in range(A)]
        cover_o = [_cover(ops_o, a, S, Z, b0) for a in range(A)]
        total = base + NNZ_BYTES * (sum(cover_t) + sum(cover_o)) + BUILD_BYTES * max(cover_t + cover_o)
        self.budget.check(total, f"the T and O entries ({sum(cover_t):,} and {sum(cover_o):,} cells of "
                          f"{S:,} states)")

    def parse_names(self, kind: str, line0: int):
        names = self.name_list()
        if not names:
            self.fail(f"'{kind}:' needs a count or a list of names", line0)
        if len(names) == 1 and names[0].isdecimal():
            k = int(names[0])
            if k <= 0:
                self.fail(f"'{kind}:' count must be positive", line0)
            S, A, Z = self.sizes(**{kind: k})
            self.budget.check(self.base_bytes(S, A, Z),
                              f"'{kind}: {k}' (a model of {S:,} states, {A:,} actions and {Z:,} observations)",
                              lambda: self.line_at(line0))
            names = [str(j) for j in range(k)]
        if kind == "actions":
            check_actions(len(names), self.path, self.line_at(line0))
        if len(set(names)) != len(names):
            seen = set()
            dup = next(x for x in names if x in seen or seen.add(x))
            self.fail(f"duplicate name {dup!r} in '{kind}:'", line0)
        setattr(self, kind, names)
        self.index[{"states": "state", "actions": "action", "observations": "observation"}[kind]] = {
            x: j for j, x in enumerate(names)}
        self.check_memory(line=lambda: self.line_at(line0))

    def parse_start(self, line0: int):
        if self.states is None:
            self.fail("'states:' must be declared before 'start:'", line0)
        S = len(self.states)
        t = self.peek()
        if t is None:
            self.fail("file ends early: 'start:' needs a distribution")
        if t == "uniform":
            self.i += 1
            self.start = np.full(S, 1.0 / S)
            return
        is_state = t in self.index["state"] and not (_is_number(t) and S > 1 and _is_number(self.peek(1) or ""))
        if not is_state and t.isdecimal() and S > 1 and self.at_section(self.i + 1):
            is_state = True
        if is_state:
            s = self.ref("state")
            if s == _ALL:
                self.fail("'start:' needs a state, not '*'", self.i - 1)
            self.start = np.zeros(S)
            self.start[s] = 1.0
            return
        b = self.numbers(S, "'start:'", probs=True)
        if abs(b.sum() - 1.0) > ROW_SUM_TOL:
            self.fail(f"'start:' probabilities sum to {b.sum():.6g}, expected 1", line0)
        self.start = b

    def parse_start_list(self, include: bool, line0: int):
        if self.states is None:
            self.fail("'states:' must be declared before 'start include/exclude:'", line0)
        S = len(self.states)
        mask = np.zeros(S, dtype=bool)
        j0 = self.i
        for k, t in enumerate(self.name_list()):
            s = self.resolve("state", t, j0 + k)
            if s == _ALL:
                mask[:] = True
            else:
                mask[s] = True
        if not include:
            mask = ~mask
        if not mask.any():
            self.fail("'start' leaves no possible state", line0)
        self.start = mask / mask.sum()

    def parse_prob_entry(self, ops: _Ops, key: str, col_kind: str):
        S = len(self.states)
        C = S if key == "T" else len(self.observations)
        line = self.i
        a = self.ref("action")
        seq = self.seq
        if self.peek() != ":":  # whole matrix
            t = self.peek()
            if t in ("uniform", "identity"):
                self.i += 1
                if t == "identity" and C != S:
                    self.fail(f"'identity' needs a square matrix, {key} is {S} x {C}", self.i - 1)
                ops.blocks.append(_Block(seq, a, None, t, None, line))
            else:
                m = self.numbers(S * C, f"{key}: matrix ({S} x {C})", probs=True).reshape(S, C)
                ops.blocks.append(_Block(seq, a, None, "matrix", m, line))
            return
        self.i += 1
        r = self.ref("state")
        if self.peek() != ":":  # one row
            t = self.peek()
            if t == "uniform" or (t == "reset" and key == "T"):
                self.i += 1
                ops.blocks.append(_Block(seq, a, r, t, None, line))
            else:
                row = self.numbers(C, f"{key}: row ({C} values)", probs=True)
                ops.blocks.append(_Block(seq, a, r, "row", row, line))
            return
        self.i += 1
        c = self.ref(col_kind)
        p = self.prob(f"{key} probability")
        if r == _ALL or c == _ALL:
            ops.blocks.append(_Block(seq, a, r, "point", p, line, c))
        else:
            ops.seq.append(seq)
            ops.a.append(a)
            ops.r.append(r)
            ops.c.append(c)
            ops.v.append(p)
            ops.pos.append(line)

    def parse_reward(self):
        S, Z = len(self.states), len(self.observations)
        line = self.i
        a = self.ref("action")
        self.colon("the action of 'R:'")
        s = self.ref("state")
        if self.peek() != ":":
            m = self.numbers(S * Z, f"R: matrix ({S} x {Z})", probs=False).reshape(S, Z)
            self.rules.append((self.seq, a, s, _ALL, _ALL, m, line))
            return
        self.i += 1
        s2 = self.ref("state")
        if self.peek() != ":":
            row = self.numbers(Z, f"R: row ({Z} values)", probs=False)
            self.rules.append((self.seq, a, s, s2, _ALL, row, line))
            return
        self.i += 1
        o = self.ref("observation")
        v = self.number("reward")
        self.rules.append((self.seq, a, s, s2, o, v, line))

    # ------------------------------------------------------------------ building
    def build(self, name: str, validate: bool = True) -> POMDP:
        self.need_header("the end of the file")
        S, A, Z = len(self.states), len(self.actions), len(self.observations)
        self.check_memory(self.T, self.O)
        if self.discount is None:  # pomdp-solve's default (ejs4.POMDP relies on it)
            self.discount = 1.0
        b0 = self.start if self.start is not None else np.full(S, 1.0 / S)
        T = [self.build_matrix(self.T, a, S, S, b0) for a in range(A)]
        O = [self.build_matrix(self.O, a, S, Z, b0) for a in range(A)]
        if validate:
            self.check_rows(self.T, T, "T")
            self.check_rows(self.O, O, "O")
            model = POMDP.from_arrays(T, O, np.zeros((S, A)), self.discount, b0, self.states, self.actions,
                                      self.observations, name=name, validate=False)
            problems = model.validation_problems()
            if problems:
                extra = f" ({len(problems) - 1} more problems)" if len(problems) > 1 else ""
                raise FormatError(problems[0] + extra, self.path)
            T = [normalize_rows(m) for m in T]
            O = [normalize_rows(m) for m in O]
            b0 = normalize_vector(b0)
        R = fold_rewards(self.rules, T, O, S, A, Z, self.flat_rewards, self.budget)
        if self.cost:
            R = -R
        return POMDP.from_arrays(T, O, R, self.discount, b0, self.states, self.actions, self.observations,
                                 name=name, validate=validate)

    def build_matrix(self, ops: _Ops, a: int, S: int, C: int, b0: np.ndarray) -> sp.csr_matrix:
        blocks = [b for b in ops.blocks if b.a == _ALL or b.a == a]
        bg = None
        for b in blocks:
            if b.full:
                bg = b
        rs, cs, vs, qs = [], [], [], []

        def add(r, c, v, q):
            r = np.asarray(r, dtype=np.int64)
            rs.append(r)
            cs.append(np.asarray(c, dtype=np.int64))
            vs.append(np.broadcast_to(np.asarray(v, dtype=np.float64), r.shape))
            qs.append(np.full(r.shape, q, dtype=np.int64))

        bg_seq = -1
        if bg is not None:
            bg_seq = bg.seq
            entries = _block_entries(bg, S, C, b0)
            if entries is not None:
                add(*entries, bg_seq)
        for b in blocks:
            if b.seq <= bg_seq or b is bg:
                continue
            rows = np.arange(S) if b.r == _ALL else np.array([b.r])
            if b.kind == "point":
                cols = np.arange(C) if b.c == _ALL else np.array([b.c])
                rr, cc = np.meshgrid(rows, cols, indexing="ij")
                add(rr.ravel(), cc.ravel(), b.value, b.seq)
            else:
                row = _row_values(b, C, b0)
                rr = np.repeat(rows, C)
                cc = np.tile(np.arange(C), rows.size)
                add(rr, cc, np.tile(row, rows.size), b.seq)
        pseq, pa, pr, pc, pv, _ = ops.arrays()
        if pseq.size:
            m = (pa == a) | (pa == _ALL)
            if bg_seq >= 0:
                m &= pseq > bg_seq
            if m.any():
                rs.append(pr[m])
                cs.append(pc[m])
                vs.append(pv[m])
                qs.append(pseq[m])
        if not rs:
            return sp.csr_matrix((S, C))
        r = np.concatenate(rs)
        c = np.concatenate(cs)
        v = np.concatenate(vs)
        q = np.concatenate(qs)
        if len(rs) > 1 or len(np.unique(r * C + c)) != r.size:
            key = r * C + c
            order = np.lexsort((q, key))
            ks = key[order]
            last = np.ones(ks.size, dtype=bool)
            last[:-1] = ks[1:] != ks[:-1]
            sel = order[last]
            r, c, v = r[sel], c[sel], v[sel]
        nz = v != 0
        return sp.csr_matrix((v[nz], (r[nz], c[nz])), shape=(S, C))

    def check_rows(self, ops: _Ops, mats, key: str):
        for a, m in enumerate(mats):
            sums = np.asarray(m.sum(axis=1)).ravel()
            bad = np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOL)
            if bad.size:
                r = int(bad[0])
                more = f" (and {bad.size - 1} more rows)" if bad.size > 1 else ""
                raise FormatError(
                    f"{key}[{self.actions[a]}] row {self.states[r]!r} sums to {sums[r]:.6g}, expected 1{more}",
                    self.path, self.line_of(ops, a, r))

    def line_of(self, ops: _Ops, a: int, r: int) -> int | None:
        """The line of the last entry that wrote row r of action a (for error messages)."""
        best, line = -1, None
        pseq, pa, pr, _, _, ppos = ops.arrays()
        m = np.flatnonzero(((pa == a) | (pa == _ALL)) & (pr == r))
        if m.size:
            j = m[np.argmax(pseq[m])]
            best, line = int(pseq[j]), int(ppos[j])
        for b in ops.blocks:
            if b.seq > best and b.a in (a, _ALL) and (b.r is None or b.r in (r, _ALL)):
                best, line = b.seq, b.pos
        return None if line is None else self.line_at(line)


#: rows whose sum is this close to 1 are left alone, so that read(write(m)) reproduces m bit for bit
_EXACT = 4e-16


def normalize_rows(m: sp.csr_matrix) -> sp.csr_matrix:
    """Rescale rows so they sum to 1 (files print rounded numbers); rows already at 1 are untouched."""
    m = sp.csr_matrix(m, dtype=np.float64, copy=True)
    sums = np.asarray(m.sum(axis=1)).ravel()
    fix = (np.abs(sums - 1.0) > _EXACT) & (sums > 0)
    if fix.any():
        scale = np.ones_like(sums)
        scale[fix] = 1.0 / sums[fix]
        m.data *= np.repeat(scale, np.diff(m.indptr))
    return m


def normalize_vector(b: np.ndarray) -> np.ndarray:
    b = np.asarray(b, dtype=np.float64)
    t = b.sum()
    return b / t if abs(t - 1.0) > _EXACT else b.copy()


def _codes(lookup: dict, toks: list, pos: np.ndarray) -> np.ndarray:
    """Indices of the names at token positions ``pos`` (-2 where unknown)."""
    if pos.size == 0:
        return np.zeros(0, dtype=np.int64)
    got = itemgetter(*pos.tolist())(toks)
    if pos.size == 1:
        got = (got,)
    return np.fromiter(map(lookup.get, got, repeat(-2)), dtype=np.int64, count=pos.size)


def _floats(toks: list, pos: np.ndarray) -> np.ndarray:
    """Numbers at token positions ``pos`` (NaN where a token is not a number)."""
    if pos.size == 0:
        return np.zeros(0)
    got = itemgetter(*pos.tolist())(toks)
    if pos.size == 1:
        got = (got,)
    try:
        return np.array(got, dtype=np.float64)
    except ValueError:
        return np.array([float(x) if _is_number(x) else np.nan for x in got])


def _is_number(t: str) -> bool:
    try:
        float(t)
        return True
    except ValueError:
        return False


def _row_values(b: _Block, C: int, b0: np.ndarray) -> np.ndarray:
    if b.kind == "row":
        return b.value
    if b.kind == "uniform":
        return np.full(C, 1.0 / C)
    if b.kind == "reset":
        return b0
    raise AssertionError(b.kind)  # pragma: no cover


def _block_entries(b: _Block, S: int, C: int, b0: np.ndarray):
    """(rows, columns, values) of the nonzero cells of a full-cover block, row-major (None when all zero).

    Never a dense S x C array unless the file wrote one: ``identity`` has S cells, a row repeated over
    every state only its nonzero columns."""
    if b.kind == "matrix":
        r, c = np.nonzero(b.value)
        return r, c, b.value[r, c]
    if b.kind == "identity":
        k = np.arange(min(S, C))
        return k, k, 1.0
    if b.kind == "point":
        if b.value == 0:
            return None
        return np.repeat(np.arange(S), C), np.tile(np.arange(C), S), b.value
    row = _row_values(b, C, b0)
    cols = np.flatnonzero(row)
    return np.repeat(np.arange(S), cols.size), np.tile(cols, S), np.tile(row[cols], S)


def _cover(ops: _Ops, a: int, S: int, C: int, b0: np.ndarray) -> int:
    """How many cells ``build_matrix`` assembles for action ``a`` (an upper bound on its nonzeros)."""
    blocks = [b for b in ops.blocks if b.a == _ALL or b.a == a]
    bg = None
    for b in blocks:
        if b.full:
            bg = b
    n, bg_seq = 0, -1
    if bg is not None:
        bg_seq = bg.seq
        if bg.kind == "matrix":
            n += int(np.count_nonzero(bg.value))
        elif bg.kind == "identity":
            n += min(S, C)
        elif bg.kind == "point":
            n += S * C if bg.value != 0 else 0
        else:
            n += S * int(np.count_nonzero(_row_values(bg, C, b0)))
    for b in blocks:
        if b.seq <= bg_seq or b is bg:
            continue
        rows = S if b.r == _ALL else 1
        n += rows * (1 if b.kind == "point" and b.c != _ALL else C)
    pseq, pa, _, _, _, _ = ops.arrays()
    if pseq.size:
        n += int(np.count_nonzero(((pa == a) | (pa == _ALL)) & (pseq > bg_seq)))
    return n


def fold_rewards(rules, T, O, S: int, A: int, Z: int, flat_bulk=(), budget: MemoryBudget | None = None
                 ) -> np.ndarray:
    """R[s, a] = sum_{s', o} T(s'|s,a) O(o|s',a) r(s, a, s', o), the last matching rule defining r.

    Rules independent of s' and o fill an (S, A) table directly; only actions with rules that depend
    on s' or o enumerate the (sparse) support of T(s'|s,a) O(o|s',a) (checked against ``budget`` first).
    """
    base = np.zeros((S, A))
    btime = np.full((S, A), -1, dtype=np.int64)
    specific = []
    for rule in sorted(rules, key=lambda r: r[0]):
        seq, a, s, s2, o, v, _ = rule
        if s2 == _ALL and o == _ALL and np.ndim(v) == 0:
            rows = slice(None) if s == _ALL else s
            cols = slice(None) if a == _ALL else a
            base[rows, cols] = v
            btime[rows, cols] = seq
        else:
            specific.append(rule)
    if flat_bulk:  # fully specified (s, a) rules: the latest per cell, unless a wildcard rule came later
        q, a, s, v = (np.concatenate([f[j] for f in flat_bulk]) for j in range(4))
        key = s * A + a
        order = np.lexsort((q, key))
        ks = key[order]
        last = np.ones(ks.size, dtype=bool)
        last[:-1] = ks[1:] != ks[:-1]
        sel = order[last]
        s, a, q, v = s[sel], a[sel], q[sel], v[sel]
        win = q > btime[s, a]
        base[s[win], a[win]] = v[win]
        btime[s[win], a[win]] = q[win]
    R = base.copy()
    for a in range(A):
        rules_a = [r for r in specific if r[1] in (a, _ALL)]
        if not rules_a:
            continue
        Ta, Oa = T[a].tocsr(), O[a].tocsr()
        ps_t = np.repeat(np.arange(S), np.diff(Ta.indptr))
        sp_t = Ta.indices.astype(np.int64)
        counts = np.diff(Oa.indptr)[sp_t]
        total = int(counts.sum())
        if budget is not None:
            budget.check(BUILD_BYTES * total, f"rewards that depend on s' or o ({total:,} (s, s', o) "
                         f"triples of action {a})")
        starts = Oa.indptr[sp_t].astype(np.int64)
        offs = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
        idx = offs + np.arange(total)
        ps = np.repeat(ps_t, counts)
        psp = np.repeat(sp_t, counts)
        po = Oa.indices[idx].astype(np.int64)
        prob = np.repeat(Ta.data, counts) * Oa.data[idx]
        val = base[ps, a].copy()
        tm = btime[ps, a]
        for seq, _, s, s2, o, v, _ in rules_a:
            if s == _ALL:
                lo, hi = 0, ps.size
            else:
                lo, hi = np.searchsorted(ps, [s, s + 1])
            m = tm[lo:hi] < seq
            sub_sp, sub_o = psp[lo:hi], po[lo:hi]
            if s2 != _ALL:
                m &= sub_sp == s2
            if o != _ALL:
                m &= sub_o == o
            if np.ndim(v) == 0:
                val[lo:hi][m] = v
            elif np.ndim(v) == 1:
                val[lo:hi][m] = v[sub_o[m]]
            else:
                val[lo:hi][m] = v[sub_sp[m], sub_o[m]]
        R[:, a] = np.bincount(ps, weights=prob * val, minlength=S)
    return R


# ---------------------------------------------------------------------------- public API
def parse_pomdp(text: str, path: str = "<string>", name: str = "", bulk: bool = True,
                validate: bool = True, max_memory_mb: float | None = None) -> POMDP:
    """Parse the text of a ``.pomdp`` file; errors are ``FormatError`` naming ``path`` and the line.

    ``validate=False`` returns the model as written (no row checks, no renormalisation) so that
    ``trimpomdp info`` can list its problems; ``bulk=False`` parses every entry one by one (slower: the
    reference the vectorised path is tested against). A model estimated to need more than
    ``max_memory_mb`` (default ``$TRIMPOMDP_MODEL_MEMORY_MB`` or 4096) is refused before it is built.
    """
    p = _Parser(text, path, bulk, max_memory_mb)
    if p.n == 0:
        raise FormatError("empty file: expected 'discount:', 'states:', 'actions:' and 'observations:'", path)
    p.parse()
    return p.build(name, validate)


def read_pomdp(path, validate: bool = True, max_memory_mb: float | None = None) -> POMDP:
    """Read a Cassandra ``.pomdp`` file into a validated POMDP with exactly stochastic rows."""
    path = Path(path)
    try:
        text = path.read_text(encoding="latin-1")
    except OSError as exc:
        raise FormatError(f"cannot read file: {exc.strerror or exc}", str(path)) from None
    return parse_pomdp(text, str(path), name=path.stem, validate=validate, max_memory_mb=max_memory_mb)


def _check_names(names, kind: str):
    for x in names:
        if not x or x == "*" or any(ch.isspace() for ch in x) or ":" in x or "#" in x:
            raise ModelError(f"{kind} name {x!r} cannot be written to a .pomdp file "
                             "(no spaces, ':', '#' or a lone '*')")


def _names_decl(names) -> str:
    if list(names) == [str(i) for i in range(len(names))]:
        return str(len(names))
    return " ".join(names)


def format_pomdp(model: POMDP) -> str:
    """The ``.pomdp`` text of ``model``: names kept, sparse entries, full float precision (repr)."""
    for names, kind in ((model.states, "state"), (model.actions, "action"), (model.observations, "observation")):
        _check_names(names, kind)
    st, ac, ob = model.states, model.actions, model.observations
    out = [f"# written by trimpomdp{': ' + model.name if model.name else ''}",
           f"discount: {float(model.discount)!r}",
           "values: reward",
           f"states: {_names_decl(st)}",
           f"actions: {_names_decl(ac)}",
           f"observations: {_names_decl(ob)}",
           "start: " + " ".join(repr(float(x)) for x in model.initial_belief), ""]
    for key, mats, cols in (("T", model.T, st), ("O", model.O, ob)):
        for a, m in enumerate(mats):
            m = m.tocsr()
            an = ac[a]
            per_row = np.diff(m.indptr)
            dense = per_row > m.shape[1] // 2  # such rows are shorter written whole
            if dense.any():
                rows = np.flatnonzero(dense)
                block = m[rows].toarray()
                out.extend(f"{key}: {an} : {st[r]}\n" + " ".join(map(repr, row))
                           for r, row in zip(rows.tolist(), block.tolist()))
            coo = m[~dense].tocoo() if dense.any() else m.tocoo()
            sparse_rows = np.flatnonzero(~dense)[coo.row] if dense.any() else coo.row
            out.extend(f"{key}: {an} : {st[r]} : {cols[c]} {v!r}"
                       for r, c, v in zip(sparse_rows.tolist(), coo.col.tolist(), coo.data.tolist()))
        out.append("")
    rs, ra = np.nonzero(model.R)
    out.extend(f"R: {ac[a]} : {st[s]} : * : * {v!r}"
               for s, a, v in zip(rs.tolist(), ra.tolist(), model.R[rs, ra].tolist()))
    out.append("")
    return "\n".join(out)


def write_pomdp(model: POMDP, path) -> Path:
    """Write ``model`` as a ``.pomdp`` file that ``read_pomdp`` reads back to the same arrays."""
    path = Path(path)
    path.write_text(format_pomdp(model), encoding="utf-8")
    return path
