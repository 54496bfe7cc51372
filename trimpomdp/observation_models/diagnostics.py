"""Diagnostics of fitted observation models: held-out likelihood, separability, agreement with a
reference table, and a picture.

- ``cross_validate``: stratified k-fold refits with the same settings; per state the mean held-out
  log-density (nats per point) of that state's points under that state's density, plus out-of-fold
  posteriors P(state | obs) under a uniform prior.
- ``in_sample_posterior``: P(state | obs) of the fitted model at its own training points.
- ``ovr_auc``: one-vs-rest ROC AUC of those posteriors (``auc``: Mann-Whitney from ranks, O(n log n));
  how well a single observation tells one state from the others.

Evaluating a KDE at m points costs m x (its points), so both evaluations use at most ``max_eval``
points (a seeded sample stratified by state; all points below that): the diagnostics stay linear in the
data instead of quadratic.
- ``tv_distance``: per state total-variation distance 1/2 sum_k |p_k - q_k| between two bins tables on
  the same grid.
- ``plot_model``: heat maps (2-D) or curves with histograms (1-D) per state, matplotlib Agg backend.
"""
from __future__ import annotations

import numpy as np

from trimpomdp.errors import ModelError
from trimpomdp.observation_models.binned import BinnedObservationModel


#: default number of points the diagnostics evaluate a density at
MAX_EVAL_POINTS = 5000


def check_folds(y, folds: int) -> None:
    """Refuse a k-fold split some state cannot fill (checked before fitting, so nothing is half done)."""
    y = np.asarray(y).astype(str)
    from trimpomdp.observation_models.kde import order_states

    for s in order_states(y):
        n = int(np.sum(y == s))
        if n < 2 * folds:
            raise ModelError(f"state {s!r} has {n} points, too few for {folds}-fold cross-validation "
                             f"(need {2 * folds}); lower --folds")


