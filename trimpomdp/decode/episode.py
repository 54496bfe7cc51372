"""One problem advanced one step at a time: the per-step decode API.

A step is four calls: the caller has the cheap model write the next step (``prefix_steps`` is what it
continues) and the PRM score it, then ``observe(weak, score)`` runs the belief updater and returns what the
policy may see, ``decide()`` asks the policy (or takes a decision from outside, e.g. an RL agent), and
``commit(strong)`` applies it with the strong model's rewrite when one was asked for. The batched decode
loop, a training environment and a server all drive problems through this class, so the bookkeeping of
beliefs, running minimum, tokens, finish reasons and trace entries exists once.

Observation of step t: (min PRM score of the earlier *kept cheap* steps, 1.0 if none; score of step t).
Strong rewrites are not scored: the routing model contains no such observation.
"""
from __future__ import annotations

import math
import time

import numpy as np

from trimpomdp.decode.backends import StepOut, boxed_closed
from trimpomdp.decode.prompts import join_steps
from trimpomdp.errors import TrimError
from trimpomdp.interfaces import Decision, PastStep, StepObservation, TracedUpdater, action_name


class Episode:
    """The routed decode of one problem; ``done`` once ``finish`` is set (answer, eos, max_steps, error)."""

    def __init__(self, problem, policy=None, updater=None, *, max_steps: int = 12):
        if max_steps < 1:
            raise TrimError("max steps must be >= 1")
        self.problem, self.policy, self.updater = problem, policy, updater
        self.max_steps = max_steps
        self.policy_state = policy.start() if policy is not None else None
        self.belief = updater.initialize() if updater is not None else None
        self.prev_action = "keep"       # the move into step 1 is a cheap step
        self.min_score = 1.0
        self.steps: list[str] = []      # the solution so far (kept or rewritten step texts)
        self.entries: list[dict] = []   # trace step entries
        self.history: list[PastStep] = []
        self.tokens = {"weak_kept": 0, "weak_discarded": 0, "strong": 0}
        self.finish: str | None = None
        self.error: str | None = None
        self.t0 = time.perf_counter()
        self._weak: StepOut | None = None
        self._obs: StepObservation | None = None
        self._entry: dict | None = None

    # --------------------------------------------------------------------------------------- state
    @property
    def done(self) -> bool:
        return self.finish is not None

    @property
    def step(self) -> int:
        """1-based index of the step being written."""
        return len(self.steps) + 1

    @property
    def awaiting(self) -> str:
        """What the episode needs next: 'observe', 'decide', 'commit', 'strong' (the policy has handed the
        rest of the question to the strong model: ``write_strong``) or 'nothing' (done)."""
        if self.done:
            return "nothing"
        if self._weak is None:
            strong_writes = getattr(self.policy, "strong_writes", None)
            return "strong" if strong_writes is not None and strong_writes(self.policy_state) else "observe"
        return "decide" if self._entry.get("action") is None else "commit"

    @property
    def pending_action(self) -> str | None:
        """The decided action of the step awaiting commit (None before the decision)."""
        return None if self._entry is None else self._entry.get("action")

    def fail(self, message: str) -> None:
        """End the episode with an error that stays with this problem."""
        self.finish, self.error = "error", message
        self._weak = self._obs = self._entry = None

    # ------------------------------------------------------------------------------------ the step
    def observe(self, weak: StepOut, score) -> StepObservation:
        """Take the cheap step and its PRM score; returns what the policy sees. A non-finite score or an
        observation impossible under the belief ends the episode with an error (and is re-raised)."""
        if self.awaiting != "observe":
            raise TrimError(f"problem {self.problem.id}: observe() called while awaiting {self.awaiting}")
        try:
            score = float(score)
        except (TypeError, ValueError):
            score = float("nan")
        if not math.isfinite(score):
            self.fail(f"PRM returned a non-finite score ({score}) at step {self.step}")
            raise TrimError(self.error)
        score = min(1.0, max(0.0, score))
        pair = (self.min_score, score)
        prior = post = None
        traced = isinstance(self.updater, TracedUpdater)
        if self.updater is not None:
            try:
                prior = self.updater.predict(self.belief, self.prev_action) if traced else None
                post = self.updater.update(self.belief, self.prev_action, pair)
            except TrimError as exc:
                self.fail(f"routing failed at step {self.step}: {str(exc).splitlines()[0]}")
                raise TrimError(self.error) from None
        obs = StepObservation(step=self.step, n_tokens=int(weak.n_tokens), score=score,
                              min_earlier=float(self.min_score), belief=post, history=tuple(self.history))
        self._weak, self._obs = weak, obs
        self._entry = {
            "index": self.step, "text": weak.text, "model": "weak", "weak_text": weak.text,
            "weak_tokens": int(weak.n_tokens), "strong_tokens": 0, "prm_score": score,
            "observation": [float(pair[0]), score],
            "obs_bin": int(self.updater.observation_index(pair)) if traced else None,
            "belief_before": _floats(self._marginal(prior)), "belief_after": _floats(self._marginal(post)),
            "action": None, "q_keep": None, "q_regenerate": None,
            "policy_state": _jsonable(self.policy_state),
        }
        if post is not None and np.size(post) > 3:  # difficulty classes: what the scores say of the question
            self._entry["class_belief"] = _floats(self.updater.class_posterior(post))
        return obs

    def _marginal(self, b):
        """P(C, E, D) of a belief: traces and plots show the solution's state; with difficulty classes the
        class posterior goes to its own field."""
        if b is None or np.size(b) == 3 or not hasattr(self.updater, "marginal"):
            return b
        return self.updater.marginal(b)

    def decide(self, decision: Decision | str | int | None = None) -> Decision:
        """The policy's decision on the observed step, or ``decision`` imposed from outside."""
        if self.awaiting != "decide":
            raise TrimError(f"problem {self.problem.id}: decide() called while awaiting {self.awaiting}")
        if decision is None:
            if self.policy is None:
                raise TrimError("this episode has no policy: pass the decision to decide()")
            try:
                decision, self.policy_state = self.policy.act(self.policy_state, self._obs)
            except TrimError as exc:
                self.fail(f"routing failed at step {self.step}: {str(exc).splitlines()[0]}")
                raise TrimError(self.error) from None
        elif not isinstance(decision, Decision):
            decision = Decision(action_name(decision))
        self._entry.update(action=decision.action, q_keep=decision.q_keep, q_regenerate=decision.q_regenerate)
        return decision

    def commit(self, strong: StepOut | None = None) -> None:
        """Apply the decision: keep the cheap step, or replace it with the strong model's rewrite."""
        if self.awaiting != "commit":
            raise TrimError(f"problem {self.problem.id}: commit() called while awaiting {self.awaiting}")
        weak, e = self._weak, self._entry
        if e["action"] == "regenerate":
            if strong is None:
                raise TrimError(f"problem {self.problem.id}: step {self.step} was to be regenerated "
                                "but no strong step was given")
            e.update(text=strong.text, model="strong", strong_tokens=int(strong.n_tokens))
            self.tokens["weak_discarded"] += int(weak.n_tokens)
            self.tokens["strong"] += int(strong.n_tokens)
            chosen = strong
        else:
            self.tokens["weak_kept"] += int(weak.n_tokens)
            self.min_score = min(self.min_score, e["prm_score"])
            chosen = weak
        self.history.append(PastStep(e["prm_score"], int(weak.n_tokens), e["action"], e["strong_tokens"]))
        self.belief = self._obs.belief if self._obs.belief is not None else self.belief
        self.prev_action = e["action"]
        self.steps.append(e["text"])
        self.entries.append(e)
        self._weak = self._obs = self._entry = None
        self._finish_step(chosen)

    def _finish_step(self, chosen: StepOut) -> None:
        if chosen.finished:
            self.finish = "answer" if boxed_closed(join_steps(self.steps)) else "eos"
        elif len(self.steps) >= self.max_steps:
            self.finish = "max_steps"

    def write_strong(self, strong: StepOut) -> None:
        """A step the strong model writes on its own after a takeover (no cheap step, no score, nothing
        decided): recorded as a regenerated step without observation."""
        if self.awaiting != "strong":
            raise TrimError(f"problem {self.problem.id}: write_strong() called while awaiting {self.awaiting}")
        e = {"index": self.step, "text": strong.text, "model": "strong", "weak_text": None, "weak_tokens": 0,
             "strong_tokens": int(strong.n_tokens), "prm_score": None, "observation": None, "obs_bin": None,
             "belief_before": None, "belief_after": None, "action": "regenerate", "q_keep": None,
             "q_regenerate": None, "policy_state": _jsonable(self.policy_state)}
        self.tokens["strong"] += int(strong.n_tokens)
        self.history.append(PastStep(float("nan"), 0, "regenerate", int(strong.n_tokens)))
        self.prev_action = "regenerate"
        self.steps.append(strong.text)
        self.entries.append(e)
        self._finish_step(strong)

    # -------------------------------------------------------------------------------------- output
    def record(self, policy_name: str, models: dict | None = None) -> dict:
        """The trace record of the finished problem (schema in ``trimpomdp.decode.trace``)."""
        from trimpomdp.decode.answers import extract_answer, is_equivalent
        from trimpomdp.decode.trace import TRACE_FORMAT, TRACE_VERSION

        p = self.problem
        solution = join_steps(self.steps)
        answer = extract_answer(solution) if self.steps else None
        correct = None if p.reference is None else bool(
            is_equivalent(answer, p.reference, getattr(p, "kind", "math")))
        return {
            "format": TRACE_FORMAT, "version": TRACE_VERSION,
            "id": str(p.id), "question": p.question, "reference": p.reference,
            "policy": policy_name, "models": models,
            "solution": solution, "answer": answer, "correct": correct,
            "tokens": dict(self.tokens), "finish": self.finish, "error": self.error,
            "seconds": round(time.perf_counter() - self.t0, 4), "steps": list(self.entries),
        }


def _floats(v):
    return None if v is None else [float(x) for x in np.asarray(v).ravel()]


def _jsonable(state):
    """A policy state as trace JSON: numbers, flat sequences of numbers and objects of these (string keys);
    anything else is left out."""
    if state is None or isinstance(state, (bool, int, float, str)):
        return state
    if isinstance(state, dict):
        return {str(k): _jsonable(v) for k, v in state.items()}
    if isinstance(state, (np.integer, np.floating)):
        return state.item()
    try:
        arr = np.asarray(state, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr.tolist() if arr.ndim == 1 and arr.size <= 64 else None
