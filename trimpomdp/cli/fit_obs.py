"""``trimpomdp fit-obs``: fit per-state reflected KDEs on labelled PRM observations, save the model (and
optionally its bins table), then report diagnostics."""
from __future__ import annotations

import json
import sys

import click

from trimpomdp.errors import TrimError


def _bandwidth(value: str):
    if value in ("cv", "cv-grouped", "scott", "silverman"):
        return value
    try:
        h = float(value)
    except ValueError:
        raise TrimError(f"--bandwidth must be cv, cv-grouped, scott, silverman or a positive number, "
                        f"not {value!r}") from None
    if not h > 0:
        raise TrimError(f"--bandwidth must be positive, got {value}")
    return h


@click.command(name="fit-obs")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="ProcessBench items (JSON); DATA is then a JSONL of per-step PRM scores {id, scores}.")
@click.option("--dims", type=click.IntRange(1, 2), default=None,
              help="1: current score only; 2: (min earlier score, current score). Default: the data's own.")
@click.option("--pre-error-as-correct", is_flag=True,
              help="Also label the prefixes of flawed solutions before their first error as correct.")
@click.option("--bandwidth", default="cv-grouped", show_default=True,
              help="cv-grouped | cv | scott | silverman | FLOAT (kernel sd). cv-grouped holds out whole solutions "
                   "(sequence DATA) or tied points and scores 0.05 cells (bench/obs_sequences.py: never below "
                   "Scott's rule on held-out PRM data); cv is leave-one-out, quadratic in the points (at most "
                   "10,000 per state), and overfits quantised scores.")
@click.option("--covariance", type=click.Choice(["full", "diag"]), default="full", show_default=True)
@click.option("--bin-size", type=float, default=0.05, show_default=True,
              help="Bin size of the discretised model (at most 10,000 bins: >= 0.01 in 2-D).")
@click.option("--folds", type=int, default=5, show_default=True,
              help="k of the k-fold held-out diagnostics (0 or 1: skip; AUC is then in-sample).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the fold split and of the sample.")
@click.option("--no-diagnostics", is_flag=True,
              help="Skip the held-out / in-sample log-likelihood and AUC (the model is saved first anyway).")
@click.option("--diagnostic-points", type=click.IntRange(1), default=5000, show_default=True,
              help="The diagnostics evaluate the densities at most at this many points (a sample stratified "
                   "by state; all points below it), which keeps them linear in the data.")
@click.option("--partial-states", is_flag=True,
              help="Fit the TRIM states present even if correct/fresh_error/derailed are not all there.")
@click.option("--compare", type=click.Path(dir_okay=False), default=None,
              help="Reference bins table (.npz) to report the TV distance to, per state.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, help="Write a PNG of the densities.")
@click.option("--export-bins", type=click.Path(dir_okay=False), default=None,
              help="Also write the bins table (reference layout, <state>_centers/_probs).")
@click.option("--evaluate", type=click.Path(dir_okay=False), default=None,
              help="Sequence file (score-steps or ReasonEval JSONL) to run the fitted bins' belief filters along: "
                   "AUCs of b(E) and b(E)+b(D), log-loss, raw-score baselines.")
@click.option("--p-weak", type=click.FloatRange(0, 1, min_open=True), default=None,
              help="Keep-transition C->C probability of --evaluate [default: from sequence DATA, else the "
                   "packaged spec's].")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Fitted model file (.npz).")
def fit_obs(data, labels, dims, pre_error_as_correct, bandwidth, covariance, bin_size, folds, seed, no_diagnostics,
            diagnostic_points, partial_states, compare, plot, export_bins, evaluate, p_weak, as_json, output):
    """Fit reflected-KDE observation models P(obs | state) from labelled PRM data.

    DATA: labelled points (.npz, .csv, .jsonl), PRM scores with --labels, or a sequence file (score-steps
    output with "label", or ReasonEval JSONL) whose steps are labelled by their state directly.

    The model (and bins table) is written before the diagnostics run, so a slow or failing diagnostic
    never costs the fit."""
    from trimpomdp.observation_models.fitting import finite_json, fit_observation_model, fit_report

    summary = fit_observation_model(
        data, output, labels=labels, dims=dims, pre_error_correct=pre_error_as_correct,
        bandwidth=_bandwidth(bandwidth), covariance=covariance, bin_size=bin_size, folds=folds, seed=seed,
        diagnostics=not no_diagnostics, diagnostic_points=diagnostic_points, partial_states=partial_states,
        compare=compare, plot=plot, export_bins=export_bins, progress=not as_json and sys.stderr.isatty(),
        evaluate=evaluate, p_weak=p_weak)
    click.echo(json.dumps(finite_json(summary), indent=2) if as_json else fit_report(summary))
