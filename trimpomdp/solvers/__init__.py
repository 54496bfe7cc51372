"""Offline POMDP solvers: point-based SARSOP, the staged solver for finite-horizon (acyclic) MOMDPs, QMDP/FIB
bounds, and an exact oracle for small models.

Solvers are imported lazily so that ``import trimpomdp.solvers`` does not pay for numba start-up.
"""
from importlib import import_module

from trimpomdp.solvers.result import SolveResult

_LAZY = {
    "SARSOPSolver": "trimpomdp.solvers.sarsop",
    "QMDPSolver": "trimpomdp.solvers.bounds",
    "ExactSolver": "trimpomdp.solvers.exact",
    "StagedSolver": "trimpomdp.solvers.staged",
}

__all__ = ["SolveResult", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trimpomdp.solvers' has no attribute {name!r}")
