"""``trimpomdp decode``: routed step-level generation over a problem file into a JSONL trace."""
from __future__ import annotations

import random
import sys
from pathlib import Path

import click

from trimpomdp.errors import TrimError

DEFAULT_POLICY = "pomdp:lambda=0.15"


def default_trim_model_path() -> Path:
    """The repo's ``data/trim_math.json`` (the routing model fitted on MATH statistics)."""
    import trimpomdp

    return Path(trimpomdp.__file__).resolve().parents[1] / "data" / "trim_math.json"


class ModelPool:
    """Loads each model spec once, so a judge PRM on the weak model shares its weights."""

    def __init__(self, device: str):
        self.device = device
        self._loaded: dict[str, tuple] = {}

    def get(self, spec: str):
        from trimpomdp.decode.hf import load_causal_lm
        from trimpomdp.decode.models import resolve_model

        if spec not in self._loaded:
            folder, gguf, style = resolve_model(spec)
            model, tok = load_causal_lm(folder, gguf, self.device)
            self._loaded[spec] = (model, tok, style)
        return self._loaded[spec]

    def generator(self, spec: str, seed: int | None, temperature: float, reuse_cache: bool):
        from trimpomdp.decode.hf import HFStepGenerator

        if spec.startswith(("http://", "https://")):  # an OpenAI-compatible server
            from trimpomdp.decode.http import backend_from_spec

            return backend_from_spec(spec)
        model, tok, style = self.get(spec)
        return HFStepGenerator(model, tok, name=spec, prompt_style=style, reuse_cache=reuse_cache,
                               temperature=temperature, seed=seed)

    def prm(self, spec: str, batch_size: int):
        from trimpomdp.decode.prm import JudgePRM, load_prm

        kind, _, target = spec.partition(":")
        if kind in ("http-score", "http-judge"):
            from trimpomdp.decode.http import prm_from_spec

            return prm_from_spec(spec)
        if kind == "judge" and target:
            model, tok, style = self.get(target)
            return JudgePRM(model, tok, name=spec, prompt_style=style, batch_size=batch_size)
        return load_prm(spec, device=self.device, batch_size=batch_size)


def build_policy(policy_spec: str, trim_model_path: str | None):
    """(policy, belief filter) for a policy spec; the filter uses the policy's own model when it has one."""
    from trimpomdp.routing import BeliefFilter, TrimModel, load_policy

    path = Path(trim_model_path) if trim_model_path else default_trim_model_path()
    if trim_model_path and not path.is_file():
        raise TrimError(f"TRIM model spec not found: {path}")
    tm = TrimModel.load(path) if path.is_file() else None
    policy = load_policy(policy_spec, trim_model=tm)
    model = getattr(policy, "trim_model", None) or tm
    if model is None:
        raise TrimError(f"policy {policy_spec!r} needs a TRIM model for the belief filter: give --trim-model "
                        f"(default {path} is missing)")
    return policy, BeliefFilter(model)


@click.command("decode")
@click.argument("problems", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", default=None, type=click.Path(dir_okay=False),
              help="Trace JSONL to write [default: ./<problems name>.trace.jsonl].")
@click.option("--limit", type=int, default=None, help="Decode only the first N problems.")
@click.option("--question-field", default=None, help="Field holding the question (auto-detected).")
@click.option("--answer-field", default=None, help="Field holding the reference answer (auto-detected).")
@click.option("--policy", "policy_spec", default=DEFAULT_POLICY, show_default=True,
              help="pomdp:PATH.npz | pomdp:lambda=X (solved now) | threshold:K | weak | strong.")
@click.option("--trim-model", "trim_model", default=None, type=click.Path(dir_okay=False),
              help="TRIM routing model spec (JSON) for the filter/solve [default: data/trim_math.json].")
@click.option("--weak", default="smollm2", show_default=True, help="Weak model: packaged name, folder, .gguf, or http://server/v1?model=NAME.")
@click.option("--strong", default="gemma3", show_default=True, help="Strong model: packaged name, folder or .gguf.")
@click.option("--prm", "prm_spec", default="judge:smollm2", show_default=True, help="judge:<model> | qwen:<folder> | http-score:URL | http-judge:SERVER.")
@click.option("--batch-size", default=4, show_default=True, type=click.IntRange(1))
@click.option("--max-steps", default=12, show_default=True, type=click.IntRange(1))
@click.option("--max-step-tokens", default=128, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--temperature", default=0.0, show_default=True, type=click.FloatRange(0.0),
              help="0 = greedy decoding.")
