"""Benchmark: routing with the calibrated default spec (3 difficulty classes) against the threshold family.

Prints, on the shipped default spec ``data/trim_math.json`` (calibrated to the real MATH-500 runs):
1. the threshold family simulated in the calibrated model beside the REAL threshold runs (how far the
   model's token and accuracy predictions can be trusted);
2. our POMDP policy (class solver) at several prices, each against the threshold family's accuracy at the
   same strong tokens (interpolated on the simulated family: IN-MODEL);
3. ``--budget mean=B`` policies: their predicted mean strong tokens against B (in-model), with the real
   error of the model's token predictions on the threshold runs as the expected error in a real run;
4. the cost of a solve (CPU seconds per lambda, per mean= budget) beside the single-class structured
   solver's on ``data/trim_math_plain.json``, in the same run.

    python bench/calibrated_routing.py [--episodes 50000] [--shared PATH]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=50_000)
    ap.add_argument("--shared", default=os.environ.get("TRIMPOMDP_SHARED", ROOT.parent / "shared"))
    ap.add_argument("--lambdas", default="0.05,0.1,0.15,0.2,0.3,0.5")
    ap.add_argument("--means", default="30,60,100,150")
    a = ap.parse_args(argv)

    from trimpomdp.calibration.runs import load_run_dir
    from trimpomdp.routing import TrimModel, parse_budget, solve_budget
    from trimpomdp.routing.class_solver import PREDICT_SEED, solve_classes
    from trimpomdp.routing.policies import ThresholdPolicy
    from trimpomdp.routing.simulator import simulate_summary
    from trimpomdp.routing.solver import solve_trim
    from trimpomdp.routing.spec import load_observation_points

    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    tm = TrimModel.load(ROOT / "data" / "trim_math.json")
    plain = TrimModel.load(ROOT / "data" / "trim_math_plain.json")
    pts = load_observation_points(ROOT / "data" / "prm_obs_processbench_math.npz")
    real = sorted((r for r in load_run_dir(Path(a.shared) / "data" / "anchor_runs") if r.family == "threshold"),
                  key=lambda r: r.knob)
    cl = tm.classes
    print(f"default spec: {cl.n} classes, weights {np.round(cl.weights, 3).tolist()}, p_weak "
          f"{np.round(cl.p_weak, 3).tolist()}, p_strong {np.round(cl.p_strong, 3).tolist()}, derailed scored as "
          f"fresh errors {tm.derailed_as_error:.3f}, repaired by a rewrite {tm.derailed_repair:.3f}")

    print("\n1. threshold family: calibrated model (simulated) vs REAL runs")
    print(f"{'threshold':>9}  {'acc model':>9}  {'acc real':>8}  {'tok model':>9}  {'tok real':>8}")
    fam = []
    acc_err, tok_err = [], []
    for r in real:
        s = simulate_summary(tm, ThresholdPolicy(r.knob), pts, episodes=a.episodes, seed=PREDICT_SEED)
        fam.append((s["strong_tokens"], s["accuracy"]))
        acc_err.append(abs(s["accuracy"] - r.accuracy))
        tok_err.append(abs(s["strong_tokens"] - r.strong_tokens) / max(r.strong_tokens, 1e-9))
        print(f"{r.knob:9.2f}  {s['accuracy']:9.3f}  {r.accuracy:8.3f}  {s['strong_tokens']:9.1f}  "
              f"{r.strong_tokens:8.1f}")
    print(f"mean |accuracy error| {np.mean(acc_err):.3f}, mean relative token error {np.mean(tok_err):.1%} (REAL)")
    from trimpomdp.routing.policies import WeakPolicy

    cheap = simulate_summary(tm, WeakPolicy(), pts, episodes=a.episodes, seed=PREDICT_SEED)
    fam.append((0.0, cheap["accuracy"]))  # threshold 0: cheap only, the family's zero-token end
    fam.sort()
    ft, fa = np.array([f[0] for f in fam]), np.array([f[1] for f in fam])
    front = np.maximum.accumulate(fa)

    print("\n2. POMDP (class solver) vs the threshold family at the same strong tokens (IN-MODEL)")
    print(f"{'lambda':>7}  {'accuracy':>8}  {'tokens':>7}  {'threshold acc':>13}  {'gain':>6}  {'solve s':>7}")
    gains, secs = [], []
    for lam in (float(x) for x in a.lambdas.split(",")):
        t0 = time.process_time()
        pol = solve_classes(tm, lam, evaluate=False)
        secs.append(time.process_time() - t0)
        s = simulate_summary(tm, pol, pts, episodes=a.episodes, seed=PREDICT_SEED)
        inside = ft[0] <= s["strong_tokens"] <= ft[-1]
        base = np.interp(s["strong_tokens"], ft, front) if inside else float("nan")
        gains.append(s["accuracy"] - base)
        print(f"{lam:7.3f}  {s['accuracy']:8.3f}  {s['strong_tokens']:7.1f}  "
              f"{base:13.3f}  {s['accuracy'] - base:+6.3f}  {secs[-1]:7.2f}" if inside else
              f"{lam:7.3f}  {s['accuracy']:8.3f}  {s['strong_tokens']:7.1f}  {'outside':>13}  {'':>6}  "
              f"{secs[-1]:7.2f}")
    g = np.array([x for x in gains if np.isfinite(x)])
    if g.size:
        print(f"accuracy gain over the threshold front at matched tokens: mean {g.mean():+.3f}, min {g.min():+.3f} "
              f"(IN-MODEL)")

    print("\n3. mean=B budgets: predicted strong tokens (IN-MODEL) and the expected real error")
    print(f"{'budget':>8}  {'lambda':>7}  {'predicted tokens':>16}  {'accuracy':>8}  {'CPU s':>6}")
    for B in (float(x) for x in a.means.split(",")):
        t0 = time.process_time()
        pol = solve_budget(tm, parse_budget(f"mean={B:g}"))
        dt = time.process_time() - t0
        print(f"{'mean=' + format(B, 'g'):>8}  {pol.lam:7.4f}  {pol.predicted['strong_tokens']:16.1f}  "
              f"{pol.predicted['accuracy']:8.3f}  {dt:6.1f}")
    print(f"in a real run, expect the model's mean relative token error on the real threshold runs: "
          f"{np.mean(tok_err):.1%} (measured above; no real run of our own policy exists here)")

    print("\n4. cost: class solver vs the single-class structured solver (same run)")
    t0 = time.process_time()
    solve_trim(plain, lam=0.15)
    t_plain = time.process_time() - t0
    print(f"one lambda: class solver {np.mean(secs):.2f} s CPU (3 classes, 9 hidden values), structured "
          f"{t_plain:.2f} s CPU (ratio {np.mean(secs) / max(t_plain, 1e-9):.0f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
