"""Difficulty classes in the routing model: spec, filter, simulator, MOMDP solve, class policy, decode."""
from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.decode.backends import StepOut
from trimpomdp.decode.episode import Episode
from trimpomdp.decode.problems import Problem
from trimpomdp.errors import TrimError
from trimpomdp.routing import BeliefFilter, TrimModel, load_policy
from trimpomdp.routing.difficulty import Difficulty
from trimpomdp.routing.pomdp import coarsen

from test_observation_choice import _Imposed  # a policy taking a given action sequence

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "data" / "trim_math_plain.json"
CLASSES = {"weights": [0.6, 0.4], "p_weak": [0.95, 0.6], "p_strong": [0.97, 0.75]}


def _class_spec(tmp_path, classes=CLASSES, **extra) -> Path:
    d = json.loads(SPEC.read_text())
    for k in ("observation_model", "observation_points"):
        d[k] = str((SPEC.parent / d[k]).resolve())
    d.pop("p_weak")
    d.pop("p_strong")
    d["classes"] = classes
    d.update(extra)
    p = tmp_path / "cls.json"
    p.write_text(json.dumps(d))
    return p


def _tiny(tm, difficulty, steps=3, obs_factor=4):
    """A small model (few steps, coarse bins, two token bins) for exact comparisons."""
    pmf = tm.length_pmf[:steps].copy()
    pmf[-1] += tm.length_pmf[steps:].sum()
    return TrimModel(obs=coarsen(tm.obs, obs_factor), p_weak=0.8, p_strong=0.9, length_pmf=pmf,
                     token_values=np.array([40.0, 120.0]), token_probs=np.array([0.5, 0.5]),
                     discount=1 - 1e-6, difficulty=difficulty)


# ----------------------------------------------------------------------------------------------- spec
def test_spec_with_classes_round_trips_and_means_the_scalar_accuracies(tmp_path):
    tm = TrimModel.load(_class_spec(tmp_path, derailed_as_error=0.25))
    assert tm.n_classes == 2 and tm.n_hidden == 6
    assert tm.p_weak == pytest.approx(0.6 * 0.95 + 0.4 * 0.6)
    assert tm.p_strong == pytest.approx(0.6 * 0.97 + 0.4 * 0.75)
    plain = TrimModel.load(SPEC)
    # derailed steps scored as fresh errors a quarter of the time, in the planning table and the truth
    np.testing.assert_allclose(tm.obs.probs[2], 0.75 * plain.obs.probs[2] + 0.25 * plain.obs.probs[1])
    np.testing.assert_allclose(tm.obs_truth[2], 0.75 * plain.obs_truth[2] + 0.25 * plain.obs_truth[1])
    again = TrimModel.from_dict(tm.to_dict(), base_dir=SPEC.parent)
    assert again.fingerprint() != plain.fingerprint()
    np.testing.assert_allclose(again.classes.p_weak, [0.95, 0.6])
    assert tm.to_dict()["version"] == 3


def test_one_class_is_the_plain_model(tmp_path):
    tm = TrimModel.load(_class_spec(tmp_path, {"weights": [1], "p_weak": [0.85], "p_strong": [0.9]}))
    assert tm.n_classes == 1 and tm.difficulty is None and (tm.p_weak, tm.p_strong) == (0.85, 0.9)
    np.testing.assert_array_equal(tm.joint_transition("regenerate"), tm.transition("regenerate"))


@pytest.mark.parametrize("classes, message", [
    ({"weights": [0.5, 0.5], "p_weak": [0.9], "p_strong": [0.9, 0.8]}, "classes.p_weak': expected one accuracy"),
    ({"weights": [0.5, 0.5], "p_weak": [0.9, 1.0], "p_strong": [0.9, 0.8]}, "p_weak"),
    ({"weights": [], "p_weak": [0.9], "p_strong": [0.9]}, "weights"),
    ({"weights": [0.5, 0.5], "p_weak": [0.9, 0.8]}, "p_strong"),
])
def test_bad_classes_name_the_field(tmp_path, classes, message):
    with pytest.raises(TrimError, match=message.replace("'", ".")) as exc:
        TrimModel.load(_class_spec(tmp_path, classes))
    assert "cls.json" in str(exc.value) and "\n" not in str(exc.value)


