"""Training environments of the learned routers: two cores behind one step interface, one vectorised env.

A *core* runs ``n`` questions side by side, each slot replaced by a new question as it ends, so every slot
always has a step awaiting a decision: ``reset() -> Pending`` and ``step(regenerate) -> (Pending, cost,
ended, correct)`` (cost: strong tokens of the step just done; ``correct`` where it ended).

- ``SimCore``: the routing simulator's own step function (``simulator.StepSimulator`` in autoreset mode,
  sequence observations by default): fast, CPU, the default.
- ``DecodeCore``: live decoding through the decode loop's own step functions (``decode.episode.Episode`` and
  ``RoutedDecoder``'s batched generation and scoring) with real models and PRM; answers are graded.

``RouterEnv`` (a stable-baselines3 ``VecEnv`` with gymnasium spaces) turns a core into observations
(``features``), rewards (1 for a correct final answer, minus ``lam`` per strong token, charged at the step
that spends it) and episode ends.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.learned.features import AGG_FEATURES, SEQ_CURRENT, SEQ_INPUTS, History, token_feature


@dataclass
class Pending:
    """The step awaiting a decision in every slot."""

    step: np.ndarray  # 1-based step index
    scores: np.ndarray  # PRM score of the cheap step
    tokens: np.ndarray  # strong tokens its regeneration costs (as the policy sees it; unscaled)


class SimCore:
    """``n`` simulated questions (``StepSimulator``, autoreset) drawn from ``seed``."""

    def __init__(self, trim_model, points: dict, n: int, seed: int = 0, mode: str = "sequence"):
        from trimpomdp.routing.simulator import _source

        self.tm, self.points, self.n, self.mode = trim_model, points, int(n), mode
        self.pool = _source(points, mode)
        self.rng = np.random.default_rng(seed)
        self.sim = None

    def reset(self) -> Pending:
        from trimpomdp.routing.simulator import StepSimulator

        self.sim = StepSimulator(self.tm, self.points, self.n, self.rng, pool=self.pool, autoreset=True)
        return self._pending()

    def _pending(self) -> Pending:
        b = self.sim.observe()
        self._batch = b
        return Pending(b.step.copy(), b.scores, b.costs)

    def step(self, regen):
        out = self.sim.step(np.asarray(regen, dtype=bool))
        return self._pending(), out.cost, out.ended, out.correct


class DecodeCore:
    """``n`` problems decoded side by side with real models (``decoder``: a ``RoutedDecoder`` whose weak and
    strong generators and PRM are used; its policy is not), cycling through ``problems`` in a seeded order.
    A problem whose decoding fails ends its episode as wrong (``failures`` counts them)."""

    def __init__(self, decoder, problems, n: int, seed: int = 0, tokens_per_weak_token: float = 1.0,
                 max_failures: int = 20):
        problems = [p for p in problems if p.reference is not None]
        if not problems:
            raise TrimError("live training needs problems with reference answers")
        self.dec, self.n = decoder, int(n)
        self.problems = [problems[i] for i in np.random.default_rng(seed).permutation(len(problems))]
        self.scale = float(tokens_per_weak_token)
        self.next = 0
        self.failures = 0
        self.max_failures = max_failures
        self.episodes: list = [None] * self.n
        self.records: list[dict] = []  # finished problems' trace records, in order

    def _new(self, slot: int) -> None:
        from trimpomdp.decode.episode import Episode

        p = self.problems[self.next % len(self.problems)]
        self.next += 1
        self.episodes[slot] = Episode(p, None, None, max_steps=self.dec.max_steps)

    def _finish(self, slot: int) -> bool:
        """Record a finished episode and forget its caches; whether its answer is correct."""
        ep = self.episodes[slot]
        rec = ep.record("learned", self.dec.models)
        self.dec._forget(ep)
        self.records.append(rec)
        return bool(rec["correct"])

    def _advance(self, slots) -> list[int]:
        """Bring each slot to its next decision (cheap step, PRM score, observe); slots whose decoding
        failed are returned (their episode is done as an error)."""
        todo = [s for s in slots if self.episodes[s].awaiting == "observe"]
        if not todo:
            return []
        eps = [self.episodes[s] for s in todo]
        outs = self.dec._generate(self.dec.weak, eps, "w")
        live = [(s, ep, o) for s, ep, o in zip(todo, eps, outs) if o is not None]
        scores = self.dec._score([(ep, o) for _, ep, o in live]) if live else []
        for (s, ep, o), sc in zip(live, scores):
            if isinstance(sc, BaseException):
                ep.fail(f"PRM failed: {sc}")
                continue
            try:
                ep.observe(o, sc)
            except TrimError:
                pass  # the episode has recorded the error
        return [s for s in todo if self.episodes[s].done]

    def _fill(self, slots) -> None:
        """New problems in ``slots``, each brought to its first decision (failed starts are replaced)."""
        slots = list(slots)
        while slots:
            for s in slots:
                self._new(s)
            failed = self._advance(slots)
            for s in failed:
                self._finish(s)
            self.failures += len(failed)
            if self.failures > self.max_failures:
                raise TrimError(f"live training stopped: {self.failures} problems failed to decode (last: "
                                f"{self.episodes[failed[-1]].error})")
            slots = failed

    def reset(self) -> Pending:
        self._fill(range(self.n))
        return self._pending()

    def _pending(self) -> Pending:
        obs = [ep._obs for ep in self.episodes]
        return Pending(np.array([o.step for o in obs], dtype=np.int64), np.array([o.score for o in obs]),
                       np.array([o.n_tokens * self.scale for o in obs], dtype=np.float64))

    def step(self, regen):
        regen = np.asarray(regen, dtype=bool)
        eps = self.episodes
        for ep, r in zip(eps, regen):
            ep.decide("regenerate" if r else "keep")
        cost = np.zeros(self.n)
        ended = np.zeros(self.n, dtype=bool)
        correct = np.zeros(self.n, dtype=bool)
        rs = [i for i in range(self.n) if regen[i]]
        if rs:
            outs = self.dec._generate(self.dec.strong, [eps[i] for i in rs], "s")
            strong = dict(zip(rs, outs))
        else:
            strong = {}
        for i, ep in enumerate(eps):
            if ep.done:  # its strong generation failed
                continue
            ep.commit(strong.get(i))
            cost[i] = eps[i].entries[-1]["strong_tokens"]
        self._advance([i for i in range(self.n) if not eps[i].done])
        for i, ep in enumerate(eps):
            if ep.done:
                ended[i] = True
                self.failures += ep.finish == "error"
                correct[i] = self._finish(i) and ep.finish != "error"
        if ended.any():
            self._fill(np.flatnonzero(ended))
        return self._pending(), cost, ended, correct


def observation_size(kind: str, window: int) -> int:
    return len(AGG_FEATURES) if kind == "agg" else window * len(SEQ_INPUTS) + len(SEQ_CURRENT) + 1


def make_env(core, kind: str, lam: float, token_scale: float, max_steps: int, window: int = 0):
    """``RouterEnv`` (defined on first use: stable-baselines3 is only needed for training)."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env.base_vec_env import VecEnv

    class RouterEnv(VecEnv):
        """A core's slots as a stable-baselines3 vectorised environment (see the module docstring)."""

        def __init__(self):
            n = core.n
            size = observation_size(kind, window)
            self.render_mode = None
            super().__init__(n, gym.spaces.Box(-np.inf, np.inf, (size,), np.float32), gym.spaces.Discrete(2))
            self.hist = History(n, window if kind == "seq" else 0)
            self.rows = np.arange(n)
            self.returns = np.zeros(n)
            self.finished: list[tuple[float, bool, float]] = []  # (return, correct, strong tokens)
            self.tokens = np.zeros(n)
            self._pending = None
            self._actions = None

        def _obs(self, p: Pending) -> np.ndarray:
            tok = token_feature(p.tokens, token_scale)
            if kind == "agg":
                return self.hist.agg(self.rows, p.scores, tok, p.step, max_steps)
            return self.hist.seq_obs(self.rows, p.scores, tok, p.step, max_steps)

        def reset(self):
            self.hist.reset(self.rows)
            self.returns[:] = 0.0
            self.tokens[:] = 0.0
            self._pending = core.reset()
            return self._obs(self._pending)

        def step_async(self, actions):
            self._actions = np.asarray(actions).reshape(-1).astype(bool)

        def step_wait(self):
            p, a = self._pending, self._actions
            nxt, cost, ended, correct = core.step(a)
            reward = np.where(ended & correct, 1.0, 0.0) - lam * cost
            self.returns += reward
            self.tokens += cost
            self.hist.record(self.rows, p.scores, token_feature(p.tokens, token_scale), a)
            done = np.flatnonzero(ended)
            for i in done:
                self.finished.append((float(self.returns[i]), bool(correct[i]), float(self.tokens[i])))
            self.returns[done] = 0.0
            self.tokens[done] = 0.0
            self.hist.reset(done)
            self._pending = nxt
            return self._obs(nxt), reward.astype(np.float32), ended.copy(), [{} for _ in range(self.num_envs)]

        def close(self):
            pass

        def get_attr(self, attr_name, indices=None):
            return [getattr(self, attr_name)] * len(self._get_indices(indices))

        def set_attr(self, attr_name, value, indices=None):
            setattr(self, attr_name, value)

        def env_method(self, method_name, *args, indices=None, **kwargs):
            return [getattr(self, method_name)(*args, **kwargs)] * len(self._get_indices(indices))

        def env_is_wrapped(self, wrapper_class, indices=None):
            return [False] * len(self._get_indices(indices))

    return RouterEnv()
