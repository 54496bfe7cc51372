"""Labelled data loading (incl. ProcessBench prefix labelling), diagnostics and the ``fit-obs`` CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.cli.main import main
from trimpomdp.errors import FormatError, ModelError
from trimpomdp.observation_models import BinnedObservationModel, load_binned
from trimpomdp.observation_models import diagnostics as dg
from trimpomdp.observation_models.data import load_labelled, processbench_prefixes
from trimpomdp.observation_models.kde import ReflectedKDE

ITEMS = [
    {"id": "p-0", "problem": "a", "steps": ["s1", "s2", "s3"], "label": -1},
    {"id": "p-1", "problem": "b", "steps": ["s1", "s2", "s3", "s4"], "label": 1},
    {"id": "p-2", "problem": "c", "steps": ["s1", "s2"], "label": 0},
]
SCORES = [
    {"id": "p-0", "scores": [0.9, 0.8, 0.95]},
    {"id": 1, "scores": [0.7, 0.2, 0.6, 0.1]},  # by 0-based index
    {"id": "p-2", "scores": [0.3, 0.5]},
]


def _write_pb(tmp_path, scores=SCORES):
    items = tmp_path / "pb.json"
    items.write_text(json.dumps(ITEMS))
    sc = tmp_path / "scores.jsonl"
    sc.write_text("".join(json.dumps(r) + "\n" for r in scores))
    return items, sc


def test_processbench_labelling_known_answer(tmp_path):
    items, sc = _write_pb(tmp_path)
    d = load_labelled(sc, labels=items)
    expected = [
        ([1.0, 0.9], "correct"), ([0.9, 0.8], "correct"), ([0.8, 0.95], "correct"),
        ([0.7, 0.2], "fresh_error"), ([0.2, 0.6], "derailed"), ([0.2, 0.1], "derailed"),
        ([1.0, 0.3], "fresh_error"), ([0.3, 0.5], "derailed"),
    ]
    assert d.X.tolist() == [e[0] for e in expected]
    assert d.y.tolist() == [e[1] for e in expected]
    assert d.counts() == {"correct": 3, "fresh_error": 2, "derailed": 3}
    d1 = load_labelled(sc, labels=items, dims=1)
    assert d1.X[:, 0].tolist() == [e[0][1] for e in expected]
    pre = load_labelled(sc, labels=items, pre_error_correct=True)
    assert pre.X[3].tolist() == [1.0, 0.7] and pre.y[3] == "correct" and len(pre.y) == 9


@pytest.mark.parametrize("bad, msg, line", [
    ({"id": "nope", "scores": [0.5]}, "matches no item", 2),
    ({"id": "p-2", "scores": [0.5]}, "1 scores for item", 2),
    ({"id": "p-0", "scores": [0.5, 2.0, 0.1]}, "in \\[0, 1\\]", 2),
    ({"id": "p-0", "scores": [0.9, 0.8, 0.95]}, "scored twice", 2),
    ({"scores": [0.5]}, "expected an object", 2),
])
def test_processbench_errors_name_the_line(tmp_path, bad, msg, line):
    items, sc = _write_pb(tmp_path, [SCORES[0], bad])
    with pytest.raises(FormatError, match=msg) as ei:
        load_labelled(sc, labels=items)
    assert ei.value.line == line


def test_processbench_dict_scores_and_bad_label(tmp_path):
    d = processbench_prefixes(ITEMS, {"p-2": [0.3, 0.5]})
    assert d.y.tolist() == ["fresh_error", "derailed"]
    bad = tmp_path / "pb.json"
    bad.write_text(json.dumps([{"steps": ["a"], "label": 3}]))
    sc = tmp_path / "s.jsonl"
    sc.write_text('{"id": 0, "scores": [0.5]}\n')
    with pytest.raises(FormatError, match="label 3"):
        load_labelled(sc, labels=bad)


def test_observation_formats_agree(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(9, 2)).round(6)
    y = np.array(["correct", "fresh_error", "derailed"] * 3)
    np.savez(tmp_path / "xy.npz", X=X, y=y)
    np.savez(tmp_path / "per.npz", **{s: X[y == s] for s in ("correct", "fresh_error", "derailed")})
    (tmp_path / "d.csv").write_text("prev,cur,state\n" + "".join(f"{a},{b},{s}\n" for (a, b), s in zip(X, y)))
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"obs": x.tolist(), "state": s}) + "\n"
                                              for x, s in zip(X, y)))
    ref = load_labelled(tmp_path / "xy.npz")
    for name in ("per.npz", "d.csv", "d.jsonl"):
        d = load_labelled(tmp_path / name)
        for s in ref.states:
            assert np.allclose(np.sort(d.by_state()[s], 0), np.sort(ref.by_state()[s], 0))
    assert load_labelled(tmp_path / "d.csv", dims=1).X.shape == (9, 1)


@pytest.mark.parametrize("name, text, msg, line", [
    ("a.csv", "0.1,0.2,correct\n", "header", 1),
    ("b.csv", "p,c,state\n0.1,0.2,correct\n0.1,correct\n", "2 fields", 3),
    ("c.csv", "p,c,state\n0.1,x,correct\n", "non-numeric", 2),
    ("d.csv", "p,c,state\n0.1,0.2,correct\n0.1,1.5,correct\n", "not in \\[0, 1\\]", 3),
    ("e.jsonl", '{"obs": [0.1], "state": "c"}\n{"obs": [0.1]}\n', "expected an object", 2),
    ("f.jsonl", '{"obs": [0.1], "state": "c"}\nnot json\n', "invalid JSON", 2),
    ("g.jsonl", '{"obs": [0.1], "state": "c"}\n{"obs": [0.1, 0.2], "state": "c"}\n', "earlier lines", 2),
    ("h.txt", "x", "unknown data format", None),
])
def test_observation_file_errors(tmp_path, name, text, msg, line):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(FormatError, match=msg) as ei:
        load_labelled(p)
    assert ei.value.line == line


def test_diagnostics_known_answers():
    centers = np.array([[0.25], [0.75]])
    a = BinnedObservationModel(("x", "y"), centers, [[0.5, 0.5], [1.0, 0.0]], 0.5)
    b = BinnedObservationModel(("y", "x"), centers, [[0.2, 0.8], [0.5, 0.5]], 0.5)
    assert dg.tv_distance(a, b) == pytest.approx({"x": 0.0, "y": 0.8})
    c = BinnedObservationModel(("x",), np.array([[0.5]]), [[1.0]], 1.0)
    with pytest.raises(ModelError, match="grids differ"):
        dg.tv_distance(a, c)
    post = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9]])
    assert dg.ovr_auc(post, ["x", "x", "y", "y"], ("x", "y")) == {"x": 1.0, "y": 1.0}


def test_cross_validate_separable_states():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.uniform(0, 0.3, (40, 1)), rng.uniform(0.7, 1, (40, 1))])
    y = np.array(["lo"] * 40 + ["hi"] * 40)
    r = dg.cross_validate(X, y, lambda: ReflectedKDE(bandwidth="scott"), folds=4)
    assert r["states"] == ("hi", "lo")  # non-TRIM states sorted
    for s in ("lo", "hi"):
        assert r["heldout_loglik"][s] > np.log(1 / 0.3) - 0.5  # about as concentrated as U(0, 0.3)
    assert min(dg.ovr_auc(r["posterior"], y, r["states"]).values()) > 0.97
    with pytest.raises(ModelError, match="too few"):
        dg.cross_validate(X[:45], y[:45], lambda: ReflectedKDE(bandwidth="scott"), folds=5)


def test_cli_fit_obs_shared_data_against_reference(tmp_path, data_dir, capsys):
    out, bins, png = tmp_path / "obs.npz", tmp_path / "bins.npz", tmp_path / "obs.png"
    rc = main(["fit-obs", str(data_dir / "prm_obs_processbench_math.npz"), "--bandwidth", "scott",
               "--folds", "2", "--compare", str(data_dir / "anchor_obs_bins_math_0.05.npz"),
               "--export-bins", str(bins), "--plot", str(png), "--json", "-o", str(out)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert list(summary["states"]) == ["correct", "fresh_error", "derailed"]
    for s, row in summary["states"].items():
        assert row["tv_to_reference"] < 0.05
        assert np.isfinite(row["heldout_loglik"]) and 0.5 < row["auc"] <= 1
    assert summary["states"]["correct"]["n"] == 1233
    table = BinnedObservationModel.load(bins)
    assert np.array_equal(load_binned(out).probs, table.probs)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_fit_obs_processbench_1d_table(tmp_path, capsys):
    items, sc = _write_pb(tmp_path)
    out = tmp_path / "m.npz"
    rc = main(["fit-obs", str(sc), "--labels", str(items), "--dims", "1", "--bandwidth", "0.1",
               "--folds", "0", "--bin-size", "0.1", "-o", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "fresh_error" in text and "in-sample" in text
    b = load_binned(out)
    assert b.dims == 1 and b.n_bins == 10 and b.states == ("correct", "fresh_error", "derailed")


@pytest.mark.parametrize("args, msg", [
    (["--bandwidth", "wide"], "--bandwidth"),
    (["--bin-size", "0.3"], "whole bins"),
    (["--bandwidth", "scott"], "single point"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, msg):
    p = tmp_path / "d.jsonl"
    p.write_text('{"obs": [0.2], "state": "a"}\n{"obs": [0.4], "state": "a"}\n{"obs": [0.3], "state": "b"}\n')
    rc = main(["fit-obs", str(p), "--folds", "0", "-o", str(tmp_path / "o.npz")] + args)
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1


def test_processbench_real_items_prefix_counts(data_dir, tmp_path):
    items = json.loads((data_dir / "processbench" / "math.json").read_text())
    sc = tmp_path / "scores.jsonl"
    rng = np.random.default_rng(0)
    with open(sc, "w") as fh:
        for i, it in enumerate(items):  # ids as in the file ("math-N") for even items, indices for odd ones
            key = it["id"] if i % 2 == 0 else i
            scores = (0.99 * rng.uniform(size=len(it["steps"]))).round(4).tolist()
            fh.write(json.dumps({"id": key, "scores": scores}) + "\n")
    d = load_labelled(sc, labels=data_dir / "processbench" / "math.json")
    ok = [it for it in items if it["label"] == -1]
    bad = [it for it in items if it["label"] >= 0]
    assert d.counts() == {"correct": sum(len(it["steps"]) for it in ok), "fresh_error": len(bad),
                          "derailed": sum(len(it["steps"]) - it["label"] - 1 for it in bad)}
    # the prefixes whose first coordinate is 1.0 (no earlier step) are the first steps of used solutions
    assert np.sum(d.X[:, 0] == 1.0) == sum(1 for it in items if it["label"] in (-1, 0))


# ---------------------------------------------------------------------------- AUC and bounded diagnostics
def _auc_pairs(scores, positive) -> float:
    """The definition: P(score of a positive > score of a negative) + P(tie) / 2 over all pairs."""
    s, p = np.asarray(scores, float), np.asarray(positive, bool)
    d = s[p][:, None] - s[~p][None, :]
    return float(np.mean((d > 0) + 0.5 * (d == 0)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6), st.booleans()), min_size=2, max_size=60))
def test_auc_equals_the_pairwise_definition_with_ties(pairs):
    scores = [v / 6 for v, _ in pairs]  # few distinct values: many ties
    positive = [b for _, b in pairs]
    got = dg.auc(scores, positive)
    if all(positive) or not any(positive):
        assert np.isnan(got)
    else:
        assert got == pytest.approx(_auc_pairs(scores, positive), abs=1e-12)


def test_evaluation_sample_is_stratified_and_exact_below_the_limit():
    y = np.array(["a"] * 700 + ["b"] * 290 + ["c"] * 10)
    assert np.array_equal(dg.evaluation_sample(y, 1000), np.arange(1000))
    idx = dg.evaluation_sample(y, 100, seed=3)
    assert np.all(np.diff(idx) > 0)
    assert [int(np.sum(y[idx] == s)) for s in "abc"] == [70, 29, 1]
    assert np.array_equal(idx, dg.evaluation_sample(y, 100, seed=3))


def test_cross_validate_evaluates_a_sample():
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.uniform(0, 0.3, (60, 1)), rng.uniform(0.7, 1, (60, 1))])
    y = np.array(["lo"] * 60 + ["hi"] * 60)
    full = dg.cross_validate(X, y, lambda: ReflectedKDE(bandwidth="scott"), folds=3)
    assert np.array_equal(full["index"], np.arange(120)) and np.array_equal(full["y"], y)
    part = dg.cross_validate(X, y, lambda: ReflectedKDE(bandwidth="scott"), folds=3, max_eval=30)
    assert part["posterior"].shape == (30, 2) and part["index"].size == 30
    # the same folds: a sampled point's out-of-fold posterior is the one of the full run
    assert np.allclose(part["posterior"], full["posterior"][part["index"]])


def _trim_npz(path, data_dir, drop=None, empty=None):
    d = np.load(data_dir / "prm_obs_processbench_math.npz")
    arrays = {s: d[s][::4] for s in ("correct", "fresh_error", "derailed") if s != drop}
    if empty:
        arrays[empty] = np.zeros((0, 2))
    np.savez(path, **arrays)
    return path


def test_cli_empty_state_array_refused(tmp_path, data_dir, capsys):
    p = _trim_npz(tmp_path / "e.npz", data_dir, empty="derailed")
    out = tmp_path / "o.npz"
    assert main(["fit-obs", str(p), "--folds", "0", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "array 'derailed' is empty" in err and not out.exists()


def test_cli_missing_trim_state_needs_partial_states(tmp_path, data_dir, capsys):
    p = _trim_npz(tmp_path / "m.npz", data_dir, drop="derailed")
    out = tmp_path / "o.npz"
    assert main(["fit-obs", str(p), "--folds", "0", "--bandwidth", "scott", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no 'derailed' points" in err and "--partial-states" in err
    assert not out.exists()
    assert main(["fit-obs", str(p), "--folds", "0", "--bandwidth", "scott", "--partial-states",
                 "-o", str(out)]) == 0
    assert load_binned(out).states == ("correct", "fresh_error")


def test_cli_model_is_saved_before_the_diagnostics(tmp_path, data_dir, capsys, monkeypatch):
    p = _trim_npz(tmp_path / "d.npz", data_dir)
    out = tmp_path / "o.npz"

    def broken(*a, **k):
        raise ModelError("diagnostics failed")

    monkeypatch.setattr(dg, "in_sample_posterior", broken)
    assert main(["fit-obs", str(p), "--folds", "0", "--bandwidth", "scott", "-o", str(out)]) == 2
    assert "diagnostics failed" in capsys.readouterr().err
    assert load_binned(out).n_bins == 400  # written before the diagnostics ran
    assert main(["fit-obs", str(p), "--folds", "0", "--bandwidth", "scott", "--no-diagnostics", "--json",
                 "-o", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["diagnostics"]["skipped"] and all("auc" not in r for r in summary["states"].values())


def test_cli_folds_checked_before_fitting(tmp_path, capsys):
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps({"obs": [v], "state": s}) + "\n"
                         for v, s in [(0.1, "a"), (0.2, "a"), (0.3, "a"), (0.8, "b"), (0.9, "b")]))
    out = tmp_path / "o.npz"
    assert main(["fit-obs", str(p), "--bandwidth", "0.1", "--folds", "2", "-o", str(out)]) == 2
    assert "too few for 2-fold" in capsys.readouterr().err and not out.exists()