def test_missing_accuracy_without_classes_is_named(tmp_path):
    d = json.loads(SPEC.read_text())
    del d["p_weak"]
    for k in ("observation_model", "observation_points"):
        d[k] = str((SPEC.parent / d[k]).resolve())
    p = tmp_path / "s.json"
    p.write_text(json.dumps(d))
    with pytest.raises(TrimError, match="p_weak"):
        TrimModel.load(p)


# --------------------------------------------------------------------------------------------- filter
def forward_posterior(tm, scores, actions):
    """P(class, state at the last step | scores) by summing over the class and every hidden path."""
    cl = tm.classes
    post = np.zeros(tm.n_hidden)
    obs, m = [], 1.0
    for s, a in zip(scores, actions):
        obs.append((m, s))
        if a == "keep":
            m = min(m, s)
    for k in range(cl.n):
        one = TrimModel(obs=tm.obs, p_weak=cl.p_weak[k], p_strong=cl.p_strong[k], length_pmf=tm.length_pmf,
                        token_values=tm.token_values, token_probs=tm.token_probs)
        for path in itertools.product(range(3), repeat=len(scores)):
            p = cl.weights[k] * one.transition("keep")[0, path[0]]
            for j in range(1, len(path)):
                p *= one.transition(actions[j - 1])[path[j - 1], path[j]]
            for j, o in enumerate(obs):
                p *= tm.obs.probs[path[j], tm.obs_bins(np.array(o))]
            post[3 * k + path[-1]] += p
    return post / post.sum()


@pytest.fixture(scope="module")
def cls_tm(tmp_path_factory):
    return TrimModel.load(_class_spec(tmp_path_factory.mktemp("cls"), derailed_as_error=0.2))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.sampled_from(["keep", "regenerate"])), min_size=1, max_size=5))
def test_class_filter_is_the_exact_forward_posterior(cls_tm, steps):
    """The decode episode's belief over (class, state) against brute force; the trace keeps the state
    marginal in belief_after and the class posterior in class_belief."""
    scores = [s for s, _ in steps]
    actions = [a for _, a in steps]
    ep = Episode(Problem("q", "Q?", None), _Imposed(actions), BeliefFilter(cls_tm), max_steps=len(steps) + 1)
    for k, s in enumerate(scores):
        obs = ep.observe(StepOut("w", 10, False), s)
        want = forward_posterior(cls_tm, scores[:k + 1], actions[:k + 1])
        np.testing.assert_allclose(obs.belief, want, atol=1e-9)
        d = ep.decide()
        ep.commit(StepOut("s", 10, False) if d.regenerate else None)
        e = ep.entries[-1]
        np.testing.assert_allclose(e["belief_after"], want.reshape(2, 3).sum(axis=0), atol=1e-9)
        np.testing.assert_allclose(e["class_belief"], want.reshape(2, 3).sum(axis=1), atol=1e-9)


def test_low_scores_make_the_hard_class_likelier(cls_tm):
    f = BeliefFilter(cls_tm)
    _, hi = f.step(None, None, (1.0, 0.99))
    _, lo = f.step(None, None, (1.0, 0.05))
    assert f.class_posterior(lo)[1] > 0.4 > f.class_posterior(hi)[1]


