"""Fitting an observation model end to end (``trimpomdp fit-obs``): read labelled PRM data, fit the
per-state reflected KDEs, discretise, save, then diagnose. The model (and bins table) is written before
the diagnostics run, so a slow or failing diagnostic never costs the fit."""
from __future__ import annotations

import time

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.tables import fmt_num, format_table


def fit_observation_model(data, output, *, labels=None, dims: int | None = None, pre_error_correct: bool = False,
                          bandwidth="cv-grouped", covariance: str = "full", bin_size: float = 0.05, folds: int = 5,
                          seed: int = 0, diagnostics: bool = True, diagnostic_points: int = 5000,
                          partial_states: bool = False, compare=None, plot=None, export_bins=None,
                          progress: bool = False, evaluate=None, p_weak: float | None = None) -> dict:
    """Fit, save and diagnose; returns the summary (per state: n, bandwidth, held-out log-likelihood,
    AUC, TV distance to ``compare``). ``bandwidth``: 'cv', 'cv-grouped', 'scott', 'silverman' or a kernel
    sd. ``data`` may be a sequence file (``sequences.load_sequences``: every step labelled, solutions as
    groups). ``evaluate``: a sequence file to run the fitted bins' filters along (``sequence_eval``), with
    ``p_weak`` (default: estimated from sequence ``data``, else the packaged spec's)."""
    from trimpomdp.observation_models import diagnostics as dg
    from trimpomdp.observation_models.binned import TRIM_STATES
    from trimpomdp.observation_models.data import load_labelled
    from trimpomdp.observation_models.discretize import bins_per_dim, check_grid
    from trimpomdp.observation_models.io import load_binned, save_obs_model
    from trimpomdp.observation_models.kde import ReflectedKDE

    bw = bandwidth
    bins_per_dim(bin_size)
    from trimpomdp.observation_models import sequences as sq

    groups, train_p_weak = None, None
    if labels is None and sq.is_sequence_file(data):
        seqs = [q for q in sq.load_sequences(data) if q.labelled]
        ld, groups = sq.labelled_steps(seqs, dims or 2)
        train_p_weak = sq.estimate_p_weak(seqs)
    else:
        ld = load_labelled(data, labels=labels, dims=dims, pre_error_correct=pre_error_correct)
    eval_seqs = [q for q in sq.load_sequences(evaluate) if q.labelled] if evaluate else None  # fail early
    check_grid(bin_size, ld.X.shape[1])
    present = ld.states
    missing = [s for s in TRIM_STATES if s not in present]
    if missing and len(missing) < len(TRIM_STATES) and not partial_states:
        raise TrimError(f"{data}: no {', '.join(repr(s) for s in missing)} points (states found: "
                        f"{', '.join(present)}); the routing model needs all of {', '.join(TRIM_STATES)}; pass "
                        "--partial-states to fit the states present")
    reference = load_binned(compare) if compare else None  # fail early on a bad reference
    diagnose = diagnostics
    if diagnose and folds >= 2:
        dg.check_folds(ld.y, folds)
    t0 = time.perf_counter()
    model = ReflectedKDE(bandwidth=bw, covariance=covariance).fit(ld.X, ld.y, progress=progress, groups=groups)
    binned = model.discretize(bin_size, progress=progress)
    fit_s = time.perf_counter() - t0
    save_obs_model(model, output, bin_size=bin_size, extra_meta={"data": str(data), "labels": labels})
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
    evaluation = None
    if eval_seqs is not None:
        from trimpomdp.observation_models import sequence_eval

        if tuple(states) != TRIM_STATES:
            raise TrimError(f"--evaluate needs the states {', '.join(TRIM_STATES)}; "
                            f"the model has {', '.join(states)}")
        pw = p_weak if p_weak is not None else train_p_weak if train_p_weak is not None else _spec_p_weak()
        # a 2-D table also serves the current-score model (its exact marginal), as a spec reads it
        tables = ({"pair_table": binned, "current_table": binned.marginal(1)} if model.n_dims_ == 2
                  else {"current_table": binned})
        evaluation = sequence_eval.evaluate(eval_seqs, pw, **tables)
        evaluation["path"] = str(evaluate)
        evaluation["recommended"] = sequence_eval.recommend(evaluation)

    n = ld.X.shape[0]
    summary = {"data": str(data), "dims": model.n_dims_, "bandwidth": str(bandwidth), "covariance": covariance,
               "bin_size": bin_size, "n_bins": binned.n_bins, "folds": folds, "fit_seconds": fit_s,
               "diagnostics": {"skipped": not diagnose, "points": evaluated, "sampled": diagnose and evaluated < n},
               "states": rows, "output": str(output), "reference": compare is not None,
               "export_bins": None if export_bins is None else str(export_bins),
               "plot": None if plot is None else str(plot), "n": n, "evaluation": evaluation}
    return summary


