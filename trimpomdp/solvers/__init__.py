"""Offline POMDP solvers: point-based SARSOP, QMDP/FIB bounds, and an exact oracle for small models."""
from trimpomdp.solvers.result import SolveResult

__all__ = ["SolveResult"]