# ------------------------------------------------------------------------------------------ simulator
def test_simulated_cheap_and_strong_accuracy_match_the_exact_class_sums(cls_tm, pts):
    """The simulator's worlds (a class drawn per question) against the calibration model's exact sums."""
    from trimpomdp.calibration.model import ClassModel, evaluate_threshold
    from trimpomdp.routing.policies import StrongPolicy, WeakPolicy
    from trimpomdp.routing.simulator import simulate_summary

    cm = ClassModel(CLASSES["weights"], CLASSES["p_weak"], CLASSES["p_strong"], 0.2, cls_tm.length_pmf)
    for pol, q in ((WeakPolicy(), np.zeros(3)), (StrongPolicy(), np.ones(3))):
        s = simulate_summary(cls_tm, pol, pts, episodes=40_000, seed=3)
        acc, calls = evaluate_threshold(cm, q)
        assert abs(s["accuracy"] - acc) < 4 * s["accuracy_se"] + 1e-3, (pol.name, s["accuracy"], acc)
        assert s["regenerations"] == pytest.approx(calls, rel=0.02)


def test_threshold_regenerations_follow_the_derailed_mixing(tm, pts, tmp_path):
    """With derailed steps scored like fresh errors, a threshold flags more of them: more regenerations."""
    from trimpomdp.routing.policies import ThresholdPolicy
    from trimpomdp.routing.simulator import simulate_summary

    heavy = TrimModel.load(_class_spec(tmp_path, derailed_as_error=0.9))
    light = TrimModel.load(_class_spec(tmp_path, derailed_as_error=0.0))
    r = [simulate_summary(m, ThresholdPolicy(0.5), pts, episodes=20_000, seed=1)["regenerations"]
         for m in (light, heavy)]
    assert r[1] > r[0] * 1.02


# ------------------------------------------------------------------------------------- solve, policy
@pytest.fixture(scope="module")
def twin_policies(tm):
    """A 2-class model whose classes are identical is the plain model: same value and decisions."""
    from trimpomdp.routing.class_solver import solve_classes
    from trimpomdp.routing.solver import solve_trim

    plain = _tiny(tm, None)
    twins = _tiny(tm, Difficulty([0.3, 0.7], [0.8, 0.8], [0.9, 0.9]))
    return plain, twins, solve_trim(plain, lam=0.05), solve_classes(twins, 0.05, episodes=2000)


def test_identical_classes_solve_to_the_plain_value(twin_policies):
    """The class solver's sweep finds the structured solver's value, and the general MOMDP solver's bounds
    on the same model bracket it."""
    from trimpomdp.routing.class_solver import solve_classes

    _, twins, p, c = twin_policies
    assert c.predicted["value"] == pytest.approx(p.predicted["value"], abs=2e-3)
    s = solve_classes(twins, 0.05, method="staged", evaluate=False, timeout=60)
    lo, hi = s.meta["bounds"]
    g = twins.discount
    assert lo - 1e-6 <= p.predicted["value"] * g <= hi + 1e-6 and hi - lo <= 0.02


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.sampled_from([40.0, 120.0])), min_size=1, max_size=3))
def test_identical_classes_decide_as_the_plain_policy(twin_policies, steps):
    """Along the policy's own paths (a point-based solver is exact where its policy goes), the class
    policy's value and decisions are the plain policy's."""
    plain, twins, p, c = twin_policies
    fp, fc = BeliefFilter(plain), BeliefFilter(twins)
    b3 = b6 = prev = None
    for t, (score, cost) in enumerate(steps, start=1):
        _, b3 = fp.step(b3, prev, (1.0, score))
        _, b6 = fc.step(b6, prev, (1.0, score))
        np.testing.assert_allclose(b6, np.concatenate([0.3 * b3, 0.7 * b3]), atol=1e-12)
        qk, qr = p.q_values(b3[None], t, cost)
        ck, cr = c.q_values(b6[None], t, cost)
        assert max(ck[0], cr[0]) == pytest.approx(max(qk[0], qr[0]), abs=0.02)
        if abs((qr - qk)[0]) > 0.05:  # away from the indifference line, within the solvers' precision
            assert (cr > ck)[0] == (qr > qk)[0]
        prev = "regenerate" if qr[0] > qk[0] else "keep"


