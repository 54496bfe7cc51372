"""The routing policy of a spec with difficulty classes: value vectors per step, one-step lookahead.

Why a second policy kind: with K difficulty classes the belief is 3K long and the structured solver's
one-number parametrisation (``routing.solver``) no longer holds, so the routing model is solved as a MOMDP
by the general point-based solver (``routing.class_solver``). What the policy keeps of that solve is, for
every step t, the alpha vectors of the value of arriving at step t with its PRM score seen (the MOMDP's
visible value ``t<t>_pre``). A decision at step t is a one-step lookahead on them with the step's actual
regeneration cost, so the cost is not rounded to a token bin:

    Q_keep(b)     = h_t R P(C)               + g (1 - h_t) sum_o max_alpha (b T_keep  . O_o) alpha
    Q_regen(b, c) = h_t R sum_k p_s,k P(C_k or E_k) - lambda c + g (1 - h_t) sum_o max_alpha (b T_regen . O_o) alpha

with g the discount of the move to the next step's arrival (sqrt(gamma) in the two-phase MOMDP).
The file embeds the spec and the observation table, as ``PomdpPolicy``'s does.
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
    """``values[t]`` (n_t, 3K): alpha vectors of arriving at step t + 1 (0-based t) after its score."""

    needs_belief = True
    cap = None

    def __init__(self, trim_model, lam: float, values, g: float, predicted=None, meta=None):
        tm = self.trim_model = trim_model
        self.lam = float(lam)
        self.values = [np.ascontiguousarray(v, dtype=np.float64) for v in values]
        if len(self.values) != tm.max_steps:
            raise ModelError(f"{len(self.values)} value sets for a {tm.max_steps}-step spec")
        for t, v in enumerate(self.values):
            if v.ndim != 2 or v.shape[1] != tm.n_hidden or v.shape[0] < 1:
                raise ModelError(f"step {t + 1}: value vectors must form an (n >= 1, {tm.n_hidden}) array, "
                                 f"got {v.shape}")
        self.g = float(g)
        self.predicted = dict(predicted or {})
        self.meta = dict(meta or {})
        self.name = f"pomdp:{self.meta.get('budget', f'lambda={self.lam:g}')}"
        self._T = [tm.joint_transition(a) for a in (0, 1)]
        self._O = tm.joint_obs()
        cl = tm.classes
        self._r_keep = np.tile([1.0, 0.0, 0.0], cl.n) * tm.reward
        self._r_regen = np.repeat(cl.p_strong, 3) * np.tile([1.0, 1.0, 0.0], cl.n) * tm.reward

    @property
    def max_steps(self) -> int:
        return len(self.values)

    def start(self):
        return None

    def _t(self, step) -> int:
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 1:
            raise TrimError(f"steps are numbered by integers from 1, got {step!r}")
        return min(int(step), self.max_steps) - 1

    def _future(self, B: np.ndarray, a: int, t: int) -> np.ndarray:
        """sum_o max_alpha (b T_a . O_o) alpha for beliefs B (N, 3K) at 0-based step t (< T - 1)."""
        P = B @ self._T[a]
        V = self.values[t + 1]
        out = np.zeros(B.shape[0])
        for o in range(self._O.shape[1]):
            W = P * self._O[:, o]
            out += (W @ V.T).max(axis=1)
        return out

    def q_values(self, beliefs, step, costs, levels=None):
        """(Q_keep, Q_regenerate) arrays, the latter with lambda times ``costs`` subtracted."""
        t = self._t(step)
        B = np.atleast_2d(np.asarray(beliefs, dtype=np.float64))
        if B.ndim != 2 or B.shape[1] != self.trim_model.n_hidden:
            raise TrimError(f"beliefs must have shape (n, {self.trim_model.n_hidden}), got {B.shape}")
        c = np.broadcast_to(np.asarray(costs, dtype=np.float64), (B.shape[0],))
        if np.any(~np.isfinite(c)) or np.any(c < 0):
            raise TrimError("regeneration costs must be finite non-negative token counts")
        h = float(self.trim_model.hazard[t])
        qk = h * (B @ self._r_keep)
        qr = h * (B @ self._r_regen) - self.lam * c
        if t < self.max_steps - 1 and h < 1.0:
            f = self.g * (1.0 - h)
            qk = qk + f * self._future(B, 0, t)
            qr = qr + f * self._future(B, 1, t)
        return qk, qr

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
        off = np.concatenate([[0], np.cumsum([v.shape[0] for v in self.values])]).astype(np.int64)
        arrays = {"values": np.vstack(self.values), "step_offsets": off, "obs_probs": tm.obs.probs,
                  "obs_centers": tm.obs.centers}
        if tm.obs_truth is not None:
            arrays["obs_truth"] = tm.obs_truth
        source = Path(tm.source).resolve() if tm.source else self.meta.get("spec_source")
        meta = dict(self.meta, spec_source=None if source is None else str(source), spec=tm.embedded_dict(),
                    lam=self.lam, g=self.g, predicted=self.predicted, max_steps=self.max_steps,
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
        V, off = arrays["values"], arrays["step_offsets"]
        if V.shape[1] != tm.n_hidden:
            raise FormatError(f"array 'values': vectors have {V.shape[1]} entries but the embedded spec has "
                              f"{tm.n_classes} classes ({tm.n_hidden} hidden values)", str(path))
        if off.size != tm.max_steps + 1:
            raise FormatError(f"array 'step_offsets': {off.size - 1} steps but the embedded spec has "
                              f"{tm.max_steps}", str(path))
        values = [V[off[t]:off[t + 1]] for t in range(tm.max_steps)]
        if any(v.shape[0] == 0 for v in values):
            raise FormatError("array 'step_offsets': every step needs at least one vector", str(path))
        meta.pop("spec", None)
        return cls(tm, meta["lam"], values, meta["g"], predicted=meta.get("predicted"), meta=meta)
