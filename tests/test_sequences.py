"""Score sequences: loaders (score-steps, ReasonEval), round trips, labelled steps, the ProcessBench
reconstruction (invariants checked on the shared data), and one-line FormatErrors naming file and line."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.errors import FormatError, ModelError
from trimpomdp.observation_models.sequences import (ScoreSequence, detect_format, estimate_p_weak, hazard_p_weak,
                                                    is_sequence_file, labelled_steps, load_reasoneval,
                                                    load_score_steps, load_sequences, partition_ends,
                                                    reconstruct_processbench, save_sequences, step_table)

score = st.floats(0, 1, allow_nan=False)


@st.composite
def sequences(draw):
    n = draw(st.integers(1, 12))
    scores = draw(st.lists(score, min_size=n, max_size=n))
    fe = draw(st.one_of(st.none(), st.integers(0, n - 1)))
    return ScoreSequence(str(draw(st.integers(0, 10**6))), scores, fe, group=draw(st.sampled_from(["a", "b", "c"])))


@given(sequences())
def test_pairs_and_states_follow_the_definition(q):
    P = q.pairs()
    assert P[0, 0] == 1.0
    for t in range(1, len(q)):
        assert P[t, 0] == min(q.scores[:t])
    assert np.all(P[:, 1] == np.asarray(q.scores))
    states = q.states()
    fe = len(q) if q.first_error is None else q.first_error
    assert states == ["correct"] * fe + (["fresh_error"] + ["derailed"] * (len(q) - fe - 1) if fe < len(q) else [])


@settings(max_examples=40, deadline=None)
@given(st.lists(sequences(), min_size=1, max_size=6, unique_by=lambda q: q.id))
def test_save_load_round_trip(tmp_path_factory, seqs):
    path = tmp_path_factory.mktemp("rt") / "s.jsonl"
    save_sequences(seqs, path)
    back = load_sequences(path)
    assert [(q.id, q.scores, q.first_error, q.group, q.kind) for q in back] == \
        [(q.id, q.scores, q.first_error, q.group, q.kind) for q in seqs]


def test_shared_prefixes_counted_once_per_group():
    a = ScoreSequence("a", [0.9, 0.8, 0.1], 2, group="g")
    b = ScoreSequence("b", [0.9, 0.8, 0.3, 0.2], 2, group="g")  # same correct prefix, other error
    c = ScoreSequence("c", [0.9, 0.8, 0.1], 2, group="h")  # same scores, other question
    data, groups = labelled_steps([a, b, c])
    assert data.counts() == {"correct": 4, "fresh_error": 3, "derailed": 1}
    assert sorted(groups.tolist()) == ["g"] * 5 + ["h"] * 3
    assert labelled_steps([a, b, c], dedupe=False)[0].counts()["correct"] == 6
    one, _ = labelled_steps([a], dims=1)
    assert one.X.shape == (3, 1) and np.allclose(one.X[:, 0], a.scores)
    *_, unique = step_table([a, b])
    assert unique.tolist() == [True, True, True, False, False, True, True]


def test_hazard_known_answer():
    # correct solution of 3 steps, errors at steps 0 and 2: 2 errors over 3 + 1 + 3 steps at risk
    assert hazard_p_weak([3, 4, 5], [None, 0, 2]) == pytest.approx(1 - 2 / 7)
    assert estimate_p_weak([ScoreSequence("x", [0.5] * 3), ScoreSequence("y", [0.5] * 4, 0),
                            ScoreSequence("z", [0.5] * 5, 2)]) == pytest.approx(1 - 2 / 7)
    with pytest.raises(ModelError):
        hazard_p_weak([], [])


def test_score_sequence_refuses_bad_values():
    with pytest.raises(ModelError, match="first_error"):
        ScoreSequence("x", [0.5, 0.5], 2)
    with pytest.raises(ModelError, match=r"\[0, 1\]"):
        ScoreSequence("x", [1.5])
    with pytest.raises(ModelError, match="no first-error label"):
        step_table([ScoreSequence("x", [0.5], None, labelled=False, kind="swap steps")])


def _write(tmp_path, name, lines):
    p = tmp_path / name
    p.write_text("".join((ln if isinstance(ln, str) else json.dumps(ln)) + "\n" for ln in lines))
    return p


RE = {"id": 0, "error_type": "random number", "first_perturbed_step": 1, "steps": ["a", "b", "c"],
      "scores": [0.9, 0.2, 0.4], "question": "q1", "answer": "1"}


def test_reasoneval_kinds_groups_and_labels(tmp_path):
    other = dict(RE, id=1, error_type="swap solutions", first_perturbed_step=82)
    op = dict(RE, id=2, error_type="random operation", question="q2")
    seqs = load_reasoneval(_write(tmp_path, "re.jsonl", [RE, other, op]))
    assert [q.labelled for q in seqs] == [True, False, True]
    assert seqs[0].first_error == 1 and seqs[1].first_error is None and seqs[1].perturbed_step == 82
    assert seqs[0].group == seqs[1].group != seqs[2].group
    assert detect_format(tmp_path / "re.jsonl") == "reasoneval"


@pytest.mark.parametrize("line, field", [
    ("{not json", "invalid JSON"),
    (dict(RE, scores=[0.9, 1.2, 0.4]), '"scores"'),
    (dict(RE, scores=[]), '"scores"'),
    (dict(RE, error_type="typo"), '"error_type"'),
    (dict(RE, first_perturbed_step=3), '"first_perturbed_step"'),
    (dict(RE, first_perturbed_step=True), '"first_perturbed_step"'),
    (dict(RE, steps=["a"]), '"steps"'),
    (dict(RE, question=None), '"question"'),
    ([1, 2], "JSON object"),
])
def test_reasoneval_bad_line_names_file_and_line(tmp_path, line, field):
    p = _write(tmp_path, "re.jsonl", [RE, "", line])
    with pytest.raises(FormatError) as ei:
        load_reasoneval(p)
    assert ei.value.path == str(p) and ei.value.line == 3 and field in str(ei.value)
    assert "\n" not in str(ei.value)


@pytest.mark.parametrize("line, field", [
    ({"id": "a", "scores": [0.5, 0.5], "label": 2}, '"label"'),
    ({"id": "a", "scores": [0.5, 0.5], "label": "1"}, '"label"'),
    ({"id": [1], "scores": [0.5], "label": -1}, '"id"'),
    ({"id": "a", "scores": [0.5], "label": -1, "group": 3}, '"group"'),
    ({"id": "x", "scores": [0.5], "label": -1}, "twice"),
])
def test_score_steps_bad_line_names_file_and_line(tmp_path, line, field):
    p = _write(tmp_path, "s.jsonl", [{"id": "x", "scores": [0.2, 0.9], "label": 0, "prm": "judge"}, line])
    with pytest.raises(FormatError) as ei:
        load_score_steps(p)
    assert ei.value.path == str(p) and ei.value.line == 2 and field in str(ei.value)


def test_format_detection(tmp_path):
    ss = _write(tmp_path, "s.jsonl", [{"id": "x", "scores": [0.2, 0.9], "label": 0, "prm": "judge"}])
    assert detect_format(ss) == "score-steps" and is_sequence_file(ss)
    assert load_sequences(ss)[0].kind == "flawed"
    obs = _write(tmp_path, "o.jsonl", [{"obs": [0.2, 0.3], "state": "correct"}])
    assert not is_sequence_file(obs)
    with pytest.raises(FormatError, match="not a sequence file"):
        load_sequences(obs)
    assert not is_sequence_file(tmp_path / "missing.jsonl")


def test_partition_ends():
    assert partition_ends(3) == [1, 2, 3]
    assert partition_ends(9) == [3, 6, 9]
    assert partition_ends(13) == [4, 8, 12, 13]
    assert partition_ends(1) == [1]


def test_shared_reasoneval_figures(data_dir):
    seqs = load_sequences(data_dir / "real_sequences" / "reasoneval_perturbation_mathshepherd.jsonl")
    assert len(seqs) == 1064
    errors = [q for q in seqs if q.labelled]
    assert {q.kind for q in errors} == {"random number", "random operation"} and len(errors) == 328
    data, groups = labelled_steps(errors)
    assert data.counts() == {"correct": 1375, "fresh_error": 328, "derailed": 1877}
    assert len(set(groups)) == 144


@pytest.fixture(scope="module")
def reconstruction(data_dir):
    return reconstruct_processbench(data_dir / "prm_obs_processbench_math.npz",
                                    data_dir / "processbench" / "math.json", data_dir / "benchmarks" / "math500.jsonl")


def test_processbench_reconstruction_invariants(reconstruction, data_dir):
    r = reconstruction
    assert r.checks == {"items": 888, "correct_items": 360, "flawed_items": 528, "flawed_with_later_step": 499,
                        "monotone_pairs": 873, "exact_pairs": 295, "full_correct": 116, "derailed_le": 499,
                        "derailed_eq": 380, "forced_derailed": 91, "sequences": 344}
    z = np.load(data_dir / "prm_obs_processbench_math.npz")
    assert np.array_equal(r.points.X, np.concatenate([z["correct"], z["fresh_error"], z["derailed"]]))
    rows = {(g, s, tuple(x)) for g, s, x in zip(r.groups, r.points.y, r.points.X)}
    for q in r.sequences:  # every reconstructed step is a row of the npz, of its item and state
        for x, s in zip(q.pairs(), q.states()):  # (steps before an error are no rows: the npz omits them)
            assert (q.group, s, tuple(x)) in rows or (s == "correct" and q.first_error is not None)
        if q.first_error is not None:
            assert q.first_error in (0, 1)
    full = [q for q in r.sequences if q.first_error is None]
    assert len(full) == 116 and sum(map(len, full)) == 411


def _tiny_pb(tmp_path, fresh_min=1.0):
    items = [{"id": "c", "problem": "p1", "steps": ["a", "b"], "label": -1},
             {"id": "f", "problem": "p2", "steps": ["a", "b"], "label": 0}]
    (tmp_path / "items.json").write_text(json.dumps(items))
    np.savez(tmp_path / "obs.npz", correct=np.array([[1.0, 0.9], [0.9, 0.8]]),
             fresh_error=np.array([[fresh_min, 0.1]]), derailed=np.array([[0.1, 0.5]]))
    return tmp_path / "obs.npz", tmp_path / "items.json"


def test_reconstruction_known_answer_and_refusals(tmp_path):
    npz, items = _tiny_pb(tmp_path)
    r = reconstruct_processbench(npz, items)
    assert [(q.id, q.scores, q.first_error) for q in r.sequences] == [("c", (0.9, 0.8), None),
                                                                      ("f", (0.1, 0.5), 0)]
    npz, items = _tiny_pb(tmp_path, fresh_min=0.7)  # first step wrong, yet a min below 1.0
    with pytest.raises(FormatError, match="does not match"):
        reconstruct_processbench(npz, items)
