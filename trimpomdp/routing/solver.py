"""The fast structured solve of the TRIM routing POMDP: one backward induction per budget.

Because the step index and the token count are observed and every prediction lands on the segment
y(x) = (p_w x, (1 - p_w) x, 1 - x) of the simplex, each step's value before its observation is a convex
piecewise-linear function of one number x. Backward induction t = T..1 backs it up at prior points (a
uniform grid of x plus the points reachable within two steps from the start), keeps the upper envelope
of the supporting lines (pruning dominated ones), and takes the expectation over the token bin inside the
backup. The result covers every belief the filter can reach, not just one start belief.
"""

from __future__ import annotations

import math
import time

import numpy as np

from trimpomdp.routing import kernels as K
from trimpomdp.routing.budgets import Budget, Cap
from trimpomdp.routing.policies import PomdpPolicy
from trimpomdp.routing.posterior import posteriors
from trimpomdp.solvers.envelope import envelope_lines

#: default number of uniform prior points per step
DEFAULT_GRID = 257
#: coarser defaults under a hard cap (the work grows with the number of budget levels)
CAP_GRID = 65
CAP_EVAL_GRID = 257
#: default forward-evaluation grid over x (linear mass splitting between nodes)
EVAL_GRID = 513


def compact_observations(probs: np.ndarray, also=None):
    """Merge observation bins with proportional likelihood vectors (they give the same posterior).

    ``also``: another (S, n_bins) table (e.g. the true observation distribution) merged the same way;
    then returns (merged probs, merged also).
    """
    P = np.asarray(probs, dtype=np.float64)
    tot = P.sum(axis=0)
    nz = tot > 0
    keys = np.round(P[:, nz] / tot[nz], 12)
    _, inv = np.unique(keys, axis=1, return_inverse=True)
    inv = np.asarray(inv).ravel()
    full = np.full(P.shape[1], inv.max() + 1)
    full[nz] = inv
    n = inv.max() + 2  # last column collects bins the filter deems impossible

    def merge(X):
        out = np.zeros((X.shape[0], n))
        np.add.at(out.T, full, np.asarray(X, dtype=np.float64).T)
        return out

    out = merge(P)
    if also is None:
        return out[:, :-1]
    return out, merge(also)


def token_groups(values: np.ndarray, cap: Cap | None) -> tuple[np.ndarray, np.ndarray, int]:
    """Contiguous groups of (sorted) token bins of equal budget cost: (group starts, cost units, levels)."""
    if cap is None:
        return np.array([0, values.size], dtype=np.int64), np.array([0], dtype=np.int64), 1
    cu = cap.units(values)
    starts = [0]
    units = [int(cu[0])]
    for k in range(1, values.size):
        if cu[k] != cu[k - 1]:
            starts.append(k)
            units.append(int(cu[k]))
    starts.append(values.size)
    return np.array(starts, dtype=np.int64), np.array(units, dtype=np.int64), cap.levels


def _zero_lines(nlev: int):
    return K.with_lookup(
        np.zeros(nlev), np.zeros(nlev), np.full(nlev, np.inf), np.arange(nlev + 1, dtype=np.int64)
    )


def _reachable_points(O, pw, ps, depth: int = 2, limit: int = 4000) -> np.ndarray:
    """Prior x values the filter reaches in the first ``depth`` steps from the start (x = 1)."""
    pts = {1.0}
    frontier = np.array([1.0])
    for _ in range(depth):
        y = np.stack([pw * frontier, (1 - pw) * frontier, 1 - frontier], axis=1)  # (F, 3)
        M = O.shape[1]
        post, ok = posteriors(np.repeat(y, M, axis=0), O, np.tile(np.arange(M), len(frontier)))
        bC, m = post[ok, 0], post[ok, 0] + post[ok, 1]
        new = np.unique(np.round(np.concatenate([bC, ps * m]), 12))
        pts.update(new.tolist())
        if len(pts) > limit:
            break
        frontier = new
    arr = np.array(sorted(pts))
    if arr.size > limit:
        arr = arr[np.linspace(0, arr.size - 1, limit).astype(int)]
    return arr


def prior_points(O, pw, ps, grid: int = DEFAULT_GRID, reach_depth: int = 1) -> np.ndarray:
    xs = np.linspace(0.0, 1.0, grid)
    if reach_depth > 0:
        xs = np.union1d(xs, _reachable_points(O, pw, ps, depth=reach_depth))
    return xs


