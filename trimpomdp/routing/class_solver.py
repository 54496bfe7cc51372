"""Solving a spec with difficulty classes: a point-based backward sweep over the 3K-state belief.

The structured solver (``routing.solver``) needs every prior on one segment of the 3-state simplex; with
K classes a prior has 2K - 1 free numbers. Step and token cost are still observed and the horizon is
finite, so the value of arriving at step t (its score seen) is a convex piecewise-linear function of the
belief, built backwards t = T..1 by point-based backups (``class_kernels``) at the beliefs the filter
actually reaches: they are collected by simulating the spec's world, first under random thresholds, then
under the policy just solved (with some random moves), and solved again. Every vector is the value of a
concrete plan, so the start value is a lower bound; the general MOMDP solver (``method="staged"``: the
routing MOMDP of ``routing.momdp`` by ``solvers.staged``) gives both bounds and cross-checks it.

The policy keeps the arrival vectors of each step (``class_policy``, one-step lookahead at the real cost).
Accuracy and strong tokens are predicted by simulating it in the spec's world (real labelled scores when
the spec names them): the belief space is too large for the structured solver's exact forward evaluation.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.routing import difficulty
from trimpomdp.routing.class_policy import ClassPomdpPolicy
from trimpomdp.routing.momdp import routing_momdp

#: questions simulated for a class policy's predicted accuracy and tokens (same seed for every lambda, so
#: a budget search compares policies on the same questions)
PREDICT_EPISODES = 20_000
PREDICT_SEED = 12345
#: the staged solver's stopping gap at the start belief, relative to the reward
RELATIVE_PRECISION = 1e-4
#: simulated questions whose beliefs become backup points, per round; at most this many points per step
SWEEP_EPISODES = 3000
MAX_POINTS = 600
#: rounds of (collect beliefs, sweep); share of random moves while collecting under the solved policy
ROUNDS = 3
EXPLORE = 0.15
#: simulated questions per prediction inside a budget search (the chosen lambda is predicted in full)
SEARCH_EPISODES = 5000


class PointCache:
    """Belief points shared by the solves of one budget search: the first solve collects them (all
    rounds), later ones sweep on them once (nearby lambdas reach nearby beliefs)."""

    def __init__(self):
        self.points: list | None = None


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
    from trimpomdp.solvers.staged import StagedSolver

    return StagedSolver(precision=precision, timeout=timeout, verbose=verbose).solve(m), "staged"


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


def _collect(tm, pts, policy, episodes: int, seed: int) -> list[np.ndarray]:
    """Posterior beliefs per step of ``episodes`` simulated questions: under random thresholds (``policy``
    None) or under ``policy`` with a share ``EXPLORE`` of random moves."""
    from trimpomdp.routing.simulator import StepSimulator

    rng = np.random.default_rng(seed)
    sim = StepSimulator(tm, pts, episodes, rng, need_belief=True)
    theta = rng.random(episodes)
    out: list[list[np.ndarray]] = [[] for _ in range(tm.max_steps)]
    while (batch := sim.observe()) is not None:
        t = int(batch.step[0])
        out[t - 1].append(batch.beliefs)
        if policy is None:
            regen = batch.scores < theta[batch.rows]
        else:
            regen = policy.decide_many(batch.beliefs, t, batch.costs)
            flip = rng.random(regen.size) < EXPLORE
            regen = np.where(flip, rng.random(regen.size) < 0.5, regen)
        sim.step(regen)
    return [np.vstack(b) if b else np.zeros((0, tm.n_hidden)) for b in out]


def _points(old, new: np.ndarray, rng) -> np.ndarray:
    """Distinct beliefs (rounded to 1e-9), at most ``MAX_POINTS`` of them (a random subset)."""
    B = new if old is None else np.vstack([old, new])
    B = np.unique(np.round(B, 9), axis=0)
    if B.shape[0] > MAX_POINTS:
        B = B[np.sort(rng.choice(B.shape[0], MAX_POINTS, replace=False))]
    return B


class _Model:
    """The arrays the backup kernel reads, built once per solve."""

    def __init__(self, tm):
        cl = tm.classes
        self.tm, self.n = tm, tm.n_hidden
        self.O = np.ascontiguousarray(tm.joint_obs())
        self.Tk, self.Tr = (np.ascontiguousarray(tm.joint_transition(a)) for a in (0, 1))
        self.rk = np.tile([1.0, 0.0, 0.0], cl.n)
        self.rr = difficulty.regenerate_reward(cl, tm.derailed_repair)
        self.h = tm.hazard

    def backup(self, lam: float, t: int, points: np.ndarray, G: np.ndarray, g: float):
        """(arrival, keep, regenerate) vectors of 0-based step t at ``points`` plus the corners (so every
        step has vectors wherever a belief may land), each set pruned to the vectors best at some point."""
        from trimpomdp.routing import class_kernels as CK

        tm = self.tm
        B = np.ascontiguousarray(np.vstack([np.eye(self.n), points]), dtype=np.float64)
        out = CK.backup_arrivals(B, self.Tk, self.Tr, self.O, np.ascontiguousarray(G), float(self.h[t]),
                                 float(tm.reward), self.rk, self.rr, float(g), float(lam), tm.token_values,
                                 tm.token_probs)
        return tuple(np.unique(np.round(V[np.unique((B @ V.T).argmax(axis=1))], 12), axis=0) for V in out)


def sweep(tm, lam: float, points: list[np.ndarray]):
    """Backward point-based backups at ``points[t]`` (one set per step): (arrival, keep, regenerate)
    vector sets per step."""
    mod = _Model(tm)
    G = np.zeros((0, tm.n_hidden))
    V, QK, QR = ([None] * tm.max_steps for _ in range(3))
    for t in range(tm.max_steps - 1, -1, -1):
        V[t], QK[t], QR[t] = mod.backup(lam, t, points[t], G, tm.discount)
        G = V[t]
    return V, QK, QR


def start_value(tm, values) -> float:
    """The value before step 1: E_o max_alpha (prior . O_o) alpha."""
    W = difficulty.first_prior(tm.classes)[:, None] * tm.joint_obs()  # (n, M)
    return float((values[0] @ W).max(axis=0).sum())


def solve_classes(tm, lam: float = 0.0, *, budget: str | None = None, evaluate: bool = True,
                  method: str = "sweep", timeout: float | None = None, episodes: int = PREDICT_EPISODES,
                  verbose: bool = False, seed: int = 0, cache: PointCache | None = None):
    """The routing policy of a spec with difficulty classes at price ``lam`` per strong token (``method``:
    "sweep", the backward sweep at simulated beliefs, or "staged", the general MOMDP solver)."""
    if lam < 0 or not np.isfinite(lam):
        raise TrimError(f"lambda must be a finite non-negative price per strong token, got {lam!r}")
    if method not in ("sweep", "staged"):
        raise TrimError(f"unknown class solver method {method!r}; expected 'sweep' or 'staged'")
    t0 = time.perf_counter()
    meta = {"lambda": float(lam), "budget": budget or f"lambda={lam:g}", "classes": tm.n_classes}
    pts_data = spec_points(tm)  # read once: the point collection and the prediction both draw from it
    if method == "staged":
        m = routing_momdp(tm, lam, token_phase=True)
        res, solver = _solve_momdp(m, RELATIVE_PRECISION * tm.reward, timeout, verbose)
        arrivals = arrival_values(m, res.policy)
        # Q vectors from one backup of the solved arrivals at the beliefs random thresholds reach; the
        # arrivals of the two-phase MOMDP carry the token phase's sqrt(gamma), so the move to them does too
        mod = _Model(tm)
        pts = _collect(tm, pts_data, None, SWEEP_EPISODES, seed)
        rng = np.random.default_rng(seed)
        sets = [mod.backup(lam, t, _points(None, pts[t], rng),
                           arrivals[t + 1] if t + 1 < tm.max_steps else np.zeros((0, tm.n_hidden)),
                           math.sqrt(tm.discount))[1:] for t in range(tm.max_steps)]
        pol = ClassPomdpPolicy(tm, lam, [k for k, _ in sets], [r for _, r in sets],
                               predicted={"value": float(res.lower) / tm.discount})
        meta.update(solver=solver, bounds=[float(res.lower), float(res.upper)])
    elif cache is not None and cache.points is not None:
        V, QK, QR = sweep(tm, lam, cache.points)
        pol = ClassPomdpPolicy(tm, lam, QK, QR, predicted={"value": start_value(tm, V)})
        meta.update(solver="sweep", rounds=[pol.predicted["value"]], shared_points=True)
    else:
        rng = np.random.default_rng(seed)
        pol, pts, history = None, [None] * tm.max_steps, []
        for r in range(ROUNDS):
            new = _collect(tm, pts_data, pol, SWEEP_EPISODES, seed + r)
            pts = [_points(pts[t], new[t], rng) for t in range(tm.max_steps)]
            V, QK, QR = sweep(tm, lam, pts)
            history.append(start_value(tm, V))
            pol = ClassPomdpPolicy(tm, lam, QK, QR, predicted={"value": history[-1]})
            if verbose:
                print(f"round {r + 1}: start value {history[-1]:.6f}, {sum(v.shape[0] for v in QK + QR)} "
                      f"Q vectors, {sum(p.shape[0] for p in pts)} points, {time.perf_counter() - t0:.2f} s",
                      file=sys.stderr)
        meta.update(solver="sweep", rounds=[float(v) for v in history])
        if cache is not None:
            cache.points = pts
    meta.update(solve_seconds=time.perf_counter() - t0, alpha_vectors=int(sum(v.shape[0] for v in pol.keep + pol.regen)))
    pol.meta = meta
    pol.name = f"pomdp:{meta['budget']}"
    if evaluate:
        from trimpomdp.routing.simulator import simulate_summary

        t1 = time.perf_counter()
        s = simulate_summary(tm, pol, pts_data, episodes=episodes, seed=PREDICT_SEED)
        pol.predicted.update(accuracy=s["accuracy"], strong_tokens=s["strong_tokens"],
                             regenerations=s["regenerations"], eval_seconds=time.perf_counter() - t1,
                             eval_episodes=episodes)
    return pol
