"""Benchmark: how well the calibrated routing model predicts the REAL runs of the same models.

Fits the difficulty-class model (``trimpomdp.calibration``) to the reference's real MATH-500 runs
(cheap Qwen2.5-1.5B-Instruct, strong Qwen2.5-7B-Instruct, PRM Qwen2.5-Math-PRM-7B; cheap-only,
strong-only and the threshold family are fitted, the POMDP family is held out) and prints, for every real
anchor point, predicted vs real accuracy, strong tokens and strong calls, then each target of the issue as
PASS / FAIL, and beside it the uncalibrated shipped spec's predictions for the anchors (the baseline).

    python bench/calibration.py [--shared PATH] [--classes 3]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from trimpomdp.calibration.report import calibrate, report_text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parents[1]
    ap.add_argument("--shared", default=os.environ.get("TRIMPOMDP_SHARED", here.parent / "shared"))
    ap.add_argument("--classes", type=int, default=3)
    ap.add_argument("--episodes", type=int, default=50_000, help="simulated questions of the baseline")
    a = ap.parse_args()
    data = Path(a.shared) / "data"
    t0 = time.perf_counter()
    rec = calibrate(data / "anchor_runs", here / "data" / "prm_obs_processbench_math.npz",
                    data / "solution_length_pmf_math_train.npz", "qwen2.5-1.5b-instruct", classes=a.classes)
    print(report_text(rec))
    print(f"[fit {time.perf_counter() - t0:.1f} s]")
    # baseline: the shipped (uncalibrated) spec simulated on the same anchors
    from trimpomdp.routing import TrimModel, load_policy
    from trimpomdp.routing.simulator import simulate_summary
    from trimpomdp.routing.spec import load_observation_points

    tm = TrimModel.load(here / "data" / "trim_math.json")
    pts = load_observation_points(here / "data" / "prm_obs_processbench_math.npz")
    print("\nbaseline: the shipped spec (no difficulty classes), simulated, sequence mode, vs the real runs")
    for name, pol, real in (("cheap only", "weak", rec["table"]), ("strong only", "strong", rec["table"]),
                            ("threshold 0.5", "threshold:0.5", rec["table"])):
        r = simulate_summary(tm, load_policy(pol, tm), pts, a.episodes, 0, mode="sequence")
        obs = next(x for x in real if x["run"] == name)
        print(f"  {name:<14} accuracy {r['accuracy']:.3f} (real {obs['accuracy']:.3f}), strong tokens "
              f"{r['strong_tokens']:.1f} (real {obs['strong_tokens']:.1f}), calls {r['regenerations']:.2f} "
              f"(real {obs['strong_calls']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
