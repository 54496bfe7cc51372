"""Routing policies by spec string: the one place that knows every policy kind.

``load_policy("pomdp:route.npz")``, ``"pomdp:lambda=0.15"`` / ``"pomdp:mean=50"`` / ``"pomdp:cap=2regen"``
(solved now on the given routing model), ``"threshold:0.5"``, ``"weak"``, ``"strong"``. The command line
(``decode --policy``, ``simulate-routing --policy``) and ``trimpomdp.pipeline`` go through it.
"""
from __future__ import annotations

from pathlib import Path

from trimpomdp.errors import TrimError
from trimpomdp.routing.budgets import parse_budget
from trimpomdp.routing.policies import PomdpPolicy, RoutingPolicy, StrongPolicy, ThresholdPolicy, WeakPolicy
from trimpomdp.routing.solver import solve_budget


def load_policy(spec_str: str, trim_model=None) -> RoutingPolicy:
    """'pomdp:PATH' | 'pomdp:lambda=0.1' (solved on ``trim_model``) | 'threshold:0.5' | 'weak' | 'strong'."""
    s = spec_str.strip()
    kind, _, arg = s.partition(":")
    kind = kind.lower()
    if kind == "weak" and not arg:
        return WeakPolicy()
    if kind == "strong" and not arg:
        return StrongPolicy()
    if kind in ("threshold", "thr"):
        try:
            return ThresholdPolicy(float(arg))
        except ValueError:
            raise TrimError(f"policy {spec_str!r}: expected threshold:<score in [0, 1]>") from None
    if kind == "pomdp" and arg:
        if Path(arg).exists() or arg.endswith(".npz"):
            pol = PomdpPolicy.load(arg)
            if trim_model is not None and pol.trim_model.fingerprint() != trim_model.fingerprint():
                solved_for = pol.meta.get("spec_source") or pol.meta.get("spec_path")
                if solved_for and trim_model.source and _same_file(solved_for, trim_model.source):
                    raise TrimError(
                        f"{arg}: field 'model_fingerprint': the policy was solved for {trim_model.source}, "
                        f"which has changed since (fingerprint {pol.trim_model.fingerprint()} -> "
                        f"{trim_model.fingerprint()}); re-solve it with trimpomdp solve"
                    )
                pol.meta["model_mismatch"] = True  # solved for another spec: a deliberate cross-model run
            return pol
        if "=" in arg:
            if trim_model is None:
                raise TrimError(f"policy {spec_str!r}: solving a budget needs a TRIM model")
            return solve_budget(trim_model, parse_budget(arg))
    raise TrimError(
        f"unknown policy {spec_str!r}; expected pomdp:PATH, pomdp:lambda=X, threshold:K, weak or strong"
    )


def _same_file(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
