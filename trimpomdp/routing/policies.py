"""Routing policies: the POMDP policy (per-step alpha sets), the PRM-threshold policy, weak-only, strong-only.

Every policy implements ``trimpomdp.interfaces.RoutingPolicy``: ``state = policy.start()`` per question,
``decision, state = policy.act(state, observation)`` per step; the only per-question state (the remaining
budget level of a capped policy) lives in that state, never in the policy. ``decide(belief, step, n_tokens,
score, remaining)`` is the stateless form, ``decide_many`` the vectorised one the simulator uses.
``load_policy`` turns "pomdp:PATH", "pomdp:lambda=0.1", "threshold:0.5", "weak" or "strong" into a policy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trimpomdp.artifacts import load_npz, save_npz
from trimpomdp.errors import FormatError, ModelError, TrimError
from trimpomdp.interfaces import Decision, StepObservation
from trimpomdp.routing import kernels as K
from trimpomdp.routing.budgets import Cap

POLICY_FORMAT = "trimpomdp.trim_policy"


class RoutingPolicy:
    """Base: ``name``, ``start``/``act``, ``decide``, ``decide_many``; ``needs_belief`` asks callers to run the
    belief filter. Stateless policies need only ``decide``: ``act`` passes the state through."""

    name = "policy"
    needs_belief = False
    cap: Cap | None = None

    def start(self):
        """Per-question state: None for policies without a budget."""
        return None

    def act(self, state, obs: StepObservation) -> tuple[Decision, object]:
        return self.decide(obs.belief, obs.step, obs.n_tokens, score=obs.score), state

    def decide(
        self, belief, step: int, n_tokens: float, score: float | None = None, remaining=None
    ) -> Decision:
        raise NotImplementedError

    def decide_many(self, beliefs, step: int, costs, scores, levels=None) -> np.ndarray:
        """Boolean 'regenerate' per row (vectorised; ``costs`` in strong tokens)."""
        raise NotImplementedError


class WeakPolicy(RoutingPolicy):
    name = "weak"

    def decide(self, belief, step, n_tokens, score=None, remaining=None) -> Decision:
        return Decision("keep")

    def decide_many(self, beliefs, step, costs, scores, levels=None):
        return np.zeros(len(costs), dtype=bool)


class StrongPolicy(RoutingPolicy):
    name = "strong"

    def decide(self, belief, step, n_tokens, score=None, remaining=None) -> Decision:
        return Decision("regenerate")

    def decide_many(self, beliefs, step, costs, scores, levels=None):
        return np.ones(len(costs), dtype=bool)


class ThresholdPolicy(RoutingPolicy):
    """Regenerate iff the current step's PRM score is below ``k`` (the TRIM-Thr baseline)."""

    def __init__(self, k: float):
        if not (0.0 <= k <= 1.0):
            raise TrimError(f"threshold must lie in [0, 1], got {k!r}")
        self.k = float(k)
        self.name = f"threshold:{k:g}"

    def decide(self, belief, step, n_tokens, score=None, remaining=None) -> Decision:
        if score is None:
            raise TrimError("the threshold policy needs the current step's PRM score")
        return Decision("regenerate" if score < self.k else "keep")

    def decide_many(self, beliefs, step, costs, scores, levels=None):
        return np.asarray(scores) < self.k