def solve_lines(
    tm,
    lam: float,
    cap: Cap | None = None,
    grid: int = DEFAULT_GRID,
    reach_depth: int = 1,
    progress: bool = False,
):
    """Backward induction; returns (per-step next-value envelopes, U_1 envelope, A, B, groups, O)."""
    O = compact_observations(tm.obs.probs)
    pw, ps = float(tm.p_weak), float(tm.p_strong)
    T = tm.max_steps
    h = tm.hazard
    gamma = float(tm.discount)
    tv = tm.token_values
    cp = np.concatenate([[0.0], np.cumsum(tm.token_probs)])
    cpv = np.concatenate([[0.0], np.cumsum(tm.token_probs * tv)])
    gstart, gcu, nlev = token_groups(tv, cap)
    xs = prior_points(O, pw, ps, grid, 0)
    # step 2's priors reachable from the start get their own points (that is where the start value is read)
    xs2 = prior_points(O, pw, ps, grid, reach_depth) if reach_depth > 0 else xs
    A = h * tm.reward
    B = (1.0 - h) * gamma
    nxt = _zero_lines(nlev)
    steps: list = [None] * T
    it = range(T - 1, -1, -1)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc=f"solve lambda={lam:g}", file=__import__("sys").stderr, leave=False)
    for t in it:
        steps[t] = nxt
        out_s, out_c = K.backup_step(
            xs2 if t == 1 else xs, O, pw, ps, A[t], B[t], float(lam), tv, cp, cpv, gstart, gcu, nlev, *nxt
        )
        ls, lc, lb, lo = [], [], [], [0]
        for r in range(nlev):
            s_, c_, b_ = envelope_lines(out_s[r], out_c[r])
            ls.append(s_)
            lc.append(c_)
            lb.append(b_)
            lo.append(lo[-1] + s_.size)
        nxt = K.with_lookup(
            np.concatenate(ls), np.concatenate(lc), np.concatenate(lb), np.array(lo, dtype=np.int64)
        )
    return steps, nxt, A, B, (gstart, gcu, nlev), O


def evaluate_lines(
    tm, steps, A, B, lam, groups, O, eval_grid: int = EVAL_GRID, start_level: int | None = None
):
    """Forward evaluation: (accuracy, mean strong tokens, mean regenerations) of the policy.

    Propagates the joint distribution of hidden state and belief (beliefs on a fine x grid with linear
    mass splitting). Observations are drawn from ``tm.observation_truth()``: the histogram of the spec's
    real labelled PRM points when it names them (what the simulator resamples), else the model's table.
    """
    gstart, gcu, nlev = groups
    pw, ps = float(tm.p_weak), float(tm.p_strong)
    tv = tm.token_values
    cp = np.concatenate([[0.0], np.cumsum(tm.token_probs)])
    cpv = np.concatenate([[0.0], np.cumsum(tm.token_probs * tv)])
    h = tm.hazard
    Of, Ot = compact_observations(tm.obs.probs, tm.observation_truth())
    mass = np.zeros((nlev, 3, eval_grid))
    lv = nlev - 1 if start_level is None else start_level
    mass[lv, 0, eval_grid - 1] = pw
    mass[lv, 1, eval_grid - 1] = 1 - pw
    out = np.zeros(3)
    for t in range(tm.max_steps):
        if mass.sum() <= 1e-14:
            break
        mass = K.forward_step(
            mass,
            Of,
            Ot,
            pw,
            ps,
            A[t],
            B[t],
            float(h[t]),
            float(lam),
            tv,
            cp,
            cpv,
            gstart,
            gcu,
            *steps[t],
            out,
        )
    return float(out[0]), float(out[1]), float(out[2])


def solve_trim(
    trim_model,
    lam: float = 0.0,
    cap: Cap | None = None,
    *,
    grid: int | None = None,
    reach_depth: int = 1,
    evaluate: bool = True,
    budget: str | None = None,
    progress: bool = False,
):
    """Solve the routing POMDP at price ``lam`` per strong token (and optional hard cap) -> RoutingPolicy.

    A spec with difficulty classes is solved by the general MOMDP solver (``class_solver``)."""
    if not trim_model.structured:
        from trimpomdp.errors import TrimError
        from trimpomdp.routing.class_solver import solve_classes

        if cap is not None:
            raise TrimError("a hard cap (cap=...) is not supported for a spec with difficulty classes or "
                            "derailed repair yet; use lambda=... or mean=...")
        return solve_classes(trim_model, lam, budget=budget, evaluate=evaluate)
    if lam < 0 or not np.isfinite(lam):
        from trimpomdp.errors import TrimError

        raise TrimError(f"lambda must be a finite non-negative price per strong token, got {lam!r}")
    if grid is None:
        grid = DEFAULT_GRID if cap is None else CAP_GRID
    t0 = time.perf_counter()
    steps, U1, A, B, groups, O = solve_lines(trim_model, lam, cap, grid, reach_depth, progress)
    solve_s = time.perf_counter() - t0
    nlev = groups[2]
    value = float(K.env_eval(*U1, nlev - 1, 1.0)[0])
    predicted = {"value": value}
    if evaluate:
        t1 = time.perf_counter()
        acc, tok, reg = evaluate_lines(
            trim_model, steps, A, B, lam, groups, O, eval_grid=EVAL_GRID if cap is None else CAP_EVAL_GRID
        )
        predicted.update(
            accuracy=acc, strong_tokens=tok, regenerations=reg, eval_seconds=time.perf_counter() - t1
        )
    meta = {
        "lambda": float(lam),
        "budget": budget or (f"lambda={lam:g}" + (f",{cap.to_str()}" if cap else "")),
        "solve_seconds": solve_s,
        "grid_points": int(grid),
        "observation_symbols": int(O.shape[1]),
        "alpha_vectors": int(sum(s[0].size for s in steps)),
    }
    return PomdpPolicy(trim_model, lam, steps, A, B, cap=cap, predicted=predicted, meta=meta)


