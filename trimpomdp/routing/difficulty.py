"""Latent question difficulty: K classes, each with its own cheap and strong step accuracy.

Why: with one accuracy for every question the routing model has no hard questions, so it predicts far
better strong-only accuracy than real runs and a router that beats the strong model (issue 13). A question
draws its class once (weights w); the router never sees it but learns it from the PRM scores, so the hidden
state becomes the pair (class k, C/E/D) and beliefs are 3K long, class-major: index 3 k + s. Within a class
the TRIM dynamics are unchanged, so every joint matrix here is block-diagonal over classes.

One class with weight 1 is exactly the plain model; the helpers below are what the filter, the simulator,
the MOMDP export and the class policy share.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trimpomdp.errors import BeliefError, TrimError

#: the most classes a spec may hold (beliefs and alpha vectors are 3K long)
MAX_CLASSES = 8


@dataclass(frozen=True)
class Difficulty:
    """Class weights and per-class step accuracies (each an array of K numbers)."""

    weights: np.ndarray
    p_weak: np.ndarray
    p_strong: np.ndarray

    def __post_init__(self):
        for name in ("weights", "p_weak", "p_strong"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=np.float64).ravel())

    def check(self, where: str = "classes") -> "Difficulty":
        """Raise a one-line ``TrimError`` naming the field when the classes are not a valid model."""
        K = self.weights.size
        if not 1 <= K <= MAX_CLASSES:
            raise TrimError(f"field '{where}.weights': expected 1..{MAX_CLASSES} classes, found {K}")
        for name in ("p_weak", "p_strong"):
            v = getattr(self, name)
            if v.size != K:
                raise TrimError(f"field '{where}.{name}': expected one accuracy per class ({K}), found {v.size}")
            if np.any(~np.isfinite(v)) or np.any(v <= 0) or np.any(v >= 1):
                raise TrimError(f"field '{where}.{name}': accuracies must lie strictly between 0 and 1, "
                                f"got {np.round(v, 6).tolist()}")
        w = self.weights
        if np.any(~np.isfinite(w)) or np.any(w < 0) or abs(w.sum() - 1.0) > 1e-6:
            raise TrimError(f"field '{where}.weights': must be non-negative and sum to 1, got {np.round(w, 6).tolist()}")
        return self

    @property
    def n(self) -> int:
        return int(self.weights.size)

    def to_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "p_weak": self.p_weak.tolist(), "p_strong": self.p_strong.tolist()}

    @classmethod
    def from_dict(cls, d, where: str = "classes") -> "Difficulty":
        if not isinstance(d, dict):
            raise TrimError(f"field '{where}': must be an object with 'weights', 'p_weak' and 'p_strong' lists")
        for key in ("weights", "p_weak", "p_strong"):
            v = d.get(key)
            if not isinstance(v, list) or not v or not all(
                    isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
                raise TrimError(f"field '{where}.{key}': must be a non-empty list of numbers, got {v!r:.60}")
        w = np.asarray(d["weights"], dtype=np.float64)
        return cls(w / w.sum() if w.sum() > 0 else w, d["p_weak"], d["p_strong"]).check(where)

    @classmethod
    def single(cls, p_weak: float, p_strong: float) -> "Difficulty":
        return cls([1.0], [p_weak], [p_strong])


def hidden_names(K: int) -> tuple[str, ...]:
    """Names of the 3K hidden values: the TRIM states, suffixed by class when there are several."""
    names = ("C", "E", "D")
    return names if K == 1 else tuple(f"{s}{k + 1}" for k in range(K) for s in names)


def transition(d: Difficulty, action, repair: float = 0.0) -> np.ndarray:
    """The (3K, 3K) block-diagonal transition of ``keep`` (0) / ``regenerate`` (1); ``repair``: the chance
    that a strong rewrite in a derailed solution repairs it (then it is correct with p_strong)."""
    a = {"keep": 0, "regenerate": 1}.get(action, action)
    if a not in (0, 1):
        raise TrimError(f"unknown action {action!r}; expected 'keep' or 'regenerate'")
    K = d.n
    T = np.zeros((3 * K, 3 * K))
    for k in range(K):
        pw, ps = d.p_weak[k], d.p_strong[k]
        if a == 0:
            blk = [[pw, 1 - pw, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
        else:
            row = [ps * pw, ps * (1 - pw), 1 - ps]
            r = repair * ps
            blk = [row, row, [r * pw, r * (1 - pw), 1 - r]]
        T[3 * k:3 * k + 3, 3 * k:3 * k + 3] = blk
    return T


def regenerate_reward(d: Difficulty, repair: float = 0.0) -> np.ndarray:
    """P(the step is correct after a strong rewrite | hidden value): p_strong from C or E, p_strong times
    ``repair`` from D (the share of the reward a final regenerated step earns)."""
    return np.repeat(d.p_strong, 3) * np.tile([1.0, 1.0, repair], d.n)


def start(d: Difficulty) -> np.ndarray:
    """The belief before step 1: class prior, every prefix correct."""
    b = np.zeros(3 * d.n)
    b[0::3] = d.weights
    return b


def first_prior(d: Difficulty) -> np.ndarray:
    """Step 1's prior (the cheap model writes it from an empty, correct prefix)."""
    b = np.zeros(3 * d.n)
    b[0::3] = d.weights * d.p_weak
    b[1::3] = d.weights * (1 - d.p_weak)
    return b


def tile(probs: np.ndarray, K: int) -> np.ndarray:
    """Observation rows (3, M) repeated per class: the PRM sees the step's state, not its class."""
    return np.tile(np.asarray(probs, dtype=np.float64), (K, 1))


def marginal(b: np.ndarray) -> np.ndarray:
    """P(C, E, D) of 3K-long beliefs (..., 3K) -> (..., 3)."""
    b = np.asarray(b, dtype=np.float64)
    return b.reshape(*b.shape[:-1], -1, 3).sum(axis=-2)


def class_posterior(b: np.ndarray) -> np.ndarray:
    """P(class) of 3K-long beliefs (..., 3K) -> (..., K)."""
    b = np.asarray(b, dtype=np.float64)
    return b.reshape(*b.shape[:-1], -1, 3).sum(axis=-1)


def predict_rows(post: np.ndarray, regen: np.ndarray, d: Difficulty, repair: float = 0.0) -> np.ndarray:
    """Next-step priors of N posteriors (N, 3K) after their actions (N,) bool: T(a)^T b row by row, in
    closed form (x_k = mass of class k whose prefix is correct after the action)."""
    P = np.asarray(post, dtype=np.float64).reshape(post.shape[0], -1, 3)
    fixed = P[:, :, 0] + P[:, :, 1] + repair * P[:, :, 2]
    x = np.where(np.asarray(regen, dtype=bool)[:, None], d.p_strong[None, :] * fixed, P[:, :, 0])
    m = P.sum(axis=2)
    out = np.stack([d.p_weak[None, :] * x, (1 - d.p_weak[None, :]) * x, m - x], axis=2)
    return out.reshape(post.shape)


def check_belief(belief, K: int) -> np.ndarray:
    """A 3K-long probability vector, or a ``BeliefError`` saying what was expected."""
    b = np.asarray(belief, dtype=np.float64)
    n = 3 * K
    if b.shape != (n,) or np.any(~np.isfinite(b)) or np.any(b < -1e-12) or abs(b.sum() - 1.0) > 1e-6:
        what = "3 non-negative numbers" if K == 1 else f"{n} non-negative numbers (3 per difficulty class)"
        raise BeliefError(f"a belief is {what} summing to 1, got {np.asarray(belief).tolist()}")
    return np.clip(b, 0.0, None)

