"""Routed decoding with every problem on its own: no problem waits for the slowest request of a batch.

``loop.RoutedDecoder`` advances all active problems in lock-step (weak step of each, PRM batch, strong
batch), which suits in-process models that batch on one device, but against servers one slow request
stalls the whole batch while the servers sit idle. Here ``concurrency`` worker threads each take a
problem and drive its ``episode.Episode`` through the same four calls (weak step, PRM score,
observe/decide, strong rewrite, commit) until it finishes, then take the next, so a server always has up
to ``concurrency`` requests from as many problems in flight (servers batch concurrent requests
themselves). Results equal the lock-step loop's for deterministic servers: each problem sees the same
calls with the same inputs, only their timing differs; records come in completion order.

Only backends that declare ``thread_safe`` (the HTTP ones) may be driven this way; ``pipeline`` picks
this decoder for them. The routing bookkeeping (belief filter and policy) and the grading of finished
problems run under one lock, so policies and sympy need not be thread-safe; model and PRM seconds in
``stats`` are summed over problems.
"""
from __future__ import annotations

import math
import queue
import threading
import time
from typing import Callable, Iterable

from trimpomdp.decode.backends import BatchError, StepOut
from trimpomdp.decode.episode import Episode
from trimpomdp.decode.loop import LoopStats, _one_line, _takes_deadline
from trimpomdp.decode.prompts import render
from trimpomdp.errors import TrimError

__all__ = ["ConcurrentDecoder", "all_thread_safe"]


def all_thread_safe(*parts) -> bool:
    """True when every given model/PRM (None skipped) may be called from several threads at once."""
    return all(getattr(p, "thread_safe", False) for p in parts if p is not None)


