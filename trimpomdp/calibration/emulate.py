"""Held-out prediction: the reference's POMDP runs simulated in the calibrated world.

The calibrated ``ClassModel`` is the world: each simulated question draws its difficulty class (its cheap
and strong step accuracies), solutions follow the calibrated length distribution, a derailed step's PRM
score is a fresh error's with probability ``alpha``, and a rewrite costs the calibrated
strong tokens per rewrite. The policy is the reference's own (``routing.reference``): its formulation
solved at the run's cost per token, run with its memoryless decode rule and closeness gate. The routing
simulator's ``StepSimulator`` runs the dynamics (independent pair draws, as the calibration assumes).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.routing.simulator import StepSimulator, decide


class WorldSimulator(StepSimulator):
    """``StepSimulator`` whose questions each draw a difficulty class of ``world``."""

    def __init__(self, world, spec, points, n, rng):
        self.world = world
        super().__init__(spec, points, n, rng)

    def _new_episodes(self, rows):
        k = self.rng.choice(self.world.n_classes, p=self.world.weights, size=rows.size)
        self.pw[rows] = self.world.p_weak[k]
        self.ps[rows] = self.world.p_strong[k]
        super()._new_episodes(rows)


#: size of the derailed pool, in multiples of the labelled derailed points (any alpha in [0, 1] fits)
POOL_FACTOR = 4


def world_points(points: dict, alpha: float, seed: int = 0) -> dict:
    """Labelled points whose derailed pool scores like a fresh error with weight ``alpha``: those pairs
    keep a derailed point's min-earlier coordinate (the history is still derailed) and take a fresh
    error's current score. The pool has a fixed size, so alpha near 1 costs no more memory."""
    C, E, D = (np.asarray(points[s]) for s in TRIM_STATES)
    if alpha <= 0:
        return dict(points)
    n = POOL_FACTOR * len(D)
    k = int(round(alpha * n))
    rng = np.random.default_rng(seed)
    mixed = np.stack([D[rng.integers(0, len(D), k), 0], E[rng.integers(0, len(E), k), 1]], axis=1)
    pool = np.concatenate([D[rng.integers(0, len(D), n - k)], mixed])
    return {TRIM_STATES[0]: C, TRIM_STATES[1]: E, TRIM_STATES[2]: pool}


def world_spec(world, spec):
    """The spec the simulator runs: the calibrated lengths and strong tokens per rewrite."""
    T = spec.max_steps
    pmf = np.zeros(T)
    n = min(T, world.length_pmf.size)
    pmf[:n] = world.length_pmf[:n]
    pmf[-1] += world.length_pmf[n:].sum()
    return dataclasses.replace(spec, length_pmf=pmf, token_values=np.array([world.rewrite_tokens]),
                               token_probs=np.array([1.0]), obs_truth=None)


def run_policy(world, spec, points, policy, episodes: int = 20_000, seed: int = 0) -> dict:
    """Accuracy, strong tokens and strong calls per question of ``policy`` in the calibrated world."""
    sim = WorldSimulator(world, world_spec(world, spec), world_points(points, world.alpha, seed), episodes,
                         np.random.default_rng(seed))
    state = None
    while True:
        batch = sim.observe()
        if batch is None:
            break
        regen, state = decide(policy, batch, state)
        sim.step(regen)
    correct, tokens, regens, _ = sim.results()
    return {"accuracy": float(correct.mean()), "strong_tokens": float(tokens.mean()),
            "strong_calls": float(regens.mean())}


def predict_reference_runs(world, spec, points, runs, episodes: int = 20_000, seed: int = 0) -> list[dict]:
    """Predicted figures for every POMDP run (its ``knob`` is the reference's cost per token)."""
    from trimpomdp.routing.reference import ReferencePolicy, reference_formulation
    from trimpomdp.routing.solver import solve_trim

    ref = reference_formulation(spec)
    out = []
    for r in runs:
        if r.family != "pomdp":
            continue
        pol = ReferencePolicy(solve_trim(ref, lam=float(r.knob), evaluate=False))
        out.append(dict(run_policy(world, spec, points, pol, episodes, seed), run=r.name))
    return out