@click.option("--no-cache-reuse", is_flag=True, help="Re-encode each prefix in batched generate() calls.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--problem-timeout", default=120.0, show_default=True, type=click.FloatRange(0.0, min_open=True),
              help="Seconds a problem may wait on one model or PRM call, retries included, before it fails.")
@click.option("--resume", is_flag=True,
              help="Keep the problems finished in OUT and decode the rest, failed ones included.")
@click.option("--skip-errors", is_flag=True, help="With --resume: keep failed problems as they are.")
@click.option("--force-mixed", is_flag=True,
              help="With --resume: append even if policy or models differ from OUT's header.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.pass_context
def decode(ctx, problems, out, limit, question_field, answer_field, policy_spec, trim_model, weak, strong,
           prm_spec, batch_size, max_steps, max_step_tokens, device, temperature, no_cache_reuse, seed,
           problem_timeout, resume, skip_errors, force_mixed, quiet):
    """Routed decoding of PROBLEMS (JSONL): the weak model writes each step, the PRM scores it, the
    routing filter and policy decide keep/regenerate, the strong model rewrites regenerated steps.
    Exits with status 1 when any problem failed (its record has an "error")."""
    from trimpomdp.decode.loop import RoutedDecoder, run_to_trace
    from trimpomdp.decode.problems import load_problems

    if (skip_errors or force_mixed) and not resume:
        raise TrimError(f"--{'skip-errors' if skip_errors else 'force-mixed'} only applies with --resume")
    if out is None:
        out = f"{Path(problems).stem}.trace.jsonl"
    probs, errors = load_problems(problems, question_field, answer_field, limit)
    for e in errors:
        click.echo(f"warning: skipped {e}", err=True)
    if not probs:
        raise TrimError(f"{problems}: no usable problems")
    header = {"problems": str(problems), "policy": policy_spec, "weak": weak, "strong": strong, "prm": prm_spec,
              "trim_model": trim_model, "max_steps": max_steps, "max_step_tokens": max_step_tokens,
              "temperature": temperature, "seed": seed, "device": device, "cache_reuse": not no_cache_reuse}
    if resume and not force_mixed:  # before any model is loaded
        from trimpomdp.decode.loop import RESUME_FIELDS
        from trimpomdp.decode.trace import check_resume_settings

        check_resume_settings(out, header, RESUME_FIELDS)
    policy, filt = build_policy(policy_spec, trim_model)
    random.seed(seed)
    try:
        import torch

        torch.manual_seed(seed)
    except ImportError:
        raise TrimError("decoding needs torch and transformers: pip install torch==2.13.0 transformers "
                        "accelerate gguf") from None
    from trimpomdp.decode.hf import pick_device

    device = pick_device(device)
    pool = ModelPool(device)
    reuse = not no_cache_reuse
    weak_gen = pool.generator(weak, seed, temperature, reuse)
    strong_gen = None if policy_spec.strip() == "weak" else pool.generator(strong, seed + 1, temperature, reuse)
    scorer = pool.prm(prm_spec, batch_size)
    decoder = RoutedDecoder(weak_gen, strong_gen, scorer, policy, filt, policy_name=policy_spec,
                            batch_size=batch_size, max_steps=max_steps, max_step_tokens=max_step_tokens,
                            problem_timeout=problem_timeout)
    header["device"] = device
    summary = run_to_trace(decoder, probs, out, resume=resume, header=header, progress=not quiet,
                           retry_errors=not skip_errors, force_mixed=force_mixed)
    acc = "n/a" if summary["accuracy"] is None else f"{summary['accuracy']:.3f}"
    click.echo(f"decoded {summary['decoded']} problems (skipped {summary['skipped']} already done, "
               f"{summary['errors']} errors): accuracy {acc}, mean strong tokens "
               f"{summary['mean_strong_tokens']:.1f}, routing {summary['routing_ms_per_step']:.3f} ms/step -> {out}",
               err=True)
    if summary["failed"]:
        again = ("rerun with --resume to retry them" if not skip_errors
                 else "rerun with --resume (without --skip-errors) to retry them")
        click.echo(f"{summary['failed']} of {summary['problems']} problems failed (see \"error\" in {out}); "
                   f"{again}", err=True)
        sys.stderr.flush()
        ctx.exit(1)
    sys.stderr.flush()
