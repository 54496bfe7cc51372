"""``trimpomdp fit-obs``: fit per-state reflected KDEs on labelled PRM observations, save the model (and
optionally its bins table), then report diagnostics."""
from __future__ import annotations

import json
import sys
import time

import click
import numpy as np

from trimpomdp.errors import TrimError


def _bandwidth(value: str):
    if value in ("cv", "scott", "silverman"):
        return value
    try:
        h = float(value)
    except ValueError:
        raise TrimError(f"--bandwidth must be cv, scott, silverman or a positive number, not {value!r}") from None
    if not h > 0:
        raise TrimError(f"--bandwidth must be positive, got {value}")
    return h


def _finite(obj):
    """NaN (e.g. the AUC of a lone state) becomes null so that the output is strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return None if isinstance(obj, float) and obj != obj else obj


@click.command(name="fit-obs")
@click.argument("data", type=click.Path(dir_okay=False))
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="ProcessBench items (JSON); DATA is then a JSONL of per-step PRM scores {id, scores}.")
@click.option("--dims", type=click.IntRange(1, 2), default=None,
              help="1: current score only; 2: (min earlier score, current score). Default: the data's own.")
@click.option("--pre-error-as-correct", is_flag=True,
              help="Also label the prefixes of flawed solutions before their first error as correct.")
@click.option("--bandwidth", default="cv", show_default=True,
              help="cv | scott | silverman | FLOAT (kernel sd). cv is quadratic in the points: at most "
                   "10,000 per state.")
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
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Fitted model file (.npz).")
def fit_obs(data, labels, dims, pre_error_as_correct, bandwidth, covariance, bin_size, folds, seed, no_diagnostics,
            diagnostic_points, partial_states, compare, plot, export_bins, as_json, output):
    """Fit reflected-KDE observation models P(obs | state) from labelled PRM data.

    The model (and bins table) is written before the diagnostics run, so a slow or failing diagnostic
    never costs the fit."""
    from trimpomdp.observation_models import diagnostics as dg
    from trimpomdp.observation_models.binned import TRIM_STATES
    from trimpomdp.observation_models.data import load_labelled
    from trimpomdp.observation_models.discretize import bins_per_dim, check_grid
    from trimpomdp.observation_models.io import load_binned, save_model
    from trimpomdp.observation_models.kde import ReflectedKDE

    bw = _bandwidth(bandwidth)
    bins_per_dim(bin_size)
    ld = load_labelled(data, labels=labels, dims=dims, pre_error_correct=pre_error_as_correct)
    check_grid(bin_size, ld.X.shape[1])
    present = ld.states
    missing = [s for s in TRIM_STATES if s not in present]
    if missing and len(missing) < len(TRIM_STATES) and not partial_states:
        raise TrimError(f"{data}: no {', '.join(repr(s) for s in missing)} points (states found: "
                        f"{', '.join(present)}); the routing model needs all of {', '.join(TRIM_STATES)}; pass "
                        "--partial-states to fit the states present")
    reference = load_binned(compare) if compare else None  # fail early on a bad reference
    diagnose = not no_diagnostics
    if diagnose and folds >= 2:
        dg.check_folds(ld.y, folds)
    progress = not as_json and sys.stderr.isatty()

    t0 = time.perf_counter()
    model = ReflectedKDE(bandwidth=bw, covariance=covariance).fit(ld.X, ld.y, progress=progress)
    binned = model.discretize(bin_size, progress=progress)
    fit_s = time.perf_counter() - t0
    save_model(model, output, bin_size=bin_size, extra_meta={"data": str(data), "labels": labels})
    if export_bins:
        binned.save(export_bins)

    states = model.states_
    rows = {s: {"n": model.counts_[s], "bandwidth": model.bandwidths_[s].tolist()} for s in states}
    for s, sc in model.cv_scales_.items():
        rows[s]["cv_scale"] = sc
    evaluated = 0
    if diagnose:
        if folds >= 2:
            cvr = dg.cross_validate(ld.X, ld.y, lambda: ReflectedKDE(bandwidth=bw, covariance=covariance),
                                    folds=folds, seed=seed, progress=progress, max_eval=diagnostic_points)
            auc = dg.ovr_auc(cvr["posterior"], cvr["y"], states)
            evaluated = cvr["index"].size
            for s in states:
                rows[s]["heldout_loglik"] = cvr["heldout_loglik"][s]
        else:
            index, post, y_eval = dg.in_sample_posterior(model, ld.X, ld.y, diagnostic_points, seed, progress)
            auc = dg.ovr_auc(post, y_eval, states)
            evaluated = index.size
        for s in states:
            rows[s]["auc"] = auc[s]
    if reference is not None:
        tv = dg.tv_distance(binned, reference)
        for s in states:
            rows[s]["tv_to_reference"] = tv[s]
    if plot:
        dg.plot_model(model, ld.X, ld.y, plot)

    n = ld.X.shape[0]
    summary = {"data": str(data), "dims": model.n_dims_, "bandwidth": bandwidth, "covariance": covariance,
               "bin_size": bin_size, "n_bins": binned.n_bins, "folds": folds, "fit_seconds": fit_s,
               "diagnostics": {"skipped": not diagnose, "points": evaluated, "sampled": diagnose and evaluated < n},
               "states": rows, "output": str(output)}
    if as_json:
        click.echo(json.dumps(_finite(summary), indent=2))
        return
    click.echo(f"fit-obs: {n} points, {model.n_dims_}-D, bandwidth {bandwidth} ({covariance}), "
               f"{binned.n_bins} bins of {bin_size:g}; fit + discretise {fit_s:.2f} s")
    hcol = "H00 H01 H11" if model.n_dims_ == 2 else "H (sd^2)"
    head = f"{'state':<13}{'n':>6}  {hcol:<32}{'cv scale':>9}{'loglik':>9}{'AUC':>7}"
    head += f"{'TV ref':>10}" if reference is not None else ""
    click.echo(head)
    for s in states:
        r = rows[s]
        H = np.asarray(r["bandwidth"])
        hs = " ".join(f"{v:.3g}" for v in (H.ravel() if H.size == 1 else [H[0, 0], H[0, 1], H[1, 1]]))
        line = (f"{s:<13}{r['n']:>6}  {hs:<32}{r.get('cv_scale', float('nan')):>9.3f}"
                f"{r.get('heldout_loglik', float('nan')):>9.3f}{r.get('auc', float('nan')):>7.3f}")
        line += f"{r['tv_to_reference']:>10.2e}" if reference is not None else ""
        click.echo(line)
    if diagnose:
        auc_note = f"{folds}-fold held-out" if folds >= 2 else "in-sample"
        if evaluated < n:
            auc_note += f", at a stratified sample of {evaluated} of the {n} points"
        ll_note = f"loglik: mean held-out log-density per point over {folds} folds; " if folds >= 2 else ""
        click.echo(f"({ll_note}AUC: one-vs-rest of P(state|obs), uniform prior, {auc_note}; nan: not applicable)")
    else:
        click.echo("(diagnostics skipped: --no-diagnostics)")
    click.echo(f"model written to {output}" + (f"; bins to {export_bins}" if export_bins else "")
               + (f"; plot to {plot}" if plot else ""))
