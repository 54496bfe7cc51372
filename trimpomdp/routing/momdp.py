"""The TRIM routing model as a MOMDP for the general point-based solver.

What the router sees is a visible value x: ``start`` (before step 1), a step t with the token bin k of that
step's regeneration cost (t = 1..T, k = 0..K-1), or ``end``. What it does not see is the hidden value y,
the solution's state (correct so far, fresh error, derailed). The PRM bin of each step is the observation
(``none`` on arriving at ``end``). So beliefs are over 3 hidden values per visible value and the solver's
alpha vectors are 3 numbers each, where the flat export (``routing.pomdp.flat_pomdp``) folds (t, k) into
1 + 3 T K states and makes every PRM/token pair an observation.

The dynamics are those of the flat export, built from ``TrimModel``'s public attributes: the start's move
draws step 1 (hidden value from (p_w, 1 - p_w, 0), token bin from ``token_probs``), so step 1's observation
precedes the first decision; from step t the question ends with the hazard h_t (reward R if the solution is
correct: for ``keep`` when y is C, for ``regenerate`` with probability p_s when y is C or E, which also
costs lambda times the step's token value) and otherwise moves to step t + 1 by the action's hidden-state
transition with a fresh token bin. The value of the initial belief is gamma * U_1 of the structured solver
(``routing.solver``).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from trimpomdp.pomdp.momdp import MOMDP

HIDDEN = ("C", "E", "D")
ACTIONS = ("keep", "regenerate")


def routing_momdp(tm, lam: float) -> MOMDP:
    """The routing MOMDP of ``tm`` at price ``lam`` per strong token."""
    T, K = int(tm.max_steps), int(tm.token_values.size)
    O = np.asarray(tm.obs.probs, dtype=np.float64)  # (3, M)
    M = O.shape[1]
    hz = np.asarray(tm.hazard, dtype=np.float64)
    tp, tv = np.asarray(tm.token_probs, dtype=np.float64), np.asarray(tm.token_values, dtype=np.float64)
    X, Y = 2 + T * K, 3
    S = X * Y
    START, END = 0, X - 1

    def vis(t, k):  # t is 1-based
        return 1 + (t - 1) * K + k

    y1 = np.array([tm.p_weak, 1.0 - tm.p_weak, 0.0])
    steps = np.array([(t, k) for t in range(1, T + 1) for k in range(K)])
    xs = vis(steps[:, 0], steps[:, 1])  # the step values in order
    Ts, Os = [], []
    R = np.zeros((S, 2))
    for a in range(2):
        rows, cols, vals = [], [], []
        # start -> step 1: hidden value y1, token bin k, whatever the start's hidden value
        for y in range(Y):
            for h in range(Y):
                for k in range(K):
                    rows.append(START * Y + y)
                    cols.append(vis(1, k) * Y + h)
                    vals.append(y1[h] * tp[k])
        for y in range(Y):
            rows.append(END * Y + y)
            cols.append(END * Y + y)
            vals.append(1.0)
        Ta = np.asarray(tm.transition(a), dtype=np.float64)
        r_step, c_step, v_step = [], [], []
        for t, k in steps:
            x = vis(t, k)
            for h in range(Y):
                s = x * Y + h
                r_step.append(s)
                c_step.append(END * Y + h)
                v_step.append(hz[t - 1])
                if t < T:
                    for h2 in range(Y):
                        for k2 in range(K):
                            r_step.append(s)
                            c_step.append(vis(t + 1, k2) * Y + h2)
                            v_step.append((1.0 - hz[t - 1]) * Ta[h, h2] * tp[k2])
                if a == 0:
                    R[s, 0] = hz[t - 1] * tm.reward * (h == 0)
                else:
                    R[s, 1] = hz[t - 1] * tm.p_strong * tm.reward * (h <= 1) - lam * tv[k]
        m = sp.csr_matrix((np.r_[vals, v_step], (np.r_[rows, r_step], np.r_[cols, c_step])), shape=(S, S))
        m.eliminate_zeros()
        Ts.append(m)
        # observations on arrival: the PRM bin at a step (by the hidden value), 'none' at start and end
        st = (xs[:, None] * Y + np.arange(Y)).ravel()  # step states, hidden value fastest
        o_rows = np.repeat(st, M)
        o_cols = np.tile(np.arange(M), st.size)
        o_vals = np.tile(O, (xs.size, 1)).ravel()
        edge = np.r_[START * Y + np.arange(Y), END * Y + np.arange(Y)]
        Om = sp.csr_matrix((np.r_[o_vals, np.ones(edge.size)], (np.r_[o_rows, edge], np.r_[o_cols,
                                                                                          np.full(edge.size, M)])),
                           shape=(S, M + 1))
        Om.eliminate_zeros()
        Os.append(Om)
    b0 = np.zeros(S)
    b0[START * Y:START * Y + Y] = y1
    term = np.zeros(S, dtype=bool)
    term[END * Y:END * Y + Y] = True
    visible = ["start"] + [f"t{t}_k{k}" for t, k in steps] + ["end"]
    return MOMDP.from_joint(Ts, Os, R, tm.discount, X, b0, visible=visible, hidden=HIDDEN, actions=ACTIONS,
                            observations=[f"o{o}" for o in range(M)] + ["none"], terminal=term,
                            name=f"trim-momdp(T={T},K={K},M={M},lambda={lam:g})")
