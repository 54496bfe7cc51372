"""The recursive Bayes filter over (correct, fresh_error, derailed) used at decode time and in simulation.

Unlike the reference (which recomputes the belief from the current observation with a uniform prior), the
belief is carried over steps: prior = T(action)^T posterior_prev, posterior ~ P(bin(o) | s') * prior.
With difficulty classes (``routing.difficulty``) the belief is over (class, state): 3K numbers, and the
same scores also tell the filter how hard the question is.
"""

from __future__ import annotations

import numpy as np

from trimpomdp.errors import BeliefError
from trimpomdp.routing import difficulty
from trimpomdp.routing.posterior import posteriors


class BeliefFilter:
    """Filter for one ``TrimModel``; stateless (every method takes and returns beliefs as (3K,) arrays,
    K the spec's difficulty classes: (3,) for a plain spec).

    Implements ``trimpomdp.interfaces.BeliefUpdater``: ``initialize()`` is the belief before step 1 and
    ``update(b, a, o)`` the posterior after action ``a`` (the previous step's; 'keep' before step 1) and
    observation pair ``o``.
    """

    def __init__(self, trim_model):
        self.model = trim_model
        self.n_classes = trim_model.n_classes
        self._T = {a: trim_model.joint_transition(a) for a in ("keep", "regenerate")}
        self._O = trim_model.joint_obs()

    def start(self) -> np.ndarray:
        """All mass on C (per class) before step 1: step 1's prior is ``predict(start(), 'keep')``."""
        return difficulty.start(self.model.classes)

    def marginal(self, belief) -> np.ndarray:
        """P(C, E, D) of a belief (what traces record and plots show)."""
        return difficulty.marginal(belief)

    def class_posterior(self, belief) -> np.ndarray:
        """P(difficulty class) of a belief."""
        return difficulty.class_posterior(belief)

    def initialize(self) -> np.ndarray:
        return self.start()

    def update(self, belief, action, obs_pair) -> np.ndarray:
        return self.correct(self.predict(belief, action), obs_pair)

    def observation_index(self, obs_pair) -> int:
        """The observation model's bin of the pair (what the planner sees)."""
        return int(self.model.obs_bins(obs_pair))

    def predict(self, belief, action) -> np.ndarray:
        """T(action)^T b (action 'keep'/'regenerate' or 0/1)."""
        a = {0: "keep", 1: "regenerate"}.get(action, action)
        if a not in self._T:
            raise BeliefError(f"unknown action {action!r}; expected 'keep' or 'regenerate'")
        b = self._check(belief)
        out = self._T[a].T @ b
        return out / out.sum()

    def _bin(self, obs_pair) -> int:
        o = np.asarray(obs_pair, dtype=np.float64)
        if o.shape != (2,):
            raise BeliefError(
                f"an observation is a pair (min earlier score, current score), got shape {o.shape}"
            )
        if np.any(~np.isfinite(o)) or np.any(o < 0) or np.any(o > 1):
            raise BeliefError(f"observation {tuple(o)} lies outside [0, 1]^2")
        return int(self.model.obs_bins(o))

    def likelihood(self, obs_pair) -> np.ndarray:
        """P(bin(obs) | state) for the pair (min earlier PRM score or 1.0, current PRM score); the model's
        ``observation`` decides what is read ('current': the second coordinate only)."""
        return self._O[:, self._bin(obs_pair)]

    def correct(self, prior, obs_pair) -> np.ndarray:
        """Posterior given the observation; raises BeliefError when it is impossible under the prior."""
        post, ok = posteriors(self._check(prior), self._O, self._bin(obs_pair))
        if not ok[0]:
            raise BeliefError(
                f"observation {tuple(np.round(obs_pair, 6))} has probability zero under prior "
                f"{np.round(prior, 6).tolist()}"
            )
        return post[0]

    def step(self, b_prev, a_prev, obs_pair) -> tuple[np.ndarray, np.ndarray]:
        """(prior, posterior) for the next step; pass ``b_prev=None`` for step 1 (prior from start())."""
        if b_prev is None:
            prior = self.predict(self.start(), "keep")
        else:
            prior = self.predict(b_prev, a_prev)
        return prior, self.correct(prior, obs_pair)

    def correct_batch(self, priors: np.ndarray, bins: np.ndarray) -> np.ndarray:
        """Vectorised posterior for (N, 3K) priors and N observation bin indices (impossible rows raise)."""
        post, ok = posteriors(priors, self._O, bins)
        bad = np.flatnonzero(~ok)
        if bad.size:
            raise BeliefError(
                f"row {bad[0]}: observation bin {bins[bad[0]]} has probability zero under its prior"
            )
        return post

    def _check(self, belief) -> np.ndarray:
        return difficulty.check_belief(belief, self.n_classes)
