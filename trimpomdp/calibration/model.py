"""A routing model with question difficulty, evaluated exactly for the policies real runs use.

Questions fall into K latent difficulty classes (weights w_k). In class k the cheap model writes a correct
step after a correct prefix with probability p_weak[k] and the strong model's rewrite is correct with
probability p_strong[k]; an error is never repaired by later steps (correct C -> fresh error E ->
derailed D, as in the TRIM model). Solution length L follows ``length_pmf`` (steps 1..T). The PRM score of
a step in state s is drawn from the current scores of real labelled points of s; a derailed step scores as
a fresh error with probability ``alpha`` (the labelled data hold only the first step after an error, while
later derailed steps look more and more wrong to the PRM), otherwise as a first-derailed step.

For the policies whose decision depends on the current score alone (cheap only, strong only, threshold k)
accuracy and strong calls are exact sums over steps -- no simulation noise, so a fit is a smooth
optimisation. Token figures come from per-use means: strong tokens per rewrite, per strong-only step,
cheap tokens per kept step and per discarded (flagged) step.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trimpomdp.errors import ModelError
from trimpomdp.observation_models.binned import TRIM_STATES


@dataclass
class ClassModel:
    weights: np.ndarray
    p_weak: np.ndarray
    p_strong: np.ndarray
    alpha: float
    length_pmf: np.ndarray  # P(L = t), t = 1..T
    rewrite_tokens: float = 0.0
    strong_step_tokens: float = 0.0
    cheap_step_tokens: float = 0.0
    discarded_step_tokens: float = 0.0

    def __post_init__(self):
        for name in ("weights", "p_weak", "p_strong", "length_pmf"):
            setattr(self, name, np.asarray(getattr(self, name), dtype=np.float64).ravel())
        K = self.weights.size
        if K < 1 or self.p_weak.size != K or self.p_strong.size != K:
            raise ModelError("weights, p_weak and p_strong need one entry per difficulty class")
        if np.any(self.weights < 0) or abs(self.weights.sum() - 1) > 1e-9:
            raise ModelError("class weights must be non-negative and sum to 1")
        for name in ("p_weak", "p_strong"):
            v = getattr(self, name)
            if np.any(v < 0) or np.any(v > 1):
                raise ModelError(f"{name} must lie in [0, 1]")
        if not 0 <= self.alpha <= 1:
            raise ModelError("alpha must lie in [0, 1]")
        if np.any(self.length_pmf < 0) or abs(self.length_pmf.sum() - 1) > 1e-6:
            raise ModelError("length_pmf must be a distribution over steps 1..T")

    @property
    def n_classes(self) -> int:
        return int(self.weights.size)

    @property
    def mean_steps(self) -> float:
        return float(np.arange(1, self.length_pmf.size + 1) @ self.length_pmf)

    @classmethod
    def from_dict(cls, d: dict) -> "ClassModel":
        """The inverse of ``to_dict`` (a calibration record's ``model``)."""
        return cls(**d)

    def to_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "p_weak": self.p_weak.tolist(), "p_strong": self.p_strong.tolist(),
                "alpha": float(self.alpha), "length_pmf": self.length_pmf.tolist(),
                "rewrite_tokens": self.rewrite_tokens, "strong_step_tokens": self.strong_step_tokens,
                "cheap_step_tokens": self.cheap_step_tokens, "discarded_step_tokens": self.discarded_step_tokens}


def regenerate_probs(points: dict, threshold: float, alpha: float) -> np.ndarray:
    """P(current score < threshold | C, E, D) from labelled points; D mixes in E's with weight alpha."""
    f = np.array([np.mean(np.asarray(points[s])[:, 1] < threshold) if threshold < 1 else 1.0
                  for s in TRIM_STATES])
    f[2] = (1 - alpha) * f[2] + alpha * f[1]
    return f


def evaluate_threshold(m: ClassModel, q) -> tuple[float, float]:
    """(accuracy, strong calls per question) when each step is rewritten with probability q[s] in state s
    (q = 0: cheap only; q = 1: every step rewritten, i.e. strong only)."""
    acc, calls = evaluate_many(m, np.asarray(q, dtype=np.float64)[None, :])
    return float(acc[0]), float(calls[0])


def evaluate_many(m: ClassModel, Q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``evaluate_threshold`` for R rewrite-probability rows Q (R, 3) at once (arrays over runs x classes)."""
    alive = np.cumsum(m.length_pmf[::-1])[::-1]  # P(L >= t)
    q0, q1, q2 = Q[:, 0:1], Q[:, 1:2], Q[:, 2:3]
    pw, ps = m.p_weak[None, :], m.p_strong[None, :]
    c = np.ones((Q.shape[0], m.n_classes))  # P(prefix correct) before the cheap model writes step t
    acc = np.zeros_like(c)
    calls = np.zeros_like(c)
    for t in range(m.length_pmf.size):
        C, E, D = c * pw, c * (1 - pw), 1 - c
        calls += alive[t] * (C * q0 + E * q1 + D * q2)
        c = C * (1 - q0) + (C * q0 + E * q1) * ps
        acc += m.length_pmf[t] * c
    return acc @ m.weights, calls @ m.weights


def predict(m: ClassModel, family: str, knob: float, points: dict) -> dict:
    """Predicted accuracy, strong tokens, strong calls, cheap tokens kept and discarded of one run."""
    if family == "cheap":
        q = np.zeros(3)
    elif family == "strong":
        q = np.ones(3)
    elif family == "threshold":
        q = regenerate_probs(points, knob, m.alpha)
    else:
        raise ModelError(f"no exact evaluation for {family!r} runs")
    acc, calls = evaluate_threshold(m, q)
    steps = m.mean_steps
    per_call = m.strong_step_tokens if family == "strong" else m.rewrite_tokens
    kept = 0.0 if family == "strong" else m.cheap_step_tokens * (steps - calls)
    return {"accuracy": acc, "strong_calls": calls, "strong_tokens": per_call * calls, "cheap_tokens": kept,
            "discarded_tokens": 0.0 if family == "strong" else m.discarded_step_tokens * calls}
