"""The POMDP container and Bayes belief updates: validation messages, known Tiger posteriors, the simplex
invariant, impossible observations, and update_batch agreeing with update."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trimpomdp.errors import BeliefError, ModelError
from trimpomdp.pomdp import POMDP, load_model, update, update_batch
from trimpomdp.pomdp.belief import observation_probability, predict


@pytest.fixture(scope="module")
def tiger(pomdp_dir):
    return load_model(pomdp_dir / "tiger.95.POMDP")


def tiny(**kw):
    args = dict(T=[np.eye(2)], O=[np.array([[0.7, 0.3], [0.2, 0.8]])], R=np.zeros((2, 1)), discount=0.9)
    args.update(kw)
    return POMDP.from_arrays(**args)


# ---------------------------------------------------------------------------- construction and validation
def test_from_arrays_defaults_and_views():
    m = tiny()
    assert m.states == ("0", "1") and m.actions == ("0",) and m.observations == ("0", "1")
    assert np.array_equal(m.initial_belief, [0.5, 0.5])
    assert m.T_dense().shape == (1, 2, 2) and m.O_dense().shape == (1, 2, 2)
    assert m.nnz() == {"T": 2, "O": 4}
    assert m.sparsity() == {"T": 0.5, "O": 0.0}
    assert all(isinstance(t, sp.csr_matrix) for t in m.T)
    assert "2 states" in repr(m)


@pytest.mark.parametrize("kw,fragment", [
    (dict(T=[np.array([[0.5, 0.4], [0, 1]])]), "T[0] row '0' sums to 0.9, expected 1"),
    (dict(O=[np.array([[1.2, -0.2], [0, 1]])]), "is not a probability in [0, 1]"),
    (dict(discount=1.5), "discount 1.5 is outside (0, 1]"),
    (dict(discount=0.0), "outside (0, 1]"),
    (dict(R=np.array([[np.nan], [0]])), "R[0, 0] is not finite"),
    (dict(initial_belief=[0.7, 0.7]), "initial belief must be non-negative and sum to 1"),
    (dict(initial_belief=[1.0]), "initial belief has shape (1,)"),
])
def test_validation_messages(kw, fragment):
    with pytest.raises(ModelError) as ei:
        tiny(**kw)
    assert fragment in str(ei.value) and "\n" not in str(ei.value)


def test_all_problems_are_listed_and_counted():
    m = tiny(T=[np.array([[0.5, 0.4], [0, 0.5]])], discount=2.0, validate=False)
    probs = m.validation_problems()
    assert len(probs) == 2 and "and 1 more rows" in probs[1]
    with pytest.raises(ModelError, match=r"\(1 more problems\)"):
        m.validate()


def test_shape_errors():
    with pytest.raises(ModelError, match="R must have shape"):
        tiny(R=np.zeros(2))
    with pytest.raises(ModelError, match="names do not match shapes"):
        tiny(states=["a", "b", "c"])
    with pytest.raises(ModelError, match="one matrix per action"):
        tiny(T=[np.eye(2), np.eye(2)])
    with pytest.raises(ModelError, match=r"T\[0\] has shape"):
        tiny(T=[np.eye(3)])


def test_index_and_fingerprint(tiger):
    assert tiger.index("action", "open-left") == 1 and tiger.index("state", 1) == 1
    with pytest.raises(ModelError, match="unknown observation 'roar'"):
        tiger.index("observation", "roar")
    with pytest.raises(ModelError, match="out of range"):
        tiger.index("state", 2)
    other = POMDP.from_arrays(tiger.T, tiger.O, tiger.R + np.eye(2, 3), tiger.discount, tiger.initial_belief,
                              tiger.states, tiger.actions, tiger.observations)
    same = POMDP.from_arrays(tiger.T, tiger.O, tiger.R.copy(), tiger.discount, tiger.initial_belief,
                             tiger.states, tiger.actions, tiger.observations)
    assert same.fingerprint() == tiger.fingerprint() != other.fingerprint()


def test_normalized_makes_rows_exact():
    m = tiny(T=[np.array([[0.33333, 0.66666], [0, 1]])])
    n = m.normalized()
    assert np.allclose(n.T[0].sum(axis=1), 1, atol=1e-15)
    assert n.T[0][0, 1] == pytest.approx(2 / 3, abs=1e-5)


# ---------------------------------------------------------------------------- beliefs
def test_tiger_posteriors_known_values(tiger):
    b = update(tiger, tiger.initial_belief, "listen", "tiger-left")
    assert np.allclose(b, [0.85, 0.15])
    b = update(tiger, b, "listen", "tiger-left")
    assert np.allclose(b, [0.85**2 / (0.85**2 + 0.15**2), 0.15**2 / (0.85**2 + 0.15**2)])
    assert np.allclose(update(tiger, b, "open-left", "tiger-right"), [0.5, 0.5])
    assert observation_probability(tiger, [0.5, 0.5], 0, 0) == pytest.approx(0.5)
    assert np.allclose(predict(tiger, [0.2, 0.8], 1), [0.5, 0.5])


def test_impossible_observation_raises(pomdp_dir):
    m = tiny(O=[np.array([[1.0, 0.0], [1.0, 0.0]])])
    with pytest.raises(BeliefError, match="observation '1' has probability zero after action '0'"):
        update(m, [0.5, 0.5], 0, 1)
    with pytest.raises(BeliefError, match="belief row 1"):
        update_batch(m, np.array([[0.5, 0.5], [0.3, 0.7]]), [0, 0], [0, 1])
    with pytest.raises(BeliefError, match="shape"):
        update_batch(m, np.array([0.5, 0.5]), [0], [0])


@st.composite
def models_and_beliefs(draw):
    S, A, Z = draw(st.integers(1, 5)), draw(st.integers(1, 3)), draw(st.integers(1, 4))
    pos = st.floats(0.01, 1.0)
    T = draw(arrays(np.float64, (A, S, S), elements=pos))
    O = draw(arrays(np.float64, (A, S, Z), elements=pos))
    T /= T.sum(axis=2, keepdims=True)
    O /= O.sum(axis=2, keepdims=True)
    m = POMDP.from_arrays(T, O, np.zeros((S, A)), 0.95)
    n = draw(st.integers(1, 6))
    B = draw(arrays(np.float64, (n, S), elements=st.floats(0.0, 1.0)))
    B[:, 0] += 1e-3
    B /= B.sum(axis=1, keepdims=True)
    acts = draw(arrays(np.int64, n, elements=st.integers(0, A - 1)))
    obs = draw(arrays(np.int64, n, elements=st.integers(0, Z - 1)))
    return m, B, acts, obs


@settings(max_examples=60, deadline=None)
@given(models_and_beliefs())
def test_updates_stay_on_the_simplex_and_batch_agrees(case):
    m, B, acts, obs = case
    out = update_batch(m, B, acts, obs)
    for i in range(B.shape[0]):
        b = update(m, B[i], int(acts[i]), int(obs[i]))
        assert np.all(b >= 0) and abs(b.sum() - 1.0) < 1e-12
        assert np.allclose(out[i], b, rtol=1e-10, atol=1e-12)
        # Bayes: b'(s') = O(o|s',a) sum_s T(s'|s,a) b(s) / P(o|b,a)
        ref = m.O_dense()[acts[i], :, obs[i]] * (B[i] @ m.T_dense()[acts[i]])
        assert np.allclose(b, ref / ref.sum(), rtol=1e-10, atol=1e-12)
