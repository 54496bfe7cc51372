"""``trimpomdp calibrate``: fit the routing model's question difficulty to real run summaries."""
from __future__ import annotations

import json

import click


@click.command(name="calibrate")
@click.option("--runs", default=None, type=click.Path(),
              help="Run summaries in the reference's format: a .jsonl file or a folder of them "
                   "(e.g. ../shared/data/anchor_runs).")
@click.option("--traces", multiple=True, type=click.Path(dir_okay=False),
              help="Our decode traces instead: a weak, a strong and threshold:K runs of the same problems "
                   "(pomdp:... runs are held out and reported); more trace files may follow it "
                   "(--traces runs/*.jsonl).")
@click.argument("more_traces", nargs=-1, type=click.Path(dir_okay=False))
@click.option("--points", default=None, type=click.Path(dir_okay=False),
              help="Labelled PRM points .npz of the runs' PRM [default: the packaged ProcessBench points].")
@click.option("--lengths", default=None, type=click.Path(dir_okay=False),
              help="Solution-length pmf .npz ('steps' and one pmf per model); with --traces the cheap-only "
                   "trace's step counts are used instead.")
@click.option("--length-model", default="qwen2.5-1.5b-instruct", show_default=True,
              help="Which pmf of --lengths (the cheap model's).")
@click.option("--classes", type=click.IntRange(1, 6), default=3, show_default=True,
              help="Latent difficulty classes of questions.")
@click.option("--anchor-weight", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Weight of the cheap-only and strong-only runs against one threshold run [default: 50].")
@click.option("--starts", type=click.IntRange(1, 100), default=8, show_default=True,
              help="Optimiser starts (seeded).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--step-lengths", default=None, type=click.Path(dir_okay=False),
              help="Step-split solutions (ProcessBench layout, e.g. ../shared/data/processbench/math.json) to "
                   "measure the spread of step lengths from [default: 0.689, measured on that file].")
@click.option("--step-stats", default=None, type=click.Path(dir_okay=False),
              help="The cheap model's step statistics (e.g. ../shared/data/step_stats_math_train.npz, model "
                   "--length-model): the classes must also explain where its first error falls.")
@click.option("--first-error-weight", type=click.FloatRange(min=0), default=None,
              help="Weight of the first-error log-likelihood per real solution [default: 1].")
@click.option("-o", "--output", type=click.Path(dir_okay=False), default=None, help="Calibration JSON to write.")
@click.option("--spec", "spec_out", type=click.Path(dir_okay=False), default=None,
              help="Also write the calibrated routing spec (difficulty classes, derailed scoring, lengths, "
                   "rewrite tokens) for solve / decode / simulate-routing.")
@click.option("--obs", "obs_table", default=None, type=click.Path(dir_okay=False),
              help="Observation table the spec names [default: the packaged trim_math_obs_0.05.npz, read as "
                   "'current'].")
@click.option("--json", "as_json", is_flag=True, help="Print the calibration record as JSON.")
def calibrate(runs, traces, more_traces, points, lengths, length_model, classes, anchor_weight, starts, seed, step_lengths,
              step_stats, first_error_weight, output, spec_out, obs_table, as_json):
    """Fit difficulty classes, step accuracies and token means to real runs; print observed vs predicted."""
    from trimpomdp.calibration.report import calibrate as run, report_text, save
    from trimpomdp.errors import TrimError
    from trimpomdp.packaged import data_path

    from trimpomdp.calibration.steps import step_log_sd

    if more_traces and not traces:
        raise TrimError(f"calibrate: unexpected arguments {' '.join(more_traces)} (trace files follow --traces)")
    traces = tuple(traces) + tuple(more_traces)
    if bool(runs) == bool(traces):
        raise TrimError("give either --runs (run summaries) or --traces (decode traces)")
    rec = run(list(traces) if traces else runs, points or data_path("prm_obs_processbench_math.npz"), lengths, length_model, classes=classes,
              starts=starts, seed=seed, anchor_weight=anchor_weight,
              step_log_sd=step_log_sd(step_lengths) if step_lengths else None, step_stats=step_stats,
              first_error_weight=first_error_weight)
    if output:
        save(rec, output)
    if spec_out:
        from trimpomdp.calibration.spec import spec_from_record
        from trimpomdp.routing.spec import write_spec

        obs = obs_table or data_path("trim_math_obs_0.05.npz")
        pts = points or data_path("prm_obs_processbench_math.npz")
        tm = spec_from_record(rec, obs, pts)
        written = write_spec(tm, spec_out, obs, pts)
    if as_json:
        click.echo(json.dumps(rec, indent=1, default=float))
        return
    click.echo(report_text(rec))
    if output:
        click.echo(f"wrote {output}")
    if spec_out:
        cl = tm.classes
        click.echo(f"wrote {written}: {cl.n} difficulty classes (weights {', '.join(f'{w:.3f}' for w in cl.weights)}; "
                   f"p_weak {', '.join(f'{p:.3f}' for p in cl.p_weak)}; p_strong "
                   f"{', '.join(f'{p:.3f}' for p in cl.p_strong)}), derailed scored as fresh errors "
                   f"{tm.derailed_as_error:.3f}; solve it with: trimpomdp solve {written} --budget mean=60")