def test_class_policy_file_round_trip_and_dispatch(twin_policies, tmp_path):
    from trimpomdp.routing.class_policy import ClassPomdpPolicy

    _, _, _, c = twin_policies
    path = c.save(tmp_path / "c.npz")
    back = load_policy(f"pomdp:{path}")
    assert isinstance(back, ClassPomdpPolicy)
    B = np.random.default_rng(0).dirichlet(np.ones(6), size=50)
    np.testing.assert_array_equal(back.decide_many(B, 2, np.full(50, 60.0)), c.decide_many(B, 2, np.full(50, 60.0)))
    assert back.trim_model.fingerprint() == c.trim_model.fingerprint()


def test_hard_questions_get_a_different_policy_than_their_average(tm):
    """Classes matter: at the same mean accuracy, a hard minority makes low scores worth a rewrite
    sooner: the class policy regenerates a mid score that the averaged model keeps, or vice versa, and
    its predicted value differs."""
    from trimpomdp.routing.class_solver import solve_classes
    from trimpomdp.routing.solver import solve_trim

    mixed = _tiny(tm, Difficulty([0.5, 0.5], [0.98, 0.62], [0.98, 0.8]))
    avg = _tiny(tm, None)
    avg = TrimModel(obs=avg.obs, p_weak=0.8, p_strong=0.89, length_pmf=avg.length_pmf,
                    token_values=avg.token_values, token_probs=avg.token_probs, discount=avg.discount)
    c = solve_classes(mixed, 0.05, episodes=2000)
    p = solve_trim(avg, lam=0.05)
    assert abs(c.predicted["value"] - p.predicted["value"]) > 0.5
    # the solved value is what the policy earns in its world (reward - lambda * tokens), within noise
    earned = c.predicted["accuracy"] * mixed.reward - 0.05 * c.predicted["strong_tokens"]
    assert earned == pytest.approx(c.predicted["value"], abs=3.0)


def test_a_cap_with_classes_is_refused_in_one_line(twin_policies):
    from trimpomdp.routing.budgets import parse_cap
    from trimpomdp.routing.solver import solve_trim

    _, twins, _, _ = twin_policies
    with pytest.raises(TrimError, match="cap") as exc:
        solve_trim(twins, lam=0.1, cap=parse_cap("2regen"))
    assert "\n" not in str(exc.value)



# ------------------------------------------------------------------------------------------ repair
def test_repair_in_the_simulator_matches_the_exact_class_sums(tmp_path, pts):
    """A strong rewrite may repair a derailed solution: strong-only and threshold accuracy in the
    simulator against the calibration model's exact sums with the same ``recover``."""
    from trimpomdp.calibration.model import ClassModel, evaluate_threshold, regenerate_probs
    from trimpomdp.routing.policies import StrongPolicy, ThresholdPolicy
    from trimpomdp.routing.simulator import simulate_summary

    tm = TrimModel.load(_class_spec(tmp_path, derailed_as_error=0.3, derailed_repair=0.5))
    assert tm.derailed_repair == 0.5 and not tm.structured
    cm = ClassModel(CLASSES["weights"], CLASSES["p_weak"], CLASSES["p_strong"], 0.3, tm.length_pmf, recover=0.5)
    for pol, q in ((StrongPolicy(), np.ones(3)), (ThresholdPolicy(0.6), regenerate_probs(pts, 0.6, 0.3))):
        s = simulate_summary(tm, pol, pts, episodes=40_000, seed=5)
        acc, calls = evaluate_threshold(cm, q)
        assert abs(s["accuracy"] - acc) < 4 * s["accuracy_se"] + 2e-3, (pol.name, s["accuracy"], acc)


