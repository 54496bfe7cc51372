"""The routed decode loop, batched over problems (continuous batching).

Each problem is a ``decode.episode.Episode`` (the per-step API, where the belief, policy state and trace
bookkeeping live); this module only batches the model calls. One iteration for all active problems: the
weak model writes step t of each, the PRM scores them in one batch, each episode observes its score and its
policy decides, the strong model rewrites the chosen steps in one batch, and the episodes commit. Finished
problems are written at once and replaced by new ones. Discarded weak tokens are counted but not charged;
only strong tokens are cost.

Faults stay with their problem: a model or PRM call that fails for one problem records that problem
as failed (``finish: error``) and the rest of its batch carries on (see ``RoutedDecoder._call_each``),
and no problem waits longer than ``problem_timeout`` seconds on one call, retries included.
"""
from __future__ import annotations

import inspect
import math
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from trimpomdp.decode.backends import BatchError, StepOut
from trimpomdp.decode.episode import Episode
from trimpomdp.decode.prompts import render
from trimpomdp.errors import TrimError


def _one_line(exc: BaseException) -> str:
    """First line of an error; a TrimError's message already says where, other errors get their type."""
    msg = str(exc).strip().splitlines()
    if isinstance(exc, TrimError) and msg:
        return msg[0]
    return f"{type(exc).__name__}: {msg[0] if msg else ''}".strip().rstrip(":")


def _takes_deadline(fn) -> bool:
    try:
        return "deadline" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


@dataclass
class LoopStats:
    """Counters of a run: routing bookkeeping time (filter + policy) per step, steps, regenerations."""

    steps: int = 0
    regenerations: int = 0
    routing_seconds: float = 0.0
    weak_seconds: float = 0.0
    strong_seconds: float = 0.0
    prm_seconds: float = 0.0
    problems: int = 0
    errors: int = 0

    @property
    def routing_ms_per_step(self) -> float:
        return 1e3 * self.routing_seconds / max(1, self.steps)


