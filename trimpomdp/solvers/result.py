"""What every solver returns: the policy plus the bounds and costs needed to judge it."""
from __future__ import annotations

from dataclasses import dataclass, field

from trimpomdp.policy import AlphaVectorPolicy


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
