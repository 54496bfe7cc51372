"""``trimpomdp score-steps``: PRM scores for every step of labelled solutions (ProcessBench form), the
input of ``fit-obs``. One JSON line per solution, written as soon as it is scored; ``--resume`` skips
the ids already in the output."""
from __future__ import annotations

import click

from trimpomdp.errors import TrimError


@click.command("score-steps")
@click.argument("labelled", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False), help="Scores JSONL to write.")
@click.option("--prm", "prm_spec", default="judge:smollm2", show_default=True, help="judge:<model> | qwen:<folder> | vllm-pooling:SERVER?model=NAME.")
@click.option("--limit", type=click.IntRange(0), default=None, help="Score only the first N solutions.")
@click.option("--sample", type=click.IntRange(1), default=None,
              help="Score the first N solutions of a seeded shuffle (ProcessBench files list the flawed "
                   "solutions first, so the first N of the file are not representative).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of --sample.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--resume", is_flag=True, help="Skip the ids already in OUT.")
@click.option("--quiet", is_flag=True, help="No progress bars (scoring, model loading and conversion).")
@click.pass_context
def score_steps(ctx, labelled, out, prm_spec, limit, sample, seed, batch_size, device, resume, quiet):
    """Score every step of LABELLED solutions with a PRM -> JSONL {"id", "scores", "label"}."""
    from trimpomdp.decode.specs import load_prm
    from trimpomdp.decode.scoring import sample_items, score_labelled, scored_ids
    from trimpomdp.observation_models.data import load_processbench

    if limit is not None and sample is not None:
        raise TrimError("give --limit or --sample, not both")
    items = load_processbench(labelled, need_problem=True)[:limit]
    if sample is not None:
        items = sample_items(items, sample, seed)
    if resume and {it["id"] for it in items} <= scored_ids(out):
        click.echo(f"nothing to do: all {len(items)} solutions are in {out}", err=True)
        return
    from trimpomdp.cli.common import interrupted
    from trimpomdp.decode.models import loading_messages

    try:
        with loading_messages(not quiet):
            prm = load_prm(prm_spec, device=device, batch_size=batch_size)
        n_new, n_done = score_labelled(items, prm, out, prm_spec, resume=resume, progress=not quiet)
    except KeyboardInterrupt:
        interrupted(ctx, len(scored_ids(out)), "solution", out)
    click.echo(f"scored {n_new} solutions ({n_done} already done) -> {out}", err=True)
