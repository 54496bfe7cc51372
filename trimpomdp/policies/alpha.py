"""Alpha-vector policies: the output of every offline solver, kept apart from the solvers themselves."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trimpomdp.artifacts import load_npz, save_npz
from trimpomdp.errors import FormatError, ModelError

FORMAT = "trimpomdp.alpha_policy"


@dataclass
class AlphaVectorPolicy:
    """A set of alpha vectors ``alphas`` (K, S), each with the action ``actions[k]`` that achieves it.

    ``value(b) = max_k alphas[k] . b`` is a lower bound on the optimal value when the vectors come from a
    point-based solver; ``action(b)`` is the action of the maximising vector.
    """

    alphas: np.ndarray
    actions: np.ndarray
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.alphas = np.atleast_2d(np.asarray(self.alphas, dtype=np.float64))
        self.actions = np.asarray(self.actions, dtype=np.int64).ravel()
        if self.alphas.shape[0] != self.actions.shape[0]:
            raise ModelError(f"{self.alphas.shape[0]} alpha vectors but {self.actions.shape[0]} actions")
        if self.alphas.shape[0] == 0:
            raise ModelError("a policy needs at least one alpha vector")
        if self.alphas.ndim != 2 or self.alphas.shape[1] == 0:
            raise ModelError(f"alpha vectors must form a (K, S) array with S >= 1, got shape {self.alphas.shape}")
        bad = np.argwhere(~np.isfinite(self.alphas))
        if bad.size:  # a NaN vector would silently lose (or win) every argmax
            k, s = (int(v) for v in bad[0])
            raise ModelError(f"alpha vector {k} has the non-finite value {self.alphas[k, s]!r} at state {s}")
        if self.actions.min() < 0:
            raise ModelError(f"action indices must be >= 0, got {int(self.actions.min())}")

    @property
    def n_states(self) -> int:
        return self.alphas.shape[1]

    def _check(self, belief) -> np.ndarray:
        b = np.asarray(belief, dtype=np.float64)
        if b.shape[-1] != self.n_states:
            raise ModelError(f"belief has {b.shape[-1]} states, policy expects {self.n_states}")
        return b

    def best(self, belief) -> np.ndarray:
        """Index of the maximising alpha vector (vectorised over leading belief axes)."""
        return np.argmax(self._check(belief) @ self.alphas.T, axis=-1)

    def value(self, belief):
        v = np.max(self._check(belief) @ self.alphas.T, axis=-1)
        return float(v) if np.ndim(v) == 0 else v

    def action(self, belief):
        a = self.actions[self.best(belief)]
        return int(a) if np.ndim(a) == 0 else a

    def save(self, path) -> None:
        save_npz(path, {"alphas": self.alphas, "actions": self.actions}, self.meta, FORMAT)

    @classmethod
    def load(cls, path) -> "AlphaVectorPolicy":
        arrays, meta = load_npz(path, FORMAT)  # checked against schemas.ALPHA_POLICY
        meta.pop("format", None)
        meta.pop("version", None)
        try:
            return cls(arrays["alphas"], arrays["actions"], meta)
        except ModelError as exc:
            raise FormatError(str(exc), str(path)) from None

    def check_model(self, model) -> None:
        """Raise if the policy was solved for another model (by fingerprint, when recorded)."""
        fp = self.meta.get("model_fingerprint")
        if model.n_states != self.n_states:
            raise ModelError(f"policy has {self.n_states} states but the model has {model.n_states}")
        if fp and fp != model.fingerprint():
            raise ModelError("policy was solved for a different model (fingerprint mismatch)")
        if int(self.actions.max()) >= model.n_actions:
            raise ModelError(f"policy uses action index {int(self.actions.max())} but the model has "
                             f"{model.n_actions} actions")
