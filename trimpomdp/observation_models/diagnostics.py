"""Diagnostics of fitted observation models: held-out likelihood, separability, agreement with a
reference table, and a picture.

- ``cross_validate``: stratified k-fold refits with the same settings; per state the mean held-out
  log-density (nats per point) of that state's points under that state's density, plus out-of-fold
  posteriors P(state | obs) under a uniform prior.
- ``ovr_auc``: one-vs-rest ROC AUC of those posteriors (``sklearn.metrics.roc_auc_score``); how well a
  single observation tells one state from the others.
- ``tv_distance``: per state total-variation distance 1/2 sum_k |p_k - q_k| between two bins tables on
  the same grid.
- ``plot_model``: heat maps (2-D) or curves with histograms (1-D) per state, matplotlib Agg backend.
"""
from __future__ import annotations

import numpy as np

from trimpomdp.errors import ModelError
from trimpomdp.observation_models.binned import BinnedObservationModel


def cross_validate(X, y, make_model, folds: int = 5, seed: int = 0, progress: bool = False) -> dict:
    """k-fold held-out log-likelihood per state and out-of-fold posteriors (n, n_states)."""
    from sklearn.model_selection import StratifiedKFold

    X = np.asarray(X, dtype=np.float64)
    X = X[:, None] if X.ndim == 1 else X
    y = np.asarray(y).astype(str)
    from trimpomdp.observation_models.kde import order_states

    states = tuple(order_states(y))
    counts = {s: int(np.sum(y == s)) for s in states}
    small = [s for s in states if counts[s] < 2 * folds]
    if small:
        raise ModelError(f"state {small[0]!r} has {counts[small[0]]} points, too few for {folds}-fold "
                         f"cross-validation (need {2 * folds}); lower --folds")
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
        L = m.likelihood(X[test])
        tot = L.sum(axis=1, keepdims=True)  # uniform prior
        post[test] = np.where(tot > 0, L / np.where(tot > 0, tot, 1.0), 1.0 / len(states))
        for i, s in enumerate(states):
            sel = y[test] == s
            with np.errstate(divide="ignore"):
                ll[s].append(np.log(np.maximum(L[sel, i], 1e-300)))
    return {"states": states, "counts": counts,
            "heldout_loglik": {s: float(np.mean(np.concatenate(ll[s]))) for s in states},
            "posterior": post, "y": y}


def ovr_auc(posterior: np.ndarray, y, states) -> dict:
    """One-vs-rest ROC AUC of P(state | obs) for each state (NaN when a state has no positives/negatives)."""
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(str)
    out = {}
    for i, s in enumerate(states):
        pos = y == s
        out[s] = float(roc_auc_score(pos, posterior[:, i])) if 0 < pos.sum() < len(y) else float("nan")
    return out


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
            ax.hist(pts[:, 0], bins=20, range=(0, 1), density=True, alpha=0.4, color="grey")
            ax.plot(g, model.density(g[:, None], s), color="C0")
            ax.set_xlabel("PRM score")
        else:
            G0, G1 = np.meshgrid(g, g, indexing="ij")
            dens = model.density(np.stack([G0.ravel(), G1.ravel()], axis=1), s).reshape(grid, grid)
            ax.imshow(dens.T, origin="lower", extent=(0, 1, 0, 1), aspect="auto", cmap="viridis")
            ax.scatter(pts[:, 0], pts[:, 1], s=2, c="white", alpha=0.4)
            ax.set_xlabel("min earlier score")
            ax.set_ylabel("current score")
        ax.set_title(f"{s} (n={len(pts)})")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
