"""Benchmark of the TRIM routing solve and the routing simulator (prints a comparison; not a test).

Run: ``python bench/routing.py [--episodes 100000] [--plot routing.png]``. Reports
  * one budget: structured solve seconds after JIT (target < 1 s) and with the forward evaluation;
  * a sweep of 20 budgets (target < 20 s), against the reference's cost (~1e5 NativeSARSOP solves of up
    to 20 s per cost value on 240 cores) stated as a ratio;
  * on a small flattened model, the general SARSOP solver vs the structured solve, measured in this run;
  * in simulation on real PRM points, with independent per-step draws and in sequence mode (coherent
    running minimum): POMDP vs the best threshold front at matched cost, Delta-IBC, CPT; a mean= budget
    and hard caps.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from trimpomdp.routing import TrimModel, load_policy, parse_budget, solve_budget, solve_trim
from trimpomdp.routing import metrics as M
from trimpomdp.routing.pomdp import coarsen, flat_pomdp
from trimpomdp.routing.simulator import MODES, simulate
from trimpomdp.routing.spec import load_observation_points

ROOT = Path(__file__).resolve().parents[1]
REF_SOLVES, REF_SECONDS, REF_CORES = 1e5, 20.0, 240


def timed(fn, repeat=3):
    ts, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts), out


def compare_to_threshold(tm, sweep, pts, N, mode):
    """POMDP sweep against the threshold front at matched cost in one observation mode."""
    w = simulate(tm, load_policy("weak"), pts, N, 0, mode=mode)
    s = simulate(tm, load_policy("strong"), pts, N, 0, mode=mode)
    aw, as_, cs = w.accuracy, s.accuracy, s.mean_tokens
    print(f"\nsimulation ({mode} observations), {N} episodes: weak-only acc {aw:.4f}; "
          f"strong-only acc {as_:.4f} at {cs:.1f} tokens")
    thr = [(0.0, aw)]
    for k in np.linspace(0.02, 1.0, 50):
        r = simulate(tm, load_policy(f"threshold:{k}"), pts, N, 0, mode=mode)
        thr.append((r.mean_tokens, r.accuracy))
    tc, ta = map(list, zip(*thr))
    print(
        f"{'lambda':>9}{'pred acc':>10}{'pred tok':>10}{'sim acc':>9}{'sim tok':>9}{'thr acc@cost':>14}"
        f"{'diff':>8}{'dIBC pomdp':>11}{'dIBC thr':>10}"
    )
    pc, pa, worst = [0.0], [aw], np.inf
    for p in sweep[::2]:
        r = simulate(tm, p, pts, N, 0, mode=mode)
        fa = float(M.front_accuracy(tc, ta, r.mean_tokens))
        worst = min(worst, r.accuracy - fa)
        # threshold Delta-IBC at the same cost (interpolated front point)
        d_p = float(M.delta_ibc(r.accuracy, r.mean_tokens, aw, as_, cs))
        d_t = float(M.delta_ibc(fa, r.mean_tokens, aw, as_, cs))
        pc.append(r.mean_tokens)
        pa.append(r.accuracy)
        print(
            f"{p.lam:>9.4f}{p.predicted['accuracy']:>10.4f}{p.predicted['strong_tokens']:>10.2f}"
            f"{r.accuracy:>9.4f}"
            f"{r.mean_tokens:>9.2f}{fa:>14.4f}{r.accuracy - fa:>+8.4f}{d_p:>11.3f}{d_t:>10.3f}"
        )
    cm_p, cm_t = M.curve_metrics(pc, pa, aw, as_, cs), M.curve_metrics(tc, ta, aw, as_, cs)
    print(f"POMDP - threshold front accuracy at matched cost: min {worst:+.4f} over the sweep")
    for name, cm in (("pomdp", cm_p), ("threshold", cm_t)):
        print(
            f"  {name:<10} CPT50 {cm['cpt50']:.4f}  CPT80 {cm['cpt80']:.4f}  CPT95 {cm['cpt95']:.4f}  "
            f"best Delta-IBC {cm['best_delta_ibc']:.3f}"
        )
    return pc, pa, tc, ta


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--spec", default=str(ROOT / "data" / "trim_math_plain.json"))
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    tm = TrimModel.load(args.spec)
    pts = load_observation_points(tm.absolute_points_path(Path(args.spec).parent))

    t = time.perf_counter()
    solve_trim(tm, lam=0.15)
    print(f"first solve (includes JIT / cache load): {time.perf_counter() - t:.2f} s")
    s_only, pol = timed(lambda: solve_trim(tm, lam=0.15, evaluate=False))
    s_eval, pol = timed(lambda: solve_trim(tm, lam=0.15))
    print(
        f"one budget (lambda=0.15): solve {s_only:.3f} s, solve+exact evaluation {s_eval:.3f} s "
        f"[{pol.meta['alpha_vectors']} alpha vectors over {tm.max_steps} steps, "
        f"{pol.meta['observation_symbols']} observation symbols]"
    )
    t = time.perf_counter()
    sweep = [solve_trim(tm, lam=lam) for lam in np.geomspace(0.01, 1, 20)]
    sweep_s = time.perf_counter() - t
    ref_wall = REF_SOLVES * REF_SECONDS / REF_CORES
    print(
        f"sweep of 20 budgets (with evaluation): {sweep_s:.2f} s; reference per budget "
        f"{REF_SOLVES:.0e} solves x {REF_SECONDS:.0f} s / {REF_CORES} cores = {ref_wall:.0f} s wall "
        f"({REF_SOLVES * REF_SECONDS:.1e} core-s)"
    )
    print(
        f"  ratio reference/ours per budget: wall {ref_wall / (sweep_s / 20):.0f}x ({REF_CORES} cores vs 1); "
        f"core-seconds {REF_SOLVES * REF_SECONDS / (sweep_s / 20):.2e}x"
    )

    # measured baseline in this run: the general SARSOP solver on the flattened model (small T, coarse bins)
    try:
        from trimpomdp.solvers.sarsop import SARSOPSolver

        pmf = tm.length_pmf[:3].copy()
        pmf[-1] += tm.length_pmf[3:].sum()
        small = TrimModel(
            obs=coarsen(tm.obs, 5),
            p_weak=tm.p_weak,
            p_strong=tm.p_strong,
            length_pmf=pmf,
            token_values=np.array([40.0, 120.0]),
            token_probs=np.array([0.5, 0.5]),
            discount=0.95,
        )
        P = flat_pomdp(small, 0.05)
        SARSOPSolver(precision=1e-3, timeout=60).solve(flat_pomdp(small, 0.1))  # JIT
        t_sar, r = timed(lambda: SARSOPSolver(precision=1e-3, timeout=60).solve(P), repeat=1)
        t_str, ps_ = timed(lambda: solve_trim(small, lam=0.05, evaluate=False), repeat=3)
        v = small.discount * ps_.predicted["value"]
        print(
            f"small model T=3, 16 PRM x 2 token bins ({P.n_states} flat states): SARSOP {t_sar:.3f} s "
            f"(lower {r.lower:.5f}, upper {r.upper:.5f}) vs structured {t_str:.4f} s (value {v:.5f}): "
            f"{t_sar / t_str:.1f}x"
        )
    except ImportError as exc:
        print(f"(SARSOP baseline skipped: {exc})")

    # simulation on real PRM points, in both observation modes (the sequence mode's scores follow each
    # episode's own running minimum; see routing/simulator.py)
    N = args.episodes
    for mode in MODES:
        pc, pa, tc, ta = compare_to_threshold(tm, sweep, pts, N, mode)
    for b in ("mean=50", "mean=100"):
        t = time.perf_counter()
        p = solve_budget(tm, parse_budget(b))
        dt = time.perf_counter() - t
        r = simulate(tm, p, pts, N, 7)
        print(
            f"budget {b}: lambda {p.lam:.4f} found in {dt:.2f} s; "
            f"predicted {p.predicted['strong_tokens']:.2f}, "
            f"simulated {r.mean_tokens:.2f} tokens, acc {r.accuracy:.4f}"
        )
    for b in ("cap=2regen", "cap=150tokens,lambda=0.02"):
        bb = parse_budget(b)
        t = time.perf_counter()
        p = solve_trim(tm, lam=bb.lam or 0.0, cap=bb.cap, evaluate=False)
        dt = time.perf_counter() - t
        r = simulate(tm, p, pts, N, 7)
        print(
            f"budget {b}: solve {dt:.2f} s; simulated acc {r.accuracy:.4f}, mean tokens {r.mean_tokens:.2f}, "
            f"max tokens {r.strong_tokens.max():.1f}, max regenerations {r.regenerations.max()}"
        )
    if args.plot:
        from trimpomdp.routing.plots import load_reference_runs, plot_cost_accuracy

        plot_cost_accuracy(
            {"pomdp (sim, sequence)": (pc, pa), "threshold (sim, sequence)": (tc, ta)},
            args.plot,
            reference=load_reference_runs(ROOT.parent / "shared" / "data" / "anchor_runs"),
        )
        print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
