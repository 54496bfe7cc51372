"""Numba kernel of the class solver's backward sweep (``routing.class_solver``): point-based backups of
the value of arriving at a step, for beliefs over (difficulty class, C/E/D)."""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def backup_arrivals(B, Tk, Tr, O, G, h, reward, rk, rr, g, lam, tv, tp):
    """Per belief row of B (N, n): the alpha vector of arriving at step t with that belief (its PRM score
    seen, before the step's token cost is drawn), and the Q vectors of keeping and of regenerating (the
    latter before the step's price): returns (arrival (N, n), keep (N, n), regenerate (N, n)).

    For each action a: beta_a = h R r_a + g (1 - h) T_a (sum_o O_o . G[j*(a, o)]), j*(a, o) the next
    arrival's vector (rows of G, (m, n)) best for the unnormalised belief (b T_a) . O_o; then the token
    bins k (values tv, probabilities tp) each take the better action at b: the vector is
    sum_k tp[k] (beta_keep or beta_regen - lam tv[k]). With m = 0 (the last step) there is no future.
    """
    N, n = B.shape
    M = O.shape[1]
    m = G.shape[0]
    out = np.empty((N, n))
    qk = np.empty((N, n))
    qr = np.empty((N, n))
    beta = np.empty((2, n))
    P = np.empty(n)
    PO = np.empty(n)
    acc = np.empty(n)
    for i in range(N):
        for a in range(2):
            T = Tk if a == 0 else Tr
            r = rk if a == 0 else rr
            for q in range(n):
                s = 0.0
                for p in range(n):
                    s += B[i, p] * T[p, q]
                P[q] = s
                acc[q] = 0.0
            if m > 0 and h < 1.0:
                for o in range(M):
                    z = 0.0
                    for q in range(n):
                        PO[q] = P[q] * O[q, o]
                        z += PO[q]
                    if z <= 0.0:
                        continue
                    best = -np.inf
                    jb = 0
                    for j in range(m):
                        v = 0.0
                        for q in range(n):
                            v += PO[q] * G[j, q]
                        if v > best:
                            best = v
                            jb = j
                    for q in range(n):
                        acc[q] += O[q, o] * G[jb, q]
            for s_ in range(n):
                v = 0.0
                for q in range(n):
                    v += T[s_, q] * acc[q]
                beta[a, s_] = h * reward * r[s_] + g * (1.0 - h) * v
        for q in range(n):
            qk[i, q] = beta[0, q]
            qr[i, q] = beta[1, q]
        vk = 0.0
        vr = 0.0
        for q in range(n):
            vk += beta[0, q] * B[i, q]
            vr += beta[1, q] * B[i, q]
        for q in range(n):
            out[i, q] = 0.0
        for k in range(tv.size):
            if vr - lam * tv[k] > vk:
                for q in range(n):
                    out[i, q] += tp[k] * (beta[1, q] - lam * tv[k])
            else:
                for q in range(n):
                    out[i, q] += tp[k] * beta[0, q]
    return out, qk, qr
