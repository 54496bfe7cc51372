"""MOMDP representation: the .pomdpx reader's factored path, the factors, beliefs (x, b_y), layout checks."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.errors import BeliefError, ModelError
from trimpomdp.pomdp import load_model
from trimpomdp.pomdp.belief import update
from trimpomdp.pomdp.momdp import MOMDP
from trimpomdp.pomdp.pomdpx import parse_pomdpx
from tests.test_pomdpx import FACTORED


def random_momdp(seed: int, X: int, Y: int, A: int, Zo: int, sparse: float = 0.4) -> MOMDP:
    """A random MOMDP from its factors; the initial belief is certain of visible value 0."""
    rng = np.random.default_rng(seed)
    S = X * Y

    def dist(shape):
        p = rng.random(shape) * (rng.random(shape) > sparse)
        p[..., 0] += 1e-3  # never an empty row
        return p / p.sum(axis=-1, keepdims=True)

    TX, TY, O = dist((A, S, X)), dist((A, S, X, Y)), dist((A, S, Zo))
    R = rng.normal(0, 3, (S, A))
    b0 = np.zeros(S)
    b0[:Y] = rng.dirichlet(np.ones(Y))
    return MOMDP.from_factors(TX, TY, O, R, 0.9, b0, name=f"random{seed}")


def test_factored_pomdpx_keeps_the_fully_observed_variable_apart():
    # FACTORED declares the hidden x (lo, hi) first and the fully observed y (3 values) second
    m = parse_pomdpx(FACTORED, momdp=True)
    assert (m.n_visible, m.n_hidden, m.n_observations) == (3, 2, 2)
    assert m.visible == ("s0", "s1", "s2") and m.hidden == ("lo", "hi") and m.observations == ("quiet", "loud")
    # joint states reordered visible-major, named as the flat path names them
    assert m.flat.states == ("lo_s0", "hi_s0", "lo_s1", "hi_s1", "lo_s2", "hi_s2")
    Py = np.array([[0.5, 0.5, 0], [0, 0.5, 0.5], [1, 0, 0]])  # the visible variable's own chain
    Px = {0: np.eye(2), 1: np.array([[0.3, 0.7], [0.3, 0.7]])}
    Pz = {0: np.array([[0.9, 0.1], [0.2, 0.8]]), 1: np.array([[0.9, 0.1], [0.5, 0.5]])}
    for a in (0, 1):
        assert np.allclose(m.transition_x(a).toarray(), np.repeat(Py, 2, axis=0))
        for x in range(3):
            for xp in np.flatnonzero(Py[x]):
                assert np.allclose(m.transition_y(a, x, xp), Px[a])
        assert np.allclose(m.observation(a).toarray(), np.tile(Pz[a], (3, 1)))
    # the flat form is the flat path's model with its states permuted
    flat = parse_pomdpx(FACTORED)
    perm = [flat.states.index(s) for s in m.flat.states]
    for a in (0, 1):
        assert np.allclose(m.flat.T[a].toarray(), flat.T[a].toarray()[np.ix_(perm, perm)])
        assert np.allclose(m.flat.O[a].toarray(), flat.O[a].toarray()[perm])
    assert np.allclose(m.R, flat.R[perm]) and m.flat.observations == flat.observations
    assert m.initial_visible() is None  # uniform over the visible values


def test_rocksample_pomdpx_momdp_flat_form_is_the_flat_model(pomdp_dir):
    path = pomdp_dir / "RockSample_7_8.pomdpx"
    m, flat = load_model(path, momdp=True), load_model(path)
    assert (m.n_visible, m.n_hidden, m.n_observations) == (50, 256, 2)
    assert m.fingerprint() == flat.fingerprint()  # the position is declared first: nothing moves
    assert m.initial_visible() == m.visible.index("s03")
    x, b = m.split(m.initial_belief)
    assert x == 3 and np.allclose(b, 1 / 256)
    # moving east from s03 lands on s13 whatever the rocks
    ame = m.actions.index("ame")
    assert np.allclose(m.transition_x(ame)[x * 256:(x + 1) * 256, m.visible.index("s13")].toarray(), 1.0)


def test_flat_model_is_the_momdp_with_one_visible_value(pomdp_dir):
    p = load_model(pomdp_dir / "tiger.95.POMDP")
    m = load_model(pomdp_dir / "tiger.95.POMDP", momdp=True)
    assert (m.n_visible, m.n_hidden, m.n_observations) == (1, 2, 2)
    assert m.fingerprint() == p.fingerprint() and m.initial_visible() == 0
    b, z = m.update(0, [0.5, 0.5], 0, 0, 0)
    assert np.allclose(b, update(p, [0.5, 0.5], 0, 0)) and np.isclose(z, 0.5)


def test_layout_problems_are_named():
    m = random_momdp(1, 2, 2, 2, 2)
    swapped = MOMDP(m.flat, m.visible, m.hidden, m.observations)
    assert swapped.structure_problem() is None
    # observations moved to the other visible value's columns
    O = [o.toarray()[:, [1, 0, 3, 2]] for o in m.flat.O]
    bad = MOMDP(type(m.flat).from_arrays(m.flat.T, O, m.R, 0.9, m.initial_belief), m.visible, m.hidden,
                m.observations)
    with pytest.raises(ModelError, match="not a MOMDP layout: O\\[0\\] gives flat observation"):
        bad.check_structure()
    with pytest.raises(ModelError, match="3 visible x 2 hidden values do not make the 4 joint states"):
        MOMDP(m.flat, ("a", "b", "c"), m.hidden, m.observations).check_structure()
    with pytest.raises(ModelError, match="cannot be split into 3 visible values"):
        MOMDP.from_joint(np.ones((1, 4, 4)) / 4, np.ones((1, 4, 1)), np.zeros((4, 1)), 0.9, 3)
    with pytest.raises(BeliefError, match="spreads over 2 visible values"):
        m.split([0.5, 0, 0.5, 0])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), X=st.integers(1, 3), Y=st.integers(1, 3), A=st.integers(1, 3),
       Zo=st.integers(1, 3))
def test_factors_round_trip_and_beliefs_match_the_flat_update(seed, X, Y, A, Zo):
    m = random_momdp(seed, X, Y, A, Zo)
    rng = np.random.default_rng(seed)
    TX = np.stack([m.transition_x(a).toarray() for a in range(A)])
    assert np.allclose(TX.sum(axis=2), 1.0)
    for a in range(A):
        joint = m.flat.T[a].toarray()
        for x in range(X):
            for xp in range(X):
                TY = m.transition_y(a, x, xp)
                # P(x', y' | x, y, a) = P(x' | x, y, a) P(y' | x, y, a, x')
                block = joint[x * Y:(x + 1) * Y, xp * Y:(xp + 1) * Y]
                assert np.allclose(TX[a, x * Y:(x + 1) * Y, xp][:, None] * TY, block)
    # the MOMDP update of (x, b_y) is the flat update with the folded observation
    x = int(rng.integers(X))
    b_y = rng.dirichlet(np.ones(Y))
    a = int(rng.integers(A))
    b = m.join(x, b_y)
    for xp in range(X):
        for o in range(Zo):
            of = m.flat_observation(o, xp)
            pz = float(m.flat.O[a][:, [of]].toarray().ravel() @ (m.flat.T[a].T @ b))
            if pz <= 1e-12:
                continue
            post, z = m.update(x, b_y, a, xp, o)
            assert np.isclose(z, pz)
            assert np.allclose(m.join(xp, post), update(m.flat, b, a, of))
