"""A routing model with question difficulty, evaluated exactly for the policies real runs use.

Questions fall into K latent difficulty classes (weights w_k). In class k the cheap model writes a correct
step after a correct prefix with probability p_weak[k] and the strong model's rewrite is correct with
probability p_strong[k]; an error is never repaired by later steps (correct C -> fresh error E ->
derailed D, as in the TRIM model). Solution length L follows ``length_pmf`` (steps 1..T). The PRM score of
a step in state s is drawn from the current scores of real labelled points of s; a derailed step scores as
a fresh error with probability ``alpha`` (the labelled data hold only the first step after an error, while
later derailed steps look more and more wrong to the PRM), otherwise as a first-derailed step. A strong
rewrite of a step in a derailed solution repairs it with probability ``recover`` (then it is correct with
p_strong, like any rewrite): the strong model reads the whole prefix and can redo a wrong earlier result,
which the TRIM formulation's "derailed is final" rules out.

For the policies whose decision depends on the current score alone (cheap only, strong only, threshold k)
accuracy and strong calls are exact sums over steps -- no simulation noise, so a fit is a smooth
optimisation.

Tokens: a cheap step's token count is lognormal with log-sd ``step_log_sd``; its mean is
``cheap_tokens_error`` when the step is a fresh error and ``cheap_tokens_correct`` otherwise (the first
wrong step of a solution is the long one: 1.5x in ProcessBench, and the runs' discarded steps are 1.5x
their kept ones). The strong model's version of a step has ``strong_coef * n ** strong_exponent`` tokens
where n is the cheap draft's count: a long (hard) step is long for both models. So strong tokens per call
differ by use (a strong-only run writes mostly correct-state steps, a threshold run rewrites mostly
fresh errors) from one rule, and a policy that weighs the draft's length (the reference's POMDP) selects
short rewrites. With ``strong_coef`` 0 the per-use means (``rewrite_tokens``...) are used instead.
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
    step_log_sd: float = 0.0
    cheap_tokens_correct: float = 0.0
    cheap_tokens_error: float = 0.0
    strong_coef: float = 0.0
    strong_exponent: float = 1.0
    recover: float = 0.0

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
        if not 0 <= self.recover <= 1:
            raise ModelError("recover must lie in [0, 1]")
        if np.any(self.length_pmf < 0) or abs(self.length_pmf.sum() - 1) > 1e-6:
            raise ModelError("length_pmf must be a distribution over steps 1..T")
        if self.step_log_sd < 0 or self.cheap_tokens_correct < 0 or self.cheap_tokens_error < 0 or self.strong_coef < 0:
            raise ModelError("token parameters must be non-negative")

    @property
    def has_token_model(self) -> bool:
        return self.strong_coef > 0 and self.cheap_tokens_correct > 0 and self.cheap_tokens_error > 0

    def cheap_means(self) -> np.ndarray:
        """Mean cheap tokens of a step in state C, E, D."""
        return np.array([self.cheap_tokens_correct, self.cheap_tokens_error, self.cheap_tokens_correct])

    def strong_means(self) -> np.ndarray:
        """Mean strong tokens of the strong model's version of a step in state C, E, D:
        strong_coef * E[n ** b] of a lognormal n (E[n^b] = mean^b exp((b^2 - b) sd^2 / 2))."""
        b, v = self.strong_exponent, self.step_log_sd ** 2
        return self.strong_coef * self.cheap_means() ** b * np.exp((b * b - b) * v / 2)

    def draw_cheap_tokens(self, states, rng) -> np.ndarray:
        """Cheap token counts of steps in ``states`` (0 C, 1 E, 2 D)."""
        m = self.cheap_means()[np.asarray(states)]
        sd = self.step_log_sd
        return m * np.exp(sd * rng.standard_normal(m.shape) - sd * sd / 2)

    def strong_tokens(self, cheap_tokens) -> np.ndarray:
        return self.strong_coef * np.asarray(cheap_tokens, dtype=np.float64) ** self.strong_exponent

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
                "cheap_step_tokens": self.cheap_step_tokens, "discarded_step_tokens": self.discarded_step_tokens,
                "step_log_sd": self.step_log_sd, "cheap_tokens_correct": self.cheap_tokens_correct,
                "cheap_tokens_error": self.cheap_tokens_error, "strong_coef": self.strong_coef,
                "strong_exponent": self.strong_exponent, "recover": self.recover}


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


def evaluate_many(m: ClassModel, Q: np.ndarray, by_state: bool = False):
    """``evaluate_threshold`` for R rewrite-probability rows Q (R, 3) at once (arrays over runs x classes).
    ``by_state``: also the expected strong calls and the expected steps per question by the state of the
    step (R, 3 for C, E, D), which the token figures need."""
    alive = np.cumsum(m.length_pmf[::-1])[::-1]  # P(L >= t)
    q0, q1, q2 = Q[:, 0:1], Q[:, 1:2], Q[:, 2:3]
    pw, ps = m.p_weak[None, :], m.p_strong[None, :]
    c = np.ones((Q.shape[0], m.n_classes))  # P(prefix correct) before the cheap model writes step t
    acc = np.zeros_like(c)
    calls = np.zeros_like(c)
    if by_state:
        cs = np.zeros((3,) + c.shape)
        ss = np.zeros((3,) + c.shape)
    for t in range(m.length_pmf.size):
        C, E, D = c * pw, c * (1 - pw), 1 - c
        calls += alive[t] * (C * q0 + E * q1 + D * q2)
        if by_state:
            for i, (x, q) in enumerate(((C, q0), (E, q1), (D, q2))):
                cs[i] += alive[t] * x * q
                ss[i] += alive[t] * x
        c = C * (1 - q0) + (C * q0 + E * q1 + m.recover * D * q2) * ps
        acc += m.length_pmf[t] * c
    if not by_state:
        return acc @ m.weights, calls @ m.weights
    return acc @ m.weights, calls @ m.weights, (cs @ m.weights).T, (ss @ m.weights).T


def rewrite_rows(m: ClassModel, family: str, knob: float, points: dict) -> np.ndarray:
    """Rewrite probability per state (C, E, D) of a cheap-only, strong-only or threshold run."""
    if family == "cheap":
        return np.zeros(3)
    if family == "strong":
        return np.ones(3)
    if family == "threshold":
        return regenerate_probs(points, knob, m.alpha)
    raise ModelError(f"no exact evaluation for {family!r} runs")


def predict(m: ClassModel, family: str, knob: float, points: dict) -> dict:
    """Predicted accuracy, strong tokens, strong calls, cheap tokens kept and discarded of one run."""
    q = rewrite_rows(m, family, knob, points)
    acc, calls, cs, ss = (np.asarray(v)[0] for v in evaluate_many(m, q[None, :], by_state=True))
    acc, calls = float(acc), float(calls)
    if m.has_token_model:
        strong = float(cs @ m.strong_means())
        kept = 0.0 if family == "strong" else float((ss - cs) @ m.cheap_means())
        discarded = 0.0 if family == "strong" else float(cs @ m.cheap_means())
    else:
        steps = m.mean_steps
        strong = (m.strong_step_tokens if family == "strong" else m.rewrite_tokens) * calls
        kept = 0.0 if family == "strong" else m.cheap_step_tokens * (steps - calls)
        discarded = 0.0 if family == "strong" else m.discarded_step_tokens * calls
    return {"accuracy": acc, "strong_calls": calls, "strong_tokens": strong, "cheap_tokens": kept,
            "discarded_tokens": discarded}
