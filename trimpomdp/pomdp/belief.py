"""Bayes belief updates for tabular POMDPs: b'(s') ~ O[a, s', o] * sum_s T[a, s, s'] b(s).

Kept apart from the model (as POMDPs.jl keeps its updaters apart) so that solvers, simulators and the
decode loop share one careful implementation.
"""
from __future__ import annotations

import numpy as np

from trimpomdp.errors import BeliefError
from trimpomdp.pomdp.model import POMDP

#: an observation whose probability under the predicted belief is below this is treated as impossible
ZERO_PROB = 1e-300


def predict(model: POMDP, belief: np.ndarray, action: int) -> np.ndarray:
    """The predicted next-state distribution sum_s T[a, s, s'] b(s)."""
    return model.T[action].T @ np.asarray(belief, dtype=np.float64)


def observation_probability(model: POMDP, belief: np.ndarray, action: int, obs: int) -> float:
    """P(o | b, a): the normaliser of the update."""
    pred = predict(model, belief, action)
    return float(model.O[action][:, [obs]].toarray().ravel() @ pred)


def update(model: POMDP, belief, action, obs) -> np.ndarray:
    """The posterior belief after taking ``action`` and seeing ``obs`` (indices or names).

    Raises ``BeliefError`` if the observation is impossible under the belief, rather than returning NaN.
    """
    a = model.index("action", action)
    o = model.index("observation", obs)
    pred = predict(model, belief, a)
    col = model.O[a].getcol(o).toarray().ravel()
    post = col * pred
    z = post.sum()
    if not np.isfinite(z) or z <= ZERO_PROB:
        raise BeliefError(
            f"observation {model.observations[o]!r} has probability zero after action "
            f"{model.actions[a]!r} from this belief"
        )
    post /= z
    # clean rounding noise so beliefs stay exactly on the simplex
    np.clip(post, 0.0, None, out=post)
    return post / post.sum()


def update_batch(model: POMDP, beliefs: np.ndarray, actions, observations) -> np.ndarray:
    """Update many beliefs at once; ``beliefs`` is (N, S), actions and observations length-N arrays.

    Rows whose observation is impossible raise ``BeliefError`` naming the first such row.
    """
    B = np.asarray(beliefs, dtype=np.float64)
    if B.ndim != 2 or B.shape[1] != model.n_states:
        raise BeliefError(f"beliefs must have shape (N, {model.n_states}), got {B.shape}")
    acts = np.broadcast_to(np.asarray(actions, dtype=np.int64), (B.shape[0],))
    obs = np.broadcast_to(np.asarray(observations, dtype=np.int64), (B.shape[0],))
    out = np.empty_like(B)
    for a in np.unique(acts):
        rows = np.flatnonzero(acts == a)
        pred = (model.T[a].T @ B[rows].T).T  # (n, S)
        Ocols = model.O[a].T.tocsr()[obs[rows]].toarray()  # (n, S): O[a, s', o_i]
        post = pred * Ocols
        z = post.sum(axis=1)
        bad = np.flatnonzero(~(z > ZERO_PROB))
        if bad.size:
            i = rows[bad[0]]
            raise BeliefError(
                f"belief row {i}: observation {model.observations[obs[i]]!r} has probability zero after "
                f"action {model.actions[a]!r}"
            )
        out[rows] = np.clip(post / z[:, None], 0.0, None)
    return out / out.sum(axis=1, keepdims=True)
