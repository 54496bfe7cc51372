"""The TRIM routing model flattened into a tabular ``POMDP`` for the general solvers (SARSOP, exact).

The flat state is (hidden h, step t, token bin k) plus a ``start`` state (whose single move draws step 1,
so that step 1's observation precedes the first decision) and an absorbing ``end``. Observations are
(PRM bin, token bin) pairs, so the observed parts of the state are observed exactly. The value of the
start belief is gamma * U_1 of the structured solver. Only sensible for small T, coarse bins: it exists
to cross-check the structured solver and to let users run any general solver on the routing problem.
"""

from __future__ import annotations

import numpy as np

from trimpomdp.errors import BeliefError, TrimError
from trimpomdp.interfaces import Decision, StepObservation
from trimpomdp.observation_models.binned import TRIM_STATES, BinnedObservationModel
from trimpomdp.pomdp.belief import update as belief_update
from trimpomdp.pomdp.model import POMDP

_H = ("C", "E", "D")


def flat_pomdp(tm, lam: float) -> POMDP:
    """Build the flat POMDP of ``tm`` at price ``lam`` per strong token (one-class specs without repair;
    ``routing.momdp.routing_momdp`` exports any spec)."""
    if not tm.structured:
        from trimpomdp.errors import TrimError

        raise TrimError("the flat export covers one-class specs without derailed repair; export this spec "
                        "with routing.momdp.routing_momdp")
    T, K = tm.max_steps, tm.token_values.size
    M = tm.obs.n_bins
    O = tm.obs.probs
    hz = tm.hazard
    pw, ps, R = tm.p_weak, tm.p_strong, tm.reward
    S = 2 + 3 * T * K
    START, END = 0, S - 1

    def idx(h, t, k):  # t is 1-based
        return 1 + ((t - 1) * 3 + h) * K + k

    nO = M * K + 1
    NONE = nO - 1
    Tm = np.zeros((2, S, S))
    Om = np.zeros((2, S, nO))
    Rm = np.zeros((S, 2))
    y1 = np.array([pw, 1 - pw, 0.0])
    for a in range(2):
        for h in range(3):
            for k in range(K):
                Tm[a, START, idx(h, 1, k)] += y1[h] * tm.token_probs[k]
        Tm[a, END, END] = 1.0
        Om[a, START, NONE] = 1.0
        Om[a, END, NONE] = 1.0
        Ta = tm.transition(a)
        for t in range(1, T + 1):
            for h in range(3):
                for k in range(K):
                    s = idx(h, t, k)
                    for o in range(M):
                        Om[a, s, o * K + k] = O[h, o]
                    Tm[a, s, END] += hz[t - 1]
                    if t < T:
                        for h2 in range(3):
                            for k2 in range(K):
                                Tm[a, s, idx(h2, t + 1, k2)] += (
                                    (1 - hz[t - 1]) * Ta[h, h2] * tm.token_probs[k2]
                                )
                    if a == 0:
                        Rm[s, 0] = hz[t - 1] * R * (h == 0)
                    else:
                        Rm[s, 1] = hz[t - 1] * ps * R * (h <= 1) - lam * tm.token_values[k]
    names = ["start"] + [None] * (S - 2) + ["end"]
    for t in range(1, T + 1):
        for h in range(3):
            for k in range(K):
                names[idx(h, t, k)] = f"{_H[h]}_t{t}_k{k}"
    obs_names = [f"o{o}_k{k}" for o in range(M) for k in range(K)] + ["none"]
    b0 = np.zeros(S)
    b0[START] = 1.0
    term = np.zeros(S, dtype=bool)
    term[END] = True
    return POMDP.from_arrays(
        Tm,
        Om,
        Rm,
        tm.discount,
        b0,
        names,
        ("keep", "regenerate"),
        obs_names,
        terminal=term,
        name=f"trim-flat(T={T},K={K},M={M},lambda={lam:g})",
    )


