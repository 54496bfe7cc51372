"""The routing simulator's per-step loop as it was before ``StepSimulator`` (commit f073e4d), frozen as a
test oracle: ``tests/test_step_simulator.py`` checks that the step-able simulator draws and decides exactly
as this did, episode by episode, for the policies that existed then. Not collected by pytest; never edit."""
from __future__ import annotations

import numpy as np

from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.routing.posterior import posteriors


def simulate_chunk(trim_model, policy, points: dict, N: int, rng, pool=None):
    """(correct, strong tokens, regenerations, steps, score draws, borrowed draws) of N episodes drawn
    from ``rng``; ``pool`` (a ScorePool) selects sequence mode."""
    tm = trim_model
    T = tm.max_steps
    pw, ps = tm.p_weak, tm.p_strong
    L = rng.choice(np.arange(1, T + 1), p=tm.length_pmf, size=N)
    # pre-draw all randomness per step so that every policy sees the same draws for the same seed
    state = np.where(rng.random(N) < pw, 0, 1).astype(np.int8)
    prior = np.tile(np.array([pw, 1 - pw, 0.0]), (N, 1))
    tokens = np.zeros(N)
    regens = np.zeros(N, dtype=np.int64)
    correct = np.zeros(N, dtype=bool)
    cap = getattr(policy, "cap", None)
    levels = np.full(N, cap.levels - 1 if cap is not None else 0, dtype=np.int64)
    probs = tm.obs.probs
    arrays = [points[s] for s in TRIM_STATES]
    mins = np.ones(N)  # sequence mode: min score of each episode's kept cheap steps
    draws = borrowed = 0
    for t in range(1, T + 1):
        alive = np.flatnonzero(L >= t)  # independent of the policy, so every policy sees the same draws
        if alive.size == 0:
            break
        n = alive.size
        u_obs = rng.random(n)
        k_tok = rng.choice(tm.token_values.size, p=tm.token_probs, size=n)
        u_s = rng.random(n)
        u_w = rng.random(n)
        st = state[alive]
        obs = np.empty((alive.size, 2))
        if pool is None:
            for s in range(3):
                m = st == s
                if m.any():
                    arr = arrays[s]
                    obs[m] = arr[np.minimum((u_obs[m] * len(arr)).astype(np.int64), len(arr) - 1)]
        else:
            obs[:, 0] = mins[alive]
            obs[:, 1], b = pool.draw(st, obs[:, 0], u_obs)
            draws += n
            borrowed += int(b.sum())
        costs = tm.token_values[k_tok]
        post = prior[alive]
        if getattr(policy, "needs_belief", False):
            post, _ = posteriors(post, probs, tm.obs_bins(obs))  # impossible observations keep the prior
        regen = np.asarray(policy.decide_many(post, t, costs, obs[:, 1], levels[alive]), dtype=bool)
        if cap is not None:
            regen &= levels[alive] - cap.units(costs) >= 0
            levels[alive] -= np.where(regen, cap.units(costs), 0)
        if pool is not None:  # a strong rewrite is not scored: only kept steps lower the minimum
            mins[alive] = np.where(regen, mins[alive], np.minimum(mins[alive], obs[:, 1]))
        tokens[alive] += np.where(regen, costs, 0.0)
        regens[alive] += regen
        # outcome of this step's action on the hidden state (before the next weak step)
        strong_ok = u_s < ps
        ok_now = np.where(regen, (st <= 1) & strong_ok, st == 0)
        ending = L[alive] == t
        correct[alive[ending]] = ok_now[ending]
        # next hidden state: the weak model writes step t+1 from a correct or a wrong prefix
        nxt = np.where(ok_now, np.where(u_w < pw, 0, 1), 2).astype(np.int8)
        state[alive] = nxt
        # filter prediction for the next step
        pC = post[:, 0]
        mCE = post[:, 0] + post[:, 1]
        x = np.where(regen, ps * mCE, pC)
        prior[alive] = np.stack([pw * x, (1 - pw) * x, 1 - x], axis=1)
    return correct, tokens, regens, np.minimum(L, T), draws, borrowed
