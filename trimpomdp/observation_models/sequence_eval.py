"""Belief filters run along real score sequences, and the figures that judge an observation model by them.

A filter over (correct C, fresh error E, derailed D) starts at C, predicts with the TRIM keep-transition
(C -> C with p_weak, C -> E otherwise, E -> D, D -> D) and corrects with a per-step likelihood. The
observation models differ in that likelihood (``FILTERS``):

- ``pair``: f(m_t, s_t | state), the 2-D density of (min earlier score, current score), recursive. m_t is
  a function of the earlier scores, which the recursion has already counted, so its evidence is counted
  again at every step.
- ``current``: f(s_t | state), 1-D, recursive.
- ``conditional``: f(s_t | state, m_t) = f(m_t, s_t | state) / f(m_t | state) (the 2-D density over its
  exact marginal), recursive: only the new score's evidence enters each step.
- ``reference``: the posterior of the current pair alone under a uniform prior, no recursion (the TRIM
  reference implementation's belief).

Likelihoods are ``continuous`` densities or ``binned`` (P(bin | state) on the planner's grid; for
``conditional`` P(s-bin | state, m-bin)). Figures (``belief_metrics``), on steps counted once per distinct
prefix (``sequences.step_table``): AUC of b(E) for the first wrong step against correct-prefix steps; AUC
of b(E) + b(D) for "an error so far" against correct-prefix steps; mean log-loss -log b(true state), each
belief floored at ``LOG_FLOOR``. The raw baselines score steps by 1 - current score and 1 - min score so
far (the current step included).
"""
from __future__ import annotations

import numpy as np

from trimpomdp.errors import ModelError
from trimpomdp.observation_models.binned import TRIM_STATES

FILTERS = ("pair", "current", "conditional", "reference")
RECURSIVE = {"pair": True, "current": True, "conditional": True, "reference": False}
#: a belief below this counts as this in the log-loss (one confident miss costs at most 13.8 nats)
LOG_FLOOR = 1e-6
C, E, D = TRIM_STATES