def _spec_p_weak() -> float:
    import json

    from trimpomdp.packaged import default_spec_path

    return float(json.loads(default_spec_path().read_text())["p_weak"])


def finite_json(obj):
    """NaN (e.g. the AUC of a lone state) becomes null so that the output is strict JSON."""
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [finite_json(v) for v in obj]
    return None if isinstance(obj, float) and obj != obj else obj


def fit_report(summary: dict) -> str:
    """The text ``fit-obs`` prints: a line per state, what the diagnostics mean, where files went."""
    sm = summary
    rows, states, n, dims = sm["states"], list(sm["states"]), sm["n"], sm["dims"]
    folds, evaluated, diagnose = sm["folds"], sm["diagnostics"]["points"], not sm["diagnostics"]["skipped"]
    lines = []
    lines.append(f"fit-obs: {n} points, {dims}-D, bandwidth {sm['bandwidth']} ({sm['covariance']}), "
               f"{sm['n_bins']} bins of {sm['bin_size']:g}; fit + discretise {sm['fit_seconds']:.2f} s")
    # one column per bandwidth entry (kernel covariance H: H00, H01, H11 in 2-D, sd^2 in 1-D), so every
    # header sits over its numbers; the cv scale column only when some state's bandwidth was cross-validated
    bw_head = ["H00", "H01", "H11"] if dims == 2 else ["sd^2"]
    with_cv = any(_nan_none(rows[s].get("cv_scale")) is not None for s in states)
    table = []
    for s in states:
        r = rows[s]
        H = np.asarray(r["bandwidth"])
        entries = H.ravel() if H.size == 1 else [H[0, 0], H[0, 1], H[1, 1]]
        table.append([s, r["n"], *(f"{v:.3g}" for v in entries)]
                     + ([fmt_num(_nan_none(r.get("cv_scale")))] if with_cv else [])
                     + [fmt_num(_nan_none(r.get("heldout_loglik"))), fmt_num(_nan_none(r.get("auc")))]
                     + ([f"{r['tv_to_reference']:.2e}"] if sm["reference"] else []))
    lines.append(format_table(["state", "n", *bw_head] + (["cv scale"] if with_cv else []) + ["loglik", "AUC"]
                              + (["TV ref"] if sm["reference"] else []), table,
                              align="lr" + "r" * len(bw_head) + ("r" if with_cv else "") + "rr"
                              + ("r" if sm["reference"] else "")))
    what = "H00 H01 H11: kernel covariance" if dims == 2 else "sd^2: kernel variance"
    lines.append(f"({what} of each state's KDE, rule {sm['bandwidth']}"
                 + ("; cv scale: the rule's factor chosen by cross-validation)" if with_cv else ")"))
    if diagnose:
        auc_note = f"{folds}-fold held-out" if folds >= 2 else "in-sample"
        if evaluated < n:
            auc_note += f", at a stratified sample of {evaluated} of the {n} points"
        ll_note = f"loglik: mean held-out log-density per point over {folds} folds; " if folds >= 2 else ""
        lines.append(f"({ll_note}AUC: one-vs-rest of P(state|obs), uniform prior, {auc_note}; -: not applicable)")
    else:
        lines.append("(diagnostics skipped: --no-diagnostics)")
    if sm.get("evaluation"):
        lines.append(evaluation_report(sm["evaluation"]))
    lines.append(f"model written to {sm['output']}" + (f"; bins to {sm['export_bins']}" if sm["export_bins"] else "")
               + (f"; plot to {sm['plot']}" if sm["plot"] else ""))
    return "\n".join(lines)


def evaluation_report(ev: dict) -> str:
    """The ``--evaluate`` table: per filter of the fitted bins and per raw baseline, the sequence figures."""
    n = ev["n"]
    rows = [[k, fmt_num(_nan_none(m["auc_fresh"])), fmt_num(_nan_none(m["auc_error"])), fmt_num(m["logloss"])]
            for k, m in ev["models"].items()]
    rows += [[f"raw: {k}", fmt_num(_nan_none(m["auc_fresh"])), fmt_num(_nan_none(m["auc_error"])), "-"]
             for k, m in ev["raw"].items()]
    head = (f"evaluation on {ev['sequences']} sequences of {ev['path']} (binned likelihoods, p_weak "
            f"{ev['p_weak']:.3f}; steps once per distinct prefix: correct {n['correct']}, fresh_error "
            f"{n['fresh_error']}, derailed {n['derailed']})")
    rec = ev.get("recommended")
    tail = (f"\nrecommended spec observation: {rec} (lowest log-loss of the models the planner solves; set "
            f"\"observation\": \"{rec}\" in the TRIM spec)" if rec else "")
    return head + "\n" + format_table(["filter", "AUC b(E) 1st wrong vs correct", "AUC b(E)+b(D) vs correct",
                                       "log-loss"], rows, align="lrrr") + tail


def _nan_none(x):
    return None if x is None or x != x else x
