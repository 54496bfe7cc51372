"""``trimpomdp trim-model``: build a TRIM routing model spec (JSON) from step statistics and an obs model."""

from __future__ import annotations

import json

import click


@click.command(name="trim-model")
@click.option(
    "--step-stats",
    "step_stats",
    required=True,
    type=click.Path(dir_okay=False),
    help="Step statistics .npz (<model>__next_step_accuracy, __correct_solution_steps).",
)
@click.option("--weak", required=True, help="Weak (cheap) model name in the step statistics.")
@click.option("--strong", required=True, help="Strong model name in the step statistics.")
@click.option(
    "--obs",
    "obs",
    required=True,
    type=click.Path(dir_okay=False),
    help="Observation model: a bins table or a fitted model from fit-obs.",
)
@click.option(
    "--points",
    type=click.Path(dir_okay=False),
    default=None,
    help="Labelled PRM points (.npz, arrays correct/fresh_error/derailed) used to evaluate policies.",
)
@click.option("--reward", type=float, default=100.0, show_default=True, help="Reward of a correct answer.")
@click.option("--max-steps", "max_steps", type=click.IntRange(1, 500), default=30, show_default=True)
@click.option("--p-weak", "p_weak", type=float, default=None, help="Override the weak next-step accuracy.")
@click.option(
    "--p-strong", "p_strong", type=float, default=None, help="Override the strong next-step accuracy."
)
@click.option(
    "--step-tokens",
    "step_tokens",
    type=float,
    default=None,
    help="Mean strong tokens per step (default 61.7 = 494.84 / 8.018 from the strong-only anchor run).",
)
@click.option(
    "--token-sigma",
    "token_sigma",
    type=float,
    default=0.8,
    show_default=True,
    help="Log-sd of the lognormal step-token distribution.",
)
@click.option("--token-bins", "token_bins", type=click.IntRange(1, 256), default=16, show_default=True)
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Spec JSON to write.")
@click.option("--json", "as_json", is_flag=True, help="Print the spec as JSON.")
def trim_model(
    step_stats,
    weak,
    strong,
    obs,
    points,
    reward,
    max_steps,
    p_weak,
    p_strong,
    step_tokens,
    token_sigma,
    token_bins,
    output,
    as_json,
):
    """Build a TRIM routing spec: p_weak/p_strong, length distribution, token costs, observation model."""
    from trimpomdp.routing.spec import DEFAULT_STEP_TOKENS, TrimModel, write_spec

    tm = TrimModel.from_step_stats(
        step_stats,
        weak,
        strong,
        obs,
        reward=reward,
        max_steps=max_steps,
        p_weak=p_weak,
        p_strong=p_strong,
        token_sigma=token_sigma,
        token_bins=token_bins,
        mean_step_tokens=DEFAULT_STEP_TOKENS if step_tokens is None else step_tokens,
    )
    out = write_spec(tm, output, obs, points)
    if as_json:
        click.echo(json.dumps(json.loads(out.read_text()), indent=1))
    else:
        click.echo(
            f"wrote {out}: p_weak {tm.p_weak:.4f}, p_strong {tm.p_strong:.4f}, mean steps "
            f"{tm.mean_steps:.3f} (max {tm.max_steps}), mean step tokens {tm.mean_step_tokens:.2f}, "
            f"{tm.obs.n_bins} observation bins"
        )
