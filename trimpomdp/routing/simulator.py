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

The dynamics live in ``StepSimulator`` (``observe()`` draws the next step of every alive episode, ``step()``
applies the decisions): ``simulate`` runs on it and so do the learned routers' training environments
(``trimpomdp.learned.env``, with ``autoreset``). A policy with ``takeover = True`` (``routing.baselines``)
hands the rest of a question to the strong model after its first regeneration; one with ``oracle = True``
is the cheap-only and strong-only runs of the same draws combined per question; one with ``act_many``
(learned routers) keeps per-episode state. ``regenerations`` counts every strong-written step.

Episodes run in chunks of ``CHUNK`` (chunk k > 0 draws from ``default_rng([seed, k])``, chunk 0 from
``default_rng(seed)``), so the working memory does not grow with the episode count; ``simulate_summary``
keeps only running totals and is what the CLI uses. At most ``MAX_EPISODES`` episodes per run.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.interfaces import BatchRoutingPolicy
from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.resource_limits import check_episodes
from trimpomdp.routing import difficulty
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
    regenerations: np.ndarray  # int (N,): steps written by the strong model (regenerated or taken over)
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


@dataclass
class StepBatch:
    """What the policy may see of the episodes deciding now: nothing hidden, nothing from the future."""

    rows: np.ndarray  # episode indices (into the simulator's arrays) deciding now, increasing
    step: np.ndarray  # 1-based step index of each row
    scores: np.ndarray  # PRM score of the cheap step just written
    mins: np.ndarray  # first coordinate of the observation pair (min earlier score, as the mode draws it)
    costs: np.ndarray  # strong tokens its regeneration costs: the step's token count as the policy sees it
    beliefs: np.ndarray | None  # posterior after this observation (policies with ``needs_belief``)
    levels: np.ndarray  # budget level left (capped policies; zeros otherwise)


@dataclass
class StepOutcome:
    """What one ``StepSimulator.step`` did to the episodes that were alive (``rows``)."""

    rows: np.ndarray
    regenerated: np.ndarray  # bool: the strong model wrote this step (a regeneration or a taken-over step)
    cost: np.ndarray  # strong tokens charged for this step
    ended: np.ndarray  # bool: the episode's last step
    correct: np.ndarray  # bool: its final answer is correct (meaningful where ``ended``)


