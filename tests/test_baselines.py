"""Full takeover and the query-level baselines: hand-computed episodes in the step simulator, identities
with the cheap-only and strong-only runs on the same draws, the oracle, the spec strings and sweeps, and
takeover in both decode loops (the cheap model and the PRM are no longer called once the strong model
writes the rest)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trimpomdp.decode.backends import StepOut
from trimpomdp.decode.concurrent import ConcurrentDecoder
from trimpomdp.decode.loop import RoutedDecoder
from trimpomdp.decode.problems import Problem
from trimpomdp.errors import TrimError
from trimpomdp.observation_models.binned import BinnedObservationModel
from trimpomdp.routing import BeliefFilter, TrimModel, load_policy
from trimpomdp.routing import simulator as S
from trimpomdp.routing.baselines import OracleQueryPolicy, QueryPolicy, TakeoverPolicy
from trimpomdp.routing.registry import family_policies

SPEC = Path(__file__).resolve().parents[1] / "data" / "trim_math_plain.json"


# ------------------------------------------------------------------------------------ hand-computed episodes
class Scripted:
    """An rng whose draws are given: ``random`` and ``choice`` return the next scripted values."""

    def __init__(self, randoms, choices):
        self.randoms, self.choices = list(randoms), list(choices)

    def random(self, n):
        return np.array([self.randoms.pop(0) for _ in range(n)])

    def choice(self, a, p=None, size=None):
        vals = [self.choices.pop(0) for _ in range(size)]
        return np.asarray(vals) if np.ndim(a) == 0 else np.asarray(a)[vals]


def tiny_model(L=3):
    """p_weak 0.8, p_strong 0.9, every solution L steps, every step 50 strong tokens."""
    obs = BinnedObservationModel(("correct", "fresh_error", "derailed"), np.array([[0.25], [0.75]]),
                                 np.array([[0.2, 0.8], [0.8, 0.2], [0.9, 0.1]]), 0.5)
    pmf = np.zeros(L)
    pmf[-1] = 1.0
    return TrimModel(obs=obs, p_weak=0.8, p_strong=0.9, length_pmf=pmf, token_values=[50.0], token_probs=[1.0])


#: one real point per state: a correct step scores 0.9, a fresh error 0.2, a derailed step 0.1
POINTS = {"correct": np.array([[1.0, 0.9]]), "fresh_error": np.array([[1.0, 0.2]]),
          "derailed": np.array([[0.5, 0.1]])}


def run_one(policy, u_s3):
    """One 3-step episode. Draws: state of step 1 (0.1: correct); per step u_obs, token bin, u_strong,
    u_weak. Step 1 correct and kept at any threshold <= 0.9; u_weak 0.9 makes step 2 a fresh error; its
    strong rewrite (u_strong 0.3) is right and step 3 is written from a correct prefix (u_weak 0.1);
    ``u_s3`` decides whether a strong step 3 is right (the cheap step 3 is)."""
    rng = Scripted([0.1, 0.5, 0.95, 0.9, 0.5, 0.3, 0.1, 0.5, u_s3, 0.5], [2, 0, 0, 0])
    sim = S.StepSimulator(tiny_model(), POINTS, 1, rng, takeover=getattr(policy, "takeover", False))
    seen = []
    while (b := sim.observe()) is not None:
        regen, _ = S.decide(policy, b)
        seen.append((int(b.step[0]), float(b.scores[0])) if b.rows.size else None)
        sim.step(regen)
    c, tok, strong_steps, steps = sim.results()
    return bool(c[0]), float(tok[0]), int(strong_steps[0]), seen


@pytest.mark.parametrize("u_s3", [0.5, 0.95])
def test_takeover_hand_computed(u_s3):
    # single-step regeneration: step 2 rewritten (50 tokens), step 3 back to the cheap model (correct)
    assert run_one(load_policy("threshold:0.5"), u_s3) == (True, 50.0, 1, [(1, 0.9), (2, 0.2), (3, 0.9)])
    # takeover: the strong model also writes step 3 (100 tokens), right only when u_s3 < 0.9, and the
    # policy is not asked at step 3
    ok, tok, n, seen = run_one(load_policy("takeover:threshold:0.5"), u_s3)
    assert (ok, tok, n, seen) == (u_s3 < 0.9, 100.0, 2, [(1, 0.9), (2, 0.2), None])


def test_query_probe_hand_computed():
    # step 1 scores 0.9: at K = 0.5 the cheap model writes everything (the fresh error at step 2 derails it)
    assert run_one(load_policy("query:0.5"), 0.5) == (False, 0.0, 0, [(1, 0.9), (2, 0.2), (3, 0.1)])
    # at K = 0.95 the question goes to the strong model: 3 strong steps; its step 1 (u_strong 0.95) is wrong
    assert run_one(load_policy("query:0.95"), 0.5) == (False, 150.0, 3, [(1, 0.9), None, None])


# ---------------------------------------------------------------------------------- identities on real draws
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31), k=st.floats(0, 1), mode=st.sampled_from(S.MODES))
@example(seed=0, k=1.0, mode="sequence")
def test_query_is_cheap_only_or_strong_only_per_question(tm, pts, seed, k, mode):
    """On the same draws every question of query:K is either its cheap-only or its strong-only outcome;
    query:0 is cheap-only; takeover of weak / strong is weak / strong, episode by episode."""
    run = lambda spec: S.simulate(tm, load_policy(spec, tm), pts, 500, seed, mode=mode)  # noqa: E731
    w, s, q = run("weak"), run("strong"), run(f"query:{k!r}")
    routed = q.strong_tokens > 0
    assert np.array_equal(q.correct, np.where(routed, s.correct, w.correct))
    assert np.array_equal(q.strong_tokens, np.where(routed, s.strong_tokens, 0.0))
    assert np.array_equal(q.regenerations, np.where(routed, s.regenerations, 0))
    for spec, ref in (("query:0", w), ("takeover:weak", w), ("takeover:strong", s)):
        r = run(spec)
        assert np.array_equal(r.correct, ref.correct) and np.array_equal(r.strong_tokens, ref.strong_tokens), spec
        assert np.array_equal(r.regenerations, ref.regenerations), spec


def test_oracle_combines_cheap_and_strong_runs(tm, pts):
    w = S.simulate(tm, load_policy("weak"), pts, 3000, 4, mode="sequence")
    s = S.simulate(tm, load_policy("strong"), pts, 3000, 4, mode="sequence")
    o = S.simulate(tm, load_policy("query-oracle"), pts, 3000, 4, mode="sequence")
    assert np.array_equal(o.correct, w.correct | s.correct)
    assert np.array_equal(o.strong_tokens, np.where(w.correct, 0.0, s.strong_tokens))
    summ = S.simulate_summary(tm, OracleQueryPolicy(), pts, 3000, 4, mode="sequence")
    assert summ["accuracy"] == pytest.approx(o.accuracy) and summ["strong_tokens"] == pytest.approx(o.mean_tokens)
    # the oracle is above the line from cheap-only to strong-only (the best query-level mix without it)
    assert o.accuracy > w.accuracy + (s.accuracy - w.accuracy) * o.mean_tokens / s.mean_tokens


def test_takeover_costs_more_than_single_regeneration(tm, pts):
    one = S.simulate(tm, load_policy("threshold:0.3"), pts, 5000, 1, mode="sequence")
    take = S.simulate(tm, load_policy("takeover:threshold:0.3"), pts, 5000, 1, mode="sequence")
    assert take.mean_tokens > one.mean_tokens and (take.regenerations >= (one.regenerations > 0)).all()


# ------------------------------------------------------------------------------------------ spec strings
def test_specs_and_sweeps(tm):
    assert load_policy("query:0.4").name == "query:0.4" and isinstance(load_policy("query:0.4"), QueryPolicy)
    t = load_policy("takeover:pomdp:lambda=0.3", tm)
    assert isinstance(t, TakeoverPolicy) and t.name == "takeover:pomdp:lambda=0.3" and t.needs_belief
    assert [p.name for p in family_policies(tm, "query:0:1:3")] == ["query:0", "query:0.5", "query:1"]
    assert [p.name for p in family_policies(tm, "takeover:threshold:0.2,0.4")] == [
        "takeover:threshold:0.2", "takeover:threshold:0.4"]
    for bad, msg in (("query:x", "expected query:<first-step score"), ("query:2", r"in \[0, 1\]"),
                     ("takeover:query:0.5", "already routes whole questions"),
                     ("takeover:pomdp:cap=2regen", "capped policy"), ("nonsense", "expected pomdp:PATH")):
        with pytest.raises(TrimError, match=msg):
            load_policy(bad, tm)
    with pytest.raises(TrimError, match="expected query:lo:hi:n"):
        family_policies(tm, "query:a:b")
    with pytest.raises(TrimError, match="simulate-routing only"):
        load_policy("query-oracle").start()


# ------------------------------------------------------------------------------------------------ decode
class Script:
    """A generator writing step k as '<tag>k' (``n`` tokens each); step 4 ends the solution with the answer.
    Counts its calls."""

    prompt_style = "plain"

    def __init__(self, tag, n):
        self.name, self.tag, self.n, self.calls = tag, tag, n, 0

    def generate_steps(self, prefixes, max_new_tokens, keys=None):
        self.calls += len(prefixes)
        out = []
        for p in prefixes:
            k = p.count("\n\n")  # steps already written (each is followed by a blank line in the prompt)
            last = k + 1 >= 4
            out.append(StepOut(f"{self.tag}{k + 1}" + (" \\boxed{2}" if last else ""), self.n, last))
        return out


class ScorePRM:
    name = "scripted"

    def __init__(self, scores):
        self.scores, self.calls = scores, 0

    def score(self, question, steps_list):
        self.calls += len(steps_list)
        return [self.scores[len(s) - 1] for s in steps_list]


@pytest.mark.parametrize("loop", ["lockstep", "concurrent"])
@pytest.mark.parametrize("spec, models, scores, calls", [
    ("takeover:threshold:0.5", ["weak", "strong", "strong", "strong"], [0.9, 0.2, None, None], (2, 2, 3)),
    ("query:0.95", ["strong"] * 4, [0.9, None, None, None], (1, 1, 4)),
    ("query:0.5", ["weak"] * 4, [0.9, 0.2, 0.9, 0.9], (4, 4, 0)),
])
def test_takeover_in_decode(tm, monkeypatch, loop, spec, models, scores, calls):
    from trimpomdp.decode import prompts

    monkeypatch.setattr(prompts, "render", lambda style, q, steps: "".join(s + "\n\n" for s in steps))
    monkeypatch.setattr("trimpomdp.decode.loop.render", prompts.render)
    monkeypatch.setattr("trimpomdp.decode.concurrent.render", prompts.render)
    weak, strong, prm = Script("w", 10), Script("s", 20), ScorePRM([0.9, 0.2, 0.9, 0.9])
    pol = load_policy(spec, tm)
    kw = {"batch_size": 2} if loop == "lockstep" else {"concurrency": 2}
    cls = RoutedDecoder if loop == "lockstep" else ConcurrentDecoder
    dec = cls(weak, strong, prm, pol, BeliefFilter(tm), policy_name=spec, max_steps=6, **kw)
    (rec,) = dec.run([Problem("0", "1+1?", "2", "plain")])
    assert [s["model"] for s in rec["steps"]] == models and rec["finish"] == "answer"
    assert [s["prm_score"] for s in rec["steps"]] == scores
    assert (weak.calls, prm.calls, strong.calls) == calls
    assert rec["tokens"]["strong"] == 20 * calls[2]
    taken = [s["policy_state"]["takeover"] for s in rec["steps"]]
    assert taken == [int(s is None) for s in scores]  # the state before each decision says who writes


def test_episode_refuses_write_strong_out_of_turn(tm):
    from trimpomdp.decode.episode import Episode

    ep = Episode(Problem("0", "q", "2"), load_policy("threshold:0.5"), BeliefFilter(tm))
    with pytest.raises(TrimError, match="write_strong\\(\\) called while awaiting observe"):
        ep.write_strong(StepOut("x", 3, False))


# ------------------------------------------------------------------------------------ the paper-layout table
def test_paper_rows_hand_computed():
    from trimpomdp.routing.compare import paper_rows, paper_table
    from trimpomdp.routing.metrics import curve_metrics, summarize

    aw, as_, cs = 0.4, 0.8, 400.0
    pts = [{"name": "weak", "accuracy": aw, "strong_tokens": 0.0}, {"name": "strong", "accuracy": as_,
                                                                     "strong_tokens": cs},
           {"name": "query-oracle", "accuracy": 0.9, "strong_tokens": 200.0},
           {"name": "threshold:0.3", "accuracy": 0.7, "strong_tokens": 100.0, "family": "threshold:0.3,0.6"},
           {"name": "threshold:0.6", "accuracy": 0.8, "strong_tokens": 200.0, "family": "threshold:0.3,0.6"}]
    table = summarize(pts, aw, as_, cs)
    curves = {"threshold:0.3,0.6": curve_metrics([0, 100, 200], [aw, 0.7, 0.8], aw, as_, cs)}
    rows = {r["family"]: r for r in paper_rows(table, curves, aw, as_, cs)}
    assert list(rows) == ["weak-only", "strong-only", "threshold:0.3,0.6", "query-oracle"]
    thr, orc = rows["threshold:0.3,0.6"], rows["query-oracle"]
    # PGR 0.5 = accuracy 0.6, reached on (0, 0.4)-(100, 0.7) at 66.7 tokens = 16.7% of 400
    assert thr["level"] == "step" and thr["cpt50"] == pytest.approx(200 / 3 / 400)
    assert (thr["accuracy"], thr["strong_tokens"], thr["pgr"]) == (0.8, 200.0, pytest.approx(1.0))
    # the oracle alone: its front is the mix of cheap-only and its point, accuracy 0.6 at 80 tokens
    assert orc["level"] == "query" and orc["points"] == 1 and orc["cpt50"] == pytest.approx(80 / 400)
    # IBC = 0.5 / 200 against the strong-only 0.4 / 400: Delta-IBC 1.5
    assert orc["delta_ibc_mean"] == pytest.approx(1.5)
    text = paper_table(list(rows.values()))
    assert "16.7%" in text and "20.0%" in text and text.splitlines()[0].split()[:3] == ["family", "level", "points"]


def test_cli_prints_the_paper_layout(capsys):
    from trimpomdp.cli.main import main

    assert main(["simulate-routing", str(SPEC), "--sweep", "takeover:threshold:0.3,0.6", "--sweep", "query:0.3,0.6",
                 "--policy", "query-oracle", "--episodes", "2000", "--mode", "sequence"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("paper layout"):].splitlines()
    names = {ln.split()[0]: ln.split()[1] for ln in table[3:8]}
    assert names == {"weak-only": "anchor", "strong-only": "anchor", "takeover:threshold:0.3,0.6": "step+takeover",
                     "query:0.3,0.6": "query", "query-oracle": "query"}
