"""TRIM spec, filter, flat POMDP and the structured solver against exact answers."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from trimpomdp.errors import BeliefError, TrimError
from trimpomdp.routing import BeliefFilter, Decision, TrimModel, load_policy, solve_trim
from trimpomdp.routing.budgets import parse_budget, parse_sweep
from trimpomdp.routing.pomdp import coarsen, exact_start_value, flat_pomdp

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "data" / "trim_math_plain.json"


def small(tm, T=3, factor=10, values=(40.0, 120.0), discount=0.95):
    pmf = tm.length_pmf[:T].copy()
    pmf[-1] += tm.length_pmf[T:].sum()
    K = len(values)
    return TrimModel(
        obs=coarsen(tm.obs, factor),
        p_weak=tm.p_weak,
        p_strong=tm.p_strong,
        length_pmf=pmf,
        token_values=np.array(values),
        token_probs=np.full(K, 1.0 / K),
        discount=discount,
    )


# ---------------------------------------------------------------------------------------------- spec
def test_default_spec_values(tm):
    assert tm.max_steps == 30
    assert tm.p_weak == pytest.approx(0.866, abs=1e-3) and tm.p_strong == pytest.approx(0.9704, abs=1e-4)
    assert tm.length_pmf.sum() == pytest.approx(1.0) and tm.hazard[-1] == 1.0
    assert tm.mean_step_tokens == pytest.approx(494.84 / 8.018, rel=1e-3)
    # the shipped spec reads its 2-D table as the current-score model (one score counted once per step)
    assert tm.observation == "current" and tm.obs.probs.shape == (3, 20) and tm.obs_truth.shape == (3, 20)


def test_from_step_stats_and_roundtrip(tmp_path, data_dir):
    m = TrimModel.from_step_stats(
        data_dir / "step_stats_math_train.npz",
        "qwen2.5-1.5b-instruct",
        "qwen2.5-7b-instruct",
        data_dir / "anchor_obs_bins_math_0.05.npz",
        max_steps=20,
    )
    steps = np.load(data_dir / "step_stats_math_train.npz")["qwen2.5-1.5b-instruct__correct_solution_steps"]
    assert m.length_pmf[0] == pytest.approx(np.mean(np.clip(steps, 1, 20) == 1))
    assert m.length_pmf[-1] == pytest.approx(np.mean(np.clip(steps, 1, 20) == 20))
    out = m.save(tmp_path / "m.json", obs_ref="obs.npz")
    m2 = TrimModel.load(out)
    assert m2.fingerprint() == m.fingerprint()
    # hazard spec gives the same pmf
    d = json.loads(out.read_text())
    d["length_distribution"] = {"hazard": m.hazard.tolist()}
    (tmp_path / "h.json").write_text(json.dumps(d))
    assert np.allclose(TrimModel.load(tmp_path / "h.json").length_pmf, m.length_pmf)


@pytest.mark.parametrize(
    "edit, field",
    [
        (lambda d: d.update(p_weak=1.2), "p_weak"),
        (lambda d: d.update(p_strong=0.0), "p_strong"),
        (lambda d: d.update(length_distribution={"pmf": []}), "length_distribution"),
        (lambda d: d.update(max_steps=12), "length_distribution"),
        (lambda d: d.update(strong_step_tokens={"values": [10, 20], "probs": [1.0]}), "strong_step_tokens"),
        (lambda d: d.update(observation_model="missing.npz"), "observation_model"),
        (lambda d: d.pop("p_weak"), "p_weak"),
        (lambda d: d.update(version=9), "version"),
    ],
)
def test_bad_specs(tmp_path, edit, field):
    d = json.loads(SPEC.read_text())
    for f in ("trim_math_obs_0.05.npz", "prm_obs_processbench_math.npz"):
        shutil.copy(SPEC.parent / f, tmp_path / f)
    edit(d)
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(d))
    with pytest.raises(TrimError) as e:
        TrimModel.load(p)
    msg = str(e.value)
    assert field in msg and "\n" not in msg


def test_wrong_obs_states(tmp_path):
    d = json.loads(SPEC.read_text())
    z = np.load(SPEC.parent / "trim_math_obs_0.05.npz")
    np.savez(
        tmp_path / "o.npz",
        a_centers=z["correct_centers"],
        a_probs=z["correct_probs"],
        b_centers=z["correct_centers"],
        b_probs=z["derailed_probs"],
    )
    d["observation_model"] = "o.npz"
    d.pop("observation_points")
    (tmp_path / "s.json").write_text(json.dumps(d))
    with pytest.raises(TrimError, match="observation_model"):
        TrimModel.load(tmp_path / "s.json")
    (tmp_path / "j.json").write_text("{not json")
    with pytest.raises(TrimError, match="j.json:1"):
        TrimModel.load(tmp_path / "j.json")


def test_budget_parsing():
    assert parse_budget("lambda=0.15").lam == 0.15
    b = parse_budget("cap=300tokens,lambda=0.05")
    assert b.cap.kind == "tokens" and b.cap.limit == 300 and b.lam == 0.05
    assert parse_budget("cap=3regen").cap.levels == 4
    assert parse_budget("mean=120").mean == 120
    sw = parse_sweep("lambda=0.01:1:5")
    assert [round(b.lam, 6) for b in sw] == [0.01, 0.031623, 0.1, 0.316228, 1.0]
    assert [b.mean for b in parse_sweep("mean=50,100")] == [50, 100]
    for bad in ("lambda=-1", "foo=1", "cap=3", "lambda=1,mean=2", "", "mean=abc"):
        with pytest.raises(TrimError):
            parse_budget(bad)


# ---------------------------------------------------------------------------------------------- filter
def test_filter_known_step(tm):
    f = BeliefFilter(tm)
    prior, post = f.step(None, None, (1.0, 0.3))
    assert np.allclose(prior, [tm.p_weak, 1 - tm.p_weak, 0.0])
    lik = tm.obs.probs[:, tm.obs_bins(np.array([1.0, 0.3]))]
    assert np.allclose(post, lik * prior / (lik * prior).sum())
    assert np.allclose(lik, tm.obs.probs[:, tm.obs_bins(np.array([0.2, 0.3]))])  # the min is not read
    pr2 = f.predict(post, "regenerate")
    ps, pw = tm.p_strong, tm.p_weak
    m = post[0] + post[1]
    assert np.allclose(pr2, [ps * pw * m, ps * (1 - pw) * m, 1 - ps * m])
    with pytest.raises(BeliefError):
        f.correct([1.0, 0.0, 0.0], (1.5, 0.2))
    with pytest.raises(BeliefError):
        f.predict([0.5, 0.6, 0.0], "keep")


def test_filter_zero_probability(tm):
    P = tm.obs.probs.copy()
    k = tm.obs.bin_index(np.array([0.5, 0.5]))
    P[0, k] = 0.0
    P[1, k] = 0.0
    P /= P.sum(axis=1, keepdims=True)
    from trimpomdp.observation_models.binned import BinnedObservationModel

    m = TrimModel(
        obs=BinnedObservationModel(tm.obs.states, tm.obs.centers, P, tm.obs.bin_size),
        p_weak=0.8,
        p_strong=0.9,
        length_pmf=[0.5, 0.5],
        token_values=[50],
        token_probs=[1],
    )
    with pytest.raises(BeliefError, match="probability zero"):
        BeliefFilter(m).correct([0.7, 0.3, 0.0], (0.5, 0.5))


@settings(max_examples=60, deadline=None)
@given(
    obs=st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=12),
    acts=st.lists(st.sampled_from(["keep", "regenerate"]), min_size=12, max_size=12),
)
def test_filter_stays_on_simplex(tm, obs, acts):
    f = BeliefFilter(tm)
    post, a = None, None
    for o, act in zip(obs, acts):
        prior, post = f.step(post, a, o)
        for b in (prior, post):
            assert np.all(b >= 0) and b.sum() == pytest.approx(1.0, abs=1e-12)
        # predicted beliefs lie on the segment (p_w x, (1 - p_w) x, 1 - x)
        assert prior[1] * tm.p_weak == pytest.approx(prior[0] * (1 - tm.p_weak), abs=1e-12)
        a = act


# ---------------------------------------------------------------------------------------------- solver
@pytest.mark.parametrize(
    "T, factor, lam", [(3, 10, 0.0), (3, 10, 0.1), (4, 10, 0.05), (3, 5, 0.2), (2, 4, 0.03)]
)
def test_structured_matches_exact_enumeration(tm, T, factor, lam):
    s = small(tm, T, factor)
    pol = solve_trim(s, lam=lam, evaluate=False)
    ex = exact_start_value(s, lam)
    assert pol.predicted["value"] == pytest.approx(ex, abs=1e-3)


def test_structured_matches_general_solvers(tm):
    from trimpomdp.solvers.exact import ExactSolver
    from trimpomdp.solvers.sarsop import SARSOPSolver

    s = small(tm, T=2, factor=10, values=(60.0,))
    P = flat_pomdp(s, 0.05)
    target = s.discount * solve_trim(s, lam=0.05, evaluate=False).predicted["value"]
    ex = ExactSolver(horizon=3).solve(P)
    assert ex.upper == pytest.approx(target, abs=1e-3) and ex.lower == pytest.approx(target, abs=1e-3)
    s3 = small(tm, T=3, factor=10)
    P3 = flat_pomdp(s3, 0.05)
    target3 = s3.discount * solve_trim(s3, lam=0.05, evaluate=False).predicted["value"]
    r = SARSOPSolver(precision=1e-4, timeout=60).solve(P3)
    assert r.lower == pytest.approx(target3, abs=1e-3)


def test_full_model_solve_monotone_and_predictions(tm):
    import dataclasses

    inmodel = dataclasses.replace(tm, obs_truth=None)  # evaluate under the planning model itself
    pols = [solve_trim(inmodel, lam=lam) for lam in (0.03, 0.3, 3.0)]
    toks = [p.predicted["strong_tokens"] for p in pols]
    accs = [p.predicted["accuracy"] for p in pols]
    assert toks[0] > toks[1] > toks[2] >= 0 and accs[0] > accs[1] > accs[2]
    # value = R * accuracy - lambda * tokens (discount ~ 1)
    for p in pols:
        v = tm.reward * p.predicted["accuracy"] - p.lam * p.predicted["strong_tokens"]
        assert p.predicted["value"] == pytest.approx(v, rel=1e-3)


def test_policy_file_roundtrip_and_decide(tm, tmp_path):
    pol = solve_trim(tm, lam=0.15)
    path = pol.save(tmp_path / "p.npz")
    loaded = load_policy(f"pomdp:{path}")
    assert loaded.trim_model.fingerprint() == tm.fingerprint()
    assert loaded.predicted == pytest.approx(pol.predicted)
    rng = np.random.default_rng(0)
    B = rng.dirichlet(np.ones(3), size=200)
    for step in (1, 5, 30, 40):
        costs = rng.uniform(5, 300, size=200)
        assert np.array_equal(pol.decide_many(B, step, costs), loaded.decide_many(B, step, costs))
    f = BeliefFilter(loaded.trim_model)
    _, post = f.step(None, None, (1.0, 0.2))
    d = loaded.decide(post, 1, 80, score=0.2)
    assert isinstance(d, Decision) and d.action in ("keep", "regenerate")
    # Q values are the max over the step's alpha sets (regenerate minus the price of 80 tokens)
    alphas, acts = loaded.alpha_sets(1)
    assert d.q_keep == pytest.approx(np.max(alphas[acts == 0] @ post))
    assert d.q_regenerate == pytest.approx(np.max(alphas[acts == 1] @ post) - 0.15 * 80)
    assert d.regenerate == (d.q_regenerate > d.q_keep)
    with pytest.raises(TrimError):
        load_policy("bogus:1")


def test_cap_policy_tracks_budget_in_its_state(tm):
    """The budget left is the per-question state: start() gives the whole cap, act() spends it, and the
    policy object itself never changes (one policy serves many questions at once)."""
    from trimpomdp.interfaces import StepObservation
    from trimpomdp.routing.solver import solve_budget

    pol = solve_budget(tm, parse_budget("cap=1regen"))
    f = BeliefFilter(tm)
    _, bad = f.step(None, None, (1.0, 0.02))  # a very low score: regenerate if budget allows
    s0 = pol.start()
    assert s0 == 1
    d, s1 = pol.act(s0, StepObservation(1, 50, 0.02, belief=bad))
    assert d.action == "regenerate" and s1 == 0
    d, s2 = pol.act(s1, StepObservation(2, 50, 0.02, belief=bad))
    assert d.action == "keep" and d.q_regenerate is None and s2 == 0
    # another question starts afresh; its first step is decided as the first question's was
    d, _ = pol.act(pol.start(), StepObservation(3, 50, 0.02, belief=bad))
    assert d.action == "regenerate"
    assert pol.decide(bad, 3, 50, remaining=0).action == "keep"
    assert pol.decide(bad, 3, 50).action == "regenerate"  # stateless form: the whole cap
    with pytest.raises(TrimError, match="budget level"):
        pol.act(5, StepObservation(1, 50, 0.02, belief=bad))


@settings(max_examples=12, deadline=None)
@given(
    pw=st.floats(0.5, 0.95),
    ps=st.floats(0.6, 0.99),
    lam=st.floats(0.0, 0.5),
    T=st.integers(1, 3),
    reward=st.floats(10, 200),
    v=st.lists(st.floats(1, 200), min_size=1, max_size=3),
)
def test_structured_equals_enumeration_random_models(tm, pw, ps, lam, T, reward, v):
    pmf = np.linspace(1.0, 2.0, T)
    m = TrimModel(
        obs=coarsen(tm.obs, 10),
        p_weak=pw,
        p_strong=ps,
        length_pmf=pmf,
        token_values=np.array(v),
        token_probs=np.full(len(v), 1.0 / len(v)),
        reward=reward,
        discount=0.97,
    )
    pol = solve_trim(m, lam=lam)
    assert pol.predicted["value"] == pytest.approx(exact_start_value(m, lam), abs=1e-6 * reward)
    # in-model evaluation of the optimal policy reproduces its value (R acc - lambda tokens, discount aside)
    if T == 1:
        v_eval = reward * pol.predicted["accuracy"] - lam * pol.predicted["strong_tokens"]
        assert pol.predicted["value"] == pytest.approx(v_eval, abs=1e-6 * reward)


def test_forward_evaluation_reproduces_value(tm):
    # discount 1: the optimal value is R * accuracy - lambda * tokens of the policy, evaluated forward
    s = small(tm, T=3, factor=5, discount=1.0)
    for lam in (0.0, 0.1, 0.6):
        p = solve_trim(s, lam=lam)
        v = s.reward * p.predicted["accuracy"] - lam * p.predicted["strong_tokens"]
        assert p.predicted["value"] == pytest.approx(v, abs=1e-4)
        assert p.predicted["value"] == pytest.approx(exact_start_value(s, lam), abs=1e-9)


def test_token_distribution_forms(tmp_path):
    d = json.loads(SPEC.read_text())
    for f in ("trim_math_obs_0.05.npz", "prm_obs_processbench_math.npz"):
        shutil.copy(SPEC.parent / f, tmp_path / f)
    samples = [10, 20, 30, 40, 50, 60, 70, 80]
    d["strong_step_tokens"] = {"samples": samples, "bins": 4}
    (tmp_path / "s.json").write_text(json.dumps(d))
    m = TrimModel.load(tmp_path / "s.json")
    assert m.token_values.tolist() == [15, 35, 55, 75] and np.allclose(m.token_probs, 0.25)
    assert m.mean_step_tokens == pytest.approx(np.mean(samples))
    d["strong_step_tokens"] = {"lognormal": {"mean": 100, "sigma": 0.5, "bins": 8}}
    (tmp_path / "l.json").write_text(json.dumps(d))
    m = TrimModel.load(tmp_path / "l.json")
    assert m.mean_step_tokens == pytest.approx(100, rel=1e-9) and np.all(np.diff(m.token_values) > 0)
    d["strong_step_tokens"] = {"samples": []}
    (tmp_path / "e.json").write_text(json.dumps(d))
    with pytest.raises(TrimError, match="strong_step_tokens"):
        TrimModel.load(tmp_path / "e.json")


def _pair(tm):
    """The default spec read as the version-1 pair model (the same 2-D table)."""
    d = json.loads(SPEC.read_text())
    d["observation"] = "pair"
    return TrimModel.from_dict(d, base_dir=SPEC.parent)


def _current_only(tm):
    """The default spec read as the current-score model: the 2-D table's marginal over the min coordinate."""
    pair = _pair(tm)
    cur = dataclasses.replace(pair, observation="current", obs_truth=None)
    n = round(1 / pair.obs.bin_size)
    np.testing.assert_allclose(cur.obs.probs, pair.obs.probs.reshape(3, n, n).sum(axis=1))
    return cur, pair


