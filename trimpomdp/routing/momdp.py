"""The TRIM routing model as a MOMDP for the general point-based solver.

What the router sees is a visible value x: ``start`` (before step 1), a step t with the token bin k of that
step's regeneration cost (t = 1..T, k = 0..K-1; by default reached through (t, ``pre``), see
``routing_momdp``), or ``end``. What it does not see is the hidden value y,
the solution's state (correct so far, fresh error, derailed), and with difficulty classes the question's
class too (3 hidden values per class, ``routing.difficulty``). The PRM bin of each step is the observation
(``none`` on arriving at ``end``). So beliefs are over 3 hidden values per visible value and the solver's
alpha vectors are 3 numbers each, where the flat export (``routing.pomdp.flat_pomdp``) folds (t, k) into
1 + 3 T K states and makes every PRM/token pair an observation.

The dynamics are those of the flat export, built from ``TrimModel``'s public attributes: the start's belief
is step 1's prior (p_w, 1 - p_w, 0) (per class, weighted) and its move keeps the hidden value and draws
the token bin from ``token_probs``, so step 1's observation precedes the first decision; from step t the question ends with the hazard h_t (reward R if the solution is
correct: for ``keep`` when y is C, for ``regenerate`` with probability p_s when y is C or E, which also
costs lambda times the step's token value) and otherwise moves to step t + 1 by the action's hidden-state
transition with a fresh token bin. The value of the initial belief is gamma * U_1 of the structured solver
(``routing.solver``), with either layout.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from trimpomdp.pomdp.momdp import MOMDP
from trimpomdp.routing import difficulty

HIDDEN = ("C", "E", "D")
ACTIONS = ("keep", "regenerate")


def routing_momdp(tm, lam: float, token_phase: bool = True) -> MOMDP:
    """The routing MOMDP of ``tm`` at price ``lam`` per strong token.

    ``token_phase`` (default): each step is two MOMDP steps, arriving at (t, ``pre``) with the PRM bin
    observed, then (either action, no reward) drawing the token bin k to (t, k), where the router decides;
    the discount per MOMDP step is sqrt(gamma), so values are unchanged. Without it, step t is reached at
    (t, k) directly, as in the flat export: each decision then has K x (PRM bins) outcomes per action, which
    the point-based solver must all refresh at every backup (at full size 12,800 children per expansion,
    against 2 x 400 and 16 with the phase).
    """
    T, K = int(tm.max_steps), int(tm.token_values.size)
    O = tm.joint_obs()  # (3C, M), C difficulty classes
    M = O.shape[1]
    NONE = M
    hz = np.asarray(tm.hazard, dtype=np.float64)
    tp, tv = np.asarray(tm.token_probs, dtype=np.float64), np.asarray(tm.token_values, dtype=np.float64)
    Y = tm.n_hidden
    cl = tm.classes
    state_of = np.tile(np.arange(3), cl.n)  # C/E/D of each hidden value
    r_regen = difficulty.regenerate_reward(cl, tm.derailed_repair)  # P(rewrite correct | hidden value)
    per = K + 1 if token_phase else K  # visible values per step
    X = 2 + T * per
    S = X * Y
    START, END = 0, X - 1

    def dec(t, k):  # the decision value of step t (1-based), token bin k
        return 1 + (t - 1) * per + (1 + k if token_phase else k)

    def arrive(t):  # where step t is reached: its 'pre' value, or a decision value per token bin
        return [(1 + (t - 1) * per, 1.0)] if token_phase else [(dec(t, k), tp[k]) for k in range(K)]

    y1 = difficulty.first_prior(cl)
    Ts, Os = [], []
    R = np.zeros((S, 2))
    obs_rows, obs_cols, obs_vals = [], [], []

    def observe(x, prm: bool):
        for h in range(Y):
            if prm:
                obs_rows.extend([x * Y + h] * M)
                obs_cols.extend(range(M))
                obs_vals.extend(O[h])
            else:
                obs_rows.append(x * Y + h)
                obs_cols.append(NONE)
                obs_vals.append(1.0)

    observe(START, False)
    observe(END, False)
    for t in range(1, T + 1):
        if token_phase:
            observe(1 + (t - 1) * per, True)
        for k in range(K):
            observe(dec(t, k), not token_phase)
    Om = sp.csr_matrix((obs_vals, (obs_rows, obs_cols)), shape=(S, M + 1))
    for a in range(2):
        rows, cols, vals = [], [], []

        def move(s, x2, h2, p):
            rows.append(s)
            cols.append(x2 * Y + h2)
            vals.append(p)

        for y in range(Y):  # start -> step 1, the hidden value kept (b0 already is step 1's prior y1)
            for x2, p in arrive(1):
                move(START * Y + y, x2, y, p)
            move(END * Y + y, END, y, 1.0)
        Ta = tm.joint_transition(a)
        for t in range(1, T + 1):
            if token_phase:  # (t, pre) -> (t, k), the hidden value unchanged
                for h in range(Y):
                    for k in range(K):
                        move((1 + (t - 1) * per) * Y + h, dec(t, k), h, tp[k])
            for k in range(K):
                x = dec(t, k)
                for h in range(Y):
                    s = x * Y + h
                    move(s, END, h, hz[t - 1])
                    if t < T:
                        for h2 in range(Y):
                            for x2, p in arrive(t + 1):
                                move(s, x2, h2, (1.0 - hz[t - 1]) * Ta[h, h2] * p)
                    if a == 0:
                        R[s, 0] = hz[t - 1] * tm.reward * (state_of[h] == 0)
                    else:
                        R[s, 1] = hz[t - 1] * r_regen[h] * tm.reward - lam * tv[k]
        m = sp.csr_matrix((vals, (rows, cols)), shape=(S, S))
        m.eliminate_zeros()
        Ts.append(m)
        Os.append(Om)
    b0 = np.zeros(S)
    b0[START * Y:START * Y + Y] = y1
    term = np.zeros(S, dtype=bool)
    term[END * Y:END * Y + Y] = True
    visible = ["start"]
    for t in range(1, T + 1):
        visible += ([f"t{t}_pre"] if token_phase else []) + [f"t{t}_k{k}" for k in range(K)]
    visible.append("end")
    gamma = float(np.sqrt(tm.discount)) if token_phase else tm.discount
    return MOMDP.from_joint(Ts, Os, R, gamma, X, b0, visible=visible, hidden=difficulty.hidden_names(cl.n),
                            actions=ACTIONS,
                            observations=[f"o{o}" for o in range(M)] + ["none"], terminal=term,
                            name=f"trim-momdp(T={T},K={K},M={M},lambda={lam:g})")