class RoutedDecoder:
    """Runs problems through weak model + PRM + filter + policy + strong model (see module docstring)."""

    def __init__(self, weak, strong, prm, policy, belief_filter, *, policy_name: str,
                 batch_size: int = 4, max_steps: int = 12, max_step_tokens: int = 128,
                 problem_timeout: float = 120.0):
        if batch_size < 1 or max_steps < 1 or max_step_tokens < 1:
            raise TrimError("batch size, max steps and max step tokens must all be >= 1")
        if not (problem_timeout > 0 and math.isfinite(problem_timeout)):
            raise TrimError(f"problem timeout must be a positive number of seconds, got {problem_timeout!r}")
        self.problem_timeout = float(problem_timeout)
        self.weak, self.strong, self.prm = weak, strong, prm
        self.policy, self.filter = policy, belief_filter
        self.policy_name = policy_name
        self.batch_size, self.max_steps, self.max_step_tokens = batch_size, max_steps, max_step_tokens
        self.stats = LoopStats()

    @property
    def models(self) -> dict:
        return {"weak": getattr(self.weak, "name", "weak"),
                "strong": getattr(self.strong, "name", "strong") if self.strong is not None else None,
                "prm": getattr(self.prm, "name", "prm")}

    # ------------------------------------------------------------------------------------------ running
    def run(self, problems: Iterable, on_record: Callable[[dict], None] | None = None) -> list[dict]:
        """Decode every problem; ``on_record`` gets each record as soon as its problem finishes."""
        queue = list(problems)
        qi = 0
        active: list[Episode] = []
        out: list[dict] = []
        while qi < len(queue) or active:
            while len(active) < self.batch_size and qi < len(queue):
                active.append(Episode(queue[qi], self.policy, self.filter, max_steps=self.max_steps))
                qi += 1
            self._iterate(active)
            still = []
            for st in active:
                if st.finish is None:
                    still.append(st)
                    continue
                rec = st.record(self.policy_name, self.models)
                self._forget(st)
                self.stats.problems += 1
                self.stats.errors += st.finish == "error"
                out.append(rec)
                if on_record is not None:
                    on_record(rec)
            active = still
        return out

    def _forget(self, st: Episode) -> None:
        for gen, tag in ((self.weak, "w"), (self.strong, "s")):
            if gen is not None and hasattr(gen, "forget"):
                gen.forget(f"{tag}:{st.problem.id}")

    def _call_each(self, states: Sequence, call: Callable[..., list], takes_deadline: bool) -> list:
        """``call(states, **kw)`` for a batch, returning one result per state, or the exception that
        failed that state's problem in its place.

        A backend that knows which items failed raises ``BatchError`` (its outcomes are used as they
        are; the HTTP client has already retried each request). Any other failure of a batch is retried
        once per problem alone to find the culprit. With ``takes_deadline`` the call gets ``deadline=``,
        ``problem_timeout`` seconds ahead, that bounds its own retries too; no retry alone starts after it,
        so a hung server costs each problem about one problem timeout, not one per batch-mate.
        """
        deadline = time.monotonic() + self.problem_timeout
        kw = {"deadline": deadline} if takes_deadline else {}

        def checked(sts):
            res = list(call(sts, **kw))
            if len(res) != len(sts):
                raise TrimError(f"backend returned {len(res)} results for {len(sts)} inputs")
            return res

        try:
            return checked(states)
        except KeyboardInterrupt:
            raise
        except BatchError as exc:
            if len(exc.outcomes) == len(states):
                return list(exc.outcomes)
            failure: Exception = exc
        except Exception as exc:  # noqa: BLE001 - isolated per problem below
            failure = exc
        if len(states) == 1:
            return [failure]
        outs: list = []
        for s in states:
            if time.monotonic() >= deadline:
                outs.append(TrimError(f"{_one_line(failure)} (its batch failed; not retried alone: "
                                      f"problem timeout of {self.problem_timeout:g} s reached)"))
                continue
            try:
                outs.append(checked([s])[0])
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001
                outs.append(exc)
        return outs

    def _generate(self, gen, states: Sequence[Episode], tag: str) -> list[StepOut | None]:
        """The next step of every state; a problem whose generation failed is finished as an error."""
        def call(sts, **kw):
            return gen.generate_steps([render(gen.prompt_style, s.problem.question, s.steps) for s in sts],
                                      self.max_step_tokens, keys=[f"{tag}:{s.problem.id}" for s in sts], **kw)

        res = []
        for s, o in zip(states, self._call_each(states, call, _takes_deadline(gen.generate_steps))):
            if isinstance(o, StepOut):
                res.append(o)
                continue
            if hasattr(gen, "forget"):  # its cache may be half-extended
                gen.forget(f"{tag}:{s.problem.id}")
            s.fail(f"{'weak' if tag == 'w' else 'strong'} generation failed: " + (
                _one_line(o) if isinstance(o, BaseException) else f"not a step ({type(o).__name__})"))
            res.append(None)
        return res

    def _score(self, live: list[tuple[Episode, StepOut]]) -> list:
        """PRM scores of the new weak steps (an exception in place of a problem's score if it failed)."""
        def call(pairs, **kw):
            return self.prm.score([s.problem.question for s, _ in pairs], [s.steps + [o.text] for s, o in pairs],
                                  **kw)

        return self._call_each(live, call, _takes_deadline(self.prm.score))

    def _iterate(self, active: list[Episode]) -> None:
        takers = [s for s in active if s.awaiting == "strong"]  # the strong model writes their steps
        if takers:
            active = [s for s in active if s.awaiting != "strong"]
            self._write_strong(takers)
        if not active:
            return
        t = time.perf_counter()
        weak_outs = self._generate(self.weak, active, "w")
        self.stats.weak_seconds += time.perf_counter() - t
        live = [(s, o) for s, o in zip(active, weak_outs) if o is not None]
        if not live:
            return
        t = time.perf_counter()
        scores = self._score(live)
        self.stats.prm_seconds += time.perf_counter() - t
        regen: list[tuple[Episode, StepOut]] = []
        for (s, o), score in zip(live, scores):
            if isinstance(score, BaseException):
                s.fail(f"PRM failed: {_one_line(score)}")
            elif self._route(s, o, score):
                regen.append((s, o))
        strong_outs = {}
        if regen:
            if self.strong is None:
                for s, _ in regen:
                    s.fail("policy chose regenerate but no strong model is loaded")
                regen = []
            else:
                t = time.perf_counter()
                outs = self._generate(self.strong, [s for s, _ in regen], "s")
                self.stats.strong_seconds += time.perf_counter() - t
                strong_outs = {id(s): so for (s, _), so in zip(regen, outs)}
        for s, o in live:
            if s.finish == "error":
                continue
            self._commit(s, strong_outs.get(id(s)))

    def _write_strong(self, eps: list[Episode]) -> None:
        """A step of each episode whose policy handed the rest of its question to the strong model."""
        if self.strong is None:
            for s in eps:
                s.fail("policy handed the question to the strong model but none is loaded")
            return
        t = time.perf_counter()
        outs = self._generate(self.strong, eps, "s")
        self.stats.strong_seconds += time.perf_counter() - t
        for s, o in zip(eps, outs):
            if o is not None:
                s.write_strong(o)
                self.stats.regenerations += 1

    def _route(self, ep: Episode, o: StepOut, score) -> bool:
        """Belief update + policy for one weak step; True when the step is to be regenerated."""
        t0 = time.perf_counter()
        try:
            ep.observe(o, score)
            d = ep.decide()
        except TrimError:  # the episode has recorded the error
            return False
        self.stats.routing_seconds += time.perf_counter() - t0
        self.stats.steps += 1
        return d.regenerate

    def _commit(self, ep: Episode, strong: StepOut | None) -> None:
        if ep.awaiting != "commit":
            return
        if ep.pending_action == "regenerate":
            if strong is None:
                return  # generation error already recorded
            self.stats.regenerations += 1
        ep.commit(strong)


