"""``trimpomdp score-steps``: PRM scores for every step of labelled solutions (ProcessBench form), the
input of ``fit-obs``. One JSON line per solution, written as soon as it is scored; ``--resume`` skips
the ids already in the output."""
from __future__ import annotations

import click


@click.command("score-steps")
@click.argument("labelled", type=click.Path(dir_okay=False))
@click.option("-o", "--out", "out", required=True, type=click.Path(dir_okay=False), help="Scores JSONL to write.")
@click.option("--prm", "prm_spec", default="judge:smollm2", show_default=True, help="judge:<model> | qwen:<folder> | vllm-pooling:SERVER?model=NAME.")
@click.option("--limit", type=click.IntRange(0), default=None, help="Score only the first N solutions.")
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(1))
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--resume", is_flag=True, help="Skip the ids already in OUT.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def score_steps(labelled, out, prm_spec, limit, batch_size, device, resume, quiet):
    """Score every step of LABELLED solutions with a PRM -> JSONL {"id", "scores", "label"}."""
    from trimpomdp.decode.prm import load_prm
    from trimpomdp.decode.scoring import score_labelled, scored_ids
    from trimpomdp.observation_models.data import load_processbench

    items = load_processbench(labelled, need_problem=True)[:limit]
    if resume and {it["id"] for it in items} <= scored_ids(out):
        click.echo(f"nothing to do: all {len(items)} solutions are in {out}", err=True)
        return
    prm = load_prm(prm_spec, device=device, batch_size=batch_size)
    n_new, n_done = score_labelled(items, prm, out, prm_spec, resume=resume, progress=not quiet)
    click.echo(f"scored {n_new} solutions ({n_done} already done) -> {out}", err=True)
