"""Helpers of ``scripts/fit_judge_obs.sh`` (the demo judge's observation model), on a score-steps file:

    python scripts/judge_obs_info.py points SCORES -o POINTS.npz   # labelled (min earlier, current) pairs
    python scripts/judge_obs_info.py info SCORES SPEC.json --data NAME --command "..."

``points`` writes the labelled observation pairs (arrays ``correct``, ``fresh_error``, ``derailed``, the
layout of the shared ``prm_obs_processbench_math.npz``) that ``trim-model --points`` names for
``simulate-routing``. ``info`` measures how informative the PRM is, as raw scores on labelled steps: the
AUC of a correct step's score against a first wrong step's (0.5 = chance), with a 95% interval from
resampling whole solutions, and records it with the counts and the commands in the spec's ``info``,
where ``decode``/``inspect`` read it for their summary line.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def step_scores(seqs):
    """(scores of correct-so-far steps, scores of first wrong steps, solution index of each) of ``seqs``."""
    good, bad, gi, bi = [], [], [], []
    for i, q in enumerate(seqs):
        stop = len(q) if q.first_error is None else q.first_error
        good += list(q.scores[:stop])
        gi += [i] * stop
        if q.first_error is not None:
            bad.append(q.scores[q.first_error])
            bi.append(i)
    return np.asarray(good), np.asarray(bad), np.asarray(gi), np.asarray(bi)


def first_error_auc(seqs, n_boot: int = 2000, seed: int = 0) -> dict:
    """AUC of P(correct step scores above a first wrong step) with a solution-bootstrap 95% interval."""
    from trimpomdp.observation_models.diagnostics import auc

    good, bad, gi, bi = step_scores(seqs)
    point = auc(np.concatenate([good, bad]), np.r_[np.ones(good.size, bool), np.zeros(bad.size, bool)])
    rng = np.random.default_rng(seed)
    n = len(seqs)
    by_g = [good[gi == i] for i in range(n)]
    by_b = [bad[bi == i] for i in range(n)]
    boots = []
    for _ in range(n_boot):
        pick = rng.integers(0, n, n)
        g = np.concatenate([by_g[i] for i in pick])
        b = np.concatenate([by_b[i] for i in pick])
        if g.size and b.size:
            boots.append(auc(np.concatenate([g, b]), np.r_[np.ones(g.size, bool), np.zeros(b.size, bool)]))
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return {"prm_auc": round(float(point), 4), "prm_auc_ci95": [round(float(lo), 4), round(float(hi), 4)],
            "prm_correct_steps": int(good.size), "prm_first_wrong_steps": int(bad.size),
            "prm_mean_score_correct": round(float(good.mean()), 4),
            "prm_mean_score_first_wrong": round(float(bad.mean()), 4)}


def main(argv=None) -> int:
    from trimpomdp.observation_models.sequences import labelled_steps, load_score_steps

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("points")
    p.add_argument("scores")
    p.add_argument("-o", "--out", required=True)
    i = sub.add_parser("info")
    i.add_argument("scores")
    i.add_argument("spec")
    i.add_argument("--prm", required=True)
    i.add_argument("--data", required=True, help="What the labelled steps are, e.g. 'ProcessBench GSM8K'.")
    i.add_argument("--command", action="append", default=[], help="A command that made the files (repeat).")
    args = ap.parse_args(argv)
    seqs = load_score_steps(args.scores)
    if args.cmd == "points":
        data, _ = labelled_steps(seqs, dims=2)
        arrays = {s: data.X[data.y == s] for s in ("correct", "fresh_error", "derailed")}
        np.savez(args.out, **arrays)
        print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape[0]}" for k, v in arrays.items()))
        return 0
    spec_path = Path(args.spec)
    spec = json.loads(spec_path.read_text())
    measured = first_error_auc(seqs)
    info = dict(spec.get("info") or {})
    info.update(prm=args.prm, prm_data=args.data, prm_solutions=len(seqs),
                prm_steps=int(sum(len(q) for q in seqs)), **measured,
                prm_measure="AUC of the raw score: a correct-so-far step against a solution's first wrong step "
                            "(0.5 = chance); 95% interval from resampling whole solutions",
                built_with_commands=args.command)
    spec["info"] = info
    spec_path.write_text(json.dumps(spec, indent=1) + "\n")
    print(f"{spec_path}: {args.prm} AUC {measured['prm_auc']:.3f} (95% {measured['prm_auc_ci95'][0]:.3f}-"
          f"{measured['prm_auc_ci95'][1]:.3f}) on {measured['prm_correct_steps']} correct and "
          f"{measured['prm_first_wrong_steps']} first wrong steps of {len(seqs)} solutions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