def test_repair_makes_the_filter_expect_a_correct_prefix_after_a_rewrite(tm):
    """After regenerating a step believed derailed, the next prior puts mass p_s * repair on a correct
    prefix (none without repair)."""
    one = TrimModel(obs=tm.obs, p_weak=0.8, p_strong=0.9, length_pmf=tm.length_pmf, token_values=tm.token_values,
                    token_probs=tm.token_probs, derailed_repair=0.5)
    prior = BeliefFilter(one).predict(np.array([0.0, 0.0, 1.0]), "regenerate")
    np.testing.assert_allclose(prior, [0.45 * 0.8, 0.45 * 0.2, 0.55])


def test_a_repair_spec_goes_to_the_class_solver_and_gains_from_it(tm):
    """With repair, rewriting a derailed step pays: the solver (the sweep, since the structured solver
    assumes derailed is absorbing) values the start more than without repair."""
    from trimpomdp.routing.solver import solve_trim

    base = _tiny(tm, Difficulty([0.5, 0.5], [0.95, 0.6], [0.97, 0.8]))
    fixed = TrimModel(obs=base.obs, p_weak=base.p_weak, p_strong=base.p_strong, length_pmf=base.length_pmf,
                      token_values=base.token_values, token_probs=base.token_probs, discount=base.discount,
                      difficulty=base.difficulty, derailed_repair=0.6)
    a = solve_trim(base, lam=0.05, evaluate=False)
    b = solve_trim(fixed, lam=0.05, evaluate=False)
    assert b.meta["solver"] == "sweep" and b.predicted["value"] > a.predicted["value"] + 0.1


def test_a_mean_budget_on_a_class_spec_spends_it_in_model(tm):
    """mean=B on a class spec: the search shares belief points, the chosen lambda is solved in full and
    its predicted mean strong tokens (simulated, in-model) land near B."""
    from trimpomdp.routing import parse_budget, solve_budget

    spec = _tiny(tm, Difficulty([0.5, 0.5], [0.95, 0.6], [0.97, 0.8]), steps=4)
    pol = solve_budget(spec, parse_budget("mean=40"))
    assert pol.meta["solver"] == "sweep" and "shared_points" not in pol.meta
    assert pol.predicted["strong_tokens"] == pytest.approx(40, rel=0.15)


def test_decode_episode_routes_with_the_class_policy_and_writes_a_valid_trace(twin_policies, tmp_path):
    """The per-step decode API with a class spec: the class policy decides on the filter's 3K belief at the
    step's real cost, the trace keeps Q values, the state marginal and the class posterior, and validates."""
    from trimpomdp.decode.trace import TRACE_VERSION, validate_record

    _, twins, _, c = twin_policies
    ep = Episode(Problem("q", "Q?", "4"), c, BeliefFilter(twins), max_steps=3)
    for score, tokens in ((0.9, 40), (0.05, 120), (0.8, 60)):
        obs = ep.observe(StepOut("w", tokens, False), score)
        want = c.decide(obs.belief, obs.step, tokens)
        d = ep.decide()
        assert (d.action, d.q_keep, d.q_regenerate) == (want.action, want.q_keep, want.q_regenerate)
        ep.commit(StepOut("s", 50, False) if d.regenerate else None)
    rec = ep.record(c.name)
    validate_record(rec)
    assert rec["version"] == TRACE_VERSION == 3
    for e in rec["steps"]:
        assert len(e["belief_after"]) == 3 and len(e["class_belief"]) == 2
        np.testing.assert_allclose(e["class_belief"], [0.3, 0.7], atol=1e-9)  # identical classes: no evidence


def test_inspect_shows_the_class_posterior(twin_policies):
    from trimpomdp.analysis.inspection import step_table

    _, twins, _, c = twin_policies
    ep = Episode(Problem("q", "Q?", None), c, BeliefFilter(twins), max_steps=1)
    ep.observe(StepOut("w", 40, False), 0.7)
    ep.decide()
    ep.commit(StepOut("s", 50, False) if ep.pending_action == "regenerate" else None)
    table = step_table(ep.record(c.name))
    assert "P(class)" in table.splitlines()[0] and "0.30 0.70" in table