class StepSimulator:
    """``n`` questions advanced one step at a time, vectorised: ``observe()`` writes (draws) every alive
    episode's next cheap step and its PRM score and returns what the deciding episodes' policy sees,
    ``step(regenerate)`` applies the decisions (hidden state, cost, correctness, the filter's prediction).

    ``simulate`` runs its episodes through this class and so do the RL environments, so the dynamics exist
    once. All randomness is drawn per step for every alive episode whatever the policy decides, so every
    policy sees the same hidden paths and scores for the same ``rng`` (common random numbers).
    ``autoreset``: an episode that ends is replaced at once by a new one in its slot (the training
    environment's view: every slot always has a decision pending); otherwise episodes run in lock-step
    from step 1 and ``observe`` returns None once all have ended. ``takeover``: after an episode's first
    regeneration the strong model writes every remaining step (each correct with the strong accuracy from
    a correct prefix, at a strong token draw per step; nothing is scored or decided). ``cap``: the
    budget cap of a capped policy (levels are tracked here). The step accuracies are per-episode arrays
    (``pw``, ``ps``: the world), while the belief prediction uses the spec's (the policy's model).
    """

    def __init__(self, trim_model, points: dict, n: int, rng, *, pool: ScorePool | None = None,
                 cap=None, takeover: bool = False, autoreset: bool = False, need_belief: bool = False):
        tm = self.tm = trim_model
        self.n, self.rng, self.pool = int(n), rng, pool
        self.cap, self.takeover, self.autoreset, self.need_belief = cap, bool(takeover), bool(autoreset), need_belief
        self.T = tm.max_steps
        self.arrays = [points[s] for s in TRIM_STATES] if pool is None else None
        self.probs = tm.joint_obs()
        self.draws = self.borrowed = 0
        self.episodes_done = 0
        N = self.n
        self.classes = tm.difficulty  # None: one class (the plain model's draws, unchanged)
        self.alpha = float(tm.derailed_as_error)
        self.repair = float(tm.derailed_repair)
        self.pw = np.full(N, tm.p_weak)  # per-episode step accuracies (each question's difficulty class)
        self.ps = np.full(N, tm.p_strong)
        self.cls = np.zeros(N, dtype=np.int64)
        self.L = np.zeros(N, dtype=np.int64)
        self.t = np.ones(N, dtype=np.int64)
        self.state = np.zeros(N, dtype=np.int8)
        self.prior = np.zeros((N, tm.n_hidden))
        self.tokens = np.zeros(N)
        self.regens = np.zeros(N, dtype=np.int64)
        self.correct = np.zeros(N, dtype=bool)
        self.ended = np.zeros(N, dtype=bool)
        self.strong_writes = np.zeros(N, dtype=bool)
        self.mins = np.ones(N)  # min score of each episode's kept cheap steps (sequence mode draws on it)
        self.levels = np.zeros(N, dtype=np.int64)
        self._pending = None
        self._new_episodes(np.arange(N))

    # ------------------------------------------------------------------------------------------ episodes
    def _new_episodes(self, rows: np.ndarray) -> None:
        """Start new questions in ``rows``: a length and the hidden state of the first cheap step."""
        k = rows.size
        tm = self.tm
        self.L[rows] = self.rng.choice(np.arange(1, self.T + 1), p=tm.length_pmf, size=k)
        if self.classes is not None:  # each question draws its (hidden) difficulty class
            c = self.rng.choice(self.classes.n, p=self.classes.weights, size=k)
            self.cls[rows] = c
            self.pw[rows], self.ps[rows] = self.classes.p_weak[c], self.classes.p_strong[c]
        pw = self.pw[rows]
        self.state[rows] = np.where(self.rng.random(k) < pw, 0, 1).astype(np.int8)
        if self.classes is None:
            p = tm.p_weak  # the filter's prior: the spec's accuracy
            self.prior[rows] = np.array([p, 1 - p, 0.0])
        else:
            self.prior[rows] = difficulty.first_prior(self.classes)
        self.t[rows] = 1
        self.tokens[rows] = 0.0
        self.regens[rows] = 0
        self.correct[rows] = False
        self.ended[rows] = False
        self.strong_writes[rows] = False
        self.mins[rows] = 1.0
        self.levels[rows] = self.cap.levels - 1 if self.cap is not None else 0

    # ---------------------------------------------------------------------------------------------- step
    def observe(self) -> StepBatch | None:
        """Draw the next step of every alive episode; what the deciding ones' policy sees (None: all ended).
        Episodes whose remaining steps the strong model writes draw too but are not asked."""
        if self._pending is not None:
            raise TrimError("StepSimulator.observe() called twice without step()")
        alive = np.flatnonzero(~self.ended)
        if alive.size == 0:
            return None
        n, rng, tm = alive.size, self.rng, self.tm
        u_obs = rng.random(n)
        k_tok = rng.choice(tm.token_values.size, p=tm.token_probs, size=n)
        u_s = rng.random(n)
        u_w = rng.random(n)
        st = self.state[alive]
        seen = st  # the state whose real scores a step's score is drawn from
        if self.alpha > 0:  # a derailed step scored like a fresh error
            seen = np.where((st == 2) & (rng.random(n) < self.alpha), 1, st).astype(np.int8)
        ask = None if not self.takeover else ~self.strong_writes[alive]  # None: every alive episode decides
        if ask is not None and ask.all():
            ask = None
        obs = np.empty((n, 2))
        if self.pool is None:
            for s in range(3):
                m = seen == s
                if m.any():
                    arr = self.arrays[s]
                    obs[m] = arr[np.minimum((u_obs[m] * len(arr)).astype(np.int64), len(arr) - 1)]
        else:
            obs[:, 0] = self.mins[alive]
            obs[:, 1], b = self.pool.draw(seen, obs[:, 0], u_obs)
            # a taken-over step is neither written by the cheap model nor scored
            self.draws += n if ask is None else int(ask.sum())
            self.borrowed += int(b.sum() if ask is None else b[ask].sum())
        costs = tm.token_values[k_tok]
        post = self.prior[alive]
        if ask is None:
            rows, o, c = alive, obs, costs
        else:
            rows, o, c = alive[ask], obs[ask], costs[ask]
        beliefs = None
        if self.need_belief:  # impossible observations keep the prior
            beliefs, _ = posteriors(post if ask is None else post[ask], self.probs, tm.obs_bins(o))
            if ask is None:
                post = beliefs
            else:
                post[ask] = beliefs
        self._pending = (alive, ask, st, obs, costs, post, u_s, u_w)
        return StepBatch(rows, self.t[rows], o[:, 1], o[:, 0], c, beliefs, self.levels[rows])

    def step(self, regenerate) -> StepOutcome:
        """Apply the decisions (one per row of the last ``observe``'s batch, True = regenerate)."""
        if self._pending is None:
            raise TrimError("StepSimulator.step() called before observe()")
        alive, ask, st, obs, costs, post, u_s, u_w = self._pending
        self._pending = None
        if ask is None:
            regen = np.asarray(regenerate, dtype=bool)
        else:  # taken-over steps: the strong model writes them
            regen = np.ones(alive.size, dtype=bool)
            regen[ask] = np.asarray(regenerate, dtype=bool)
        if self.cap is not None:
            units = self.cap.units(costs)
            regen &= self.levels[alive] - units >= 0
            self.levels[alive] -= np.where(regen, units, 0)
        if self.pool is not None:  # a strong rewrite is not scored: only kept steps lower the minimum
            self.mins[alive] = np.where(regen, self.mins[alive], np.minimum(self.mins[alive], obs[:, 1]))
        cost = np.where(regen, costs, 0.0)
        self.tokens[alive] += cost
        self.regens[alive] += regen
        # outcome of this step's action on the hidden state (before the next cheap step)
        t_alive = self.t[alive]
        strong_ok = u_s < self.ps[alive]
        fixable = st <= 1
        if self.repair > 0:  # a rewrite may repair a derailed solution
            fixable = fixable | ((st == 2) & (self.rng.random(st.size) < self.repair))
        ok_now = np.where(regen, fixable & strong_ok, st == 0)
        ending = self.L[alive] == t_alive
        done = alive[ending]
        self.correct[done] = ok_now[ending]
        # next hidden state: step t+1 is written (by the cheap model) from a correct or a wrong prefix
        self.state[alive] = np.where(ok_now, np.where(u_w < self.pw[alive], 0, 1), 2).astype(np.int8)
        # the filter's prediction for the next step, under the spec's accuracies
        if self.classes is not None or self.repair > 0:
            self.prior[alive] = difficulty.predict_rows(post, regen, self.tm.classes, self.repair)
        else:
            pw, ps = self.tm.p_weak, self.tm.p_strong
            pC = post[:, 0]
            mCE = post[:, 0] + post[:, 1]
            x = np.where(regen, ps * mCE, pC)
            self.prior[alive] = np.stack([pw * x, (1 - pw) * x, 1 - x], axis=1)
        if self.takeover:
            self.strong_writes[alive] |= regen
        self.t[alive] = t_alive + 1
        out = StepOutcome(alive, regen, cost, ending, ok_now & ending)
        self.ended[done] = True
        self.episodes_done += done.size
        if self.autoreset and done.size:
            self._new_episodes(done)
        return out

    def results(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(correct, strong tokens, strong-written steps, steps) of every episode (lock-step runs)."""
        return self.correct, self.tokens, self.regens, np.minimum(self.L, self.T)


def decide(policy, batch: StepBatch, state=None):
    """(regenerate per row, policy state) for a batch: ``act_many`` for policies with per-episode state
    (learned routers), else ``decide_many`` for the batch's step (grouped by step when rows differ)."""
    if hasattr(policy, "act_many"):
        return policy.act_many(state, batch)
    steps = np.unique(batch.step)
    if steps.size == 1:
        return np.asarray(policy.decide_many(batch.beliefs, int(steps[0]), batch.costs, batch.scores,
                                             batch.levels), dtype=bool), state
    out = np.zeros(batch.rows.size, dtype=bool)
    for t in steps:
        m = batch.step == t
        out[m] = policy.decide_many(None if batch.beliefs is None else batch.beliefs[m], int(t), batch.costs[m],
                                    batch.scores[m], batch.levels[m])
    return out, state


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
    """(correct, strong tokens, strong-written steps, steps, score draws, borrowed draws) of N episodes
    drawn from ``rng``; ``pool`` (a ScorePool) selects sequence mode. A query oracle (``oracle``) is the
    cheap-only and the strong-only run on the same draws, combined per question."""
    if getattr(policy, "oracle", False):
        from trimpomdp.routing.policies import StrongPolicy, WeakPolicy

        w = _simulate_chunk(trim_model, WeakPolicy(), points, N, copy.deepcopy(rng), pool)
        s = _simulate_chunk(trim_model, StrongPolicy(), points, N, rng, pool)
        return policy.combine(w, s)
    sim = StepSimulator(trim_model, points, N, rng, pool=pool, cap=getattr(policy, "cap", None),
                        takeover=getattr(policy, "takeover", False),
                        need_belief=getattr(policy, "needs_belief", False))
    state = policy.start_many(N) if hasattr(policy, "start_many") else None
    while (batch := sim.observe()) is not None:
        regen, state = decide(policy, batch, state)
        sim.step(regen)
    return (*sim.results(), sim.draws, sim.borrowed)
