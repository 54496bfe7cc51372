"""What every solver returns: the policy plus the bounds and costs needed to judge it."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from trimpomdp.errors import ModelError
from trimpomdp.policies.alpha import AlphaVectorPolicy

#: relative slack allowed between a lower and an upper bound computed along different float paths
CROSS_TOL = 1e-6


def check_options(precision, timeout, max_iterations, memory_mb) -> None:
    """The options every point-based solver takes, checked the same way (``ModelError`` naming the option)."""
    if precision <= 0:
        raise ModelError(f"precision must be positive, got {precision}")
    if timeout is not None and timeout <= 0:
        raise ModelError(f"timeout must be positive, got {timeout}")
    if max_iterations is not None and max_iterations < 0:
        raise ModelError(f"max_iterations must be >= 0, got {max_iterations}")
    if memory_mb is not None and memory_mb <= 0:
        raise ModelError(f"memory_mb must be positive, got {memory_mb}")


def check_bounds(lower: float, upper: float, name: str = "") -> None:
    """Raise ``ModelError`` when a solve's bounds are meaningless: not finite, or lower above upper.

    Solvers check models before solving (``POMDP.check_value_finite``); this is the last guard, so that
    crossed or infinite bounds are never reported as a result.
    """
    where = f"{name or 'model'}: "
    if not (math.isfinite(lower) and math.isfinite(upper)):
        raise ModelError(f"{where}the solver's bounds are not finite (lower {lower:.6g}, upper {upper:.6g}); "
                         "the value may be unbounded")
    if lower > upper + CROSS_TOL * max(1.0, abs(upper)):
        raise ModelError(f"{where}the solver's lower bound {lower:.6g} exceeds its upper bound {upper:.6g}, "
                         "so neither can be trusted (numerical trouble)")


@dataclass
class SolveResult:
    """``lower``/``upper`` bound the optimal value at the initial belief; times are in seconds.

    ``history`` holds one dict per progress report (time, trials, backups, lower, upper, alphas, beliefs)
    so that callers can plot convergence or read the time at which a bound was first reached.
    """

    policy: AlphaVectorPolicy
    lower: float
    upper: float
    solve_seconds: float
    jit_seconds: float = 0.0
    alphas: int = 0
    beliefs: int = 0
    iterations: int = 0
    converged: bool = False
    history: list = field(default_factory=list)

    def check(self, name: str = "") -> "SolveResult":
        """``check_bounds`` on this result; returns it."""
        check_bounds(self.lower, self.upper, name)
        return self

    @property
    def gap(self) -> float:
        return self.upper - self.lower

    def summary(self) -> dict:
        return {
            "lower": self.lower, "upper": self.upper, "gap": self.gap,
            "solve_seconds": self.solve_seconds, "jit_seconds": self.jit_seconds,
            "alphas": self.alphas, "beliefs": self.beliefs, "iterations": self.iterations,
            "converged": self.converged,
        }