#: header fields that must agree for a resumed run to append to a trace (one policy, one set of models)
RESUME_FIELDS = ("policy", "weak", "strong", "prm", "trim_model", "max_steps", "max_step_tokens",
                 "temperature", "seed")


def run_to_trace(decoder: RoutedDecoder, problems: Sequence, out_path, *, resume: bool = False,
                 header: dict | None = None, progress: bool = True, retry_errors: bool = True,
                 force_mixed: bool = False) -> dict:
    """Decode ``problems`` into the trace file ``out_path`` (each record written as soon as it is done).

    With ``resume`` the problems already in the file are skipped, except failed ones, whose records are
    dropped and which are decoded again (unless ``retry_errors=False``); a ``header`` differing from the
    file's on a ``RESUME_FIELDS`` field is refused unless ``force_mixed``. Returns a summary (counts,
    accuracy, mean strong tokens; ``failed`` counts this run's problems whose record in the file is an
    error). A crash or Ctrl-C loses at most the problems in flight.
    """
    from tqdm import tqdm

    from trimpomdp.decode.trace import TraceWriter

    summary = {"skipped": 0, "decoded": 0, "correct": 0, "judged": 0, "strong_tokens": 0, "errors": 0,
               "kept_errors": 0}
    with TraceWriter(out_path, resume=resume, header=header, retry_errors=retry_errors,
                     compare=() if force_mixed else RESUME_FIELDS) as writer:
        done = writer.done_ids()
        todo = [p for p in problems if str(p.id) not in done]
        summary["skipped"] = len(problems) - len(todo)
        kept_errors = writer.error_ids()
        summary["kept_errors"] = sum(str(p.id) in kept_errors for p in problems)
        bar = tqdm(total=len(todo), desc="decode", unit="problem", disable=not progress, dynamic_ncols=True)

        def on_record(rec: dict) -> None:
            writer.write(rec)
            summary["decoded"] += 1
            summary["strong_tokens"] += rec["tokens"]["strong"]
            summary["errors"] += rec["finish"] == "error"
            if rec["correct"] is not None:
                summary["judged"] += 1
                summary["correct"] += bool(rec["correct"])
            acc = summary["correct"] / summary["judged"] if summary["judged"] else float("nan")
            bar.set_postfix(acc=f"{acc:.3f}", strong_tok=f"{summary['strong_tokens'] / summary['decoded']:.1f}",
                            errors=summary["errors"])
            bar.update(1)

        try:
            decoder.run(todo, on_record=on_record)
        finally:
            bar.close()
    n = max(1, summary["judged"])
    summary["accuracy"] = summary["correct"] / n if summary["judged"] else None
    summary["mean_strong_tokens"] = summary["strong_tokens"] / max(1, summary["decoded"])
    summary["routing_ms_per_step"] = decoder.stats.routing_ms_per_step
    summary["failed"] = summary["errors"] + summary["kept_errors"]
    summary["problems"] = summary["decoded"] + summary["skipped"]
    return summary
