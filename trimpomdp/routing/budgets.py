"""Budgets a user can state: a price per strong token, a target mean of strong tokens, or a hard cap.

``lambda=0.15`` solves at that price; ``mean=200`` finds the price by bisection in log space, evaluating
each candidate policy exactly in the model; ``cap=3regen`` / ``cap=300tokens`` makes the remaining budget an
observed state so that no question ever exceeds it (combine with a price: ``cap=300tokens,lambda=0.05``).
Sweeps: ``lambda=0.01:1:20`` (log-spaced) or ``mean=50,100,200``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from trimpomdp.errors import TrimError


@dataclass(frozen=True)
class Cap:
    """A hard per-question cap: ``kind`` 'regen' (count of regenerations) or 'tokens' (strong tokens)."""

    kind: str
    limit: float
    unit: float = 1.0  # budget unit for token caps (costs are rounded *up* to units, so the cap holds)

    @property
    def levels(self) -> int:
        return (
            int(self.limit) + 1
            if self.kind == "regen"
            else int(math.floor(self.limit / self.unit + 1e-9)) + 1
        )

    def units(self, cost_tokens) -> np.ndarray:
        c = np.asarray(cost_tokens, dtype=np.float64)
        if self.kind == "regen":
            return np.ones(c.shape, dtype=np.int64)
        return np.ceil(c / self.unit - 1e-9).astype(np.int64)

    def to_str(self) -> str:
        return f"cap={int(self.limit)}regen" if self.kind == "regen" else f"cap={self.limit:g}tokens"


@dataclass(frozen=True)
class Budget:
    """One parsed budget: exactly one of ``lam`` / ``mean`` (or neither with a cap: lambda 0)."""

    lam: float | None = None
    mean: float | None = None
    cap: Cap | None = None

    def describe(self) -> str:
        parts = []
        if self.mean is not None:
            parts.append(f"mean={self.mean:g}")
        if self.lam is not None:
            parts.append(f"lambda={self.lam:g}")
        if self.cap is not None:
            parts.append(self.cap.to_str())
        return ",".join(parts)


_CAP = re.compile(r"^\s*(\d+(?:\.\d*)?)\s*(regen|regens|regenerations|tokens|tok)\s*$", re.I)


def parse_cap(text: str, max_levels: int = 16) -> Cap:
    m = _CAP.match(text)
    if not m:
        raise TrimError(f"--budget cap={text!r}: expected cap=<K>regen or cap=<N>tokens")
    value, kind = float(m.group(1)), m.group(2).lower()
    if kind.startswith("regen"):
        if value != int(value) or value > 1000:
            raise TrimError(f"--budget cap={text!r}: a regeneration cap is an integer <= 1000")
        return Cap("regen", int(value))
    if value <= 0:
        return Cap("tokens", 0.0, 1.0)
    unit = max(1.0, value / max_levels)
    return Cap("tokens", value, unit)


def _number(key, text) -> float:
    try:
        v = float(text)
    except ValueError:
        raise TrimError(f"--budget {key}={text!r}: expected a number") from None
    if not math.isfinite(v) or v < 0:
        raise TrimError(f"--budget {key}={text!r}: expected a finite non-negative number")
    return v


def parse_budget(text: str) -> Budget:
    """Parse ``lambda=X`` | ``mean=B`` | ``cap=...``, comma-combined (a cap with a lambda or a mean)."""
    lam = mean = cap = None
    if not text or not text.strip():
        raise TrimError("--budget: empty; expected lambda=<price>, mean=<tokens> or cap=<K>regen|<N>tokens")
    for part in text.split(","):
        if "=" not in part:
            raise TrimError(f"--budget {part!r}: expected key=value (lambda=, mean=, cap=)")
        key, value = (s.strip() for s in part.split("=", 1))
        key = key.lower()
        if key in ("lambda", "lam", "price"):
            lam = _number("lambda", value)
        elif key == "mean":
            mean = _number("mean", value)
        elif key == "cap":
            cap = parse_cap(value)
        else:
            raise TrimError(f"--budget: unknown key {key!r}; expected lambda, mean or cap")
    if lam is not None and mean is not None:
        raise TrimError("--budget: give either lambda= or mean=, not both")
    if lam is None and mean is None and cap is None:
        raise TrimError("--budget: expected lambda=, mean= or cap=")
    return Budget(lam=lam, mean=mean, cap=cap)


def mean_out_of_reach(target: float, most: float) -> str:
    """What ``solve`` says when no policy of the spec spends a mean of ``target`` strong tokens: the
    reachable range (0, never regenerating, up to ``most``, the spend as the price goes to 0)."""
    return (f"a mean of {target:g} is not reachable: this spec's policies spend 0 to {most:.4g} strong tokens "
            f"per question (0 never regenerates; {most:.4g} as the price per token goes to 0); solved for "
            f"{most:.4g}")


def parse_sweep(text: str) -> list[Budget]:
    """``lambda=lo:hi:n`` (log-spaced), ``lambda=a,b,c``, ``mean=a,b,c`` or ``mean=lo:hi:n`` (linear)."""
    if "=" not in text:
        raise TrimError(f"--sweep {text!r}: expected lambda=lo:hi:n or mean=a,b,c")
    key, value = (s.strip() for s in text.split("=", 1))
    key = key.lower()
    if key not in ("lambda", "lam", "mean"):
        raise TrimError(f"--sweep: unknown key {key!r}; expected lambda or mean")
    if ":" in value:
        parts = value.split(":")
        if len(parts) != 3:
            raise TrimError(f"--sweep {text!r}: a range is lo:hi:n")
        lo, hi = _number(key, parts[0]), _number(key, parts[1])
        try:
            n = int(parts[2])
        except ValueError:
            raise TrimError(f"--sweep {text!r}: n must be an integer") from None
        if n < 1 or hi < lo:
            raise TrimError(f"--sweep {text!r}: need n >= 1 and lo <= hi")
        if key.startswith("lam"):
            if lo <= 0:
                raise TrimError(f"--sweep {text!r}: a log-spaced lambda range needs lo > 0")
            vals = np.geomspace(lo, hi, n)
        else:
            vals = np.linspace(lo, hi, n)
    else:
        vals = [_number(key, v) for v in value.split(",") if v.strip()]
        if not vals:
            raise TrimError(f"--sweep {text!r}: no values")
    if key.startswith("lam"):
        return [Budget(lam=float(v)) for v in vals]
    return [Budget(mean=float(v)) for v in vals]