def solve_budget(trim_model, budget: Budget, *, tol: float = 0.01, max_iter: int = 40, progress=None, _solve=None):
    """Solve for one budget; ``mean=`` searches lambda so that predicted mean strong tokens match it.

    For a spec the class solver takes, the search shares one set of belief points between its solves and
    predicts with fewer simulated questions; the chosen lambda is then solved and predicted in full."""
    if not trim_model.structured and budget.mean is not None and budget.mean > 0 and _solve is None:
        from trimpomdp.routing.class_solver import SEARCH_EPISODES, PointCache, solve_classes

        cache = PointCache()
        pick = solve_budget(trim_model, budget, tol=tol, max_iter=max_iter, progress=progress,
                            _solve=lambda lam, cap=None, budget=None: solve_classes(
                                trim_model, lam, budget=budget, cache=cache, episodes=SEARCH_EPISODES))
        best = solve_classes(trim_model, pick.lam, budget=budget.describe())
        for k in ("search_iterations", "target_mean_tokens", "budget_note"):
            if k in pick.meta:
                best.meta[k] = pick.meta[k]
        return best

    def solve(lam, cap=None, budget=None):
        if _solve is not None:
            return _solve(lam, cap=cap, budget=budget)
        return solve_trim(trim_model, lam=lam, cap=cap, budget=budget)

    if budget.mean is None:
        return solve(lam=budget.lam or 0.0, cap=budget.cap, budget=budget.describe())
    target = budget.mean
    if target <= 0:
        pol = solve(lam=1e6, cap=budget.cap, budget=budget.describe())
        return pol
    # bracket: tokens decrease with lambda; then the Illinois variant of regula falsi on
    # g(log lambda) = tokens - target (superlinear, never leaves the bracket)
    lo, hi = 1e-3, 3.0
    p_lo = solve(lam=lo, cap=budget.cap, budget=budget.describe())
    while p_lo.predicted["strong_tokens"] <= target and lo > 1e-7:
        lo /= 30
        p_lo = solve(lam=lo, cap=budget.cap, budget=budget.describe())
    if p_lo.predicted["strong_tokens"] <= target:
        p_lo.meta["budget_note"] = (
            f"mean {target:g} not binding: max predicted mean is {p_lo.predicted['strong_tokens']:.4g}"
        )
        return p_lo
    p_hi = solve(lam=hi, cap=budget.cap, budget=budget.describe())
    while p_hi.predicted["strong_tokens"] > target and hi < 1e6:
        lo, p_lo = hi, p_hi
        hi *= 10
        p_hi = solve(lam=hi, cap=budget.cap, budget=budget.describe())
    a, b = math.log(lo), math.log(hi)
    fa, fb = p_lo.predicted["strong_tokens"] - target, p_hi.predicted["strong_tokens"] - target
    best = p_lo if abs(fa) < abs(fb) else p_hi
    side = 0
    for it in range(max_iter):
        c = (a * fb - b * fa) / (fb - fa) if fb != fa else 0.5 * (a + b)
        if not (a < c < b):
            c = 0.5 * (a + b)
        p = solve(lam=math.exp(c), cap=budget.cap, budget=budget.describe())
        fc = p.predicted["strong_tokens"] - target
        if progress is not None:
            progress(it, math.exp(c), fc + target)
        if abs(fc) < abs(best.predicted["strong_tokens"] - target):
            best = p
        if abs(fc) <= tol * target or b - a < 1e-6:
            break
        if fc > 0:  # too many tokens: raise lambda
            a, fa = c, fc
            if side == -1:
                fb /= 2
            side = -1
        else:
            b, fb = c, fc
            if side == 1:
                fa /= 2
            side = 1
    best.meta["search_iterations"] = it + 1
    best.meta["budget"] = budget.describe()
    best.meta["target_mean_tokens"] = target
    return best
