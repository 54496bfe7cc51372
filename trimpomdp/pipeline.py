"""Wiring: build generators, PRMs and routing policies from their spec strings.

The command line and Python users share this, so ``trimpomdp decode --weak X --prm Y --policy Z`` and
``pipeline.build_policy("Z")`` mean the same thing. Spec strings:

- models (``--weak``/``--strong``): a packaged name (``smollm2``, ``gemma3``), a Hugging Face folder, a
  ``.gguf`` file, or an OpenAI-compatible server ``http://host:port/v1?model=NAME`` (``&api=chat`` for
  servers that serve only ``/v1/chat/completions``);
- PRMs: ``judge:<model>`` (LLM-as-judge), ``qwen:<folder>`` (Qwen2.5-Math-PRM style), ``http-score:URL``,
  ``http-judge:SERVER``, ``vllm-pooling:SERVER?model=NAME`` (vLLM's ``/pooling``, STEP pooling);
- policies: ``pomdp:PATH.npz``, ``pomdp:lambda=X`` / ``pomdp:mean=B`` / ``pomdp:cap=...`` (solved on the
  routing spec), ``threshold:K``, ``weak``, ``strong``.
"""
from __future__ import annotations

import random
from pathlib import Path

from trimpomdp.errors import FormatError, TrimError
from trimpomdp.packaged import default_spec_path

#: the policy ``decode`` uses when none is given: the POMDP at 0.15 reward units per strong token
DEFAULT_POLICY = "pomdp:lambda=0.15"


class ModelPool:
    """Loads each model spec once, so a judge PRM on the weak model shares its weights."""

    def __init__(self, device: str):
        self.device = device
        self._loaded: dict[str, tuple] = {}

    def get(self, spec: str):
        """(model, tokenizer, prompt style) of a local model spec, loaded on first use."""
        from trimpomdp.decode.hf import load_causal_lm
        from trimpomdp.decode.models import resolve_model

        if spec not in self._loaded:
            folder, gguf, style = resolve_model(spec)
            model, tok = load_causal_lm(folder, gguf, self.device)
            self._loaded[spec] = (model, tok, style)
        return self._loaded[spec]

    def generator(self, spec: str, seed: int | None = 0, temperature: float = 0.0, reuse_cache: bool = True):
        """A ``StepGenerator`` for a model spec (local weights or an OpenAI-compatible server)."""
        if spec.startswith(("http://", "https://")):
            from trimpomdp.decode.specs import backend_from_spec

            return backend_from_spec(spec)
        from trimpomdp.decode.hf import HFStepGenerator

        model, tok, style = self.get(spec)
        return HFStepGenerator(model, tok, name=spec, prompt_style=style, reuse_cache=reuse_cache,
                               temperature=temperature, seed=seed)

    def prm(self, spec: str, batch_size: int = 4):
        """A ``StepScorer`` for a PRM spec."""
        from trimpomdp.decode.prm import JudgePRM
        from trimpomdp.decode.specs import load_prm

        kind, _, target = spec.partition(":")
        if kind == "judge" and target:  # the pool's copy of the model, shared with a step writer
            model, tok, style = self.get(target)
            return JudgePRM(model, tok, name=spec, prompt_style=style, batch_size=batch_size)
        return load_prm(spec, device=self.device, batch_size=batch_size)


def load_trim_model(path=None):
    """The routing spec at ``path``, or the packaged default (fitted on MATH statistics and
    Qwen2.5-Math-PRM scores)."""
    from trimpomdp.routing.spec import TrimModel

    p = Path(path) if path else default_spec_path()
    if not p.is_file():
        raise FormatError("file not found (expected a TRIM routing spec .json)", str(p))
    return TrimModel.load(p)