class PomdpPolicy(RoutingPolicy):
    """Per step t, the envelope of U_{t+1} (lines = alpha vectors of length 3) per budget level.

    ``steps[t] = (slopes, intercepts, breakpoints, level_offsets, lookup)`` (``kernels.with_lookup``); ``A[t] = h(t) R``,
    ``B[t] = (1 - h(t)) gamma``. The policy file embeds the spec and the observation table, so
    ``.trim_model`` is available after ``load``.
    """

    needs_belief = True

    def __init__(self, trim_model, lam, steps, A, B, cap: Cap | None = None, predicted=None, meta=None):
        self.trim_model = trim_model
        self.lam = float(lam)
        self.steps = steps
        self.A = np.asarray(A, dtype=np.float64)
        self.B = np.asarray(B, dtype=np.float64)
        self.cap = cap
        self.predicted = dict(predicted or {})
        self.meta = dict(meta or {})
        self.name = f"pomdp:{self.meta.get('budget', f'lambda={self.lam:g}')}"

    @property
    def n_levels(self) -> int:
        return 1 if self.cap is None else self.cap.levels

    @property
    def max_steps(self) -> int:
        return len(self.steps)

    def start(self):
        """The budget level left to a new question (the whole cap); None without a cap."""
        return None if self.cap is None else self.n_levels - 1

    def act(self, state, obs: StepObservation) -> tuple[Decision, object]:
        if obs.belief is None:
            raise TrimError(f"{self.name} decides on the belief: run a belief filter")
        if self.cap is not None and (isinstance(state, bool) or not isinstance(state, (int, np.integer))
                                     or not 0 <= state < self.n_levels):
            raise TrimError(f"{self.name}: state must be a budget level in 0..{self.n_levels - 1}, got {state!r}")
        d, units = self._decide(obs.belief, obs.step, obs.n_tokens, None if self.cap is None else int(state))
        if self.cap is None:
            return d, None
        return d, max(0, int(state) - units) if d.regenerate else int(state)

    def _t(self, step) -> int:
        if (
            isinstance(step, bool)
            or not isinstance(step, (int, float, np.integer, np.floating))
            or not np.isfinite(step)
            or step < 1
            or step != int(step)
        ):
            raise TrimError(f"steps are numbered by integers from 1, got {step!r}")
        return min(int(step), self.max_steps) - 1

    def _batch(self, beliefs, costs, levels):
        """Kernel arguments (beliefs, levels, costs, cost units), checked so that every index is in range."""
        b = np.ascontiguousarray(np.atleast_2d(beliefs), dtype=np.float64)
        n = b.shape[0]
        if b.ndim != 2 or b.shape[1] != 3:
            raise TrimError(f"beliefs must have shape (n, 3), got {b.shape}")
        costs = np.ascontiguousarray(np.broadcast_to(np.asarray(costs, dtype=np.float64), (n,)))
        if np.any(~np.isfinite(costs)) or np.any(costs < 0):
            raise TrimError("regeneration costs must be finite non-negative token counts")
        if self.cap is None:
            return b, np.zeros(n, dtype=np.int64), costs, np.zeros(n, dtype=np.int64)
        if levels is None:
            raise TrimError(f"{self.name}: a capped policy needs the remaining budget level of each row")
        lv = np.ascontiguousarray(np.broadcast_to(np.asarray(levels), (n,)))
        if lv.dtype.kind not in "iu" or np.any(lv < 0) or np.any(lv >= self.n_levels):
            raise TrimError(f"budget levels must be integers in 0..{self.n_levels - 1}")
        # a cost beyond every level is simply unaffordable: clip before rounding to units (no int overflow)
        return b, lv.astype(np.int64), costs, self.cap.units(np.minimum(costs, self.cap.unit * self.n_levels))

    def _level_of(self, remaining) -> int:
        if self.cap is None:
            return 0
        if remaining is None:
            return self.n_levels - 1
        if isinstance(remaining, bool) or not isinstance(remaining, (int, float, np.number)) or np.isnan(remaining):
            raise TrimError(f"remaining budget must be a number, got {remaining!r}")
        remaining = min(max(float(remaining), 0.0), 1e18)
        if self.cap.kind == "regen":
            lv = int(remaining)
        else:
            lv = int(np.floor(float(remaining) / self.cap.unit + 1e-9))
        return int(np.clip(lv, 0, self.n_levels - 1))

    def decide(self, belief, step, n_tokens, score=None, remaining=None) -> Decision:
        """Stateless decision; under a cap ``remaining`` is the budget left (the whole cap when None)."""
        return self._decide(belief, step, n_tokens, self._level_of(remaining))[0]

    def _decide(self, belief, step, n_tokens, level) -> tuple[Decision, int]:
        """The decision and the budget units a regeneration of this step costs."""
        b = np.asarray(belief, dtype=np.float64).reshape(1, 3)
        if np.any(~np.isfinite(b)) or np.any(b < -1e-9) or abs(b.sum() - 1) > 1e-6:
            raise TrimError(f"belief must be 3 non-negative numbers summing to 1, got {b.ravel().tolist()}")
        t = self._t(step)
        cost = float(self.trim_model.step_cost_tokens(n_tokens))
        if not (np.isfinite(cost) and cost >= 0):
            raise TrimError(f"a step's token count must be a finite non-negative number, got {n_tokens!r}")
        b, lv, costs, cu = self._batch(b, cost, level)
        qk, qr = K.decide_batch(
            b, lv, costs, cu, self.A[t], self.B[t], float(self.trim_model.p_strong), self.lam, *self.steps[t]
        )
        regen = bool(qr[0] > qk[0])
        d = Decision(
            "regenerate" if regen else "keep", float(qk[0]), None if not np.isfinite(qr[0]) else float(qr[0])
        )
        return d, int(cu[0])

    def decide_many(self, beliefs, step, costs, scores=None, levels=None):
        qk, qr = self.q_values(beliefs, step, costs, levels)
        return qr > qk

    def q_values(self, beliefs, step, costs, levels=None):
        """(Q_keep, Q_regenerate) arrays, the latter with the price of ``costs`` subtracted."""
        t = self._t(step)
        b, lv, costs, cu = self._batch(beliefs, costs, levels)
        return K.decide_batch(
            b, lv, costs, cu, self.A[t], self.B[t], float(self.trim_model.p_strong), self.lam, *self.steps[t]
        )

    def alpha_sets(self, step, level: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Alpha vectors (K, 3) and actions (0 keep / 1 regenerate, before this step's cost) at ``step``."""
        t = self._t(step)
        ls, lc, lb, lo, _ = self.steps[t]
        r = self.n_levels - 1 if level is None else int(level)
        s, c = ls[lo[r] : lo[r + 1]], lc[lo[r] : lo[r + 1]]
        A, B, ps = self.A[t], self.B[t], self.trim_model.p_strong
        keep = np.stack([A + B * (c + s), B * c, B * c], axis=1)
        rg = np.stack([A * ps + B * (c + s * ps), A * ps + B * (c + s * ps), B * c], axis=1)
        return np.vstack([keep, rg]), np.concatenate([np.zeros(len(s), int), np.ones(len(s), int)])

    # ------------------------------------------------------------------ files
    def save(self, path) -> Path:
        tm = self.trim_model
        T = self.max_steps
        off = [0]
        for st in self.steps:
            off.append(off[-1] + st[0].size)
        arrays = {
            "line_slopes": np.concatenate([st[0] for st in self.steps]),
            "line_intercepts": np.concatenate([st[1] for st in self.steps]),
            "line_breaks": np.concatenate([st[2] for st in self.steps]),
            "level_offsets": np.stack([st[3] + off[t] for t, st in enumerate(self.steps)]),
            "step_offsets": np.array(off, dtype=np.int64),
            "A": self.A,
            "B": self.B,
            "obs_probs": tm.obs.probs,
            "obs_centers": tm.obs.centers,
        }
        if tm.obs_truth is not None:
            arrays["obs_truth"] = tm.obs_truth
        cap = (
            None
            if self.cap is None
            else {"kind": self.cap.kind, "limit": self.cap.limit, "unit": self.cap.unit}
        )
        source = Path(tm.source).resolve() if tm.source else self.meta.get("spec_source")
        meta = dict(
            self.meta,
            spec_source=None if source is None else str(source),
            spec=tm.embedded_dict(),
            lam=self.lam,
            cap=cap,
            predicted=self.predicted,
            max_steps=T,
            model_fingerprint=tm.fingerprint(),
        )
        return save_npz(path, arrays, meta, POLICY_FORMAT)

    @classmethod
    def load(cls, path) -> "PomdpPolicy":
        """Read a policy file; everything is checked against ``schemas.TRIM_POLICY`` and the embedded
        spec (fingerprint, per-step constants) before any array reaches a kernel."""
        from trimpomdp.observation_models.binned import TRIM_STATES, BinnedObservationModel
        from trimpomdp.routing.spec import TrimModel

        arrays, meta = load_npz(path, POLICY_FORMAT)
        spec = meta["spec"]
        try:
            obs = BinnedObservationModel(TRIM_STATES, arrays["obs_centers"], arrays["obs_probs"],
                                         float(spec["obs_bin_size"]))
        except ModelError as exc:
            raise FormatError(f"arrays 'obs_probs'/'obs_centers' (bin size field 'spec.obs_bin_size'): {exc}",
                              str(path)) from None
        tm = TrimModel.from_dict(spec, obs=obs, source=str(path))
        tm.obs_truth = arrays.get("obs_truth")
        fp = meta.get("model_fingerprint")
        if fp is not None and fp != tm.fingerprint():
            raise FormatError(
                f"field 'model_fingerprint': {fp} does not match the embedded spec and observation table "
                f"({tm.fingerprint()}); the file was altered after solving, re-solve it",
                str(path),
            )
        T = arrays["A"].size
        if tm.max_steps != T:
            raise FormatError(f"field 'spec.length_distribution': covers {tm.max_steps} steps but the policy "
                              f"has {T}", str(path))
        h = tm.hazard
        for name, want in (("A", h * tm.reward), ("B", (1.0 - h) * tm.discount)):
            bad = np.flatnonzero(~np.isclose(arrays[name], want, rtol=1e-9, atol=1e-12))
            if bad.size:
                raise FormatError(
                    f"array {name!r}: entry {bad[0]} is {arrays[name][bad[0]]!r} but the embedded spec gives "
                    f"{want[bad[0]]!r}",
                    str(path),
                )
        so, lo = arrays["step_offsets"], arrays["level_offsets"]
        steps = []
        for t in range(T):
            a, b = so[t], so[t + 1]
            steps.append(
                K.with_lookup(
                    arrays["line_slopes"][a:b].copy(),
                    arrays["line_intercepts"][a:b].copy(),
                    arrays["line_breaks"][a:b].copy(),
                    lo[t] - a,
                )
            )
        cap = meta.get("cap")
        cap = None if not cap else Cap(cap["kind"], cap["limit"], cap["unit"])
        extra = {
            k: v for k, v in meta.items() if k not in ("spec", "lam", "cap", "predicted", "format", "version")
        }
        return cls(
            tm,
            meta["lam"],
            steps,
            arrays["A"],
            arrays["B"],
            cap=cap,
            predicted=meta.get("predicted"),
            meta=extra,
        )
