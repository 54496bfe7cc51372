"""Sampling: SARSOP trials, a descent from the root followed by backups of the path, bottom-up.

A trial follows the upper bound's best action and the observation with the largest weighted excess gap,
stopping when the gap is below eps * gamma^-t (eps = ``kappa`` times the root gap) or, as in SARSOP's
selective deep sampling, when the (L, U) targets propagated from the root are met; a targeted trial that
changes nothing at the root makes the next one use the plain gap rule. Whole trials run in numba; the loop
hands control back to Python only for what it cannot do (see ``state``'s request codes).
"""
from __future__ import annotations

from numba import njit

from trimpomdp.solvers.sarsop.backup import NEG_INF, backup_update
from trimpomdp.solvers.sarsop.state import CONVERGED, DONE, MAINTENANCE, NEED_BELIEFS, NEED_EXPAND

#: ``phase`` of the trial state
BETWEEN, DESCENDING, BACKING_UP = range(3)


@njit(cache=True)
def trial_step(n, t, tree, eps, ginv, g, L, U):
    """One descent choice at expanded node n: the upper bound's best action, then the child with the largest
    weighted excess gap, with the (L, U) targets propagated to it.

    Returns (status, child, L, U): status 0 = go to child, 1 = stop here, 2 = stop after backing n up."""
    act_ptr, child, prob, lower, upper = tree.act_ptr, tree.child, tree.prob, tree.lower, tree.upper
    q_upper, q_lower, reward = tree.q_upper, tree.q_lower, tree.reward
    A = act_ptr.shape[1] - 1
    a = 0
    for b in range(1, A):
        if q_upper[n, b] > q_upper[n, a]:
            a = b
    e0 = act_ptr[n, a]
    e1 = act_ptr[n, a + 1]
    if e1 == e0:
        return 1, -1, L, U
    ginv_next = ginv / g if g < 1.0 else 1.0
    jb = e0
    best = NEG_INF
    Lsum = 0.0
    Usum = 0.0
    for e in range(e0, e1):
        c = child[e]
        p = prob[e]
        sc = p * (upper[c] - lower[c] - eps * ginv_next)
        if sc > best:
            best = sc
            jb = e
        Lsum += p * lower[c]
        Usum += p * upper[c]
    if best <= 0 and t > 0:
        return 2, -1, L, U
    qmax = q_lower[n, 0]
    for b in range(1, A):
        if q_lower[n, b] > qmax:
            qmax = q_lower[n, b]
    Lp = max(L, qmax)
    Up = max(U, Lp + eps * ginv)
    cj = child[jb]
    pj = prob[jb]
    Lsum -= pj * lower[cj]
    Usum -= pj * upper[cj]
    if g > 0:
        rba = reward[n, a]
        L = ((Lp - rba) / g - Lsum) / pj
        U = ((Up - rba) / g - Usum) / pj
    return 0, cj, L, U


@njit(cache=True)
def run_trials(state, path, max_trials, max_backups, alive_limit, settings, model, tree, alphas, points,
               scratch):
    """Trials until ``max_trials`` more trials or about ``max_backups`` more backups are done (checked between
    trials: numba has no CPU clock), the root gap is <= ``settings.precision``, maintenance is due (too many
    live vectors or dead points), or Python is needed (NEED_*); ``state``/``path`` carry a trial across such
    returns. Each pass of the loop does one step: one backup or one descent move."""
    st = state[0]
    expanded, lower, upper = tree.expanded, tree.lower, tree.upper
    gamma = model.gamma
    done = 0
    b_start = st.backups
    while True:
        phase = st.phase
        # a backup is due: a node Python has just expanded (visited while descending) or the next path node
        if (phase == DESCENDING and st.pending) or (phase == BACKING_UP and st.pos >= 0):
            n = st.node if phase == DESCENDING else path[st.pos]
            code = backup_update(n, state, settings.tol, model, tree, alphas, points, scratch)
            if code != DONE:
                return code
            if phase == DESCENDING:
                st.pending = False
            else:
                st.pos -= 1
            continue
        if phase == BETWEEN:
            if upper[0] - lower[0] <= settings.precision:
                return CONVERGED
            if done >= max_trials or st.backups - b_start >= max_backups:
                return DONE
            if st.p_dead > settings.dead_points and st.p_dead > st.n_pts // 2:
                return MAINTENANCE
            if st.n_alive > alive_limit:
                return MAINTENANCE
            eps = max(settings.kappa * (upper[0] - lower[0]), settings.precision * 0.5)
            st.eps = eps
            st.L = lower[0]
            st.U = lower[0] + eps
            st.ginv = 1.0
            st.lb0 = lower[0]
            st.ub0 = upper[0]
            st.node = 0
            st.parent = -1
            st.depth = 0
            st.path_len = 0
            st.pending = False
            st.phase = DESCENDING
        elif phase == DESCENDING:
            n = st.node
            t = st.depth
            ginv = st.ginv
            eps = st.eps
            thr = eps * ginv
            stop = False
            if not expanded[n]:
                # leaves whose stored bounds already stop the trial are not expanded
                if upper[n] - lower[n] <= thr or t >= settings.max_depth:
                    stop = True
                elif tree.b_start[n] < 0:
                    st.need = st.parent
                    return NEED_BELIEFS
                else:
                    st.need = n
                    st.pending = True  # back n up (and go on from it) once Python has expanded it
                    return NEED_EXPAND
            if not stop:
                lb = lower[n]
                ub = upper[n]
                L = st.L
                U = st.U
                if ub - lb <= thr or (st.targeted and t > 0 and ub <= L and ub <= max(U, lb + thr)) \
                        or t >= settings.max_depth:
                    stop = True
                else:
                    status, child, L, U = trial_step(n, t, tree, eps, ginv, gamma, L, U)
                    st.L = L
                    st.U = U
                    if status == 1:
                        stop = True
                    else:
                        path[st.path_len] = n
                        st.path_len += 1
                        if status == 2:
                            stop = True
                        else:
                            st.parent = n
                            st.node = child
                            st.depth = t + 1
                            if gamma < 1.0:
                                st.ginv = ginv / gamma
            if stop:
                if expanded[n] and (st.path_len == 0 or path[st.path_len - 1] != n):
                    path[st.path_len] = n
                    st.path_len += 1
                st.pos = st.path_len - 1
                st.phase = BACKING_UP
        else:  # backing up, with the whole path done: the trial is over
            st.trials += 1
            done += 1
            if settings.targets:
                # a targeted trial that changed nothing at the root makes the next one use the plain gap rule
                st.targeted = lower[0] != st.lb0 or upper[0] != st.ub0
            st.phase = BETWEEN