def keep_transition(p_weak: float) -> np.ndarray:
    """T[s, s'] of the keep action over (C, E, D)."""
    if not 0.0 < p_weak <= 1.0:
        raise ModelError(f"p_weak must lie in (0, 1], got {p_weak}")
    return np.array([[p_weak, 1.0 - p_weak, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])


def run_filter(lik: np.ndarray, step: np.ndarray, p_weak: float, recursive: bool = True) -> np.ndarray:
    """Posterior beliefs (n, 3) for per-step likelihoods ``lik`` (n, 3) of concatenated sequences, where
    ``step`` (n,) is each row's 0-based step index (0 starts a new sequence). Without ``recursive`` every
    step's prior is uniform. A step whose likelihood is zero under its prior keeps the prior."""
    lik = np.asarray(lik, dtype=np.float64)
    step = np.asarray(step)
    if lik.ndim != 2 or lik.shape[1] != 3 or step.shape != (lik.shape[0],):
        raise ModelError(f"likelihoods must be (n, 3) with n step indices, got {lik.shape} and {step.shape}")
    T = keep_transition(p_weak)
    out = np.empty_like(lik)
    b = np.array([1.0, 0.0, 0.0])
    for i in range(lik.shape[0]):
        if not recursive:
            prior = np.full(3, 1.0 / 3)
        else:
            prior = T.T @ (np.array([1.0, 0.0, 0.0]) if step[i] == 0 else b)
        post = lik[i] * prior
        z = post.sum()
        b = post / z if z > 1e-300 and np.isfinite(z) else prior
        out[i] = b
    return out


def continuous_likelihoods(kind: str, pairs: np.ndarray, pair_model=None, current_model=None) -> np.ndarray:
    """(n, 3) densities of each step's observation under the fitted ReflectedKDEs (states in TRIM order);
    ``current`` without a 1-D model reads the 2-D model's marginal of the current score."""
    _check_kind(kind)
    if kind == "current":
        if current_model is None and pair_model is not None:  # the 2-D density's exact marginal, as a spec reads it
            m = _ordered(pair_model)
            return np.stack([m.marginal_density(pairs[:, 1], s, dim=1) for s in TRIM_STATES], axis=1)
        return _ordered(current_model).likelihood(pairs[:, 1:]).reshape(-1, 3)
    m = _ordered(pair_model)
    L = m.likelihood(pairs).reshape(-1, 3)
    if kind == "conditional":
        marg = np.stack([m.marginal_density(pairs[:, 0], s, dim=0) for s in TRIM_STATES], axis=1)
        L = L / np.maximum(marg, 1e-300)
    return L


def binned_likelihoods(kind: str, pairs: np.ndarray, pair_table=None, current_table=None) -> np.ndarray:
    """(n, 3) bin probabilities of each step's observation under BinnedObservationModels (the planner's
    view); ``conditional`` divides by the mass of the min score's bin row."""
    _check_kind(kind)
    if kind == "current":
        t = _ordered_table(current_table)
        return t.probs[:, np.atleast_1d(t.bin_index(pairs[:, 1:]))].T
    t = _ordered_table(pair_table)
    bins = np.atleast_1d(t.bin_index(pairs))
    L = t.probs[:, bins].T
    if kind == "conditional":
        m = int(round(1 / t.bin_size))
        rows = t.probs.reshape(3, m, m).sum(axis=2)  # P(m-bin | state), row-major grid: first coordinate
        L = L / np.maximum(rows[:, bins // m].T, 1e-300)
    return L


def beliefs(kind: str, lik: np.ndarray, step: np.ndarray, p_weak: float) -> np.ndarray:
    return run_filter(lik, step, p_weak, RECURSIVE[kind])


def belief_metrics(b: np.ndarray, states: np.ndarray, mask=None) -> dict:
    """AUC of b(E) (first wrong step vs correct prefix), AUC of b(E)+b(D) (error so far vs correct
    prefix), mean log-loss of the true state and the step counts, over the rows in ``mask``."""
    from trimpomdp.observation_models.diagnostics import auc

    b, states = np.asarray(b), np.asarray(states).astype(str)
    keep = np.ones(len(states), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    b, states = b[keep], states[keep]
    idx = np.array([TRIM_STATES.index(s) for s in states])
    fresh = (states == C) | (states == E)
    return {"auc_fresh": auc(b[fresh, 1], states[fresh] == E),
            "auc_error": auc(b[:, 1] + b[:, 2], states != C),
            "logloss": float(np.mean(-np.log(np.maximum(b[np.arange(len(idx)), idx], LOG_FLOOR)))),
            "n": {s: int(np.sum(states == s)) for s in TRIM_STATES}}


def raw_scores(pairs: np.ndarray) -> dict:
    """The baselines' error scores per step: 1 - current score, 1 - min score so far (current included)."""
    return {"1 - current": 1.0 - pairs[:, 1], "1 - min so far": 1.0 - np.minimum(pairs[:, 0], pairs[:, 1])}


def score_metrics(score: np.ndarray, states: np.ndarray, mask=None) -> dict:
    """The two AUCs of ``belief_metrics`` for a raw error score (no belief, so no log-loss)."""
    from trimpomdp.observation_models.diagnostics import auc

    score, states = np.asarray(score), np.asarray(states).astype(str)
    keep = np.ones(len(states), dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    score, states = score[keep], states[keep]
    fresh = (states == C) | (states == E)
    return {"auc_fresh": auc(score[fresh], states[fresh] == E), "auc_error": auc(score, states != C),
            "logloss": float("nan"), "n": {s: int(np.sum(states == s)) for s in TRIM_STATES}}


def bootstrap_auc_diff(a: np.ndarray, b: np.ndarray, positive: np.ndarray, groups: np.ndarray,
                       n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """AUC(a) - AUC(b) on the same steps and its 95% interval from resampling whole groups (questions or
    solutions) with replacement, since steps of one group are not independent."""
    from trimpomdp.observation_models.diagnostics import auc

    groups = np.asarray(groups).astype(str)
    uniq, inv = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inv == g) for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(uniq), len(uniq))])
        d = auc(a[idx], positive[idx]) - auc(b[idx], positive[idx])
        if d == d:
            diffs.append(d)
    lo, hi = np.percentile(diffs, [2.5, 97.5]) if diffs else (float("nan"), float("nan"))
    return float(auc(a, positive) - auc(b, positive)), float(lo), float(hi)


def _check_kind(kind: str) -> None:
    if kind not in FILTERS:
        raise ModelError(f"unknown observation model {kind!r}; expected one of {', '.join(FILTERS)}")


def _ordered(model):
    if model is None:
        raise ModelError("this observation model needs a fitted density")
    if tuple(model.states_) != TRIM_STATES:
        raise ModelError(f"the model's states are {list(model.states_)}, expected {list(TRIM_STATES)}")
    return model


def _ordered_table(table):
    if table is None:
        raise ModelError("this observation model needs a bins table")
    if tuple(table.states) != TRIM_STATES:
        raise ModelError(f"the table's states are {list(table.states)}, expected {list(TRIM_STATES)}")
    return table


#: the observation models a TRIM spec can plan with (``routing.spec.OBSERVATIONS``)
PLANNED = ("current", "pair")


def recommend(evaluation: dict) -> str | None:
    """The planned observation model with the lowest belief log-loss in ``evaluate``'s figures."""
    cands = {k: m["logloss"] for k, m in evaluation["models"].items() if k in PLANNED and m["logloss"] == m["logloss"]}
    return min(cands, key=cands.get) if cands else None


def evaluate(seqs, p_weak: float, pair_table=None, current_table=None) -> dict:
    """Every filter the given bins tables allow (2-D: pair, conditional, reference; 1-D: current) run along
    labelled sequences, with the raw baselines: {"models": {name: metrics}, "raw": {...}, "n", "p_weak"}."""
    from trimpomdp.observation_models.sequences import step_table

    pairs, states, _, step, unique = step_table(seqs)
    kinds = ([k for k in FILTERS if k != "current"] if pair_table is not None else []) + \
        (["current"] if current_table is not None else [])
    out = {"models": {}, "raw": {}, "p_weak": float(p_weak), "sequences": len(seqs)}
    for k in kinds:
        L = binned_likelihoods(k, pairs, pair_table, current_table)
        out["models"][k] = belief_metrics(beliefs(k, L, step, p_weak), states, unique)
    for name, sc in raw_scores(pairs).items():
        out["raw"][name] = score_metrics(sc, states, unique)
    out["n"] = {s: int(np.sum(states[unique] == s)) for s in TRIM_STATES}
    return out
