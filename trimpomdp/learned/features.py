"""What a learned router sees, defined once for training (both environments), the simulator and decode.

"Earlier scores" are the PRM scores of the earlier steps the cheap model wrote and that were kept: a
regenerated step's cheap score describes text that is no longer in the solution, and the strong rewrite is
not scored (as in the belief filter and the simulator). A step's token count is the strong tokens its
regeneration costs (the simulator's draw; in decode the cheap step's tokens times the spec's
``tokens_per_weak_token``), divided by ``token_scale`` (the spec's mean strong tokens per step).

- TRIM-Agg (the reference's aggregated state), per step: ``AGG_FEATURES``.
- TRIM-Seq: every earlier step as ``SEQ_INPUTS`` (its cheap score, its tokens, whether it was
  regenerated) read in order by a recurrent encoder, then the current step's ``SEQ_CURRENT``.
"""
from __future__ import annotations

import numpy as np

AGG_FEATURES = ("min_earlier_score", "product_earlier_scores", "score", "step_tokens", "step_fraction")
SEQ_INPUTS = ("score", "step_tokens", "regenerated")
SEQ_CURRENT = ("score", "step_tokens", "step_fraction")
#: a scaled token count is clipped to this (a runaway step must not saturate the network)
MAX_TOKEN_FEATURE = 10.0


def token_feature(tokens, token_scale: float) -> np.ndarray:
    return np.minimum(np.asarray(tokens, dtype=np.float64) / token_scale, MAX_TOKEN_FEATURE)


def step_fraction(step, max_steps: int) -> np.ndarray:
    return np.minimum(np.asarray(step, dtype=np.float64) / max_steps, 1.0)


class History:
    """Per-episode history of ``n`` episodes, vectorised: the aggregates of the kept cheap steps' scores
    (Agg) and, with ``window``, the last ``window`` earlier steps as ``SEQ_INPUTS`` rows (Seq)."""

    def __init__(self, n: int, window: int = 0):
        self.min = np.ones(n)
        self.prod = np.ones(n)
        self.window = window
        self.length = np.zeros(n, dtype=np.int64)  # earlier steps seen (all, kept or regenerated)
        self.seq = np.zeros((n, window, len(SEQ_INPUTS)), dtype=np.float32) if window else None

    def reset(self, rows) -> None:
        self.min[rows] = 1.0
        self.prod[rows] = 1.0
        self.length[rows] = 0
        if self.seq is not None:
            self.seq[rows] = 0.0

    def record(self, rows, scores, tokens_feat, regenerated) -> None:
        """Add the step just decided to each row's history."""
        kept = ~np.asarray(regenerated, dtype=bool)
        s = np.asarray(scores, dtype=np.float64)
        self.min[rows] = np.where(kept, np.minimum(self.min[rows], s), self.min[rows])
        self.prod[rows] = np.where(kept, self.prod[rows] * s, self.prod[rows])
        if self.seq is not None:
            W = self.window
            pos = np.minimum(self.length[rows], W - 1)
            full = self.length[rows] >= W  # keep the last W steps: shift the full rows left
            if full.any():
                r = np.asarray(rows)[full]
                self.seq[r, :-1] = self.seq[r, 1:]
            self.seq[rows, pos] = np.stack([s, tokens_feat, (~kept).astype(np.float64)], axis=1)
        self.length[rows] += 1

    def agg(self, rows, scores, tokens_feat, steps, max_steps: int) -> np.ndarray:
        """``AGG_FEATURES`` of each row's current step (float32, (k, 5))."""
        return np.stack([self.min[rows], self.prod[rows], scores, tokens_feat, step_fraction(steps, max_steps)],
                        axis=1).astype(np.float32)

    def seq_obs(self, rows, scores, tokens_feat, steps, max_steps: int) -> np.ndarray:
        """The flat Seq observation: the padded history (window x 3), ``SEQ_CURRENT``, the history length."""
        k = len(scores)
        cur = np.stack([scores, tokens_feat, step_fraction(steps, max_steps)], axis=1)
        length = np.minimum(self.length[rows], self.window).reshape(k, 1)
        return np.concatenate([self.seq[rows].reshape(k, -1), cur, length], axis=1).astype(np.float32)


def agg_from_steps(earlier, score: float, tokens_feat: float, step: int, max_steps: int) -> np.ndarray:
    """``AGG_FEATURES`` of one step from its earlier steps [(score, regenerated), ...] (decode)."""
    kept = [s for s, regen in earlier if not regen]
    return np.array([[min(kept, default=1.0), float(np.prod(kept)) if kept else 1.0, score, tokens_feat,
                      float(step_fraction(step, max_steps))]], dtype=np.float32)
