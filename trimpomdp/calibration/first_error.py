"""Where the cheap model's first error falls: real step statistics as a fitting term for the classes.

The run summaries fix how often questions end correct under each policy, not *when* the cheap model goes
wrong; very different class mixes fit them equally well (for instance a large class whose first step is
nearly always wrong). The shared step statistics of the same cheap model (``step_stats_*.npz``:
``<model>__first_error_step`` of each flawed solution, ``<model>__correct_solution_steps`` of each correct
one) pin that down. A flawed solution's length is not recorded, so the outcome of a solution is one of
"first error at step t" (t = 1..T) or "correct", with, under the class model (length L independent of the
class, ``length_pmf``):

    P(first error at t) = sum_k w_k p_weak,k^(t-1) (1 - p_weak,k) P(L >= t)
    P(correct)          = sum_k w_k sum_l P(L = l) p_weak,k^l

(these sum to 1). The fit adds the multinomial log-likelihood of the counts, times a weight (see
``estimate.FIRST_ERROR_WEIGHT``).
"""
from __future__ import annotations

import numpy as np

from trimpomdp.errors import FormatError


def load_first_errors(path, model: str, max_steps: int) -> np.ndarray:
    """Counts (T + 1,): solutions whose first error is at step t = 1..T (later ones counted at T: the
    length pmf ends there), then correct solutions."""
    from trimpomdp.artifacts import read_npz

    z = read_npz(path)
    fe_key, ok_key = f"{model}__first_error_step", f"{model}__correct_solution_steps"
    if fe_key not in z or ok_key not in z:
        models = sorted({k.split("__")[0] for k in z if "__" in k})
        raise FormatError(f"expected arrays {fe_key!r} and {ok_key!r} (models here: {', '.join(models) or 'none'})",
                          str(path))
    fe, ok = np.asarray(z[fe_key]), np.asarray(z[ok_key])
    if fe.ndim != 1 or ok.ndim != 1 or fe.size + ok.size == 0:
        raise FormatError(f"{fe_key!r} and {ok_key!r} must be 1-D arrays of step numbers, not both empty", str(path))
    if fe.size and (np.any(fe != np.round(fe)) or fe.min() < 1):
        raise FormatError(f"{fe_key!r} must hold whole step numbers >= 1", str(path))
    T = int(max_steps)
    counts = np.zeros(T + 1)
    np.add.at(counts, np.minimum(fe.astype(int), T) - 1, 1.0)
    counts[T] = ok.size
    return counts


def outcome_probs(weights, p_weak, length_pmf) -> np.ndarray:
    """(T + 1,) P(first error at t = 1..T), then P(correct), under the class model (module docstring)."""
    w, pw = np.asarray(weights, dtype=np.float64), np.asarray(p_weak, dtype=np.float64)
    pmf = np.asarray(length_pmf, dtype=np.float64)
    T = pmf.size
    alive = np.cumsum(pmf[::-1])[::-1]  # P(L >= t)
    reach = pw[:, None] ** np.arange(T)[None, :]  # P(steps 1..t-1 correct), class x t
    err = (w @ (reach * (1 - pw[:, None]))) * alive
    correct = w @ (reach * pw[:, None]) @ pmf
    return np.concatenate([err, [correct]])


def log_likelihood(counts, weights, p_weak, length_pmf) -> float:
    """Multinomial log-likelihood (without the constant) of ``load_first_errors`` counts."""
    p = np.clip(outcome_probs(weights, p_weak, length_pmf), 1e-300, None)
    return float(np.asarray(counts, dtype=np.float64) @ np.log(p))
