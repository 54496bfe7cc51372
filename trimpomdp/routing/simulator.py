"""Routing simulator: hidden states follow the model, PRM scores are resampled from REAL labelled points.

Two observation modes (``MODES``), both drawing real (min earlier score, current score) points of the
step's hidden state from ``prm_obs_processbench_math.npz`` (Qwen2.5-Math-PRM-7B on ProcessBench):

- ``independent``: each step's pair is drawn independently given the hidden state -- the assumption the
  planner's observation table makes; the min-earlier coordinate is not coherent along an episode.
- ``sequence``: the episode keeps its own running minimum m of the scores of its kept cheap steps (1.0
  before the first) and each step's score is the current score of a real point of the same hidden state
  whose min-earlier coordinate lies in m's bin, so an episode's scores follow the real dependence of a
  score on the solution's earlier scores (a low earlier score makes low later scores likelier, in correct
  solutions too). Where the data end, the simulator continues as follows (``SEQUENCE_RULES``, printed by
  ``simulate-routing``): the data hold one derailed step per flawed solution, so every derailed step is
  drawn from those first-derailed points; nothing is observed after a strong rewrite, which is not scored
  (the decode loop does not score it either) and leaves m unchanged; a (state, m-bin) without points
  borrows the nearest m-bin that has some, and the share of such draws is reported (``fallback``).

Solution lengths come from the spec's length distribution and the strong tokens of a regeneration from its
token distribution (a step's regeneration cost is the strong tokens drawn for it; the policy sees that same
cost). Vectorised over episodes and seeded; the belief update is ``posterior.correct_rows``, the kernel the
decode filter runs.

Episodes run in chunks of ``CHUNK`` (chunk k > 0 draws from ``default_rng([seed, k])``, chunk 0 from
``default_rng(seed)``), so the working memory does not grow with the episode count; ``simulate_summary``
keeps only running totals and is what the CLI uses. At most ``MAX_EPISODES`` episodes per run.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.interfaces import BatchRoutingPolicy
from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.resource_limits import check_episodes
from trimpomdp.routing.posterior import posteriors

#: episodes simulated at once (about 300 bytes of working memory each)
CHUNK = 1 << 20
MODES = ("independent", "sequence")
#: bins of the running minimum in sequence mode (the planner's default grid)
SEQUENCE_BIN = 0.05
#: what sequence mode does where the real data end (shown with its results)
SEQUENCE_RULES = ("scores drawn from real points of the same state and min-earlier bin; derailed steps reuse "
                  "the first-derailed points; strong rewrites unscored (min unchanged); empty bins borrow the "
                  "nearest bin")


class ScorePool:
    """Real points of each hidden state sorted by their min-earlier bin, for O(1) conditional draws."""

    def __init__(self, points: dict, bin_size: float = SEQUENCE_BIN):
        self.n_bins = int(round(1.0 / bin_size))
        self.scores, self.start, self.count, self.source = [], [], [], []
        for s in TRIM_STATES:
            P = np.asarray(points[s], dtype=np.float64)
            if P.ndim != 2 or P.shape[1] != 2 or len(P) == 0:
                raise TrimError(f"sequence mode needs (n, 2) labelled points of state {s!r}")
            b = np.minimum((P[:, 0] * self.n_bins).astype(np.int64), self.n_bins - 1)
            order = np.argsort(b, kind="stable")
            cnt = np.bincount(b, minlength=self.n_bins)
            have = np.flatnonzero(cnt)
            # each bin's source: itself, or the nearest bin with points (ties: the higher min)
            src = have[np.argmin(np.abs(np.arange(self.n_bins)[:, None] - have[None, :] + 0.25), axis=1)]
            self.scores.append(P[order, 1])
            self.start.append(np.concatenate([[0], np.cumsum(cnt)[:-1]]))
            self.count.append(cnt)
            self.source.append(src)

    def draw(self, states, mins, u):
        """Scores for hidden states ``states`` with running minima ``mins``, from uniforms ``u``; also
        which draws borrowed a neighbouring bin."""
        out = np.empty(len(states))
        borrowed = np.zeros(len(states), dtype=bool)
        mb = np.minimum((np.asarray(mins) * self.n_bins).astype(np.int64), self.n_bins - 1)
        for s in range(3):
            sel = states == s
            if not sel.any():
                continue
            src = self.source[s][mb[sel]]
            k = np.minimum((u[sel] * self.count[s][src]).astype(np.int64), self.count[s][src] - 1)
            out[sel] = self.scores[s][self.start[s][src] + k]
            borrowed[sel] = src != mb[sel]
        return out, borrowed


@dataclass
class SimResult:
    """Per-episode outcomes of one policy."""

    name: str
    correct: np.ndarray  # bool (N,)
    strong_tokens: np.ndarray  # float (N,)
    regenerations: np.ndarray  # int (N,)
    steps: np.ndarray  # int (N,)
    mode: str = "independent"

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
            "mode": self.mode,
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


def _source(points, mode: str):
    if mode not in MODES:
        raise TrimError(f"unknown observation mode {mode!r}; expected one of {', '.join(MODES)}")
    return ScorePool(points) if mode == "sequence" else None


def simulate(trim_model, policy: BatchRoutingPolicy, points: dict, episodes: int = 100_000, seed: int = 0,
             progress: bool = False, mode: str = "independent") -> SimResult:
    """Run ``episodes`` questions under ``policy``; a seed gives the same hidden paths for every policy."""
    pool = _source(points, mode)
    parts = [_simulate_chunk(trim_model, policy, points, n, rng, pool)[:4]
             for n, rng in _chunks(episodes, seed, progress)]
    name = getattr(policy, "name", "policy")
    if len(parts) == 1:
        return SimResult(name, *parts[0], mode=mode)
    return SimResult(name, *(np.concatenate(p) for p in zip(*parts)), mode=mode)


def simulate_summary(trim_model, policy: BatchRoutingPolicy, points: dict, episodes: int = 100_000, seed: int = 0,
                     progress: bool = False, mode: str = "independent") -> dict:
    """``simulate(...).summary()`` from running totals: memory bounded by one chunk, whatever ``episodes``.
    In sequence mode it also reports ``fallback``, the share of scores drawn from a neighbouring bin."""
    pool = _source(points, mode)
    check_episodes(episodes)
    n = correct = regens = steps = 0
    tokens, max_tokens, max_regens = 0.0, 0.0, 0
    draws = borrowed = 0
    desc = str(getattr(policy, "name", "policy"))
    for size, rng in _chunks(episodes, seed, progress, desc):
        c, t, r, st, nd, nb = _simulate_chunk(trim_model, policy, points, size, rng, pool)
        draws += nd
        borrowed += nb
        n += size
        correct += int(c.sum())
        tokens += float(t.sum())
        max_tokens = max(max_tokens, float(t.max(initial=0)))
        regens += int(r.sum())
        max_regens = max(max_regens, int(r.max(initial=0)))
        steps += int(st.sum())
    acc = correct / n
    out = {
        "policy": getattr(policy, "name", "policy"),
        "episodes": n,
        "accuracy": acc,
        "accuracy_se": float(np.sqrt(acc * (1 - acc) / n)),
        "strong_tokens": tokens / n,
        "max_strong_tokens": max_tokens,
        "regenerations": regens / n,
        "max_regenerations": max_regens,
        "mean_steps": steps / n,
        "mode": mode,
    }
    if pool is not None:
        out["fallback"] = borrowed / max(draws, 1)
    return out


def _simulate_chunk(trim_model, policy: BatchRoutingPolicy, points: dict, N: int, rng, pool=None):
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
