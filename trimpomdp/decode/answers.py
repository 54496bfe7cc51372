"""Final-answer extraction and equivalence checking for MATH-style (LaTeX) and GSM8K-style answers.

``parse_latex`` in sympy needs antlr4 at one pinned version (math-verify pins another, and Hydra/OmegaConf
a third), and math-verify's timeouts use SIGALRM (main thread only), so a small recursive-descent
translator (``latex_to_sympy``) covers the forms that occur in the shared benchmarks' answers (fractions,
roots, powers, pi, trig/log, floor/ceil, implicit products, mixed numbers, factorials, |x|, scientific
notation, ``np.arcsin(...)``). Comparison goes: normalised strings equal -> structure (tuples, intervals,
sets, lists, unions, matrices) element-wise -> sympy values equal (exactly, or numerically at a few random
points when free symbols remain). How a benchmark's answers are compared (``kind``, see ``Grading``) adds a
unit to ignore, an absolute tolerance or significant-figure precision. Model output is never ``eval``-ed.
"""
from __future__ import annotations

import cmath
import math
import random
import re
from dataclasses import dataclass

import sympy

__all__ = ["extract_answer", "extract_boxed", "normalize_answer", "latex_to_sympy", "is_equivalent",
           "to_number", "Grading", "parse_answer", "strip_unit"]


# ------------------------------------------------------------------------------------------- grading
@dataclass(frozen=True)
class Grading:
    """How one benchmark's answers are compared, written as a ``kind`` string: a mode, then options.

    ``"math"`` (LaTeX, structural + sympy), ``"gsm8k"`` (numbers first), ``"plain"`` (as math); options
    after ``;``: ``tol=X`` (numbers within X, absolute: OlympiadBench's ``error``), ``sigfig`` (a numeric
    reference is met at its own significant figures: Minerva's 2-3 figure answers), ``unit=U`` (U, plain
    or LaTeX, is ignored after either answer). E.g. ``"math;tol=0.1;unit=%"``.
    """

    mode: str = "math"
    tol: float | None = None
    sigfig: bool = False
    unit: str | None = None

    MODES = ("math", "gsm8k", "plain")

    @classmethod
    def parse(cls, kind: str | None) -> "Grading":
        """The grading of a ``kind`` string; ValueError naming the bad part."""
        if kind is None:
            return cls()
        if not isinstance(kind, str):
            raise ValueError(f"answer kind must be a string, got {type(kind).__name__}")
        mode, *opts = kind.split(";")
        if mode not in cls.MODES:
            raise ValueError(f"answer kind {kind[:60]!r}: mode must be one of {', '.join(cls.MODES)}")
        tol, sigfig, unit = None, False, None
        for opt in opts:
            key, eq, val = opt.partition("=")
            if key == "tol" and eq:
                try:
                    tol = float(val)
                except ValueError:
                    tol = -1.0
                if not (math.isfinite(tol) and tol >= 0):
                    raise ValueError(f"answer kind {kind[:60]!r}: tol must be a number >= 0")
            elif key == "sigfig" and not eq:
                sigfig = True
            elif key == "unit" and eq and val.strip():
                unit = val.strip()
            else:
                raise ValueError(f"answer kind {kind[:60]!r}: unknown option {opt[:30]!r} "
                                 "(expected tol=X, sigfig or unit=U)")
        return cls(mode, tol, sigfig, unit)

    def __str__(self) -> str:
        opts = [self.mode] + ([f"tol={self.tol:g}"] if self.tol is not None else []) + (
            ["sigfig"] if self.sigfig else []) + ([f"unit={self.unit}"] if self.unit else [])
        return ";".join(opts)


# -------------------------------------------------------------------------------------------- extraction
def _match_brace(s: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``start`` (escaped ``\\{``/``\\}`` skipped), or -1."""
    depth = 0
    i = start
    n = len(s)
    while i < n:
        c = s[i]
        if c == "\\" and i + 1 < n and s[i + 1] in "{}":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


_BOX = re.compile(r"\\(?:boxed|fbox)\b")


def extract_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (nested braces allowed; ``\\boxed 5`` too)."""
    found = None
    for m in _BOX.finditer(text):
        i = m.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            j = _match_brace(text, i)
            if j >= 0:
                found = text[i + 1:j].strip()
        elif m.end() < len(text) and text[m.end()] == " ":
            tok = re.match(r"[^\s$]+", text[i:])
            if tok:
                found = tok.group(0)
    return found


_NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+(?![\d.]))?(?:/\d+)?"
                     r"|-?\.\d+")


