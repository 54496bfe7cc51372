"""Belief filters along sequences (pair / current / conditional / reference), their figures, the exact
marginal behind ``conditional``, and ``fit-obs`` reading and evaluating sequence files."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.cli.main import main
from trimpomdp.observation_models import sequence_eval as se
from trimpomdp.observation_models.kde import ReflectedKDE
from trimpomdp.observation_models.sequences import ScoreSequence, save_sequences, step_table

STATES = ("correct", "fresh_error", "derailed")


def _synthetic(rng, n_seq=60):
    """Sequences whose correct steps score high, the first wrong step low, later steps middling."""
    out = []
    for i in range(n_seq):
        n = int(rng.integers(2, 7))
        fe = None if i % 3 == 0 else int(rng.integers(0, n))
        s = [float(np.clip(rng.normal(0.85, 0.1), 0, 1)) for _ in range(n)]
        if fe is not None:
            s[fe] = float(np.clip(rng.normal(0.2, 0.1), 0, 1))
            for t in range(fe + 1, n):
                s[t] = float(np.clip(rng.normal(0.5, 0.15), 0, 1))
        out.append(ScoreSequence(f"s{i}", s, fe, group=f"g{i}"))
    return out


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    seqs = _synthetic(rng)
    pairs, states, *_ = step_table(seqs)
    m2 = ReflectedKDE("scott", states=STATES).fit(pairs, states)
    m1 = ReflectedKDE("scott", states=STATES).fit(pairs[:, 1:], states)
    return seqs, m2, m1


def test_filter_known_answer():
    lik = np.array([[1.0, 2.0, 5.0], [1.0, 1.0, 1.0], [2.0, 1.0, 1.0]])
    b = se.run_filter(lik, np.array([0, 1, 0]), 0.8)
    assert np.allclose(b[0], [0.8 / 1.2, 0.4 / 1.2, 0.0])  # prior (0.8, 0.2, 0): D impossible at step 1
    prior = se.keep_transition(0.8).T @ b[0]
    assert np.allclose(b[1], prior)  # a flat likelihood leaves the prediction
    assert np.allclose(b[2], [1.6 / 1.8, 0.2 / 1.8, 0.0])  # step 0 restarts from C
    ref = se.run_filter(lik, np.array([0, 1, 0]), 0.8, recursive=False)
    assert np.allclose(ref, lik / lik.sum(axis=1, keepdims=True))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.floats(1e-6, 1e3), min_size=3, max_size=3), min_size=1, max_size=12),
       st.floats(0.05, 0.99), st.floats(0.01, 100))
def test_filter_beliefs_are_distributions_and_scale_free(rows, p_weak, c):
    lik = np.array(rows)
    step = np.arange(len(rows))
    b = se.run_filter(lik, step, p_weak)
    assert np.allclose(b.sum(axis=1), 1) and np.all(b >= 0) and b[0, 2] == 0
    assert np.allclose(se.run_filter(lik * c, step, p_weak), b)  # only likelihood ratios matter


def test_marginal_density_matches_numerical_integral(fitted):
    _, m2, _ = fitted
    g = (np.arange(4000) + 0.5) / 4000
    for s in STATES:
        for v in (0.0, 0.37, 1.0):
            num = m2.density(np.stack([np.full_like(g, v), g], 1), s).mean()
            assert m2.marginal_density([v], s)[0] == pytest.approx(num, rel=1e-6)
        assert m2.marginal_density(g, s).mean() == pytest.approx(1.0, abs=1e-6)


def test_conditional_likelihood_integrates_to_one_over_the_current_score(fitted):
    _, m2, _ = fitted
    g = (np.arange(2000) + 0.5) / 2000
    for m in (0.15, 0.8, 1.0):
        L = se.continuous_likelihoods("conditional", np.stack([np.full_like(g, m), g], 1), m2)
        assert np.allclose(L.mean(axis=0), 1.0, atol=1e-6)
    table = m2.discretize(0.1)
    pairs = np.stack(np.meshgrid((np.arange(10) + 0.5) / 10, (np.arange(10) + 0.5) / 10, indexing="ij"), -1)
    L = se.binned_likelihoods("conditional", pairs.reshape(-1, 2), table).reshape(10, 10, 3)
    row_mass = table.probs.reshape(3, 10, 10).sum(axis=2).T  # (m-bin, state)
    sums = L.sum(axis=1)  # P(s-bin | state, m-bin) sums to 1 over s-bins where the m-bin has mass
    assert np.allclose(sums[row_mass > 0], 1.0) and np.all(sums[row_mass == 0] == 0)


def test_metrics_perfect_and_inverted():
    states = np.array(["correct", "correct", "fresh_error", "derailed"])
    perfect = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    m = se.belief_metrics(perfect, states)
    assert m["auc_fresh"] == 1 and m["auc_error"] == 1 and m["logloss"] == pytest.approx(0, abs=1e-12)
    wrong = np.array([[0, 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 0]], dtype=float)
    m = se.belief_metrics(wrong, states)
    assert m["auc_fresh"] == 0 and m["logloss"] == pytest.approx(-np.log(se.LOG_FLOOR))
    r = se.score_metrics(np.array([0.1, 0.2, 0.9, 0.5]), states, mask=np.array([1, 1, 1, 0], bool))
    assert r["auc_fresh"] == 1 and r["n"] == {"correct": 2, "fresh_error": 1, "derailed": 0}


def test_bootstrap_of_identical_scores_is_zero():
    rng = np.random.default_rng(1)
    a, pos = rng.random(200), rng.random(200) < 0.3
    groups = np.repeat(np.arange(50), 4)
    assert se.bootstrap_auc_diff(a, a, pos, groups, n_boot=50) == (0.0, 0.0, 0.0)
    d, lo, hi = se.bootstrap_auc_diff(pos + 0.1 * a, a, pos, groups, n_boot=200)
    assert d > 0.3 and lo > 0 and lo <= d <= hi


def test_filters_beat_chance_on_separable_sequences(fitted):
    seqs, m2, m1 = fitted
    pairs, states, _, step, unique = step_table(seqs)
    for k in se.FILTERS:
        b = se.beliefs(k, se.continuous_likelihoods(k, pairs, m2, m1), step, 0.85)
        m = se.belief_metrics(b, states, unique)
        assert m["auc_fresh"] > 0.8 and m["logloss"] < np.log(3)
    ev = se.evaluate(seqs, 0.85, pair_table=m2.discretize(0.05), current_table=m1.discretize(0.05))
    assert set(ev["models"]) == set(se.FILTERS) and set(ev["raw"]) == {"1 - current", "1 - min so far"}
    with pytest.raises(Exception, match="unknown observation model"):
        se.continuous_likelihoods("pairs", pairs, m2)


def test_fit_obs_reads_and_evaluates_sequence_files(tmp_path, fitted, capsys):
    seqs, *_ = fitted
    save_sequences(seqs[:40], tmp_path / "train.jsonl")
    save_sequences(seqs[40:], tmp_path / "test.jsonl")
    out = tmp_path / "m.npz"
    rc = main(["fit-obs", str(tmp_path / "train.jsonl"), "--bandwidth", "cv-grouped", "--folds", "2",
               "--evaluate", str(tmp_path / "test.jsonl"), "--json", "-o", str(out)])
    assert rc in (0, None)
    summary = json.loads(capsys.readouterr().out)
    ev = summary["evaluation"]
    # a 2-D table is also read as the current-score model (its marginal), as a spec would read it
    assert set(ev["models"]) == {"pair", "conditional", "reference", "current"} and out.exists()
    lls = {k: ev["models"][k]["logloss"] for k in ("current", "pair")}
    assert ev["recommended"] == min(lls, key=lls.get)
    assert 0.5 < ev["p_weak"] < 1 and ev["sequences"] == 20
    assert all(summary["states"][s]["cv_scale"] > 0 for s in STATES)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "scores": [0.5], "label": -1}\n{"id": "b", "scores": [0.5], "label": 4}\n')
    rc = main(["fit-obs", str(tmp_path / "train.jsonl"), "--evaluate", str(bad), "-o", str(tmp_path / "n.npz")])
    assert rc == 2
    assert f"{bad}:2:" in capsys.readouterr().err
