"""Benchmark: observation models judged by belief filters run along REAL held-out PRM score sequences.

Two sources, each evaluated on its own PRM's data with grouped folds (a question's or item's solutions
never straddle a fold):

- ``math-shepherd``: ReasonEval perturbations scored by the math-shepherd PRM; the ``random number`` /
  ``random operation`` kinds (a wrong step at the perturbed index); fitted on the training folds'
  labelled steps (every distinct prefix once), p_weak from their first-error hazard.
- ``processbench``: Qwen2.5-Math-PRM-7B points of ``prm_obs_processbench_math.npz``; the densities are
  fitted on all npz points of the training items, and the filters run on the sequences that the npz
  determines step by step (``sequences.reconstruct_processbench``: correct solutions of <= 4 steps and
  errors at step 0 or 1 -- short solutions, early errors); p_weak from the training items' labels.

Per source and likelihood (``continuous`` KDE densities or ``binned`` 0.05 tables, what the planner sees)
one table: AUC of b(E) at the first wrong step against correct-prefix steps, AUC of b(E)+b(D) for an
error so far, the belief's log-loss for the true state, and the raw-score baselines; then the AUC(b(E))
difference to the raw current score with a 95% interval from resampling groups. Last, the bandwidth
comparison: held-out log-likelihood per point (continuous, and per 0.05 cell / cell area) of Scott's rule,
``cv`` (leave-one-out) and ``cv-grouped``, in nested grouped folds (the rule never sees the scored fold).

    python bench/obs_sequences.py [--shared PATH] [--folds 5] [--bandwidth scott] [--likelihood both]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from trimpomdp.observation_models import sequence_eval as se
from trimpomdp.observation_models.binned import TRIM_STATES
from trimpomdp.observation_models.grouped_bandwidth import cell_log_density, grouped_folds
from trimpomdp.observation_models.kde import ReflectedKDE
from trimpomdp.observation_models.sequences import (OTHER_KINDS, estimate_p_weak, hazard_p_weak, labelled_steps,
                                                    load_reasoneval, reconstruct_processbench, step_table)
from trimpomdp.tables import format_table

BIN = 0.05
#: the shipped spec's observation model (data/trim_math_plain.json; the calibrated default data/trim_math.json reads the same table)
DEFAULT = "current"


def fold_of_groups(groups, folds: int, seed: int) -> dict:
    """Group -> fold, balanced by the number of points per group."""
    groups = np.asarray(groups).astype(str)
    out = {}
    for f, (_, test) in enumerate(grouped_folds(groups, folds, seed)):
        out.update({g: f for g in np.unique(groups[test])})
    return out


def math_shepherd(shared: Path):
    """(evaluation sequences, fit(held-out groups) -> (LabelledData, groups, p_weak) of the rest, the
    non-error perturbations labelled at their perturbed step for the false-alarm table)."""
    every = load_reasoneval(shared / "real_sequences" / "reasoneval_perturbation_mathshepherd.jsonl")
    seqs = [q for q in every if q.labelled]
    others = [replace(q, first_error=q.perturbed_step, labelled=True) for q in every
              if q.kind in OTHER_KINDS and q.kind != "swap solutions" and q.perturbed_step < len(q)]

    def fit_data(held_out):
        train = [q for q in seqs if q.group not in held_out]
        data, groups = labelled_steps(train)
        return data, groups, estimate_p_weak(train)

    return seqs, fit_data, others


def processbench(shared: Path):
    rec = reconstruct_processbench(shared / "prm_obs_processbench_math.npz", shared / "processbench" / "math.json",
                                   shared / "benchmarks" / "math500.jsonl")

    def fit_data(held_out):
        rows = ~np.isin(rec.groups, list(held_out))
        items = [it for it in rec.items if it["group"] not in held_out]
        p = hazard_p_weak([len(it["steps"]) for it in items], [it["label"] for it in items])
        from trimpomdp.observation_models.data import LabelledData
        return LabelledData(rec.points.X[rows], rec.points.y[rows]), rec.groups[rows], p

    return rec.sequences, fit_data, rec


def evaluate_source(name, seqs, fit_data, folds, seed, bandwidth, likelihoods, n_boot, p_fixed=None, others=()):
    pairs, states, seq_i, step_i, unique = step_table(seqs)
    groups = np.array([seqs[i].group for i in seq_i])
    fold = fold_of_groups(groups, folds, seed)
    step_fold = np.array([fold[g] for g in groups])
    B = {(lk, k): np.zeros((len(states), 3)) for lk in likelihoods for k in se.FILTERS}
    if others:
        o_pairs, o_states, o_seq, o_step, o_unique = step_table(others)
        o_fold = np.array([fold[others[i].group] for i in o_seq])
        OB = {k: np.zeros((len(o_states), 3)) for k in se.FILTERS}
    p_weaks = []
    for f in range(folds):
        test = step_fold == f
        data, g_train, p_weak = fit_data({g for g, ff in fold.items() if ff == f})
        p_weak = p_weak if p_fixed is None else p_fixed
        p_weaks.append(p_weak)
        fit_kw = {"groups": g_train} if bandwidth == "cv-grouped" else {}
        m2 = ReflectedKDE(bandwidth=bandwidth, states=TRIM_STATES).fit(data.X, data.y, **fit_kw)
        m1 = None  # 'current' reads the 2-D fit's exact marginal, as a spec does
        t2 = m2.discretize(BIN) if "binned" in likelihoods else None
        t1 = t2.marginal(1) if t2 is not None else None
        for lk in likelihoods:
            for k in se.FILTERS:
                if lk == "continuous":
                    L = se.continuous_likelihoods(k, pairs[test], m2, m1)
                else:
                    L = se.binned_likelihoods(k, pairs[test], t2, t1)
                B[(lk, k)][test] = se.beliefs(k, L, step_i[test], p_weak)
        if others:
            ot = o_fold == f
            for k in se.FILTERS:
                L = se.continuous_likelihoods(k, o_pairs[ot], m2, m1)
                OB[k][ot] = se.beliefs(k, L, o_step[ot], p_weak)
    verdicts = []
    n = {s: int(np.sum(states[unique] == s)) for s in TRIM_STATES}
    print(f"\n== {name}: {len(seqs)} real sequences, {len(np.unique(groups))} groups, {folds} grouped folds; "
          f"steps counted once per distinct prefix: C {n['correct']}, E {n['fresh_error']}, D {n['derailed']}; "
          f"p_weak {'fixed' if p_fixed is not None else 'from training folds'} {min(p_weaks):.3f}-"
          f"{max(p_weaks):.3f}; bandwidth {bandwidth}")
    raw = se.raw_scores(pairs)
    fresh = unique & np.isin(states, ["correct", "fresh_error"])
    for lk in likelihoods:
        rows = []
        for k in se.FILTERS:
            m = se.belief_metrics(B[(lk, k)], states, unique)
            d, lo, hi = se.bootstrap_auc_diff(B[(lk, k)][fresh, 1], raw["1 - current"][fresh],
                                              states[fresh] == "fresh_error", groups[fresh], n_boot, seed)
            rows.append([k, f"{m['auc_fresh']:.3f}", f"{m['auc_error']:.3f}", f"{m['logloss']:.3f}",
                         f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]"])
        for k, sc in raw.items():
            m = se.score_metrics(sc, states, unique)
            rows.append([f"raw: {k}", f"{m['auc_fresh']:.3f}", f"{m['auc_error']:.3f}", "-",
                         "0" if k == "1 - current" else "-"])
        metrics = {k: se.belief_metrics(B[(lk, k)], states, unique) for k in se.FILTERS}
        raw_auc = se.score_metrics(raw["1 - current"], states, unique)["auc_fresh"]
        best_ll = min(metrics, key=lambda k: metrics[k]["logloss"])
        c = metrics[DEFAULT]
        verdicts.append((f"{name.split(',')[0]} [{lk}]", c["auc_fresh"] - raw_auc, best_ll))
        print(f"-- {lk} likelihoods")
        print(format_table(["model", "AUC b(E) 1st wrong vs C", "AUC b(E)+b(D) vs C", "log-loss",
                            "dAUC b(E) vs 1-current [95%]"], rows, align="lrrrr"))
    if others:
        false_alarms(others, OB, o_pairs, o_states, o_seq, o_unique)
    return verdicts


def false_alarms(others, OB, pairs, states, seq_i, unique):
    """Non-error perturbations: how strongly each filter flags the altered step (as if it were an error)."""
    kinds = [k for k in OTHER_KINDS if any(q.kind == k for q in others)]
    kind_of = np.array([others[i].kind for i in seq_i])
    rows = []
    for name in list(se.FILTERS) + ["raw: 1 - current"]:
        row = [name]
        for kind in kinds:
            sel = unique & (kind_of == kind) & np.isin(states, ["correct", "fresh_error"])
            score = OB[name][:, 1] if name in OB else 1.0 - pairs[:, 1]
            row.append(f"{se.score_metrics(score, states, sel)['auc_fresh']:.3f}")
        rows.append(row)
    counts = [f"{k} {len({others[i].id for i in seq_i[kind_of == k]})}" for k in kinds]
    print(f"-- non-error perturbations (continuous; held-out folds): AUC of b(E) at the altered step against the "
          f"unaltered steps before it ({', '.join(counts)} sequences; 0.5 = not flagged)")
    print(format_table(["model"] + kinds, rows, align="l" + "r" * len(kinds)))


def bandwidth_comparison(name, X, y, groups, folds, seed):
    """Nested grouped folds: each rule chooses on the outer training part only; scores on the outer test."""
    rules = ("scott", "cv", "cv-grouped")
    fold = fold_of_groups(groups, folds, seed + 1)
    pt_fold = np.array([fold[g] for g in groups])
    ll = {(r, kind): np.zeros(len(y)) for r in rules for kind in ("density", "cell")}
    scales = {r: {s: [] for s in TRIM_STATES} for r in rules}
    for f in range(folds):
        tr, te = pt_fold != f, pt_fold == f
        for r in rules:
            kw = {"groups": groups[tr]} if r == "cv-grouped" else {}
            m = ReflectedKDE(bandwidth=r, states=TRIM_STATES).fit(X[tr], y[tr], **kw)
            for s in TRIM_STATES:
                sel = te & (y == s)
                Xs = X[sel]
                with np.errstate(divide="ignore"):
                    ll[(r, "density")][sel] = np.log(np.maximum(m.density(Xs, s), 1e-300))
                ll[(r, "cell")][sel] = cell_log_density(m, s, Xs, BIN)
                scales[r][s].append(m.cv_scales_.get(s, 1.0))
    rows = []
    for r in rules:
        for kind in ("density", "cell"):
            v = ll[(r, kind)]
            rows.append([r, "density" if kind == "density" else f"{BIN:g} cell"]
                        + [f"{np.mean(v[y == s]):.3f}" for s in TRIM_STATES] + [f"{np.mean(v):.3f}"]
                        + [" ".join(f"{np.mean(scales[r][s]):.2f}" for s in TRIM_STATES)])
    mean = {r: float(np.mean(ll[(r, "cell")])) for r in rules}
    print(f"\n== bandwidth, {name}: held-out log-likelihood per point ({folds} outer grouped folds; each rule "
          f"selects on the outer training part only; {len(y)} points)")
    print(format_table(["rule", "scored as", "correct", "fresh_error", "derailed", "all", "scale x Scott (C E D)"],
                       rows, align="llrrrrl"))
    return mean


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--shared", default=os.environ.get("TRIMPOMDP_SHARED", here.parent / "shared"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bandwidth", default="scott", help="rule of the filter comparison (scott, cv, cv-grouped)")
    ap.add_argument("--likelihood", choices=["continuous", "binned", "both"], default="both")
    ap.add_argument("--boot", type=int, default=1000, help="group bootstrap resamples of the AUC difference")
    ap.add_argument("--sources", default="math-shepherd,processbench")
    ap.add_argument("--no-bandwidth", action="store_true", help="skip the bandwidth comparison")
    ap.add_argument("--p-weak", type=float, default=None,
                    help="fixed keep-transition C->C probability (default: estimated from the training folds)")
    a = ap.parse_args()
    shared = Path(a.shared) / "data"
    lks = ("continuous", "binned") if a.likelihood == "both" else (a.likelihood,)
    t0 = time.perf_counter()
    verdicts, bw = [], {}
    for src in a.sources.split(","):
        if src == "math-shepherd":
            seqs, fit, others = math_shepherd(shared)
            verdicts += evaluate_source("math-shepherd PRM, ReasonEval random number/operation", seqs, fit, a.folds,
                                        a.seed, a.bandwidth, lks, a.boot, a.p_weak, others)
            if not a.no_bandwidth:
                data, groups = labelled_steps(seqs)
                bw["math-shepherd"] = bandwidth_comparison("math-shepherd (distinct labelled steps)", data.X, data.y,
                                                           groups, a.folds, a.seed)
        elif src == "processbench":
            seqs, fit, rec = processbench(shared)
            verdicts += evaluate_source("Qwen2.5-Math-PRM-7B, ProcessBench MATH (reconstructed sequences)", seqs, fit,
                                        a.folds, a.seed, a.bandwidth, lks, a.boot, a.p_weak)
            if not a.no_bandwidth:
                bw["processbench"] = bandwidth_comparison("ProcessBench npz (all 2,260 points, groups = problems)",
                                                          rec.points.X, rec.points.y, rec.groups, a.folds, a.seed)
        else:
            print(f"unknown source {src!r}", file=sys.stderr)
            return 2
        print(f"[{time.perf_counter() - t0:.0f} s]", flush=True)
    print(f"\n== targets (issue: the default beats 1 - current by >= 0.02 AUC b(E) and has the lowest log-loss; "
          f"the default bandwidth >= Scott held out); default observation model: {DEFAULT}")
    for name, d_auc, best in verdicts:
        print(f"{name}: AUC b(E) - raw {d_auc:+.3f} {'PASS' if d_auc >= 0.02 else 'FAIL'}; lowest log-loss: {best} "
              f"{'PASS' if best == DEFAULT else 'FAIL'}")
    for name, m in bw.items():
        ok = m["cv-grouped"] >= m["scott"]
        print(f"{name}: held-out cell log-likelihood cv-grouped {m['cv-grouped']:.3f} vs scott {m['scott']:.3f} "
              f"(cv {m['cv']:.3f}) {'PASS' if ok else 'FAIL'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