def extract_answer(text: str | None) -> str | None:
    """The final answer of a solution: the last ``\\boxed{}``, else what follows ``####``, else the last
    number (thousands separators removed); None when there is none."""
    if not text:
        return None
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    if "####" in text:
        tail = text.rsplit("####", 1)[1].strip()
        if tail:
            return tail.splitlines()[0].strip()
    nums = _NUMBER.findall(text)
    if nums:
        return nums[-1].replace(",", "")
    return None


# ---------------------------------------------------------------------------------------- normalisation
_TEXT_CMDS = r"\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mbox|operatorname)"
_UNIT_TAIL = re.compile(_TEXT_CMDS + r"\s*\{\s*[A-Za-z][A-Za-z\s.]*\}(?:\s*\^\s*\{?\d\}?)?\s*$")
_SPACING = re.compile(r"\\[,;:!>]|\\quad|\\qquad|\\displaystyle|\\(?:big|Big|bigg|Bigg)[lr]?(?![a-zA-Z])")
_VAR = (r"(?:(?:[A-Za-z]|\\[A-Za-z]+)(?:_(?:\{[A-Za-z0-9\\ ]+\}|[A-Za-z0-9]))?"
        r"(?:\(\s*[A-Za-z](?:\s*,\s*[A-Za-z])*\s*\))?)")  # x, x_1, m_{\max}, \theta, f(x), g(x,y)


_PY_PREFIX = re.compile(r"\b(?:np|numpy|math|sympy)\.(?=[a-z])")
_PLAIN_FUNC = re.compile(r"(?<![\\A-Za-z])(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|sqrt|ln|log|exp)"
                         r"(?=\s*\()")


def _unwrap_text(s: str) -> str:
    """Replace ``\\text{X}`` (and friends) by X, innermost first."""
    pat = re.compile(_TEXT_CMDS + r"\s*\{")
    while True:
        m = pat.search(s)
        if not m:
            return s
        j = _match_brace(s, m.end() - 1)
        if j < 0:
            return s[:m.start()] + s[m.end():]
        s = s[:m.start()] + s[m.end():j] + s[j + 1:]


