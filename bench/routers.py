"""Benchmark of the learned routers against every other routing family, in-model (not a test).

Run: ``python bench/routers.py [--episodes 100000] [--timesteps 300000] [--plot routers.png]``. It

  * trains TRIM-Agg at 5 lambda values and TRIM-Seq at 2 in the routing simulator (sequence mode) with
    ``train-router``'s trainer and prints each training time, the total (target: the five Agg runs under
    10 minutes on a 2-core CPU) and the CPU load average while training (the machine may be shared);
  * simulates threshold, POMDP, Agg, Seq, full takeover (of the threshold and the POMDP policy) and the
    query-level families (first-step probe, oracle) on the same seeded questions (sequence mode) and prints
    the paper-layout table (``simulate-routing``'s);
  * reports, measured in the same run: step-level above query-level at matched cost, single-step
    regeneration above full takeover, Agg at or above the threshold front.

All figures are in-model: simulated questions of the spec's routing model with real PRM scores, not real
decoding runs.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


from trimpomdp.learned.train import TrainConfig, train_router
from trimpomdp.routing import TrimModel
from trimpomdp.routing import metrics as M
from trimpomdp.routing.compare import compare_policies, comparison_text, paper_table
from trimpomdp.routing.spec import load_observation_points

ROOT = Path(__file__).resolve().parents[1]
AGG_LAMBDAS = (2e-4, 8e-4, 2e-3, 4e-3, 6e-3)
SEQ_LAMBDAS = (8e-4, 4e-3)
THRESHOLD, POMDP = "threshold:0:1:21", "pomdp:lambda=0.005:2:10"


def train_all(tm, pts, folder: Path, timesteps: int, seq_timesteps: int, seed: int):
    files, rows = {"agg": [], "seq": []}, []
    for kind, lams, steps in (("agg", AGG_LAMBDAS, timesteps), ("seq", SEQ_LAMBDAS, seq_timesteps)):
        for lam in lams:
            out = folder / f"{kind}_{lam:g}.npz"
            load0 = os.getloadavg()[0]
            t = time.perf_counter()
            _, rep = train_router(tm, pts, TrainConfig(kind=kind, lam=lam, timesteps=steps, seed=seed), out,
                                  progress=False, log=lambda m: None)
            secs = time.perf_counter() - t
            e = rep["selected"]
            rows.append((kind, lam, steps, secs, rep["seconds"], load0, os.getloadavg()[0], e["accuracy"],
                         e["strong_tokens"]))
            print(f"  {kind} lambda={lam:g}: {steps:,} steps in {secs:6.1f} s (PPO {rep['seconds']:.1f} s; load "
                  f"{load0:.1f} -> {os.getloadavg()[0]:.1f}); selected eval at {e['timesteps']:,}: accuracy "
                  f"{e['accuracy']:.4f}, strong tokens {e['strong_tokens']:.1f}", flush=True)
            files[kind].append(str(out))
    return files, rows


def _front(rows, family):
    pts = [r for r in rows if r.get("family") == family]
    return [r["strong_tokens"] for r in pts], [r["accuracy"] for r in pts]


def verdicts(res: dict, agg_sweep: str, takeover: dict) -> list[str]:
    rows, aw, as_, cs = res["policies"], res["acc_weak"], res["acc_strong"], res["cost_strong"]
    out = []

    def front_at(family, cost, with_strong=False):
        c, a = _front(rows, family)
        c, a = [0.0] + c + ([cs] if with_strong else []), [aw] + a + ([as_] if with_strong else [])
        return float(M.front_accuracy(c, a, cost))

    # 1. step-level above query-level at matched cost
    q = [r for r in rows if r.get("family", "").startswith("query:")] + [
        {"strong_tokens": cs, "accuracy": as_, "name": "strong-only"}]
    orc = next(r for r in rows if r["name"] == "query-oracle")
    for fam in (THRESHOLD, POMDP, agg_sweep):
        gaps = [front_at(fam, r["strong_tokens"]) - r["accuracy"] for r in q if r["strong_tokens"] > 0]
        og = front_at(fam, orc["strong_tokens"]) - orc["accuracy"]
        out.append(f"step-level above query-level at matched cost [{fam.split(':')[0]}]: "
                   f"{'CONFIRMED' if min(gaps) > 0 else 'NOT CONFIRMED'} against the probe family (min accuracy gap "
                   f"{min(gaps):+.4f} over {len(gaps)} points incl. strong-only); against the oracle at its "
                   f"{orc['strong_tokens']:.0f} tokens: {og:+.4f} ({'above' if og > 0 else 'below'})")
    # 2. single-step regeneration above full takeover
    fams = res["families"]
    for base, tk in takeover.items():
        b, t = fams[base], fams[tk]
        ratio = b["delta_ibc_mean"] / t["delta_ibc_mean"] if t.get("delta_ibc_mean") else float("nan")
        better = (b["delta_ibc_mean"] or -1e9) > (t["delta_ibc_mean"] or -1e9)
        gaps = [front_at(base, r["strong_tokens"]) - r["accuracy"] for r in rows if r.get("family") == tk
                and r["strong_tokens"] > 0]
        out.append(f"single-step regeneration above full takeover [{base.split(':')[0]}]: "
                   f"{'CONFIRMED' if better and min(gaps) >= 0 else 'NOT CONFIRMED'}: Delta-IBC mean "
                   f"{b['delta_ibc_mean']:.3f} vs {t['delta_ibc_mean']:.3f} ({ratio:.1f}x; the paper reports 4.3x "
                   f"on MATH-500), CPT80 {M.cpt_text(b['cpt80'])} vs {M.cpt_text(t['cpt80'])}, min accuracy gap "
                   f"at the takeover points' costs {min(gaps):+.4f}")
    # 3. Agg at or above the threshold front (a router that never regenerates is the cheap-only point:
    # reported, not counted)
    agg = [r for r in rows if r.get("family") == agg_sweep and r["strong_tokens"] > 0]
    idle = sum(1 for r in rows if r.get("family") == agg_sweep and r["strong_tokens"] == 0)
    gaps = [r["accuracy"] - front_at(THRESHOLD, r["strong_tokens"]) for r in agg]
    ok = sum(g >= -2 * r["accuracy_se"] for g, r in zip(gaps, agg))
    out.append(f"Agg at or above the threshold front: {'CONFIRMED' if agg and ok > len(agg) / 2 else 'NOT CONFIRMED'}"
               f" at {ok} of {len(agg)} budgets (within 2 standard errors; {idle} router(s) never regenerate); "
               "accuracy minus the front's at the same cost: "
               + ", ".join(f"{g:+.4f} at {r['strong_tokens']:.0f} tokens" for g, r in zip(gaps, agg)))
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "data" / "trim_math_plain.json"))
    ap.add_argument("--points", default=str(ROOT.parent / "shared" / "data" / "prm_obs_processbench_math.npz"))
    ap.add_argument("--episodes", type=int, default=100_000)
    ap.add_argument("--timesteps", type=int, default=300_000, help="Agg training steps per lambda")
    ap.add_argument("--seq-timesteps", type=int, default=300_000, help="Seq training steps per lambda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--routers", default=None, help="Folder for the trained routers (default: a temporary one)")
    ap.add_argument("--plot", default=None)
    args = ap.parse_args(argv)
    tm = TrimModel.load(args.spec)
    pts = load_observation_points(args.points)
    folder = Path(args.routers or tempfile.mkdtemp(prefix="routers-"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"training in the simulator (sequence mode), {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} at the start; routers in {folder}")
    files, rows = train_all(tm, pts, folder, args.timesteps, args.seq_timesteps, args.seed)
    agg_total = sum(r[3] for r in rows if r[0] == "agg")
    print(f"Agg, 5 lambda values: {agg_total:.1f} s in all (target < 600 s: "
          f"{'MET' if agg_total < 600 else 'MISSED'}); Seq, {len(SEQ_LAMBDAS)} values: "
          f"{sum(r[3] for r in rows if r[0] == 'seq'):.1f} s")
    agg_sweep, seq_sweep = "agg:" + ",".join(files["agg"]), "seq:" + ",".join(files["seq"])
    takeover = {THRESHOLD: "takeover:" + THRESHOLD, POMDP: "takeover:" + POMDP}
    sweeps = [THRESHOLD, POMDP, agg_sweep, seq_sweep, *takeover.values(), "query:0:1:21"]
    t = time.perf_counter()
    result = compare_policies(args.spec, ["query-oracle"], sweeps, points=args.points, episodes=args.episodes,
                              seed=args.seed, plot=args.plot, modes=("sequence",))
    print(f"simulated every family on the same {args.episodes:,} questions (seed {args.seed}, sequence mode) "
          f"in {time.perf_counter() - t:.1f} s")
    res = result["modes"]["sequence"]
    paper = res["paper"]
    print("paper layout, in-model (sequence observations; acc / tokens / PGR at each family's most accurate "
          "point, CPT in % of the strong-only cost, dIBC mean over its points):")
    print(paper_table(paper))
    for line in verdicts(res, agg_sweep, takeover):
        print(line)
    print("(all figures in-model: the spec's routing model with real PRM scores in sequence mode, not real runs)")
    if os.environ.get("ROUTERS_BENCH_FULL"):
        print(comparison_text(result))
    if args.plot:
        print(f"wrote {args.plot}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
