"""Alpha-vector policies: the output of every offline solver, kept apart from the solvers themselves."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from trimpomdp.artifacts import load_npz, save_npz
from trimpomdp.errors import FormatError, ModelError

FORMAT = "trimpomdp.alpha_policy"
#: version 2 records each vector's visible value (MOMDP policies); version 1 files are flat policies
VERSION = 2


@dataclass
class AlphaVectorPolicy:
    """A set of alpha vectors ``alphas`` (K, Y), each with the action ``actions[k]`` that achieves it.

    ``value(b) = max_k alphas[k] . b`` is a lower bound on the optimal value when the vectors come from a
    point-based solver; ``action(b)`` is the action of the maximising vector.

    A MOMDP policy (``n_visible`` > 1) holds vectors over the Y hidden values, vector k belonging to the
    visible value ``visible[k]``; it reads beliefs over the joint states x * Y + y of the model's flat form
    (``pomdp.momdp``). A belief certain of x is valued by the vectors of x only; one spread over several
    visible values gets sum_x max_{k of x} alphas[k] . b[x] (the MOMDP value of the mixture) and the action
    of the best vector of its most probable visible value. ``visible`` is None for a flat policy (all 0).
    """

    alphas: np.ndarray
    actions: np.ndarray
    meta: dict = field(default_factory=dict)
    visible: np.ndarray | None = None
    n_visible: int = 1

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
        self.n_visible = int(self.n_visible)
        if self.n_visible < 1:
            raise ModelError(f"n_visible must be >= 1, got {self.n_visible}")
        K = self.alphas.shape[0]
        vis = np.zeros(K, np.int64) if self.visible is None else np.asarray(self.visible, dtype=np.int64).ravel()
        if vis.shape != (K,):
            raise ModelError(f"{K} alpha vectors but {vis.size} visible values")
        if vis.min() < 0 or vis.max() >= self.n_visible:
            k = int(np.flatnonzero((vis < 0) | (vis >= self.n_visible))[0])
            raise ModelError(f"alpha vector {k} belongs to visible value {int(vis[k])}, outside "
                             f"0..{self.n_visible - 1}")
        self.visible = vis
        self._groups = None

    @property
    def n_hidden(self) -> int:
        """Y, the length of each vector (the number of states of a flat policy)."""
        return self.alphas.shape[1]

    @property
    def n_states(self) -> int:
        """The joint states of the beliefs it reads (X * Y)."""
        return self.n_visible * self.alphas.shape[1]

    def _check(self, belief) -> np.ndarray:
        b = np.asarray(belief, dtype=np.float64)
        if b.shape[-1] != self.n_states:
            raise ModelError(f"belief has {b.shape[-1]} states, policy expects {self.n_states}")
        return b

    def _by_visible(self):
        if self._groups is None:
            order = np.argsort(self.visible, kind="stable")
            xs, starts = np.unique(self.visible[order], return_index=True)
            self._groups = dict(zip(xs.tolist(), np.split(order, starts[1:])))
        return self._groups

    def _momdp(self, b: np.ndarray):
        """(value, best vector) of each belief row of a MOMDP policy."""
        X, Y = self.n_visible, self.n_hidden
        B = b.reshape(-1, X, Y)
        mass = B.sum(axis=2)
        top = mass.argmax(axis=1)
        value = np.zeros(B.shape[0])
        best = np.full(B.shape[0], -1, np.int64)
        groups = self._by_visible()
        for x in np.flatnonzero((mass > 0).any(axis=0)):
            rows = np.flatnonzero(mass[:, x] > 0)
            ks = groups.get(int(x))
            if ks is None:
                raise ModelError(f"the policy has no vector for visible value {int(x)}")
            vals = B[rows, x, :] @ self.alphas[ks].T
            j = vals.argmax(axis=1)
            value[rows] += vals[np.arange(rows.size), j]
            mine = top[rows] == x
            best[rows[mine]] = ks[j[mine]]
        return value.reshape(b.shape[:-1]), best.reshape(b.shape[:-1])

    def best(self, belief) -> np.ndarray:
        """Index of the maximising alpha vector (vectorised over leading belief axes)."""
        b = self._check(belief)
        if self.n_visible > 1:
            return self._momdp(b)[1]
        return np.argmax(b @ self.alphas.T, axis=-1)

    def value(self, belief):
        b = self._check(belief)
        v = self._momdp(b)[0] if self.n_visible > 1 else np.max(b @ self.alphas.T, axis=-1)
        return float(v) if np.ndim(v) == 0 else v

    def action(self, belief):
        a = self.actions[self.best(belief)]
        return int(a) if np.ndim(a) == 0 else a

    def save(self, path) -> None:
        """Version 2 of the format: ``visible`` (each vector's visible value) and ``n_visible`` recorded."""
        meta = dict(self.meta, n_visible=self.n_visible)
        save_npz(path, {"alphas": self.alphas, "actions": self.actions, "visible": self.visible}, meta, FORMAT,
                 version=VERSION)

    @classmethod
    def load(cls, path) -> "AlphaVectorPolicy":
        """Versions 1 (flat, no ``visible``) and 2."""
        arrays, meta = load_npz(path, FORMAT)  # checked against schemas.ALPHA_POLICY
        meta.pop("format", None)
        meta.pop("version", None)
        n_visible = meta.pop("n_visible", 1)
        try:
            return cls(arrays["alphas"], arrays["actions"], meta, arrays.get("visible"), n_visible)
        except ModelError as exc:
            raise FormatError(str(exc), str(path)) from None

    def check_model(self, model) -> None:
        """Raise if the policy was solved for another model (by fingerprint, when recorded); ``model`` is a
        POMDP (a MOMDP policy then reads the beliefs of the MOMDP's flat form) or a MOMDP."""
        fp = self.meta.get("model_fingerprint")
        X = getattr(model, "n_visible", None)
        if X is not None and self.n_visible > 1 and (X, model.n_hidden) != (self.n_visible, self.n_hidden):
            raise ModelError(f"policy has {self.n_visible} visible x {self.n_hidden} hidden values but the "
                             f"model has {X} x {model.n_hidden}")
        if model.n_states != self.n_states:
            raise ModelError(f"policy has {self.n_states} states but the model has {model.n_states}")
        if fp and fp != model.fingerprint():
            raise ModelError("policy was solved for a different model (fingerprint mismatch)")
        if int(self.actions.max()) >= model.n_actions:
            raise ModelError(f"policy uses action index {int(self.actions.max())} but the model has "
                             f"{model.n_actions} actions")
