"""The routing policy of a spec with difficulty classes: Q vectors per step and action.

Why a second policy kind: with K difficulty classes the belief is 3K long and the structured solver's
one-number parametrisation (``routing.solver``) no longer holds; the class solver (``routing.class_solver``)
backs the value up at the beliefs the filter reaches. What the policy keeps, for every step t, are the
backed-up Q vectors of each action over the 3K hidden values (regenerate before the step's price):

    Q_keep(b)     = max_i keep_t[i] . b
    Q_regen(b, c) = max_i regen_t[i] . b - lambda c

so the decision uses the step's real regeneration cost c, not a token bin. Every vector is the value of a
concrete plan, so both are lower bounds, exact at the solver's points. The file embeds the spec and the
observation table, as ``PomdpPolicy``'s does.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trimpomdp.artifacts import load_npz, save_npz
from trimpomdp.errors import FormatError, ModelError, TrimError
from trimpomdp.interfaces import Decision, StepObservation
from trimpomdp.routing import difficulty
from trimpomdp.routing.policies import RoutingPolicy

FORMAT = "trimpomdp.trim_class_policy"


class ClassPomdpPolicy(RoutingPolicy):
    """``keep[t]``, ``regen[t]`` (n, 3K): Q vectors of step t + 1 (0-based t) per action."""

    needs_belief = True
    cap = None

    def __init__(self, trim_model, lam: float, keep, regen, predicted=None, meta=None):
        tm = self.trim_model = trim_model
        self.lam = float(lam)
        self.keep = [np.ascontiguousarray(v, dtype=np.float64) for v in keep]
        self.regen = [np.ascontiguousarray(v, dtype=np.float64) for v in regen]
        for name, sets in (("keep", self.keep), ("regenerate", self.regen)):
            if len(sets) != tm.max_steps:
                raise ModelError(f"{len(sets)} {name} vector sets for a {tm.max_steps}-step spec")
            for t, v in enumerate(sets):
                if v.ndim != 2 or v.shape[1] != tm.n_hidden or v.shape[0] < 1:
                    raise ModelError(f"step {t + 1}: {name} vectors must form an (n >= 1, {tm.n_hidden}) array, "
                                     f"got {v.shape}")
        self.predicted = dict(predicted or {})
        self.meta = dict(meta or {})
        self.name = f"pomdp:{self.meta.get('budget', f'lambda={self.lam:g}')}"

    @property
    def max_steps(self) -> int:
        return len(self.keep)

    def start(self):
        return None

    def _t(self, step) -> int:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
            raise TrimError(f"steps are numbered by integers from 1, got {step!r}")
        return min(int(step), self.max_steps) - 1

    def q_values(self, beliefs, step, costs, levels=None):
        """(Q_keep, Q_regenerate) arrays, the latter with lambda times ``costs`` subtracted."""
        t = self._t(step)
        B = np.atleast_2d(np.asarray(beliefs, dtype=np.float64))
        if B.ndim != 2 or B.shape[1] != self.trim_model.n_hidden:
            raise TrimError(f"beliefs must have shape (n, {self.trim_model.n_hidden}), got {B.shape}")
        c = np.broadcast_to(np.asarray(costs, dtype=np.float64), (B.shape[0],))
        if np.any(~np.isfinite(c)) or np.any(c < 0):
            raise TrimError("regeneration costs must be finite non-negative token counts")
        return (B @ self.keep[t].T).max(axis=1), (B @ self.regen[t].T).max(axis=1) - self.lam * c

    def decide_many(self, beliefs, step, costs, scores=None, levels=None):
        qk, qr = self.q_values(beliefs, step, costs)
        return qr > qk

    def decide(self, belief, step, n_tokens, score=None, remaining=None) -> Decision:
        b = difficulty.check_belief(belief, self.trim_model.n_classes)
        cost = float(self.trim_model.step_cost_tokens(n_tokens))
        if not (np.isfinite(cost) and cost >= 0):
            raise TrimError(f"a step's token count must be a finite non-negative number, got {n_tokens!r}")
        qk, qr = self.q_values(b[None, :], step, cost)
        return Decision("regenerate" if qr[0] > qk[0] else "keep", float(qk[0]), float(qr[0]))

    def act(self, state, obs: StepObservation):
        if obs.belief is None:
            raise TrimError(f"{self.name} decides on the belief: run a belief filter")
        return self.decide(obs.belief, obs.step, obs.n_tokens), None

    # ------------------------------------------------------------------ files
    def save(self, path) -> Path:
        tm = self.trim_model
        arrays = {"obs_probs": tm.obs.probs, "obs_centers": tm.obs.centers}
        for name, sets in (("keep", self.keep), ("regen", self.regen)):
            arrays[name] = np.vstack(sets)
            arrays[f"{name}_offsets"] = np.concatenate([[0], np.cumsum([v.shape[0] for v in sets])]).astype(np.int64)
        if tm.obs_truth is not None:
            arrays["obs_truth"] = tm.obs_truth
        source = Path(tm.source).resolve() if tm.source else self.meta.get("spec_source")
        meta = dict(self.meta, spec_source=None if source is None else str(source), spec=tm.embedded_dict(),
                    lam=self.lam, predicted=self.predicted, max_steps=self.max_steps,
                    model_fingerprint=tm.fingerprint())
        return save_npz(path, arrays, meta, FORMAT)

    @classmethod
    def load(cls, path) -> "ClassPomdpPolicy":
        """Read a class policy file, checked against ``schemas.TRIM_CLASS_POLICY`` and its embedded spec."""
        from trimpomdp.observation_models.binned import TRIM_STATES, BinnedObservationModel
        from trimpomdp.routing.spec import TrimModel

        arrays, meta = load_npz(path, FORMAT)
        spec = meta["spec"]
        try:
            obs = BinnedObservationModel(TRIM_STATES, arrays["obs_centers"], arrays["obs_probs"],
                                         float(spec["obs_bin_size"]))
        except ModelError as exc:
            raise FormatError(f"arrays 'obs_probs'/'obs_centers': {exc}", str(path)) from None
        try:
            tm = TrimModel.from_dict(spec, obs=obs, source=str(path))
        except TrimError as exc:
            raise FormatError(f"field 'spec': {str(exc).splitlines()[0]}", str(path)) from None
        tm.obs_truth = arrays.get("obs_truth")
        fp = meta.get("model_fingerprint")
        if fp is not None and fp != tm.fingerprint():
            raise FormatError(f"field 'model_fingerprint': {fp} does not match the embedded spec and observation "
                              f"table ({tm.fingerprint()}); the file was altered after solving, re-solve it",
                              str(path))
        sets = {}
        for name in ("keep", "regen"):
            V, off = arrays[name], arrays[f"{name}_offsets"]
            if V.shape[1] != tm.n_hidden:
                raise FormatError(f"array {name!r}: vectors have {V.shape[1]} entries but the embedded spec has "
                                  f"{tm.n_classes} classes ({tm.n_hidden} hidden values)", str(path))
            if off.size != tm.max_steps + 1:
                raise FormatError(f"array '{name}_offsets': {off.size - 1} steps but the embedded spec has "
                                  f"{tm.max_steps}", str(path))
            sets[name] = [V[off[t]:off[t + 1]] for t in range(tm.max_steps)]
            if any(v.shape[0] == 0 for v in sets[name]):
                raise FormatError(f"array '{name}_offsets': every step needs at least one vector", str(path))
        meta.pop("spec", None)
        return cls(tm, meta["lam"], sets["keep"], sets["regen"], predicted=meta.get("predicted"), meta=meta)