def _fix_fracs(s: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{x}`` -> ``\\frac{1}{x}``, ``\\sqrt2`` -> ``\\sqrt{2}``."""
    s = re.sub(r"\\sqrt\s*([0-9A-Za-z])", r"\\sqrt{\1}", s)
    s = re.sub(r"\\frac\s*([0-9A-Za-z])\s*([0-9A-Za-z])", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac\s*([0-9A-Za-z])\s*\{", r"\\frac{\1}{", s)
    s = re.sub(r"\\frac\s*(\{[^{}]*\})\s*([0-9A-Za-z])", r"\\frac\1{\2}", s)
    return s


def _split_top(s: str, sep: str) -> list[str]:
    """Split on ``sep`` outside (), [], {} (so ``(1,2),3`` -> ``['(1,2)', '3']``)."""
    parts, depth, cur, i = [], 0, [], 0
    while i < len(s):
        if s.startswith("\\{", i) or s.startswith("\\}", i):
            depth += 1 if s[i + 1] == "{" else -1
            cur.append(s[i:i + 2])
            i += 2
            continue
        c = s[i]
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if depth == 0 and s.startswith(sep, i):
            parts.append("".join(cur))
            cur = []
            i += len(sep)
            continue
        cur.append(c)
        i += 1
    parts.append("".join(cur))
    return parts


def _strip_assignment(s: str) -> str:
    """``x = 3`` -> ``3``; ``x=1, y=2`` -> ``1,2``; ``x \\in [0,1]`` -> ``[0,1]``; ``(x,y)=(2,4)`` -> ``(2,4)``."""
    m = re.match(r"^\s*" + _VAR + r"\s*\\in\s*(.+)$", s)
    if m:
        return m.group(1)
    m = re.match(r"^\s*\(\s*" + _VAR + r"(?:\s*,\s*" + _VAR + r")+\s*\)\s*=\s*(\(.+)$", s)
    if m and "=" not in m.group(1):
        return m.group(1)
    parts = _split_top(s, ",")
    out = []
    for p in parts:
        m = re.match(r"^\s*" + _VAR + r"\s*=\s*([^=]+)$", p)
        if m is None or re.search(r"\\[lg]e|<|>", p):
            return s if len(parts) > 1 else p
        out.append(m.group(1))
    return ",".join(out)


_INEQ = re.compile(r"((?:\\leqslant|\\leq|\\le|\\lt|\\geqslant|\\geq|\\ge|\\gt)(?![A-Za-z])|<|>|≤|≥)")
_LESS = {"\\leqslant", "\\leq", "\\le", "\\lt", "<", "≤"}


def _inequality_interval(s: str) -> str:
    """``x<5`` -> ``(-\\infty,5)``, ``2\\le x<3`` -> ``[2,3)``, ``x\\geq 1`` -> ``[1,\\infty)``: an interval answer
    written as an inequality in one variable; anything else unchanged."""
    parts = [p.strip() for p in _INEQ.split(s)]
    if len(parts) == 3 and parts[0] and parts[2]:
        lhs, op, rhs = parts
        if re.fullmatch(_VAR, lhs) and not re.fullmatch(_VAR, rhs):
            value, less = rhs, op in _LESS
        elif re.fullmatch(_VAR, rhs) and not re.fullmatch(_VAR, lhs):
            value, less = lhs, op not in _LESS
        else:
            return s
        closed = op not in ("<", ">", "\\lt", "\\gt")
        if less:
            return f"(-\\infty,{value}{']' if closed else ')'}"
        return f"{'[' if closed else '('}{value},\\infty)"
    if len(parts) == 5 and re.fullmatch(_VAR, parts[2]) and parts[0] and parts[4]:
        a, op1, _, op2, b = parts
        if (op1 in _LESS) != (op2 in _LESS):
            return s
        if op1 not in _LESS:  # 5 > x > 2: from 2 to 5
            a, b, op1, op2 = b, a, op2, op1
        left = "(" if op1 in ("<", ">", "\\lt", "\\gt") else "["
        right = ")" if op2 in ("<", ">", "\\lt", "\\gt") else "]"
        return f"{left}{a},{b}{right}"
    return s


def normalize_answer(ans: str | None) -> str | None:
    """Canonical string form of a LaTeX answer: spacing, ``\\left``/``\\right``, ``\\dfrac``, degrees,
    percent, dollars, ``\\text`` units, thousands separators, ``x =`` prefixes and choice letters."""
    if ans is None:
        return None
    s = str(ans).strip()
    boxed = extract_boxed(s)
    if boxed is not None and s.lstrip("$ ").startswith(("\\boxed", "\\fbox")):
        s = boxed
    s = s.replace("\n", " ").strip()
    s = s.strip("$").strip()
    s = s.replace("\\$", "").replace("$", "")
    s = _SPACING.sub(" ", s)
    s = re.sub(r"(?<!\\)\\ ", " ", s).replace("~", " ")
    s = re.sub(r"\\left(?![a-zA-Z])", "", s)
    s = re.sub(r"\\right(?![a-zA-Z])", "", s)
    s = re.sub(r"\\[dt](frac|binom)", r"\\\1", s)
    s = re.sub(r"\^\s*\{?\s*\\circ\s*\}?", "", s)
    s = s.replace("\\circ", "").replace("°", "").replace("\\degree", "")
    s = s.replace("\\%", "").replace("%", "")
    # units: a trailing \text{...} after something else is a unit (5\text{ cm}^2, 10\text{ inches})
    while True:
        m = _UNIT_TAIL.search(s)
        if not m or not s[:m.start()].strip():
            break
        s = s[:m.start()].rstrip()
    s = _unwrap_text(s)
    s = re.sub(r"\s*(?:degrees?|units?|dollars?|cents?)\s*$", "", s) if re.search(r"\d", s) else s
    s = re.sub(r"\s*,?\s+(?:and|or)\s+", ",", s)  # "1 and 3", "x=1 or x=3": several answers
    s = _PY_PREFIX.sub("", s)  # Minerva writes np.arcsin(10/13)
    s = _PLAIN_FUNC.sub(r"\\\1", s)
    s = s.replace("{,}", "").replace("\\!", "")
    s = s.strip().rstrip(".").strip()
    if re.fullmatch(r"-?\d{1,3}(?:,\s*\d{3})+(?:\.\d+)?", s):
        s = re.sub(r"[,\s]", "", s)
    s = _fix_fracs(s)
    s = _strip_assignment(s)
    s = _inequality_interval(s)
    # remove blanks except between two letters (keeps "\pi r" apart)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"(?<=[^A-Za-z])\s|\s(?=[^A-Za-z])", "", s)
    m = re.fullmatch(r"\(?([A-Ea-e])\)?", s)
    if m:
        s = m.group(1).upper()
    s = re.sub(r"(?<![\d.])\.(\d)", r"0.\1", s)  # .5 -> 0.5
    s = re.sub(r"(\d+\.\d*?)0+(?!\d)", r"\1", s)  # 2.50 -> 2.5
    s = re.sub(r"(\d+)\.(?!\d)", r"\1", s)  # 18. -> 18
    return s


# ----------------------------------------------------------------------------------- LaTeX -> sympy
class _ParseError(ValueError):
    pass


_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d*)?[eE][-+]?\d+|\d+\.\d*|\.\d+|\d+)|(\\[A-Za-z]+|\\[{}|])|([A-Za-z])"
                    r"|(\S))")

_CONSTS = {"\\pi": sympy.pi, "\\infty": sympy.oo, "\\infinity": sympy.oo}
_FUNCS = {"\\sin": sympy.sin, "\\cos": sympy.cos, "\\tan": sympy.tan, "\\cot": sympy.cot, "\\sec": sympy.sec,
          "\\csc": sympy.csc, "\\arcsin": sympy.asin, "\\arccos": sympy.acos, "\\arctan": sympy.atan,
          "\\sinh": sympy.sinh, "\\cosh": sympy.cosh, "\\tanh": sympy.tanh, "\\ln": sympy.log,
          "\\exp": sympy.exp}
_GREEK = {"alpha", "beta", "gamma", "delta", "epsilon", "varepsilon", "zeta", "eta", "theta", "vartheta",
          "iota", "kappa", "lambda", "mu", "nu", "xi", "rho", "sigma", "tau", "upsilon", "phi", "varphi",
          "chi", "psi", "omega", "Gamma", "Delta", "Theta", "Lambda", "Xi", "Sigma", "Phi", "Psi", "Omega"}
_INVERSE = {"\\sin": sympy.asin, "\\cos": sympy.acos, "\\tan": sympy.atan}
_MUL = {"*", "\\cdot", "\\times"}
_DIV = {"/", "\\div"}
_ABS_FLOOR = 1e-20  # |x - y| below this is equality (numerical zero at 30 digits)
_BIG = 2000  # guard against 10000!-style blow-ups in exact arithmetic
_MAX_DIGITS = 20000  # and against 10^{10^{10}}: exact powers up to this many digits (2024^{4046} has 13,374)
_BRACKET_FUNCS = {"\\lfloor": ("\\rfloor", sympy.floor), "\\lceil": ("\\rceil", sympy.ceiling)}


def _tokenize(s: str) -> list[str]:
    toks, pos = [], 0
    s = s.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            break
        toks.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return toks


class _Parser:
    def __init__(self, text: str):
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self, k: int = 0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self, expect: str | None = None) -> str:
        tok = self.peek()
        if tok is None or (expect is not None and tok != expect):
            raise _ParseError(f"expected {expect!r}, got {tok!r}")
        self.i += 1
        return tok

    def parse(self):
        value = self.expr()
        if self.peek() is not None:
            raise _ParseError(f"unexpected {self.peek()!r}")
        return value

    def expr(self):
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.take()
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def _starts_atom(self, tok) -> bool:
        if tok is None:
            return False
        if tok[0].isdigit() or tok[0] == "." or tok.isalpha() or tok in ("(", "{", "[", "|", "\\|"):
            return True
        return tok.startswith("\\") and (tok in _CONSTS or tok in _FUNCS or tok[1:] in _GREEK
                                         or tok in ("\\frac", "\\sqrt", "\\binom", "\\log")
                                         or tok in _BRACKET_FUNCS)

    def term(self):
        value = self.unary()
        while True:
            tok = self.peek()
            if tok in _MUL:
                self.take()
                value = value * self.unary()
            elif tok in _DIV:
                self.take()
                value = value / self.unary()
            elif self._starts_atom(tok) and tok != "|":
                value = value * self.power()
            else:
                return value

    def unary(self):
        if self.peek() == "-":
            self.take()
            return -self.unary()
        if self.peek() == "+":
            self.take()
            return self.unary()
        return self.power()

    def _exponent(self):
        tok = self.peek()
        if tok is not None and tok[0].isdigit() and len(tok) > 1 and "." not in tok:
            # x^23 in LaTeX is x^2 * 3: split the digits
            self.toks[self.i] = tok[1:]
            return sympy.Integer(tok[0])
        if tok == "{":
            return self.group("{", "}")
        if tok == "-":
            self.take()
            return -self._exponent()
        return self.postfix()

    def power(self):
        base = self.postfix()
        if self.peek() == "^":
            self.take()
            exp = self._exponent()
            if self.peek() == "!":
                raise _ParseError("ambiguous factorial after exponent")
            if (exp.is_Number and base.is_Number and abs(base) not in (0, 1)
                    and abs(exp) * abs(math.log10(abs(float(base)))) > _MAX_DIGITS):
                raise _ParseError("power too large")
            return sympy.Pow(base, exp)
        return base

    def postfix(self):
        value = self.atom()
        while self.peek() == "!":
            self.take()
            if value.is_Number and value > _BIG:
                raise _ParseError("factorial too large")
            value = sympy.factorial(value)
        return value

    def group(self, open_: str, close: str):
        self.take(open_)
        value = self.expr()
        self.take(close)
        return value

    def braced(self):
        if self.peek() == "{":
            return self.group("{", "}")
        return self.atom()

    def atom(self):
        tok = self.peek()
        if tok is None:
            raise _ParseError("unexpected end")
        if tok[0].isdigit() or tok[0] == ".":
            self.take()
            num = sympy.Rational(tok)
            # mixed number: 2\frac{1}{2} means 5/2
            if self.peek() == "\\frac" and "." not in tok and self._plain_frac_ahead():
                self.take()
                frac = self.braced() / self.braced()
                return num + frac
            return num
        if tok in ("(", "[", "{"):
            close = {"(": ")", "[": "]", "{": "}"}[tok]
            return self.group(tok, close)
        if tok in ("|", "\\|"):
            self.take()
            value = self.expr()
            self.take(tok)
            return sympy.Abs(value)
        if tok.isalpha() and len(tok) == 1:
            self.take()
            name = self._subscripted(tok)
            if name == "i":
                return sympy.I
            return sympy.Symbol(name)
        if tok in _CONSTS:
            self.take()
            return _CONSTS[tok]
        if tok[1:] in _GREEK:
            self.take()
            return sympy.Symbol(self._subscripted(tok[1:]))
        if tok in _BRACKET_FUNCS:  # \lfloor x \rfloor, \lceil x \rceil
            self.take()
            close, fn = _BRACKET_FUNCS[tok]
            value = self.expr()
            self.take(close)
            return fn(value)
        if tok == "\\frac":
            self.take()
            num = self.braced()
            den = self.braced()
            return num / den
        if tok == "\\binom":
            self.take()
            return sympy.binomial(self.braced(), self.braced())
        if tok == "\\sqrt":
            self.take()
            if self.peek() == "[":
                index = self.group("[", "]")
                return sympy.root(self.braced(), index)
            return sympy.sqrt(self.braced())
        if tok in _FUNCS or tok == "\\log":
            self.take()
            base = None
            if tok == "\\log" and self.peek() == "_":
                self.take()
                base = self._exponent()
            power = None
            if self.peek() == "^":
                self.take()
                power = self._exponent()
            arg = self.power() if self.peek() not in ("(", "{") else self.atom()
            fn = _FUNCS.get(tok, sympy.log)
            if power == -1 and tok in _INVERSE:  # \sin^{-1} x is arcsin x
                return _INVERSE[tok](arg)
            value = sympy.log(arg, base) if (tok == "\\log" and base is not None) else fn(arg)
            return value ** power if power is not None else value
        raise _ParseError(f"unsupported token {tok!r}")

    def _plain_frac_ahead(self) -> bool:
        t = self.toks[self.i:self.i + 7]
        return (len(t) >= 7 and t[1] == "{" and t[2].isdigit() and t[3] == "}" and t[4] == "{"
                and t[5].isdigit() and t[6] == "}")

    def _subscripted(self, name: str) -> str:
        """``x`` with an optional subscript ``_1``/``_{max}`` as one symbol name (``x_1``)."""
        if self.peek() != "_":
            return name
        self.take()
        sub = self.take() if self.peek() != "{" else self._raw_group()
        return f"{name}_{sub}"

    def _raw_group(self) -> str:
        self.take("{")
        parts = []
        while self.peek() not in ("}", None):
            parts.append(self.take())
        self.take("}")
        return "".join(parts)


def latex_to_sympy(s: str):
    """Translate a (normalised) LaTeX expression to sympy; ``ValueError`` if it is not supported."""
    if not s or len(s) > 500:
        raise ValueError("empty or too long expression")
    try:
        return _Parser(s).parse()
    except _ParseError as exc:
        raise ValueError(str(exc)) from None
    except (TypeError, ZeroDivisionError, RecursionError, AttributeError) as exc:
        raise ValueError(f"cannot evaluate: {exc}") from None


# ------------------------------------------------------------------------------------------- comparing
def _close(x: complex, y: complex, rel: float = 1e-6) -> bool:
    """Relatively close; the absolute floor is tiny so that 1e-5 and 2e-5 (Minerva answers) differ."""
    if not (cmath.isfinite(x) and cmath.isfinite(y)):  # NaN, or a power too big for a float
        return False
    return abs(x - y) <= max(rel * max(abs(x), abs(y)), _ABS_FLOOR)


def _sympy_equal(a, b) -> bool:
    try:
        if a == b:
            return True
        if a.has(sympy.oo, -sympy.oo, sympy.zoo) or b.has(sympy.oo, -sympy.oo, sympy.zoo):
            return bool(sympy.simplify(a - b) == 0) if not (a.is_infinite or b.is_infinite) else a == b
        syms = sorted(a.free_symbols | b.free_symbols, key=str)
        if not syms:
            return _close(complex(sympy.N(a, 30)), complex(sympy.N(b, 30)))
        if sympy.expand(a - b) == 0:
            return True
        rng = random.Random(12345)
        ok = 0
        for _ in range(12):
            point = {x: sympy.Rational(rng.randint(11, 97), rng.randint(7, 23)) for x in syms}
            try:
                va = complex(sympy.N(a.subs(point), 30))
                vb = complex(sympy.N(b.subs(point), 30))
            except (TypeError, ValueError, ZeroDivisionError):
                continue
            if not _close(va, vb, 1e-9):
                return False
            ok += 1
            if ok >= 4:
                return True
        return False
    except (TypeError, ValueError, AttributeError, RecursionError, OverflowError):
        return False


def _to_sympy(s: str):
    try:
        return latex_to_sympy(s)
    except ValueError:
        return None


_MATRIX = re.compile(r"^\\begin\{([pbvBV]?matrix|array)\}(?:\{[^}]*\})?(.*)\\end\{\1\}$", re.S)


def _structure(s: str):
    """Split an answer into (kind, brackets, items): matrix, union, set, sequence/interval, list."""
    m = _MATRIX.match(s)
    if m:
        rows = [r for r in m.group(2).split("\\\\") if r.strip()]
        return "matrix", None, [cell for row in rows for cell in row.split("&")] + [f"#rows{len(rows)}"]
    union = _split_top(s, "\\cup")
    if len(union) > 1:
        return "union", None, union
    if s.startswith("\\{") and s.endswith("\\}"):
        return "set", None, _split_top(s[2:-2], ",")
    if len(s) >= 2 and s[0] in "([" and s[-1] in ")]" and _balanced_inner(s):
        items = _split_top(s[1:-1], ",")
        if len(items) > 1:
            return "seq", s[0] + s[-1], items
    items = _split_top(s, ",")
    if len(items) > 1:
        return "list", None, items
    pm = _split_top(s, "\\pm")
    if len(pm) == 2:  # a \pm b: the two values, unordered
        return "list", None, [f"{pm[0]}+({pm[1]})", f"{pm[0]}-({pm[1]})"]
    return "scalar", None, [s]


def _balanced_inner(s: str) -> bool:
    """True when the outer brackets of ``s`` enclose the whole string (not ``(1)+(2)``)."""
    depth = 0
    for k, c in enumerate(s):
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and k != len(s) - 1:
                return False
    return depth == 0


def _equation_equal(a: str, b: str) -> bool:
    """``l1 = r1`` and ``l2 = r2`` describe the same equation: l1 - r1 is a nonzero constant times l2 - r2."""
    (l1, r1), (l2, r2) = a.split("="), b.split("=")
    sides = [_to_sympy(x) for x in (l1, r1, l2, r2)]
    if any(x is None for x in sides):
        return False
    d1, d2 = sides[0] - sides[1], sides[2] - sides[3]
    if d1 == 0 or d2 == 0:
        return d1 == d2
    try:
        ratio = sympy.simplify(d1 / d2)
    except (TypeError, ValueError, RecursionError):
        return False
    return bool(ratio.is_number and ratio != 0 and ratio.is_finite)


def _scalar_equal(a: str, b: str) -> bool:
    if a == b or a.lower() == b.lower():
        return True
    if a.count("=") == 1 and b.count("=") == 1:
        return _equation_equal(a, b)
    x, y = _to_sympy(a), _to_sympy(b)
    if x is None or y is None:
        return False
    return _sympy_equal(x, y)


def _multiset_equal(xs: list[str], ys: list[str]) -> bool:
    if len(xs) != len(ys):
        return False
    left = list(ys)
    for x in xs:
        for k, y in enumerate(left):
            if _norm_equal(x, y):
                del left[k]
                break
        else:
            return False
    return True


def _norm_equal(a: str, b: str, depth: int = 0) -> bool:
    a, b = normalize_answer(a), normalize_answer(b)
    if a == b:
        return True
    if depth > 4:
        return False
    ka, ba, ia = _structure(a)
    kb, bb, ib = _structure(b)
    if ka == "scalar" and kb == "scalar":
        return _scalar_equal(a, b)
    if ka != kb or len(ia) != len(ib):
        # a bare list "1, 2" and an unordered set "\{1, 2\}" mean the same answer
        if {ka, kb} <= {"list", "set"}:
            return _multiset_equal(ia, ib)
        return False
    if ka in ("set", "list", "union"):
        return _multiset_equal(ia, ib)
    if ka == "seq" and ba != bb:
        return False
    return all(_norm_equal(x, y, depth + 1) for x, y in zip(ia, ib))


def to_number(s: str | None) -> float | None:
    """A plain number from an answer string (``$1,234.00`` -> 1234.0, ``\\frac{1}{2}`` -> 0.5), or None."""
    if s is None:
        return None
    t = normalize_answer(s)
    if t is None:
        return None
    t = t.replace(",", "") if re.fullmatch(r"-?[\d,]+(?:\.\d+)?", t) else t
    try:
        return float(t)
    except ValueError:
        pass
    v = _to_sympy(t)
    if v is not None and not v.free_symbols:
        try:
            c = complex(sympy.N(v))
            if abs(c.imag) < 1e-12 and math.isfinite(c.real):
                return c.real
        except (TypeError, ValueError):
            pass
    nums = _NUMBER.findall(str(s).replace("$", " "))
    if len(nums) == 1 and "/" not in nums[0]:
        return float(nums[0].replace(",", ""))
    return None


def _plain_number(s: str) -> float | None:
    """The value of an answer that is one real number (``4.5\\times10^{33}``, ``\\frac{1}{2}``), else None;
    unlike ``to_number`` no number is fished out of surrounding text."""
    t = normalize_answer(s)
    if not t:
        return None
    v = _to_sympy(t)
    if v is None or v.free_symbols:
        return None
    try:
        c = complex(sympy.N(v, 30))
    except (TypeError, ValueError, OverflowError):
        return None
    return c.real if abs(c.imag) < 1e-12 and math.isfinite(c.real) else None


_NUMERIC_LITERAL = re.compile(r"-?(\d*)(?:\.(\d*))?(?:e[-+]?\d+|\\(?:times|cdot)10\^-?\d+)?", re.I)


def _sig_digits(ref: str) -> int | None:
    """Significant figures of a reference written as a decimal literal (``0.006`` 1, ``4.5e33`` 2, ``1.60`` 3,
    ``300`` 3: an integer's trailing zeros count); None for anything else."""
    m = _NUMERIC_LITERAL.fullmatch(re.sub(r"[\s${}]|\\[,;!: ]", "", ref))  # raw: 1.60 keeps its zero
    if not m or not (m.group(1) or m.group(2)):
        return None
    digits = ((m.group(1) or "") + (m.group(2) or "")).lstrip("0")
    return max(1, len(digits))


def _numbers_match(x: float, y: float, ref: str, g: Grading) -> bool:
    """Prediction ``x`` against reference ``y``: equal (relative 1e-6), within ``g.tol``, or, with
    ``g.sigfig``, equal once rounded to the reference's significant figures."""
    if _close(x, y):
        return True
    if g.tol is not None and abs(x - y) <= g.tol * (1 + 1e-9):
        return True
    if g.sigfig:
        d = _sig_digits(ref)
        if d is not None and y != 0:
            return f"{x:.{d - 1}e}" == f"{y:.{d - 1}e}"
    return False


_UNIT_MARKUP = re.compile(r"\\(?:mathrm|text|textrm|rm|mbox|operatorname)\b|\\[,;:! ]|[\s{}$~]")


def _unit_key(u: str) -> str:
    return _UNIT_MARKUP.sub("", u)


def strip_unit(ans: str, unit: str) -> str:
    """``ans`` without a trailing ``unit`` however it is typeset (``166 \\text{cm}^2``, ``166\\mathrm{~cm}^{2}``,
    ``50 minutes`` for ``minute``); ``ans`` unchanged when it does not end in it."""
    key = _unit_key(unit)
    if not key:
        return ans
    keys = {key, key + "s", key[:-1] if key.endswith("s") and len(key) > 1 else key}
    body = ans.rstrip().rstrip(".").rstrip()
    for i in range(1, len(body)):  # the longest tail that is the unit
        head = body[:i]
        if (_unit_key(body[i:]) in keys and head.strip("$ ") and head[-1] not in "\\_^"
                and not head[-1].isalpha() and head.count("{") == head.count("}")):
            return body[:i].rstrip()
    return ans


_UNIT_WORDS = re.compile(r"\s*\$?\s*(?:\\(?:mathrm|text|textrm|rm|mbox|operatorname)\s*)?\{?\s*~?"
                         r"(?:[A-Za-z]|\\AA|\\mu|\\Omega)[^=<>,]*$")


def _drop_unit_words(pred: str) -> str:
    """A numeric prediction without the unit written after it (``1.6 cm``, ``1.6 \\mathrm{~cm}``, ``2e6 K``):
    only a number literal followed by a blank or markup and then letters is cut."""
    pred = re.sub(r"\\[,;:! ]|~", " ", pred)
    m = re.match(r"\s*\$?\s*(-?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+|\s*\\(?:times|cdot)\s*10\s*\^\s*"
                 r"(?:\{\s*-?\d+\s*\}|\d))?)(?=[\s$\\])", pred)
    if m and _UNIT_WORDS.fullmatch(pred[m.end():]):
        return m.group(1)
    return pred


def parse_answer(ans: str | None):
    """An answer as data: a sympy value, ``sympy.Eq`` for an equation, or ``(structure, brackets, items)``
    for tuples/intervals (``seq``), sets, lists, unions and matrices; ValueError naming the part that is
    not understood. What ``is_equivalent`` compares, for checking that references are machine-readable."""
    s = normalize_answer(ans)
    if not s:
        raise ValueError("empty answer")
    return _parse_normalized(s)


def _parse_normalized(s: str, depth: int = 0):
    kind, brackets, items = _structure(s)
    if kind == "scalar":
        if s.count("=") == 1:
            lhs, rhs = s.split("=")
            return sympy.Eq(latex_to_sympy(lhs), latex_to_sympy(rhs), evaluate=False)
        try:
            return latex_to_sympy(s)
        except ValueError as exc:
            raise ValueError(f"{s[:60]!r}: {exc}") from None
    if depth > 4:
        raise ValueError(f"{s[:60]!r}: nested too deeply")
    if kind == "matrix":
        items = items[:-1]
    return kind, brackets, [_parse_normalized(normalize_answer(x) or "", depth + 1) if x.strip() else
                            _raise_empty(s) for x in items]


def _raise_empty(s: str):
    raise ValueError(f"{s[:60]!r}: an empty item")


def is_equivalent(pred: str | None, ref: str | None, kind: str | Grading = "math") -> bool:
    """Whether a predicted final answer matches the reference.

    ``kind`` (a ``Grading`` or its string) says how: ``"gsm8k"``: numeric equality (commas, ``$``,
    ``.00`` ignored; falls back to the MATH rules when either side is not a number). ``"math"``/``"plain"``:
    normalised LaTeX compared structurally and with sympy; options ``unit=``, ``tol=``, ``sigfig`` as in
    ``Grading``. Never raises on odd answers (a malformed ``kind`` is a ValueError); None never matches.
    """
    g = kind if isinstance(kind, Grading) else Grading.parse(kind)
    if pred is None or ref is None:
        return False
    pred, ref = str(pred), str(ref)
    if not pred.strip() or not ref.strip():
        return False
    try:
        if g.unit:
            pred, ref = strip_unit(pred, g.unit), strip_unit(ref, g.unit)
            if _UNIT_TAIL.search(re.sub(r"\\[,;:! ]|~", " ", pred).strip().rstrip(".")):
                return False  # another unit than the reference's
        if g.mode == "gsm8k":
            x, y = to_number(pred), to_number(ref)
            if x is not None and y is not None:
                return abs(x - y) <= 1e-6 * max(1.0, abs(y)) or (
                    g.tol is not None and _numbers_match(x, y, ref, g))
        if g.sigfig or g.tol is not None:
            y = _plain_number(ref)
            if y is not None:
                x = _plain_number(_drop_unit_words(pred))
                if x is not None:
                    return _numbers_match(x, y, ref, g)
        return _norm_equal(pred, ref)
    except (RecursionError, ValueError, TypeError, OverflowError):
        return False
