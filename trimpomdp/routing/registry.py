"""Routing policies by spec string: the one place that knows every policy kind.

``load_policy("pomdp:route.npz")``, ``"pomdp:lambda=0.15"`` / ``"pomdp:mean=50"`` / ``"pomdp:cap=2regen"``
(solved now on the given routing model), ``"threshold:0.5"``, ``"weak"``, ``"strong"``, the learned routers
``"agg:FILE"`` / ``"seq:FILE"`` (``trimpomdp train-router``), the ablation ``"takeover:<any other spec>"``
and the query-level baselines ``"query:0.4"`` and ``"query-oracle"`` (simulation only). The command line
(``decode --policy``, ``simulate-routing --policy``/``--sweep``) and ``trimpomdp.pipeline`` go through it.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.routing.budgets import parse_budget
from trimpomdp.routing.policies import PomdpPolicy, RoutingPolicy, StrongPolicy, ThresholdPolicy, WeakPolicy
from trimpomdp.routing.solver import solve_budget

#: every spec form, for error messages and help texts
KINDS = ("pomdp:PATH", "pomdp:lambda=X", "pomdp:mean=B", "threshold:K", "agg:FILE", "seq:FILE",
         "takeover:<policy>", "query:K", "query-oracle", "weak", "strong")
#: sweepable families (``--sweep``)
FAMILIES = ("pomdp:lambda=lo:hi:n", "pomdp:mean=a,b", "threshold:lo:hi:n", "threshold:a,b", "query:lo:hi:n",
            "agg:FILE,FILE", "seq:FILE,FILE", "takeover:<family>")


def load_policy_file(path):
    """A solved routing policy file: ``PomdpPolicy`` or, for a spec with difficulty classes,
    ``ClassPomdpPolicy`` (told apart by the file's format header)."""
    from trimpomdp.artifacts import load_npz
    from trimpomdp.routing.class_policy import FORMAT as CLASS_FORMAT, ClassPomdpPolicy

    _, meta = load_npz(path)
    return ClassPomdpPolicy.load(path) if meta.get("format") == CLASS_FORMAT else PomdpPolicy.load(path)


def load_policy(spec_str: str, trim_model=None) -> RoutingPolicy:
    """A policy from its spec string (``KINDS``); budgets are solved on ``trim_model``, and a learned
    router's file must have been trained on it (same fingerprint) when one is given."""
    s = spec_str.strip()
    kind, _, arg = s.partition(":")
    kind = kind.lower()
    if kind == "weak" and not arg:
        return WeakPolicy()
    if kind == "strong" and not arg:
        return StrongPolicy()
    if kind in ("threshold", "thr"):
        return ThresholdPolicy(_number(arg, spec_str, "threshold:<score in [0, 1]>"))
    if kind == "takeover" and arg:
        from trimpomdp.routing.baselines import TakeoverPolicy

        return TakeoverPolicy(load_policy(arg, trim_model))
    if kind == "query" and arg:
        from trimpomdp.routing.baselines import QueryPolicy

        return QueryPolicy(_number(arg, spec_str, "query:<first-step score in [0, 1]>"))
    if kind in ("query-oracle", "oracle") and not arg:
        from trimpomdp.routing.baselines import OracleQueryPolicy

        return OracleQueryPolicy()
    if kind in ("agg", "seq") and arg:
        from trimpomdp.learned.policy import load_router

        return load_router(arg, kind, trim_model)
    if kind == "pomdp" and arg:
        if Path(arg).exists() or arg.endswith(".npz"):
            pol = load_policy_file(arg)
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
    raise TrimError(f"unknown policy {spec_str!r}; expected {', '.join(KINDS)}")


def family_policies(trim_model, sweep: str) -> list:
    """The policies of a ``--sweep`` family (``FAMILIES``): 'pomdp:lambda=lo:hi:n', 'pomdp:mean=a,b',
    'threshold:lo:hi:n' or 'threshold:a,b', 'query:lo:hi:n' or 'query:a,b', 'agg:F1,F2', 'seq:F1,F2', and
    'takeover:<any of these>' (each member of the family under full takeover)."""
    from trimpomdp.routing.budgets import parse_sweep

    kind, _, arg = sweep.strip().partition(":")
    kind = kind.lower()
    if kind == "takeover" and arg:
        from trimpomdp.routing.baselines import TakeoverPolicy

        return [TakeoverPolicy(p) for p in family_policies(trim_model, arg)]
    if kind == "pomdp" and arg:
        return [solve_budget(trim_model, b) for b in parse_sweep(arg)]
    if kind in ("threshold", "thr", "query"):
        make = ThresholdPolicy if kind != "query" else None
        if make is None:
            from trimpomdp.routing.baselines import QueryPolicy as make
        return [make(float(k)) for k in _grid(arg, sweep, kind)]
    if kind in ("agg", "seq") and arg:
        return [load_policy(f"{kind}:{f.strip()}", trim_model) for f in arg.split(",") if f.strip()]
    raise TrimError(f"--sweep {sweep!r}: expected one of {', '.join(FAMILIES)}")


def _grid(arg: str, sweep: str, kind: str) -> list[float]:
    """'lo:hi:n' (n evenly spaced values) or 'a,b,c'."""
    try:
        if arg.count(":") == 2:
            lo, hi, n = arg.split(":")
            if int(n) < 1:
                raise ValueError
            return [float(v) for v in np.linspace(float(lo), float(hi), int(n))]
        vals = [float(v) for v in arg.split(",") if v.strip()]
        if not vals:
            raise ValueError
        return vals
    except ValueError:
        raise TrimError(f"--sweep {sweep!r}: expected {kind}:lo:hi:n or {kind}:a,b,c") from None


def _number(arg: str, spec_str: str, expected: str) -> float:
    try:
        return float(arg)
    except ValueError:
        raise TrimError(f"policy {spec_str!r}: expected {expected}") from None


def _same_file(a, b) -> bool:
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False
