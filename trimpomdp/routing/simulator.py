"""Routing simulator: hidden states follow the model, PRM observations are resampled from REAL points.

Each step's observation pair is drawn independently, given the current hidden state, from the shared
ProcessBench points of that state (``prm_obs_processbench_math.npz``) -- the same conditional-independence
assumption the reference's observation model makes; the min-earlier-score coordinate is therefore not
forced to be coherent along an episode. Solution lengths come from the spec's length distribution and
the strong tokens of a regeneration from its token distribution (a step's regeneration cost is the strong
tokens drawn for it; the policy sees that same cost). Vectorised over episodes and seeded.

Episodes run in chunks of ``CHUNK`` (chunk k > 0 draws from ``default_rng([seed, k])``, chunk 0 from
``default_rng(seed)``), so the working memory does not grow with the episode count; ``simulate_summary``
keeps only running totals and is what the CLI uses. At most ``MAX_EPISODES`` episodes per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trimpomdp.interfaces import BatchRoutingPolicy
from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.resource_limits import check_episodes

#: episodes simulated at once (about 300 bytes of working memory each)
CHUNK = 1 << 20


@dataclass
class SimResult:
    """Per-episode outcomes of one policy."""

    name: str
    correct: np.ndarray  # bool (N,)
    strong_tokens: np.ndarray  # float (N,)
    regenerations: np.ndarray  # int (N,)
    steps: np.ndarray  # int (N,)

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean())

    @property
    def mean_tokens(self) -> float:
        return float(self.strong_tokens.mean())

    def summary(self) -> dict:
        n = self.correct.size
        return {
            "policy": self.name,
            "episodes": int(n),
            "accuracy": self.accuracy,
            "accuracy_se": float(np.sqrt(self.accuracy * (1 - self.accuracy) / max(n, 1))),
            "strong_tokens": self.mean_tokens,
            "max_strong_tokens": float(self.strong_tokens.max(initial=0)),
            "regenerations": float(self.regenerations.mean()),
            "max_regenerations": int(self.regenerations.max(initial=0)),
            "mean_steps": float(self.steps.mean()),
        }


def _chunks(episodes: int, seed: int, progress: bool = False, desc: str = "simulate"):
    """(episodes, rng) of each chunk of a run."""
    n = check_episodes(episodes)
    starts = range(0, n, CHUNK)
    if progress and len(starts) > 1:
        import sys

        from tqdm import tqdm

        starts = tqdm(starts, desc=f"{desc} ({n:,} episodes)", file=sys.stderr, leave=False)
    for k, lo in enumerate(starts):
        yield min(CHUNK, n - lo), np.random.default_rng(seed if k == 0 else [seed, k])


def simulate(trim_model, policy: BatchRoutingPolicy, points: dict, episodes: int = 100_000, seed: int = 0,
             progress: bool = False) -> SimResult:
    """Run ``episodes`` questions under ``policy``; a seed gives the same hidden paths for every policy."""
    parts = [_simulate_chunk(trim_model, policy, points, n, rng) for n, rng in _chunks(episodes, seed, progress)]
    if len(parts) == 1:
        return SimResult(getattr(policy, "name", "policy"), *parts[0])
    return SimResult(getattr(policy, "name", "policy"), *(np.concatenate(p) for p in zip(*parts)))


def simulate_summary(trim_model, policy: BatchRoutingPolicy, points: dict, episodes: int = 100_000, seed: int = 0,
                     progress: bool = False) -> dict:
    """``simulate(...).summary()`` from running totals: memory bounded by one chunk, whatever ``episodes``."""
    if check_episodes(episodes) <= CHUNK:
        return simulate(trim_model, policy, points, episodes, seed).summary()
    n = correct = regens = steps = 0
    tokens, max_tokens, max_regens = 0.0, 0.0, 0
    desc = str(getattr(policy, "name", "policy"))
    for size, rng in _chunks(episodes, seed, progress, desc):
        c, t, r, st = _simulate_chunk(trim_model, policy, points, size, rng)
        n += size
        correct += int(c.sum())
        tokens += float(t.sum())
        max_tokens = max(max_tokens, float(t.max(initial=0)))
        regens += int(r.sum())
        max_regens = max(max_regens, int(r.max(initial=0)))
        steps += int(st.sum())
    acc = correct / n
    return {
        "policy": getattr(policy, "name", "policy"),
        "episodes": n,
        "accuracy": acc,
        "accuracy_se": float(np.sqrt(acc * (1 - acc) / n)),
        "strong_tokens": tokens / n,
        "max_strong_tokens": max_tokens,
        "regenerations": regens / n,
        "max_regenerations": max_regens,
        "mean_steps": steps / n,
    }


def _simulate_chunk(trim_model, policy: BatchRoutingPolicy, points: dict, N: int, rng):
    """(correct, strong tokens, regenerations, steps) of N episodes drawn from ``rng``."""
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
        for s in range(3):
            m = st == s
            if m.any():
                arr = arrays[s]
                obs[m] = arr[np.minimum((u_obs[m] * len(arr)).astype(np.int64), len(arr) - 1)]
        costs = tm.token_values[k_tok]
        post = prior[alive]
        if getattr(policy, "needs_belief", False):
            lik = probs[:, tm.obs_bins(obs)].T
            w = post * lik
            z = w.sum(axis=1)
            ok = z > 1e-300
            post = np.where(ok[:, None], w / np.where(ok, z, 1.0)[:, None], post)
        regen = np.asarray(policy.decide_many(post, t, costs, obs[:, 1], levels[alive]), dtype=bool)
        if cap is not None:
            regen &= levels[alive] - cap.units(costs) >= 0
            levels[alive] -= np.where(regen, cap.units(costs), 0)
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
    return correct, tokens, regens, np.minimum(L, T)


def family_policies(trim_model, sweep: str) -> list:
    """Policies of a sweep: 'pomdp:lambda=lo:hi:n', 'pomdp:mean=a,b', 'threshold:lo:hi:n', 'threshold:a,b'."""
    from trimpomdp.errors import TrimError
    from trimpomdp.routing.budgets import parse_sweep
    from trimpomdp.routing.solver import solve_budget
    from trimpomdp.routing.policies import ThresholdPolicy

    kind, _, arg = sweep.partition(":")
    kind = kind.lower()
    if kind == "pomdp":
        return [solve_budget(trim_model, b) for b in parse_sweep(arg)]
    if kind in ("threshold", "thr"):
        try:
            if arg.count(":") == 2:
                lo, hi, n = arg.split(":")
                ks = np.linspace(float(lo), float(hi), int(n))
            else:
                ks = [float(v) for v in arg.split(",") if v.strip()]
        except ValueError:
            raise TrimError(f"--sweep {sweep!r}: expected threshold:lo:hi:n or threshold:a,b,c") from None
        return [ThresholdPolicy(float(k)) for k in ks]
    raise TrimError(f"--sweep {sweep!r}: expected pomdp:lambda=..., pomdp:mean=... or threshold:...")


def run_family(
    trim_model, sweep: str, points: dict, episodes: int, seed: int, progress: bool = False
) -> list[dict]:
    pols = family_policies(trim_model, sweep)
    it = pols
    if progress:
        import sys

        from tqdm import tqdm

        it = tqdm(pols, desc=sweep, file=sys.stderr, leave=False)
    out = []
    for p in it:
        r = simulate_summary(trim_model, p, points, episodes, seed)
        if hasattr(p, "predicted"):
            r["predicted_accuracy"] = p.predicted.get("accuracy")
            r["predicted_strong_tokens"] = p.predicted.get("strong_tokens")
        out.append(r)
    return out