def build_policy(policy_spec: str, trim_model_path=None):
    """(policy, belief filter) for a policy spec; the filter uses the policy's own model when it has one
    (a policy file embeds the spec it was solved for)."""
    from trimpomdp.routing import BeliefFilter, load_policy

    tm = load_trim_model(trim_model_path)
    policy = load_policy(policy_spec, trim_model=tm)
    return policy, BeliefFilter(getattr(policy, "trim_model", None) or tm)


def _benchmark_settings(probs) -> dict:
    """What a trace header records of its problems: the benchmark (grouped by ``eval``), its layout, and
    the grading of its answers (the most common kind, and any problem graded otherwise) for ``--recheck``."""
    from collections import Counter

    kinds = Counter(p.kind for p in probs)
    default = kinds.most_common(1)[0][0]
    out = {"benchmark": getattr(probs, "benchmark", None), "layout": getattr(probs, "layout", None),
           "answer_kind": default}
    other = {p.id: p.kind for p in probs if p.kind != default}
    if other:
        out["answer_kinds"] = other
    return out


def decode_file(problems, out=None, *, policy: str = DEFAULT_POLICY, trim_model=None, weak: str = "smollm2",
                strong: str = "gemma3", prm: str = "judge:smollm2", limit: int | None = None,
                question_field: str | None = None, answer_field: str | None = None, batch_size: int = 4,
                max_steps: int = 12, max_step_tokens: int = 128, device: str = "auto", temperature: float = 0.0,
                cache_reuse: bool = True, seed: int = 0, problem_timeout: float = 120.0, resume: bool = False,
                skip_errors: bool = False, force_mixed: bool = False, progress: bool = True,
                warn=None, scheduler: str = "auto") -> dict:
    """Routed decoding of a problem file into a trace (``trimpomdp decode``); returns the run summary
    (``out``, counts, accuracy, mean strong tokens, ``failed``). ``warn(message)`` receives the problems
    skipped as unusable. ``scheduler``: ``lockstep`` advances ``batch_size`` problems together (batched
    model calls, for in-process models), ``concurrent`` lets ``batch_size`` problems proceed each on its own
    (for servers: no problem waits for a batch's slowest request), ``auto`` picks ``concurrent`` when every
    model and the PRM are servers."""
    from trimpomdp.decode.loop import RESUME_FIELDS, run_to_trace
    from trimpomdp.decode.problems import load_problems

    if (skip_errors or force_mixed) and not resume:
        raise TrimError(f"{'skip_errors' if skip_errors else 'force_mixed'} only applies when resuming")
    if scheduler not in SCHEDULERS:
        raise TrimError(f"scheduler must be one of {', '.join(SCHEDULERS)}, got {scheduler!r}")
    out = Path(out) if out is not None else Path(f"{Path(problems).stem}.trace.jsonl")
    probs, errors = load_problems(problems, question_field, answer_field, limit)
    for e in errors:
        if warn is not None:
            warn(f"skipped {e}")
    if not probs:
        raise TrimError(f"{problems}: no usable problems")
    header = {"problems": str(problems), **_benchmark_settings(probs), "policy": policy, "weak": weak,
              "strong": strong, "prm": prm,
              "trim_model": None if trim_model is None else str(trim_model), "max_steps": max_steps,
              "max_step_tokens": max_step_tokens, "temperature": temperature, "seed": seed, "device": device,
              "cache_reuse": cache_reuse, "scheduler": scheduler}
    if resume and not force_mixed:  # before any model is loaded
        from trimpomdp.decode.trace import check_resume_settings

        check_resume_settings(out, header, RESUME_FIELDS)
    # no spec given: the one fitted for this PRM's own scores when it is a packaged PRM (the demo's judge),
    # else the default (the header keeps None: the choice follows from the PRM)
    pol, filt = build_policy(policy, trim_model if trim_model is not None else default_spec_path(prm))
    random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        raise TrimError("decoding needs torch and transformers: pip install torch==2.13.0 transformers "
                        "accelerate gguf") from None
    from trimpomdp.decode.hf import pick_device

    header["device"] = device = pick_device(device)
    pool = ModelPool(device)
    weak_gen = pool.generator(weak, seed, temperature, cache_reuse)
    strong_gen = None if policy.strip() == "weak" else pool.generator(strong, seed + 1, temperature, cache_reuse)
    decoder = build_decoder(weak_gen, strong_gen, pool.prm(prm, batch_size), pol, filt, policy_name=policy,
                            batch_size=batch_size, max_steps=max_steps, max_step_tokens=max_step_tokens,
                            problem_timeout=problem_timeout, scheduler=scheduler)
    summary = run_to_trace(decoder, probs, out, resume=resume, header=header, progress=progress,
                           retry_errors=not skip_errors, force_mixed=force_mixed)
    summary["out"] = str(out)
    return summary


