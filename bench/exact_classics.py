"""Exact solver on the small classic problems: CPU time to the target gap at b0, pruning on the beliefs
reachable from b0 against pruning on the whole simplex (the textbook method), measured in the same run.

    python bench/exact_classics.py [--timeout 30] [--tol 1e-4] [names...]
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from trimpomdp.pomdp import load_model
from trimpomdp.solvers.exact import ExactSolver

SHARED = Path(os.environ.get("TRIMPOMDP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
NAMES = ["tiger.95", "parr95.95", "cheese.95", "shuttle.95", "4x3.95"]


def run(model, tol, timeout, reachable):
    c0 = time.process_time()
    r = ExactSolver(tol=tol, timeout=timeout, reachable=reachable).solve(model)
    return r, time.process_time() - c0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=NAMES)
    ap.add_argument("--timeout", type=float, default=30.0, help="CPU seconds per solve")
    ap.add_argument("--tol", type=float, default=1e-4, help="target gap at b0")
    args = ap.parse_args()
    run(load_model(SHARED / "pomdp" / "tiger.95.POMDP"), 1e-2, 5, True)  # JIT outside the timings
    hdr = f"{'model':<11}{'reach s':>9}{'gap':>10}{'simplex s':>11}{'gap':>10}{'speed-up':>10}  value at b0"
    print(hdr)
    print("-" * (len(hdr) + 12))
    for name in args.names:
        m = load_model(SHARED / "pomdp" / f"{name}.POMDP")
        fast, t_fast = run(m, args.tol, args.timeout, True)
        slow, t_slow = run(m, args.tol, args.timeout, False)

        def show(r, t):
            return (f"{t:9.2f}" if r.converged else f"{'>' + format(t, '.0f'):>9}") + f"{r.upper - r.lower:10.1e}"

        # a lower bound on the speed-up when the whole-simplex run did not converge
        ratio = t_slow / t_fast if fast.converged else float("nan")
        sign = "" if slow.converged else ">"
        print(f"{name:<11}{show(fast, t_fast)}{show(slow, t_slow)}{sign + format(ratio, '.1f'):>10}  "
              f"[{fast.lower:.6f}, {fast.upper:.6f}]", flush=True)
    print("reach = prune on the beliefs reachable from b0 (default); simplex = reachable=False; times are CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
