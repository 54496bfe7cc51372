"""The routing model as a MOMDP solved by a general solver (the staged solver by default, or SARSOP), against
the structured solver, in the same run: value and CPU time of each (the structured value gamma * U_1 is
exact up to its grid).

Usage: python bench/routing_momdp.py [--solver staged|sarsop] [--timeout 300] [--lam 0.05] [--memory 1024]
       [--no-token-phase] [--steps 30] [--small] [--classes 3]
       (--small: 3 steps, 2 token bins, 16 PRM bins; --classes K: K difficulty classes, 3K hidden values,
       spread around the model's accuracies, reported alone since no structured solver applies)
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeout", type=float, default=300.0, help="the general solver's CPU seconds")
    ap.add_argument("--lam", type=float, default=0.05, help="price per strong token")
    ap.add_argument("--memory", type=float, default=1024.0, help="the general solver's memory cap (MB)")
    ap.add_argument("--precision", type=float, default=1e-3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--no-token-phase", action="store_true", help="token bin visible on arrival (flat layout)")
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--solver", choices=["staged", "sarsop"], default="staged")
    ap.add_argument("--classes", type=int, default=1, help="difficulty classes (3 x classes hidden values)")
    args = ap.parse_args(argv)

    from trimpomdp.routing.momdp import routing_momdp
    from trimpomdp.routing.pomdp import coarsen
    from trimpomdp.routing.solver import solve_trim
    from trimpomdp.routing.spec import TrimModel
    from trimpomdp.solvers.sarsop import SARSOPSolver, warm_up
    from trimpomdp.solvers.staged import StagedSolver, warm_up as staged_warm_up

    print(f"load average: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    warm_up() if args.solver == "sarsop" else staged_warm_up()
    tm = TrimModel.from_step_stats(SHARED / "step_stats_math_train.npz", "qwen2.5-1.5b-instruct",
                                   "qwen2.5-7b-instruct", SHARED / "anchor_obs_bins_math_0.05.npz",
                                   max_steps=args.steps)
    if args.small:
        pmf = tm.length_pmf[:3].copy()
        pmf[-1] += tm.length_pmf[3:].sum()
        tm = TrimModel(obs=coarsen(tm.obs, 5), p_weak=tm.p_weak, p_strong=tm.p_strong, length_pmf=pmf,
                       token_values=np.array([40.0, 120.0]), token_probs=np.array([0.5, 0.5]), discount=0.95)
    print(f"T {tm.max_steps}, {tm.token_values.size} token bins, {tm.obs.n_bins} observation bins "
          f"({tm.observation}), lambda {args.lam:g}")
    t = time.process_time()
    pol = solve_trim(tm, lam=args.lam, evaluate=False)  # the single-class model
    t_str = time.process_time() - t
    target = tm.discount * pol.predicted["value"]
    if args.classes > 1:  # a spread of difficulties with the same mean accuracies
        import dataclasses

        from trimpomdp.routing.difficulty import Difficulty

        k = args.classes
        spread = np.linspace(-1.0, 1.0, k)
        d = Difficulty(np.full(k, 1.0 / k), np.clip(tm.p_weak + 0.08 * spread, 0.05, 0.99),
                       np.clip(tm.p_strong + 0.04 * spread, 0.05, 0.99))
        tm = dataclasses.replace(tm, difficulty=d)
        print(f"{k} classes: p_weak {np.round(d.p_weak, 4).tolist()}, p_strong {np.round(d.p_strong, 4).tolist()}")
    t = time.process_time()
    m = routing_momdp(tm, args.lam, token_phase=not args.no_token_phase)
    t_build = time.process_time() - t
    print(f"{m}; built in {t_build:.2f} s")
    engine = SARSOPSolver if args.solver == "sarsop" else StagedSolver
    res = engine(precision=args.precision, timeout=args.timeout, memory_mb=args.memory, verbose=True,
                 report_every=10).solve(m)
    name = "SARSOP" if args.solver == "sarsop" else "staged solver"
    if args.solver == "staged":
        print(f"staged: {res.policy.meta['rounds']} breadth rounds, {res.policy.meta['trials']} HSVI trials")
    if args.classes > 1:
        print(f"general {name} on the {args.classes}-class MOMDP: [{res.lower:.6f}, {res.upper:.6f}] in "
              f"{res.solve_seconds:.1f} s CPU ({res.policy.meta['stop_reason']}); no structured solver applies")
        return 0
    print(f"structured solver: value {target:.6f} in {t_str:.3f} s CPU")
    print(f"general {name} on the MOMDP: [{res.lower:.6f}, {res.upper:.6f}] in {res.solve_seconds:.1f} s CPU "
          f"({res.policy.meta['stop_reason']}); structured - lower {target - res.lower:.3g}, "
          f"upper - structured {res.upper - target:.3g} (target: both within 1e-3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