def test_current_score_model_is_read_the_same_way_everywhere(tm, tmp_path):
    """A 1-D (current score) table: the filter, the planner's saved policy, the simulator and the points
    histogram all bin the second coordinate of the observation pair only."""
    cur, pair = _current_only(tm)
    assert cur.observation == "current" and pair.observation == "pair"
    pairs = np.array([[1.0, 0.2], [0.1, 0.2], [0.3, 0.97]])
    bins = cur.obs_bins(pairs)
    assert bins[0] == bins[1] == cur.obs_bins((0.5, 0.2)) == 4 and bins[2] == 19
    f = BeliefFilter(cur)
    np.testing.assert_allclose(f.likelihood((1.0, 0.2)), f.likelihood((0.0, 0.2)))
    pol = solve_trim(cur, lam=0.15)
    loaded = load_policy(f"pomdp:{pol.save(tmp_path / 'cur.npz')}")
    assert loaded.trim_model.observation == "current" and loaded.trim_model.fingerprint() == cur.fingerprint()
    from trimpomdp.routing.simulator import simulate
    from trimpomdp.routing.spec import load_observation_points

    pts = load_observation_points(Path(__file__).resolve().parents[1] / "data" / "prm_obs_processbench_math.npz")
    r = simulate(cur, loaded, pts, 4000, 0)
    w = simulate(cur, load_policy("weak"), pts, 4000, 0)
    assert r.accuracy > w.accuracy + 0.2  # the 1-D policy routes
