"""Solving a spec with difficulty classes: the routing MOMDP by the general point-based solver.

The structured solver (``routing.solver``) needs every prior on one segment of the 3-state simplex; with
K classes a prior has 2K - 1 free numbers, so the model is exported as a MOMDP (``routing.momdp``: the step
and the token bin are visible, (class, C/E/D) hidden) and solved by the finite-horizon point-based solver
for acyclic MOMDPs (``solvers.staged``), falling back to SARSOP. The policy keeps the value vectors of each
step's arrival (``class_policy``). Its accuracy and strong tokens are predicted by simulating it in the
spec's world (real labelled scores when the spec names them), since the belief space is too large for the
structured solver's exact forward evaluation.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.routing.class_policy import ClassPomdpPolicy
from trimpomdp.routing.momdp import routing_momdp

#: questions simulated for a class policy's predicted accuracy and tokens (same seed for every lambda, so
#: a budget search compares policies on the same questions)
PREDICT_EPISODES = 20_000
PREDICT_SEED = 12345
#: the solver's stopping gap at the start belief, relative to the reward
RELATIVE_PRECISION = 1e-4


def spec_points(tm) -> dict:
    """Labelled scores to simulate ``tm``'s world: the spec's real points when it names them, else points at
    the bin centres in proportion to the table (so draws follow the table exactly)."""
    if tm.points_path and tm.source:
        from trimpomdp.routing.spec import load_observation_points

        p = tm.absolute_points_path(Path(tm.source).parent)
        if p is not None and p.exists():
            return load_observation_points(p)
    P = np.array(tm.observation_truth(), dtype=np.float64)
    a = float(tm.derailed_as_error)
    if a:  # the simulator mixes fresh-error scores into derailed steps itself: undo the table's mixing
        P[2] = np.clip((P[2] - a * P[1]) / (1.0 - a), 0.0, None)
        P[2] /= P[2].sum()
    c = np.asarray(tm.obs.centers, dtype=np.float64)
    pts = {}
    for i, s in enumerate(TRIM_STATES):
        n = np.maximum(np.round(P[i] * 4000).astype(np.int64), 0)
        rows = np.repeat(np.arange(c.shape[0]), n)
        xy = c[rows] if c.shape[1] == 2 else np.column_stack([np.ones(rows.size), c[rows, 0]])
        pts[s] = np.clip(xy, 0.0, 1.0)
    return pts


def _solve_momdp(m, precision: float, timeout: float | None, verbose: bool):
    try:
        from trimpomdp.solvers.staged import StagedSolver
    except ImportError:  # pragma: no cover - the staged solver ships with the package
        StagedSolver = None
    if StagedSolver is not None:
        return StagedSolver(precision=precision, timeout=timeout, verbose=verbose).solve(m), "staged"
    from trimpomdp.solvers.sarsop import SARSOPSolver

    return SARSOPSolver(precision=precision, timeout=timeout, verbose=verbose).solve(m), "sarsop"


def arrival_values(m, policy) -> list[np.ndarray]:
    """The solved policy's vectors of each step's arrival ``t<t>_pre`` (list over t = 1..T)."""
    names = list(m.visible)
    out = []
    t = 1
    while f"t{t}_pre" in names:
        x = names.index(f"t{t}_pre")
        V = policy.alphas[policy.visible == x]
        if V.shape[0] == 0:
            raise TrimError(f"the solver left step {t}'s arrival without a value vector; solve longer")
        out.append(V)
        t += 1
    return out


def solve_classes(tm, lam: float = 0.0, *, budget: str | None = None, evaluate: bool = True,
                  timeout: float | None = None, episodes: int = PREDICT_EPISODES, verbose: bool = False):
    """The routing policy of a spec with difficulty classes at price ``lam`` per strong token."""
    if lam < 0 or not np.isfinite(lam):
        raise TrimError(f"lambda must be a finite non-negative price per strong token, got {lam!r}")
    t0 = time.perf_counter()
    m = routing_momdp(tm, lam, token_phase=True)
    res, solver = _solve_momdp(m, RELATIVE_PRECISION * tm.reward, timeout, verbose)
    values = arrival_values(m, res.policy)
    solve_s = time.perf_counter() - t0
    pol = ClassPomdpPolicy(tm, lam, values, g=math.sqrt(tm.discount),
                           predicted={"value": float(res.lower) / tm.discount},
                           meta={"lambda": float(lam), "budget": budget or f"lambda={lam:g}",
                                 "solve_seconds": solve_s, "solver": solver,
                                 "bounds": [float(res.lower), float(res.upper)],
                                 "alpha_vectors": int(sum(v.shape[0] for v in values)),
                                 "classes": tm.n_classes})
    if evaluate:
        from trimpomdp.routing.simulator import simulate_summary

        t1 = time.perf_counter()
        s = simulate_summary(tm, pol, spec_points(tm), episodes=episodes, seed=PREDICT_SEED)
        pol.predicted.update(accuracy=s["accuracy"], strong_tokens=s["strong_tokens"],
                             regenerations=s["regenerations"], eval_seconds=time.perf_counter() - t1,
                             eval_episodes=episodes)
    return pol
