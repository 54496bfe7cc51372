"""Held-out prediction: the reference's POMDP runs simulated in the calibrated world.

The calibrated ``ClassModel`` is the world: each simulated question draws its difficulty class (its cheap
and strong step accuracies) and a length; each cheap step draws its token count (lognormal, longer when it
is a fresh error) and the strong model's version of a step has the calibrated length rule. PRM scores are
real: a step's current score comes from labelled points of its hidden state whose min-earlier coordinate
lies in the bin of the episode's running minimum (``routing.simulator.ScorePool``, sequence draws; a
derailed step scores as a fresh error with probability ``alpha``; a strong rewrite in a derailed solution
repairs it with probability ``recover``, as the exact evaluation has it). The running minimum covers every step
that stays in the solution, strong rewrites included (scored as the state they leave: correct, a fresh
error, or still derailed), because the reference's PRM re-reads the whole history at every step.

The policy is any ``decide(mins, scores, step, draft_tokens) -> regenerate`` rule; for the POMDP runs it is
the reference's own (``routing.reference``): its formulation solved at the run's cost per token, run
with its memoryless decode rule on its KDE density, closeness gate and belief snapping, charged at the
draft's token bin.
"""
from __future__ import annotations

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.routing.simulator import ScorePool

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


def run_world(world, decide, points: dict, episodes: int = 20_000, seed: int = 0,
              rewrites_score_correct: bool = False) -> dict:
    """Accuracy, strong tokens and strong calls per question of the rule ``decide`` in the world, and the
    same per difficulty class (``by_class``: where the policy spends, which the run totals hide).
    ``rewrites_score_correct``: a sensitivity check, not a fitted choice -- every strong rewrite scores
    like a correct step whatever its state. How the PRM scores a rewrite that stays wrong is fixed by no
    fitted run (only a policy that reads the running minimum depends on it), so this bounds that assumption."""
    if not world.has_token_model:
        raise TrimError("the world needs a token model (calibrate with a step-length spread)")
    rng = np.random.default_rng(seed)
    pool = ScorePool(world_points(points, world.alpha, seed))
    N, T = int(episodes), world.length_pmf.size
    k = rng.choice(world.n_classes, p=world.weights, size=N)
    pw, ps = world.p_weak[k], world.p_strong[k]
    L = rng.choice(np.arange(1, T + 1), p=world.length_pmf, size=N)
    state = np.where(rng.random(N) < pw, 0, 1)
    mins, tokens, calls = np.ones(N), np.zeros(N), np.zeros(N)
    correct = np.zeros(N, dtype=bool)
    for t in range(1, T + 1):
        a = np.flatnonzero(L >= t)
        if a.size == 0:
            break
        n, st, m = a.size, state[a], mins[a]
        draft = world.draw_cheap_tokens(st, rng)
        score, _ = pool.draw(st, m, rng.random(n))
        u_s, u_w, u_r, u_d = rng.random(n), rng.random(n), rng.random(n), rng.random(n)
        regen = np.asarray(decide(m, score, t, draft), dtype=bool)
        strong_ok = u_s < ps[a]
        fixable = (st <= 1) | (u_d < world.recover)  # a rewrite in a derailed solution repairs it w.p. recover
        ok = np.where(regen, fixable & strong_ok, st == 0)
        # the step left in the solution is scored by the PRM at the next step's read
        rewritten = np.where(~fixable, 2, np.where(strong_ok, 0, 1)) * (not rewrites_score_correct)
        r_score, _ = pool.draw(rewritten, m, u_r)
        mins[a] = np.minimum(m, np.where(regen, r_score, score))
        tokens[a] += np.where(regen, world.strong_tokens(draft), 0.0)
        calls[a] += regen
        end = L[a] == t
        correct[a[end]] = ok[end]
        state[a] = np.where(ok, np.where(u_w < pw[a], 0, 1), 2)
    by_class = [{"weight": float(np.mean(k == c)), "accuracy": float(correct[k == c].mean()),
                 "strong_tokens": float(tokens[k == c].mean()), "strong_calls": float(calls[k == c].mean())}
                if np.any(k == c) else None for c in range(world.n_classes)]
    return {"accuracy": float(correct.mean()), "strong_tokens": float(tokens.mean()),
            "strong_calls": float(calls.mean()), "by_class": by_class}


def predict_reference_runs(world, spec, points, runs, episodes: int = 20_000, seed: int = 0,
                           length_pmf=None, density=None, rewrites_score_correct: bool = False) -> list[dict]:
    """Predicted figures for every POMDP run (its ``knob`` is the reference's cost per token).
    ``length_pmf``: the reference's solution lengths (default the world's); ``density``: its KDE
    (``routing.reference.ReflectedDensity``; default built from ``points``)."""
    from trimpomdp.routing.reference import ReferencePolicy, ReflectedDensity, reference_formulation
    from trimpomdp.routing.solver import solve_trim

    ref = reference_formulation(spec, length_pmf=world.length_pmf if length_pmf is None else length_pmf)
    density = ReflectedDensity(points) if density is None else density
    out = []
    for r in runs:
        if r.family != "pomdp":
            continue
        pol = ReferencePolicy(solve_trim(ref, lam=float(r.knob), evaluate=False), density=density)
        out.append(dict(run_world(world, pol.regenerate, points, episodes, seed, rewrites_score_correct),
                        run=r.name))
    return out
