"""``trimpomdp decode``: routed step-level generation over a problem file into a JSONL trace.

``--quiet`` hides every progress display (the decode bar, transformers' weight loading, the one-time
model conversion); Ctrl-C says how many problems are saved and how to resume."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from trimpomdp.errors import TrimError
from trimpomdp.pipeline import DEFAULT_POLICY


@click.command("decode")
@click.argument("problems", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", default=None, type=click.Path(dir_okay=False),
              help="Trace JSONL to write [default: ./<problems name>.trace.jsonl].")
@click.option("--limit", type=int, default=None, help="Decode only the first N problems.")
@click.option("--question-field", default=None, help="Field holding the question (auto-detected).")
@click.option("--answer-field", default=None, help="Field holding the reference answer (auto-detected).")
@click.option("--policy", "policy_spec", default=DEFAULT_POLICY, show_default=True,
              help="pomdp:PATH.npz | pomdp:lambda=X (solved now) | threshold:K | agg:FILE | seq:FILE (trained with "
                   "train-router on the --trim-model spec) | takeover:<policy> | query:K | weak | strong.")
@click.option("--trim-model", "trim_model", default=None, type=click.Path(dir_okay=False),
              help="TRIM routing model spec (JSON) for the filter/solve [default: the packaged spec fitted for "
                   "--prm: trim_judge_smollm2.json for judge:smollm2, else trim_math.json].")
@click.option("--weak", default="smollm2", show_default=True, help="Weak model: packaged name, folder, .gguf, or http://server/v1?model=NAME.")
@click.option("--strong", default="gemma3", show_default=True, help="Strong model: packaged name, folder, .gguf, or http://server/v1?model=NAME[&api=chat].")
@click.option("--prm", "prm_spec", default="judge:smollm2", show_default=True, help="judge:<model> | qwen:<folder> | http-score:URL | http-judge:SERVER | vllm-pooling:SERVER?model=NAME.")
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
@click.option("--quiet", is_flag=True, help="No progress bars (decoding, model loading and conversion).")
@click.option("--scheduler", default="auto", show_default=True,
              type=click.Choice(["auto", "lockstep", "concurrent"]),
              help="lockstep: --batch-size problems advance together (in-process models); concurrent: each "
                   "of --batch-size problems proceeds on its own (servers); auto: concurrent for servers.")
@click.pass_context
def decode(ctx, problems, out, limit, question_field, answer_field, policy_spec, trim_model, weak, strong,
           prm_spec, batch_size, max_steps, max_step_tokens, device, temperature, no_cache_reuse, seed,
           problem_timeout, resume, skip_errors, force_mixed, quiet, scheduler):
    """Routed decoding of PROBLEMS (JSONL): the weak model writes each step, the PRM scores it, the
    routing filter and policy decide keep/regenerate, the strong model rewrites regenerated steps.
    Exits with status 1 when any problem failed (its record has an "error")."""
    from trimpomdp.cli.common import interrupted, saved_trace_records
    from trimpomdp.decode.models import loading_messages
    from trimpomdp.pipeline import decode_file

    if (skip_errors or force_mixed) and not resume:
        raise TrimError(f"--{'skip-errors' if skip_errors else 'force-mixed'} only applies with --resume")
    out = out if out is not None else f"{Path(problems).stem}.trace.jsonl"  # decode_file's default, named here
    try:
        with loading_messages(not quiet):
            summary = decode_file(
                problems, out, policy=policy_spec, trim_model=trim_model, weak=weak, strong=strong, prm=prm_spec,
                limit=limit, question_field=question_field, answer_field=answer_field, batch_size=batch_size,
                max_steps=max_steps, max_step_tokens=max_step_tokens, device=device, temperature=temperature,
                cache_reuse=not no_cache_reuse, seed=seed, problem_timeout=problem_timeout, resume=resume,
                skip_errors=skip_errors, force_mixed=force_mixed, progress=not quiet, scheduler=scheduler,
                warn=lambda msg: click.echo(f"warning: {msg}", err=True))
    except KeyboardInterrupt:
        interrupted(ctx, saved_trace_records(out), "problem", out)
    out = summary["out"]
    acc = "n/a" if summary["accuracy"] is None else f"{summary['accuracy']:.3f}"
    click.echo(f"decoded {summary['decoded']} problems (skipped {summary['skipped']} already done, "
               f"{summary['errors']} errors): accuracy {acc}, mean strong tokens "
               f"{summary['mean_strong_tokens']:.1f}, {_step_counts(out)}routing "
               f"{summary['routing_ms_per_step']:.3f} ms/step -> {out}", err=True)
    if summary["failed"]:
        again = ("rerun with --resume to retry them" if not skip_errors
                 else "rerun with --resume (without --skip-errors) to retry them")
        click.echo(f"{summary['failed']} of {summary['problems']} problems failed (see \"error\" in {out}); "
                   f"{again}", err=True)
        sys.stderr.flush()
        ctx.exit(1)
    sys.stderr.flush()


def _step_counts(out) -> str:
    """``"K steps kept, R regenerated, "`` over the whole trace (empty when it cannot be read)."""
    import warnings

    from trimpomdp.analysis.inspection import step_counts
    from trimpomdp.decode.trace import read_run

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            c = step_counts(read_run(out).records)
    except TrimError:
        return ""
    return f"{c['kept']} steps kept, {c['regenerated']} regenerated, "
