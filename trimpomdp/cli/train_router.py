"""``trimpomdp train-router``: train a TRIM-Agg or TRIM-Seq router with PPO, in the simulator or live."""
from __future__ import annotations

import click

from trimpomdp.errors import TrimError


def _sizes(value: str) -> list[int]:
    try:
        sizes = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise TrimError(f"--hidden {value!r}: expected layer sizes such as 32,32") from None
    if not sizes or min(sizes) < 1:
        raise TrimError(f"--hidden {value!r}: expected positive layer sizes such as 32,32")
    return sizes


@click.command("train-router")
@click.argument("kind", type=click.Choice(["agg", "seq"]))
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False),
              help="Router file to write (.npz + JSON header); the checkpoint goes to OUT.ckpt.npz.")
@click.option("--lambda", "lam", type=float, default=8e-4, show_default=True,
              help="Price per strong token, in units of a correct answer's reward (1).")
@click.option("--timesteps", type=click.IntRange(1), default=300_000, show_default=True,
              help="Routing decisions to train on.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--envs", type=click.IntRange(1), default=256, show_default=True, help="Questions run side by side.")
@click.option("--mode", type=click.Choice(["sequence", "independent"]), default="sequence", show_default=True,
              help="Simulator observations: coherent per-episode score sequences, or independent draws.")
@click.option("--points", type=click.Path(dir_okay=False), default=None,
              help="Labelled PRM points .npz (default: the spec's observation_points).")
@click.option("--hidden", default="32,32", show_default=True, help="Hidden layer sizes of the policy head.")
@click.option("--seq-hidden", type=click.IntRange(1), default=16, show_default=True, help="GRU size (seq).")
@click.option("--eval-every", type=click.IntRange(1), default=50_000, show_default=True)
@click.option("--eval-episodes", type=click.IntRange(1), default=20_000, show_default=True)
@click.option("--checkpoint-every", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--resume", is_flag=True, help="Continue from OUT.ckpt.npz (same settings).")
@click.option("--env", "env_kind", type=click.Choice(["sim", "decode"]), default="sim", show_default=True,
              help="Train in the routing simulator, or live with real models on --problems.")
@click.option("--problems", type=click.Path(dir_okay=False), default=None, help="Problem file (--env decode).")
@click.option("--limit", type=int, default=None, help="Use only the first N problems (--env decode).")
@click.option("--weak", default="smollm2", show_default=True, help="Cheap model (--env decode).")
@click.option("--strong", default="gemma3", show_default=True, help="Strong model (--env decode).")
@click.option("--prm", "prm_spec", default="judge:smollm2", show_default=True, help="PRM (--env decode).")
@click.option("--max-steps", default=12, show_default=True, type=click.IntRange(1))
@click.option("--max-step-tokens", default=128, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_router_cmd(kind, spec, out, lam, timesteps, seed, envs, mode, points, hidden, seq_hidden, eval_every,
                     eval_episodes, checkpoint_every, resume, env_kind, problems, limit, weak, strong, prm_spec,
                     max_steps, max_step_tokens, device, quiet):
    """Train a KIND (agg | seq) step router on the routing model SPEC with PPO: reward 1 for a correct
    answer minus LAMBDA per strong token. Evaluated on simulated questions as it trains; the best
    evaluation is saved to OUT."""
    from pathlib import Path

    from trimpomdp.learned.train import TrainConfig, train_router
    from trimpomdp.pipeline import load_trim_model
    from trimpomdp.routing.spec import load_observation_points

    tm = load_trim_model(spec)
    pts_path = points or tm.absolute_points_path(Path(spec).parent)
    if pts_path is None:
        raise TrimError(f"{spec}: the spec names no observation_points; pass --points")
    pts = load_observation_points(pts_path)
    cfg = TrainConfig(kind=kind, lam=lam, timesteps=timesteps, seed=seed, envs=envs, mode=mode,
                      hidden=_sizes(hidden), seq_hidden=seq_hidden, eval_every=eval_every,
                      eval_episodes=eval_episodes, checkpoint_every=checkpoint_every, env=env_kind)
    cfg.check()
    core = None
    if env_kind == "decode":
        from trimpomdp.decode.models import loading_messages

        with loading_messages(not quiet):  # --quiet also hides the weight-loading bars and conversion stages
            core = _live_core(tm, problems, limit, weak, strong, prm_spec, envs, max_steps, max_step_tokens,
                              device, seed)
    elif problems is not None:
        raise TrimError("--problems only applies with --env decode")
    router, rep = train_router(tm, pts, cfg, out, core=core, resume=resume, progress=not quiet,
                               log=lambda m: click.echo(m, err=True))
    e = rep["selected"]
    click.echo(f"trained {kind} router (lambda {lam:g}, {rep['timesteps']:,} steps in {rep['seconds']:.1f} s, "
               f"env {rep['env']}): best evaluation at {e['timesteps']:,} steps, accuracy {e['accuracy']:.4f}, "
               f"strong tokens {e['strong_tokens']:.1f} ({cfg.eval_episodes:,} simulated {mode} questions, "
               f"seed {rep['eval_seed']}) -> {out}")


def _live_core(tm, problems, limit, weak, strong, prm_spec, envs, max_steps, max_step_tokens, device, seed):
    from trimpomdp.decode.hf import pick_device
    from trimpomdp.decode.loop import RoutedDecoder
    from trimpomdp.decode.problems import load_problems
    from trimpomdp.learned.env import DecodeCore
    from trimpomdp.pipeline import ModelPool

    if problems is None:
        raise TrimError("--env decode needs --problems FILE (problems with reference answers)")
    probs, _ = load_problems(problems, None, None, limit)
    pool = ModelPool(pick_device(device))
    dec = RoutedDecoder(pool.generator(weak, seed), pool.generator(strong, seed + 1), pool.prm(prm_spec, envs),
                        None, None, policy_name="train-router", batch_size=envs, max_steps=max_steps,
                        max_step_tokens=max_step_tokens)
    return DecodeCore(dec, probs, envs, seed, tm.tokens_per_weak_token)