def evaluation_sample(y, max_eval: int | None = MAX_EVAL_POINTS, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_eval`` points, stratified by label (every label keeps >= 1 point)."""
    y = np.asarray(y).astype(str)
    n = len(y)
    if max_eval is None or n <= max_eval:
        return np.arange(n)
    if max_eval < 1:
        raise ModelError(f"the diagnostics need at least 1 evaluation point, got {max_eval}")
    rng = np.random.default_rng(seed)
    keep = []
    for s in np.unique(y):
        idx = np.flatnonzero(y == s)
        k = max(1, int(round(max_eval * idx.size / n)))
        keep.append(rng.choice(idx, size=min(k, idx.size), replace=False))
    return np.sort(np.concatenate(keep))


def cross_validate(X, y, make_model, folds: int = 5, seed: int = 0, progress: bool = False,
                   max_eval: int | None = None) -> dict:
    """k-fold held-out log-likelihood per state and out-of-fold posteriors.

    With ``max_eval`` only that many points (``evaluation_sample``) are evaluated, each by the fold that
    holds it out; ``index`` names them and ``posterior`` / ``y`` are theirs (all points, in order, by
    default)."""
    from sklearn.model_selection import StratifiedKFold

    X = np.asarray(X, dtype=np.float64)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y).astype(str)
    from trimpomdp.observation_models.kde import order_states

    states = tuple(order_states(y))
    counts = {s: int(np.sum(y == s)) for s in states}
    check_folds(y, folds)
    index = evaluation_sample(y, max_eval, seed)
    evaluated = np.zeros(len(y), dtype=bool)
    evaluated[index] = True
    ll = {s: [] for s in states}
    post = np.zeros((len(y), len(states)))
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y)
    if progress:
        from tqdm import tqdm
        splits = tqdm(splits, total=folds, desc="cross-validation", file=__import__("sys").stderr)
    for train, test in splits:
        m = make_model()
        m.states = states
        m.fit(X[train], y[train])
        test = test[evaluated[test]]
        if test.size == 0:
            continue
        L = m.likelihood(X[test])
        tot = L.sum(axis=1, keepdims=True)  # uniform prior
        post[test] = np.where(tot > 0, L / np.where(tot > 0, tot, 1.0), 1.0 / len(states))
        for i, s in enumerate(states):
            sel = y[test] == s
            with np.errstate(divide="ignore"):
                ll[s].append(np.log(np.maximum(L[sel, i], 1e-300)))
    return {"states": states, "counts": counts,
            "heldout_loglik": {s: float(np.mean(np.concatenate(ll[s]))) for s in states},
            "posterior": post[index], "y": y[index], "index": index}


def in_sample_posterior(model, X, y, max_eval: int | None = MAX_EVAL_POINTS, seed: int = 0,
                        progress: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index, posterior, labels) of the fitted model at (a stratified sample of) its training points."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).astype(str)
    index = evaluation_sample(y, max_eval, seed)
    chunk = 1024
    parts = range(0, index.size, chunk)
    if progress and index.size > chunk:
        import sys

        from tqdm import tqdm
        parts = tqdm(parts, desc=f"in-sample posterior ({index.size:,} points)", file=sys.stderr, leave=False)
    post = np.concatenate([np.atleast_2d(model.posterior(X[index[lo:lo + chunk]])) for lo in parts])
    return index, post, y[index]


def auc(scores, positive) -> float:
    """ROC AUC of ``scores`` for the boolean labels ``positive``: P(score_pos > score_neg) + P(tie) / 2.

    Mann-Whitney U from average ranks (``scipy.stats.rankdata``), O(n log n); NaN without both classes."""
    from scipy.stats import rankdata

    scores = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(positive, dtype=bool).ravel()
    if scores.shape != pos.shape:
        raise ModelError(f"{scores.size} scores but {pos.size} labels")
    n_pos = int(pos.sum())
    n_neg = pos.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(scores)  # ties get their average rank
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def ovr_auc(posterior: np.ndarray, y, states) -> dict:
    """One-vs-rest ROC AUC of P(state | obs) for each state (NaN when a state has no positives/negatives)."""
    y = np.asarray(y).astype(str)
    posterior = np.asarray(posterior, dtype=np.float64)
    if posterior.shape[0] != y.size:
        raise ModelError(f"{posterior.shape[0]} posteriors but {y.size} labels")
    return {s: auc(posterior[:, i], y == s) for i, s in enumerate(states)}


def tv_distance(a: BinnedObservationModel, b: BinnedObservationModel) -> dict:
    """Per-state total-variation distance between two bins tables over the same grid."""
    if a.centers.shape != b.centers.shape or not np.allclose(a.centers, b.centers):
        raise ModelError(f"cannot compare bins: grids differ ({a.n_bins} bins of size {a.bin_size:g} in "
                         f"{a.dims}-D vs {b.n_bins} of size {b.bin_size:g} in {b.dims}-D)")
    missing = [s for s in a.states if s not in b.states]
    if missing:
        raise ModelError(f"state {missing[0]!r} is missing from the reference (it has {list(b.states)})")
    return {s: float(0.5 * np.abs(a.probs[i] - b.probs[b.states.index(s)]).sum()) for i, s in enumerate(a.states)}


def plot_model(model, X, y, path, grid: int = 61) -> None:
    """Per-state density picture with the training points, written as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X = np.asarray(X, dtype=np.float64)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y).astype(str)
    states = model.states_
    fig, axes = plt.subplots(1, len(states), figsize=(4.2 * len(states), 3.8), squeeze=False)
    g = np.linspace(0, 1, grid)
    for ax, s in zip(axes[0], states):
        pts = X[y == s]
        if model.n_dims_ == 1:
            ax.hist(pts[:, 0], bins=20, range=(0, 1), density=True, alpha=0.4, color="grey", label="labelled scores")
            ax.plot(g, model.density(g[:, None], s), color="C0", label="fitted density")
            ax.legend(fontsize=7)
            ax.set_xlabel("PRM score")
        else:
            G0, G1 = np.meshgrid(g, g, indexing="ij")
            dens = model.density(np.stack([G0.ravel(), G1.ravel()], axis=1), s).reshape(grid, grid)
            ax.imshow(dens.T, origin="lower", extent=(0, 1, 0, 1), aspect="auto", cmap="viridis")
            ax.scatter(pts[:, 0], pts[:, 1], s=2, c="white", alpha=0.4)
            ax.set_xlabel("min earlier score")
            ax.set_ylabel("current score")
        ax.set_title(f"{s} (n={len(pts)})")
    caption = ("bars: histogram of the state's labelled PRM scores; line: the fitted density P(score | state)"
               if model.n_dims_ == 1 else
               "colour: the fitted density P(min earlier score, current score | state), brighter = denser; "
               "white dots: the state's labelled observations")
    fig.text(0.5, 0.01, caption, ha="center", va="bottom", fontsize=7, color="dimgray")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