class FlatRoutingPolicy:
    """Any alpha-vector policy of ``flat_pomdp(tm, lam)`` (SARSOP, exact) as a routing policy.

    Its per-question state is (belief over flat states, previous action), updated by the generic tabular
    Bayes update, so a general solver's policy drives the decoder and the simulator like the structured one.
    The flat model has no steps past ``tm.max_steps``: a longer question is refused with a clear error.
    """

    needs_belief = False

    def __init__(self, tm, lam: float, alpha_policy, model: POMDP | None = None, name: str | None = None):
        self.tm, self.lam = tm, float(lam)
        self.model = flat_pomdp(tm, lam) if model is None else model
        alpha_policy.check_model(self.model)
        self.alpha = alpha_policy
        self.name = name or f"flat:lambda={self.lam:g}"

    def start(self):
        return (self.model.initial_belief.copy(), 0)

    def observation_index(self, obs: StepObservation) -> int:
        """Flat observation (PRM bin, token bin): the token bin nearest the step's regeneration cost."""
        cost = float(self.tm.step_cost_tokens(obs.n_tokens))
        k = int(np.argmin(np.abs(self.tm.token_values - cost)))
        o = int(self.tm.obs_bins(obs.pair))
        return o * self.tm.token_values.size + k

    def act(self, state, obs: StepObservation):
        belief, prev = state
        if obs.step > self.tm.max_steps:
            raise TrimError(f"the flat routing policy covers {self.tm.max_steps} steps; step {obs.step} "
                            "is past its horizon (decode with a smaller --max-steps)")
        try:
            b = belief_update(self.model, belief, prev, self.observation_index(obs))
        except BeliefError as exc:
            raise TrimError(f"flat routing policy: {exc}") from None
        q = b @ self.alpha.alphas.T
        best = int(np.argmax(q))
        a = int(self.alpha.actions[best])
        qa = [float(np.max(q[self.alpha.actions == x])) if np.any(self.alpha.actions == x) else None
              for x in (0, 1)]
        return Decision(("keep", "regenerate")[a], qa[0], qa[1]), (b, a)


def coarsen(obs: BinnedObservationModel, factor: int) -> BinnedObservationModel:
    """Merge blocks of ``factor`` bins per axis of a 1-D or 2-D bins table (20x20 -> 2x2 with factor 10)."""
    per = int(round(1.0 / obs.bin_size))
    if per % factor:
        raise ValueError(f"factor {factor} does not divide {per} bins per axis")
    n, d = per // factor, obs.dims
    S = len(obs.states)
    P = obs.probs.reshape((S,) + (n, factor) * d).sum(axis=tuple(range(2, 2 + 2 * d, 2))).reshape(S, n**d)
    size = obs.bin_size * factor
    c = (np.arange(n) + 0.5) * size
    centers = np.stack(np.meshgrid(*([c] * d), indexing="ij"), axis=-1).reshape(-1, d)
    return BinnedObservationModel(TRIM_STATES, centers, P, size)


def exact_start_value(tm, lam: float) -> float:
    """U_1(1) by full enumeration of observation/action trees (an oracle for tiny T and coarse bins; one-class
    specs without repair)."""
    O = tm.obs.probs
    hz = tm.hazard
    pw, ps, R, g = tm.p_weak, tm.p_strong, tm.reward, tm.discount
    T = tm.max_steps
    tv, tp = tm.token_values, tm.token_probs

    def U(t, x):
        if t > T:
            return 0.0
        A, B = hz[t - 1] * R, (1 - hz[t - 1]) * g
        y = np.array([pw * x, (1 - pw) * x, 1 - x])
        total = 0.0
        for o in range(O.shape[1]):
            w = y * O[:, o]
            Z = w.sum()
            if Z <= 1e-300:
                continue
            bC, m = w[0] / Z, (w[0] + w[1]) / Z
            qk = A * bC + (B * U(t + 1, bC) if B > 0 else 0.0)
            qr = A * ps * m + (B * U(t + 1, ps * m) if B > 0 else 0.0)
            total += Z * float(np.sum(tp * np.maximum(qk, qr - lam * tv)))
        return total

    return U(1, 1.0)