#: how ``decode`` schedules problems (see ``decode_file``)
SCHEDULERS = ("auto", "lockstep", "concurrent")


def build_decoder(weak, strong, prm, policy, belief_filter, *, scheduler: str = "auto", batch_size: int = 4,
                  **kw):
    """The lock-step ``loop.RoutedDecoder`` or the per-problem ``concurrent.ConcurrentDecoder`` (``auto``:
    concurrent when every model and the PRM declare ``thread_safe``, i.e. are servers)."""
    from trimpomdp.decode.concurrent import ConcurrentDecoder, all_thread_safe
    from trimpomdp.decode.loop import RoutedDecoder

    if scheduler == "auto":
        scheduler = "concurrent" if all_thread_safe(weak, strong, prm) else "lockstep"
    if scheduler == "concurrent":
        if not all_thread_safe(weak, strong, prm):
            raise TrimError("the concurrent scheduler needs server-hosted models and PRM (in-process models "
                            "cannot be called from several threads); use --scheduler lockstep")
        return ConcurrentDecoder(weak, strong, prm, policy, belief_filter, concurrency=batch_size, **kw)
    return RoutedDecoder(weak, strong, prm, policy, belief_filter, batch_size=batch_size, **kw)


SOLVERS = ("sarsop", "staged", "qmdp", "exact")


def build_solver(name: str = "sarsop", *, precision: float = 1e-3, timeout: float | None = None,
                 max_iterations: int | None = None, seed: int = 0, memory_mb: float = 1024,
                 verbose: bool = False, callback=None, report_every: float = 1.0):
    """A ``Solver`` for a tabular POMDP by name: SARSOP (point-based), QMDP (upper bound), exact."""
    from trimpomdp.solvers.result import check_options

    check_options(precision, timeout, max_iterations, memory_mb)  # for every solver, whichever it uses
    if name == "sarsop":
        from trimpomdp.solvers.sarsop import SARSOPSolver

        return SARSOPSolver(precision=precision, timeout=timeout, max_iterations=max_iterations, seed=seed,
                            memory_mb=memory_mb, verbose=verbose, callback=callback, report_every=report_every)
    if name == "staged":
        from trimpomdp.solvers.staged import StagedSolver

        return StagedSolver(precision=precision, timeout=timeout, max_iterations=max_iterations, seed=seed,
                            memory_mb=memory_mb, verbose=verbose, callback=callback, report_every=report_every)
    if name == "qmdp":
        from trimpomdp.solvers.bounds import QMDPSolver

        return QMDPSolver()
    if name == "exact":
        from trimpomdp.solvers.exact import ExactSolver

        return ExactSolver(tol=precision, timeout=timeout, verbose=verbose)
    raise TrimError(f"unknown solver {name!r}; expected one of {', '.join(SOLVERS)}")


def solve_model(model, solver) -> object:
    """Solve a tabular POMDP; refuses a possibly infinite value (discount 1) before solving and reports
    non-finite or crossed bounds as an error, never as a result."""
    model.check_value_finite()
    res = solver.solve(model)
    res.check(model.name or "model")
    return res
