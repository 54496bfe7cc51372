"""The routing model as a MOMDP: layout, and the general solver's value against the structured solver's."""
from __future__ import annotations

import numpy as np
import pytest

from trimpomdp.routing.momdp import routing_momdp
from trimpomdp.routing.pomdp import flat_pomdp
from trimpomdp.routing.solver import solve_trim
from trimpomdp.solvers.sarsop import SARSOPSolver
from tests.test_routing_model import small


def test_layout_and_dynamics(tm):
    s = small(tm, T=3, factor=10, values=(40.0, 120.0))
    m = routing_momdp(s, 0.05, token_phase=False)
    M = s.obs.n_bins
    assert (m.n_visible, m.n_hidden, m.n_observations) == (2 + 3 * 2, 3, M + 1)
    assert m.hidden == ("C", "E", "D") and m.visible[0] == "start" and m.visible[-1] == "end"
    m.validate()
    assert m.initial_visible() == 0
    # start -> step 1: token bins by token_probs whatever the start's hidden value
    TX = m.transition_x(0).toarray()
    assert np.allclose(TX[:3, 1:3], 0.5) and np.allclose(TX[:3, 3:], 0.0)
    # from step t = 2, token bin 1: the question ends with the hazard, else step 3 with a fresh token bin
    x = m.visible.index("t2_k1")
    hz = s.hazard[1]
    assert np.allclose(TX[x * 3:(x + 1) * 3, -1], hz)
    assert np.allclose(TX[x * 3:(x + 1) * 3, m.visible.index("t3_k0")], (1 - hz) * 0.5)
    # the hidden state moves by the action's transition given the visible outcome
    xp = m.visible.index("t3_k1")
    assert np.allclose(m.transition_y(1, x, xp), s.transition(1))
    # the PRM bin is observed on arrival, by the hidden value; 'none' at the ends
    assert np.allclose(m.observation(0)[xp * 3:(xp + 1) * 3, :M].toarray(), s.obs.probs)
    assert m.observation(1)[-1, M] == 1.0
    # regenerating pays lambda per token of this step's bin
    assert m.R[x * 3, 1] - m.R[x * 3, 0] == pytest.approx(hz * s.reward * (s.p_strong - 1) - 0.05 * 120.0)


def test_token_phase_layout(tm):
    s = small(tm, T=3, factor=10, values=(40.0, 120.0))
    m = routing_momdp(s, 0.05)
    M = s.obs.n_bins
    assert m.n_visible == 2 + 3 * 3 and m.discount == pytest.approx(np.sqrt(s.discount))
    m.validate()
    pre, x = m.visible.index("t2_pre"), m.visible.index("t2_k1")
    # the PRM bin is seen on arriving at 'pre'; the token bin is drawn next, whatever the action, for free
    assert np.allclose(m.observation(0)[pre * 3:(pre + 1) * 3, :M].toarray(), s.obs.probs)
    assert np.allclose(m.observation(0)[x * 3:(x + 1) * 3, M].toarray(), 1.0)
    for a in (0, 1):
        assert np.allclose(m.transition_x(a)[pre * 3:(pre + 1) * 3, [x - 1, x]].toarray(), 0.5)
        assert np.allclose(m.transition_y(a, pre, x), np.eye(3)) and np.all(m.R[pre * 3:(pre + 1) * 3] == 0)
    # a decision leads to the next step's 'pre' (or the end)
    assert np.allclose(m.transition_x(1)[x * 3:(x + 1) * 3, [m.visible.index("t3_pre")]].toarray(), 1 - s.hazard[1])


@pytest.mark.parametrize("T, values, lam, phase", [(2, (60.0,), 0.05, True), (3, (40.0, 120.0), 0.05, True),
                                                   (3, (40.0, 120.0), 0.2, True), (3, (40.0, 120.0), 0.05, False)])
def test_general_solver_on_the_momdp_matches_the_structured_solver(tm, T, values, lam, phase):
    s = small(tm, T=T, factor=10, values=values)
    target = s.discount * solve_trim(s, lam=lam, evaluate=False).predicted["value"]
    res = SARSOPSolver(precision=1e-4, timeout=60).solve(routing_momdp(s, lam, token_phase=phase))
    assert res.converged
    assert res.lower == pytest.approx(target, abs=1e-3) and res.upper == pytest.approx(target, abs=1e-3)
    # and the flat export gives the same value
    flat = SARSOPSolver(precision=1e-4, timeout=60).solve(flat_pomdp(s, lam))
    assert flat.lower == pytest.approx(res.lower, abs=2e-4)