class ConcurrentDecoder:
    """Runs problems through weak model + PRM + filter + policy + strong model, ``concurrency`` problems
    at a time, each independently (see the module docstring). Same interface as ``RoutedDecoder``."""

    def __init__(self, weak, strong, prm, policy, belief_filter, *, policy_name: str, concurrency: int = 8,
                 max_steps: int = 12, max_step_tokens: int = 128, problem_timeout: float = 120.0):
        if concurrency < 1 or max_steps < 1 or max_step_tokens < 1:
            raise TrimError("concurrency, max steps and max step tokens must all be >= 1")
        if not (problem_timeout > 0 and math.isfinite(problem_timeout)):
            raise TrimError(f"problem timeout must be a positive number of seconds, got {problem_timeout!r}")
        self.weak, self.strong, self.prm = weak, strong, prm
        self.policy, self.filter = policy, belief_filter
        self.policy_name = policy_name
        self.concurrency, self.max_steps, self.max_step_tokens = concurrency, max_steps, max_step_tokens
        self.problem_timeout = float(problem_timeout)
        self.stats = LoopStats()
        self._lock = threading.Lock()       # routing bookkeeping and stats
        self._stop = threading.Event()

    @property
    def models(self) -> dict:
        return {"weak": getattr(self.weak, "name", "weak"),
                "strong": getattr(self.strong, "name", "strong") if self.strong is not None else None,
                "prm": getattr(self.prm, "name", "prm")}

    # ------------------------------------------------------------------------------------------ running
    def run(self, problems: Iterable, on_record: Callable[[dict], None] | None = None) -> list[dict]:
        """Decode every problem; ``on_record`` gets each record (in this thread) as soon as its problem
        finishes. Ctrl-C stops new problems from starting and returns at once (requests in flight are
        abandoned with their daemon threads)."""
        todo = list(problems)
        if not todo:
            return []
        self._stop.clear()
        nxt = iter(range(len(todo)))
        take = threading.Lock()
        done: queue.Queue = queue.Queue()

        def worker():
            while not self._stop.is_set():
                with take:
                    i = next(nxt, None)
                if i is None:
                    return
                try:
                    done.put(self._solve(todo[i]))
                except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                    done.put(exc)
                    return

        threads = [threading.Thread(target=worker, name=f"trim-decode-{k}", daemon=True)
                   for k in range(min(self.concurrency, len(todo)))]
        for t in threads:
            t.start()
        out: list[dict] = []
        try:
            while len(out) < len(todo):
                item = done.get()
                if isinstance(item, BaseException):
                    raise item
                out.append(item)
                if on_record is not None:
                    on_record(item)
        finally:
            self._stop.set()
        return out

    def _solve(self, problem) -> dict:
        """One problem from its first step to its record."""
        ep = Episode(problem, self.policy, self.filter, max_steps=self.max_steps)
        while ep.finish is None and not self._stop.is_set():
            self._step(ep)
        if ep.finish is None:
            ep.fail("decoding was interrupted")
        for gen, tag in ((self.weak, "w"), (self.strong, "s")):
            if gen is not None and hasattr(gen, "forget"):
                gen.forget(f"{tag}:{problem.id}")
        with self._lock:  # grading uses sympy, whose global state (evaluate flags, caches) is not per thread
            rec = ep.record(self.policy_name, self.models)
            self.stats.problems += 1
            self.stats.errors += ep.finish == "error"
        return rec

    def _call(self, fn, args: tuple, kw: dict):
        """``fn(*args, **kw)`` for one item, with the problem's deadline; its one result or the exception
        that failed it (a single-item BatchError is unwrapped)."""
        if _takes_deadline(fn):
            kw = {**kw, "deadline": time.monotonic() + self.problem_timeout}
        try:
            res = list(fn(*args, **kw))
        except KeyboardInterrupt:
            raise
        except BatchError as exc:
            return exc.outcomes[0] if len(exc.outcomes) == 1 else exc
        except Exception as exc:  # noqa: BLE001 - stays with this problem
            return exc
        if len(res) != 1:
            return TrimError(f"backend returned {len(res)} results for 1 inputs")
        return res[0]

    def _generate(self, gen, ep: Episode, tag: str) -> StepOut | None:
        key = f"{tag}:{ep.problem.id}"
        prompt = render(gen.prompt_style, ep.problem.question, ep.steps)
        t = time.perf_counter()
        o = self._call(gen.generate_steps, ([prompt], self.max_step_tokens), {"keys": [key]})
        with self._lock:
            if tag == "w":
                self.stats.weak_seconds += time.perf_counter() - t
            else:
                self.stats.strong_seconds += time.perf_counter() - t
        if isinstance(o, StepOut):
            return o
        if hasattr(gen, "forget"):  # its cache may be half-extended
            gen.forget(key)
        ep.fail(f"{'weak' if tag == 'w' else 'strong'} generation failed: " + (
            _one_line(o) if isinstance(o, BaseException) else f"not a step ({type(o).__name__})"))
        return None

    def _step(self, ep: Episode) -> None:
        """Weak step, PRM score, routing decision, strong rewrite if asked, commit (or, once the policy
        has handed the question to the strong model, a strong step alone)."""
        if ep.awaiting == "strong":
            if self.strong is None:
                ep.fail("policy handed the question to the strong model but none is loaded")
                return
            strong = self._generate(self.strong, ep, "s")
            if strong is not None:
                with self._lock:
                    ep.write_strong(strong)
                    self.stats.regenerations += 1
            return
        weak = self._generate(self.weak, ep, "w")
        if weak is None:
            return
        t = time.perf_counter()
        score = self._call(self.prm.score, ([ep.problem.question], [ep.steps + [weak.text]]), {})
        with self._lock:
            self.stats.prm_seconds += time.perf_counter() - t
        if isinstance(score, BaseException):
            ep.fail(f"PRM failed: {_one_line(score)}")
            return
        with self._lock:
            t0 = time.perf_counter()
            try:
                ep.observe(weak, score)
                regenerate = ep.decide().regenerate
            except TrimError:  # the episode has recorded the error
                return
            self.stats.routing_seconds += time.perf_counter() - t0
            self.stats.steps += 1
        strong = None
        if regenerate:
            if self.strong is None:
                ep.fail("policy chose regenerate but no strong model is loaded")
                return
            strong = self._generate(self.strong, ep, "s")
            if strong is None:
                return
            with self._lock:
                self.stats.regenerations += 1
        ep.commit(strong)
