"""Every artifact is validated on load: a damaged file gives one TrimError line naming the file and the
array or field, never a segfault, a raw traceback or a silently different policy."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from trimpomdp import schemas
from trimpomdp.artifacts import META_KEY, load_npz, save_npz
from trimpomdp.cli.main import main
from trimpomdp.errors import FormatError, TrimError
from trimpomdp.observation_models import BinnedObservationModel, ReflectedKDE, load_binned, save_obs_model
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.policies.xml import read_policy_xml, write_policy_xml
from trimpomdp.routing import load_policy
from trimpomdp.routing.policies import PomdpPolicy
from trimpomdp.routing.spec import TrimModel

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "data" / "trim_math_plain.json"
SPEC_FILES = ("trim_math_plain.json", "trim_math_obs_0.05.npz", "prm_obs_processbench_math.npz")


def _copy_spec(d: Path) -> Path:
    for f in SPEC_FILES:
        shutil.copy(SPEC.parent / f, d / f)
    return d / "trim_math_plain.json"


@pytest.fixture(scope="module")
def solved(tmp_path_factory):
    """A policy solved by the CLI on a private copy of the default spec, and a capped one."""
    d = tmp_path_factory.mktemp("solved")
    spec = _copy_spec(d)
    assert main(["solve", str(spec), "--budget", "lambda=0.15", "-o", str(d / "x.npz")]) == 0
    assert main(["solve", str(spec), "--budget", "cap=2regen,lambda=0.02", "-o", str(d / "cap.npz")]) == 0
    return d


def _parts(path):
    arrays, meta = load_npz(path)
    meta.pop("format"), meta.pop("version")
    return {k: v.copy() for k, v in arrays.items()}, meta


def _write(path, arrays, meta, fmt="trimpomdp.trim_policy", version=1):
    save_npz(path, arrays, meta, fmt, version)
    return path


def _one_line_error(exc, *needles):
    msg = str(exc)
    assert "\n" not in msg, msg
    for n in needles:
        assert n in msg, (n, msg)
    return msg


def _set(a, key, fn):
    a = dict(a)
    a[key] = fn(a[key])
    return a


def _nan_at(i):
    def f(x):
        x = x.copy()
        x[i] = np.nan
        return x

    return f


def _add_at(i, v):
    def f(x):
        x = x.copy()
        x[i] += v
        return x

    return f


# ------------------------------------------------------------------ routing policy (.npz) arrays
ARRAY_CASES = {
    # the repros: a one-column level_offsets used to segfault, reversed step offsets gave 0.52
    "level_offsets_one_column": (lambda a: _set(a, "level_offsets", lambda x: x[:, :1].copy()), "level_offsets"),
    "step_offsets_reversed": (lambda a: _set(a, "step_offsets", lambda x: x[::-1].copy()), "step_offsets"),
    "nan_slope": (lambda a: _set(a, "line_slopes", _nan_at(5)), "line_slopes"),
    "nan_intercept": (lambda a: _set(a, "line_intercepts", _nan_at(-3)), "line_intercepts"),
    "offset_out_of_range": (lambda a: _set(a, "level_offsets", _add_at((3, 1), 10_000)), "level_offsets"),
    "negative_offset": (lambda a: _set(a, "level_offsets", _add_at((0, 0), -1)), "level_offsets"),
    "short_slopes": (lambda a: _set(a, "line_slopes", lambda x: x[:100].copy()), "line_slopes"),
    "inner_step_offset_moved": (lambda a: _set(a, "step_offsets", _add_at(5, 1)), "level_offsets"),
    "level_offsets_end_moved": (lambda a: _set(a, "level_offsets", _add_at((4, 1), 1)), "level_offsets"),
    "float_offsets": (lambda a: _set(a, "step_offsets", lambda x: x.astype(float)), "step_offsets"),
    "breaks_unsorted": (lambda a: _set(a, "line_breaks", lambda x: np.where(np.isinf(x), x, x[::-1])),
                        "line_breaks"),
    "last_break_finite": (lambda a: _set(a, "line_breaks", lambda x: np.where(np.isinf(x), 0.99, x)),
                          "line_breaks"),
    "A_changed": (lambda a: _set(a, "A", _add_at(2, 1.0)), "'A'"),
    "B_above_one": (lambda a: _set(a, "B", _add_at(0, 5.0)), "'B'"),
    "A_missing": (lambda a: {k: v for k, v in a.items() if k != "A"}, "array 'A': is missing"),
    "obs_rows_swapped": (lambda a: _set(a, "obs_probs", lambda x: x[::-1].copy()), "model_fingerprint"),
    "obs_row_not_a_distribution": (lambda a: _set(a, "obs_probs", lambda x: x * 0.5), "obs_probs"),
    "obs_centers_shuffled": (lambda a: _set(a, "obs_centers", lambda x: x[::-1].copy()), "obs_centers"),
    "obs_truth_wrong_shape": (lambda a: _set(a, "obs_truth", lambda x: x[:, :10].copy()), "obs_truth"),
    "string_slopes": (lambda a: _set(a, "line_slopes", lambda x: x.astype(str)), "line_slopes"),
}


@pytest.mark.parametrize("case", list(ARRAY_CASES))
def test_damaged_policy_arrays_are_refused(solved, tmp_path, case):
    edit, field = ARRAY_CASES[case]
    arrays, meta = _parts(solved / "x.npz")
    bad = _write(tmp_path / "bad.npz", edit(arrays), meta)
    with pytest.raises(FormatError) as e:
        PomdpPolicy.load(bad)
    _one_line_error(e.value, str(bad), field)


def test_inner_level_boundary_moved(solved, tmp_path):
    # capped policy: moving a boundary between budget levels leaves an envelope without its +inf end
    arrays, meta = _parts(solved / "cap.npz")
    bad = _write(tmp_path / "bad.npz", _set(arrays, "level_offsets", _add_at((4, 1), 1)), meta)
    with pytest.raises(FormatError) as e:
        PomdpPolicy.load(bad)
    _one_line_error(e.value, str(bad), "line_breaks")


def _meta(fn):
    def edit(m):
        m = json.loads(json.dumps(m))
        fn(m)
        return m

    return edit


META_CASES = {
    "no_lam": (_meta(lambda m: m.pop("lam")), "field 'lam'"),  # was KeyError: 'lam'
    "lam_text": (_meta(lambda m: m.update(lam="abc")), "field 'lam'"),
    "lam_negative": (_meta(lambda m: m.update(lam=-1)), "field 'lam'"),
    "cap_without_limit": (_meta(lambda m: m.update(cap={"kind": "regen"})), "field 'cap.limit'"),  # KeyError
    "cap_kind": (_meta(lambda m: m.update(cap={"kind": "dollars", "limit": 1, "unit": 1})), "field 'cap.kind'"),
    "cap_levels": (_meta(lambda m: m.update(cap={"kind": "regen", "limit": 3, "unit": 1})), "field 'cap'"),
    "cap_list": (_meta(lambda m: m.update(cap=[1, 2])), "field 'cap'"),
    "bin_size_zero": (_meta(lambda m: m["spec"].update(obs_bin_size=0)), "spec.obs_bin_size"),  # ZeroDivision
    "bin_size_text": (_meta(lambda m: m["spec"].update(obs_bin_size="0.05")), "spec.obs_bin_size"),
    "bin_size_other_grid": (_meta(lambda m: m["spec"].update(obs_bin_size=0.1)), "obs_bin_size"),
    "no_spec": (_meta(lambda m: m.pop("spec")), "field 'spec'"),
    "spec_p_weak_text": (_meta(lambda m: m["spec"].update(p_weak="x")), "spec.p_weak"),
    "spec_p_weak_changed": (_meta(lambda m: m["spec"].update(p_weak=0.5)), "model_fingerprint"),
    "spec_pmf_short": (_meta(lambda m: m["spec"].update(max_steps=29, length_distribution={
        "pmf": m["spec"]["length_distribution"]["pmf"][:29]})), "model_fingerprint"),
    "max_steps": (_meta(lambda m: m.update(max_steps=12)), "field 'max_steps'"),
    "max_steps_float": (_meta(lambda m: m.update(max_steps=30.0)), "field 'max_steps'"),
    "predicted_text": (_meta(lambda m: m["predicted"].update(accuracy="high")), "predicted.accuracy"),
    "fingerprint_number": (_meta(lambda m: m.update(model_fingerprint=7)), "model_fingerprint"),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_damaged_policy_metadata_is_refused(solved, tmp_path, case):
    edit, field = META_CASES[case]
    arrays, meta = _parts(solved / "x.npz")
    bad = _write(tmp_path / "bad.npz", arrays, edit(meta))
    with pytest.raises(FormatError) as e:
        PomdpPolicy.load(bad)
    _one_line_error(e.value, str(bad), field)


def test_spec_length_mismatch_named(solved, tmp_path):
    # a spec covering fewer steps than the policy (fingerprint removed, so the per-step check speaks)
    arrays, meta = _parts(solved / "x.npz")
    meta.pop("model_fingerprint")
    pmf = meta["spec"]["length_distribution"]["pmf"][:29]
    meta["spec"].update(max_steps=29, length_distribution={"pmf": pmf})
    bad = _write(tmp_path / "bad.npz", arrays, meta)
    with pytest.raises(FormatError) as e:
        PomdpPolicy.load(bad)
    _one_line_error(e.value, "spec.length_distribution", "29")


def test_good_policies_still_load_and_decide(solved):
    for name in ("x.npz", "cap.npz"):
        pol = PomdpPolicy.load(solved / name)
        b = np.array([[0.9, 0.05, 0.05], [0.2, 0.3, 0.5]])
        lv = None if pol.cap is None else np.array([pol.n_levels - 1, 0])
        assert pol.decide_many(b, 3, np.array([50.0, 50.0]), levels=lv).shape == (2,)
    assert PomdpPolicy.load(solved / "cap.npz").n_levels == 3


def test_kernel_arguments_are_checked(solved):
    pol = PomdpPolicy.load(solved / "cap.npz")
    b = np.array([[0.9, 0.05, 0.05]])
    for levels in (np.array([3]), np.array([-1]), np.array([0.5])):
        with pytest.raises(TrimError, match="budget levels"):
            pol.decide_many(b, 2, np.array([10.0]), levels=levels)
    with pytest.raises(TrimError, match="costs"):
        pol.decide_many(b, 2, np.array([-5.0]), levels=np.array([2]))
    with pytest.raises(TrimError, match="steps"):
        pol.decide(b[0], 0, 10)
    with pytest.raises(TrimError, match="shape"):
        pol.q_values(np.ones((2, 4)) / 4, 1, 10.0, levels=np.array([0, 0]))
    qk, qr = pol.q_values(b, 1, np.array([1e300]), levels=np.array([2]))
    assert np.isfinite(qk[0]) and qr[0] < qk[0]


# ------------------------------------------------------------------ through the CLI
@pytest.mark.parametrize("case, field", [
    ("level_offsets_one_column", "level_offsets"),
    ("step_offsets_reversed", "step_offsets"),
    ("nan_slope", "line_slopes"),
    ("short_slopes", "line_slopes"),
    ("no_lam", "lam"),
    ("cap_without_limit", "cap.limit"),
    ("bin_size_zero", "obs_bin_size"),
])
def test_cli_simulate_routing_refuses_damaged_policy(solved, tmp_path, capsys, case, field):
    arrays, meta = _parts(solved / "x.npz")
    if case in ARRAY_CASES:
        arrays = ARRAY_CASES[case][0](arrays)
    else:
        meta = META_CASES[case][0](meta)
    bad = _write(tmp_path / "bad.npz", arrays, meta)
    capsys.readouterr()
    rc = main(["simulate-routing", str(solved / "trim_math_plain.json"), "--policy", f"pomdp:{bad}",
               "--episodes", "50"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("Error:") and "\n" not in err, err
    assert str(bad) in err and field in err


def test_policy_solved_for_an_edited_spec_is_refused(solved, tmp_path, capsys):
    spec = _copy_spec(tmp_path)
    assert main(["solve", str(spec), "--budget", "lambda=0.15", "-o", str(tmp_path / "p.npz")]) == 0
    tm = TrimModel.load(spec)
    assert load_policy(f"pomdp:{tmp_path / 'p.npz'}", tm).meta.get("model_mismatch") is None
    d = json.loads(spec.read_text())
    d["p_weak"] = 0.7
    spec.write_text(json.dumps(d))
    capsys.readouterr()
    rc = main(["simulate-routing", str(spec), "--policy", f"pomdp:{tmp_path / 'p.npz'}", "--episodes", "50"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "model_fingerprint" in err and "p.npz" in err, err
    # another spec file is a deliberate cross-model run: allowed and flagged
    pol = load_policy(f"pomdp:{solved / 'x.npz'}", TrimModel.load(spec))
    assert pol.meta["model_mismatch"] is True


# ------------------------------------------------------------------ the shared header reader
def _raw_npz(path, header):
    np.savez(path, alphas=np.zeros((1, 2)), actions=np.zeros(1, dtype=np.int64), **{META_KEY: header})
    return path


@pytest.mark.parametrize("header, needle", [
    (np.array(json.dumps({"format": "trimpomdp.alpha_policy", "version": "abc"})), "field 'version'"),
    (np.array(json.dumps({"format": "trimpomdp.alpha_policy", "version": True})), "field 'version'"),
    (np.array(json.dumps({"format": "trimpomdp.alpha_policy", "version": 0})), "field 'version'"),
    (np.array(json.dumps([1, 2])), "JSON object"),
    (np.array(json.dumps("text")), "JSON object"),
    (np.array("{broken"), "corrupt metadata"),
    (np.arange(3), "one JSON string"),
])
def test_header_reader(tmp_path, header, needle):
    p = _raw_npz(tmp_path / "h.npz", header)
    with pytest.raises(FormatError) as e:
        load_npz(p, "trimpomdp.alpha_policy")
    _one_line_error(e.value, str(p), needle)


def test_non_regular_files_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe.npz"
    os.mkfifo(fifo)
    (tmp_path / "dir.npz").mkdir()
    (tmp_path / "text.npz").write_text("hello")
    for p in (fifo, tmp_path / "dir.npz"):
        for load in (load_npz, PomdpPolicy.load, AlphaVectorPolicy.load, load_binned, BinnedObservationModel.load):
            with pytest.raises(FormatError, match="not a regular file"):
                load(p)
    with pytest.raises(FormatError, match="not a regular file"):
        read_policy_xml(fifo)
    with pytest.raises(FormatError, match="text.npz"):
        load_npz(tmp_path / "text.npz")


# ------------------------------------------------------------------ alpha-vector policies
def _alpha(tmp_path, alphas, actions, name="a.npz"):
    return _write(tmp_path / name, {"alphas": np.asarray(alphas), "actions": np.asarray(actions)}, {},
                  "trimpomdp.alpha_policy")


def test_alpha_policy_npz_validation(tmp_path):
    good = _alpha(tmp_path, [[1.0, 2.0], [3.0, 0.0]], [0, 1])
    assert AlphaVectorPolicy.load(good).action(np.array([1.0, 0.0])) == 1
    cases = [
        ([[1.0, np.nan], [3.0, 0.0]], [0, 1], "alphas"),
        ([[1.0, np.inf]], [0], "alphas"),
        ([[1.0, 2.0]], [-1], "actions"),
        ([[1.0, 2.0]], [0, 1], "actions"),
        ([1.0, 2.0], [0], "alphas"),
        (np.zeros((0, 2)), np.zeros(0, dtype=np.int64), "alphas"),
        ([[1.0, 2.0]], [0.5], "actions"),
    ]
    for k, (alphas, actions, field) in enumerate(cases):
        p = _alpha(tmp_path, alphas, actions, f"bad{k}.npz")
        with pytest.raises(FormatError) as e:
            AlphaVectorPolicy.load(p)
        _one_line_error(e.value, str(p), field)


XML = ('<?xml version="1.0"?><Policy><AlphaVector vectorLength="{S}" numObsValue="1" numVectors="1">'
       '{body}</AlphaVector></Policy>')


@pytest.mark.parametrize("S, body, needle", [
    (2, '<Vector action="0" obsValue="0">1 nan</Vector>', "entry 1"),
    (2, '<Vector action="0" obsValue="0">inf 1</Vector>', "finite"),
    (2, '<Vector action="-1" obsValue="0">1 2</Vector>', "negative"),
    (2, '<SparseVector action="0" obsValue="0"><Entry>-1 4.5</Entry></SparseVector>', "outside"),
    (2, '<SparseVector action="0" obsValue="0"><Entry>2 4.5</Entry></SparseVector>', "outside"),
    (0, '<Vector action="0" obsValue="0"></Vector>', "vectorLength"),
    (10**12, '<SparseVector action="0" obsValue="0"><Entry>1 1</Entry></SparseVector>', "vectorLength"),
])
def test_policy_xml_validation(tmp_path, S, body, needle):
    p = tmp_path / "bad.policy"
    p.write_text(XML.format(S=S, body=body))
    with pytest.raises(FormatError) as e:
        read_policy_xml(p)
    _one_line_error(e.value, str(p), needle)


def test_cli_simulate_refuses_nan_policy(pomdp_dir, tmp_path, capsys):
    p = _alpha(tmp_path, [[np.nan, 0.0]], [0])
    capsys.readouterr()
    assert main(["simulate", str(pomdp_dir / "tiger.95.POMDP"), str(p), "--episodes", "10"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error:") and "\n" not in err and "a.npz" in err and "alphas" in err
    write_policy_xml(AlphaVectorPolicy(np.zeros((1, 2)), [0]), None, tmp_path / "p.policy")
    text = (tmp_path / "p.policy").read_text().replace("0.0 0.0", "nan 0.0")
    (tmp_path / "p.policy").write_text(text)
    assert main(["simulate", str(pomdp_dir / "tiger.95.POMDP"), str(tmp_path / "p.policy")]) == 2
    err = capsys.readouterr().err.strip()
    assert "p.policy" in err and "finite" in err and "\n" not in err


# ------------------------------------------------------------------ observation models
def _table_arrays():
    with np.load(SPEC.parent / "trim_math_obs_0.05.npz") as z:
        return {k: z[k].copy() for k in z.files}


@pytest.mark.parametrize("edit, needle", [
    (lambda a: a.update(bin_size=np.float64(0.0)), "bin_size"),
    (lambda a: a.update(bin_size=np.float64(np.nan)), "bin_size"),
    (lambda a: a.update(bin_size=np.array([0.05, 0.05])), "bin_size"),
    (lambda a: a.update(bin_size=np.float64(0.1)), "bin"),
    (lambda a: a.update(correct_probs=np.where(np.arange(400) == 7, np.nan, a["correct_probs"])), "correct_probs"),
    (lambda a: a.update(derailed_probs=a["derailed_probs"] * 2), "derailed_probs"),
    (lambda a: a.update(correct_probs=a["correct_probs"].astype(str)), "correct_probs"),
    (lambda a: a.update(correct_probs=a["correct_probs"][:399]), "correct_probs"),
    (lambda a: [a.update({f"{s}_centers": a[f"{s}_centers"][::-1].copy()})
                for s in ("correct", "fresh_error", "derailed")], "bin centre"),
    (lambda a: a.update(correct_centers=a["correct_centers"][None]), "correct_centers"),
    (lambda a: a.update(fresh_error_centers=a["fresh_error_centers"] + 2), "fresh_error_centers"),
])
def test_bins_table_validation(tmp_path, edit, needle):
    a = _table_arrays()
    edit(a)
    p = tmp_path / "obs.npz"
    np.savez(p, **a)
    with pytest.raises(FormatError) as e:
        load_binned(p)
    _one_line_error(e.value, str(p), needle)


def test_spec_reports_bad_observation_table(tmp_path, capsys):
    spec = _copy_spec(tmp_path)
    a = _table_arrays()
    a["bin_size"] = np.float64(0.0)
    np.savez(tmp_path / "trim_math_obs_0.05.npz", **a)
    capsys.readouterr()
    assert main(["simulate-routing", str(spec), "--episodes", "50"]) == 2
    err = capsys.readouterr().err.strip()
    assert "trim_math_obs_0.05.npz" in err and "bin_size" in err and "\n" not in err


@pytest.fixture(scope="module")
def kde_file(tmp_path_factory):
    rng = np.random.default_rng(0)
    X = rng.uniform(0.05, 0.95, size=(30, 2))
    y = np.array(["correct", "fresh_error", "derailed"] * 10)
    m = ReflectedKDE(bandwidth=0.1).fit(X, y)
    p = tmp_path_factory.mktemp("kde") / "kde.npz"
    save_obs_model(m, p, bin_size=0.25)
    return p


@pytest.mark.parametrize("edit, needle", [
    (lambda a, m: m.update(states="correct"), "field 'states'"),
    (lambda a, m: m.update(states=["correct", "correct", "derailed"]), "field 'states'"),
    (lambda a, m: m.update(states=["a", "b", "c", "d"]), "points_3"),
    (lambda a, m: m.update(dims=3), "field 'dims'"),
    (lambda a, m: m.update(dims=1), "field 'dims'"),
    (lambda a, m: m.update(bin_size=0), "field 'bin_size'"),
    (lambda a, m: m.update(bin_size=0.3), "field 'bin_size'"),
    (lambda a, m: m.update(covariance="round"), "field 'covariance'"),
    (lambda a, m: m.update(cv_scales=[1, 2]), "field 'cv_scales'"),
    (lambda a, m: a.update(points_0=np.where(np.arange(2) == 0, np.nan, a["points_0"])), "points_0"),
    (lambda a, m: a.update(points_1=a["points_1"] + 1.5), "points_1"),
    (lambda a, m: a.update(points_2=a["points_2"][:0]), "points_2"),
    (lambda a, m: a.update(bandwidth_0=np.ones((3, 3))), "bandwidth_0"),
    (lambda a, m: a.update(bandwidth_1=-a["bandwidth_1"]), "bandwidth"),
])
def test_fitted_observation_model_validation(kde_file, tmp_path, edit, needle):
    arrays, meta = _parts(kde_file)
    edit(arrays, meta)
    p = _write(tmp_path / "kde.npz", arrays, meta, "trimpomdp.obs_kde")
    with pytest.raises(FormatError) as e:
        load_binned(p)
    _one_line_error(e.value, str(p), needle)


# ------------------------------------------------------------------ spec JSON
@pytest.mark.parametrize("edit, field", [
    (lambda d: d.update(info="notes"), "info"),  # was TypeError/ValueError from dict()
    (lambda d: d.update(p_weak=True), "p_weak"),
    (lambda d: d.update(version="1"), "version"),
    (lambda d: d.update(reward=float("nan")), "reward"),
    (lambda d: d.update(max_steps=2.5), "max_steps"),
    (lambda d: d.update(strong_step_tokens={"lognormal": "big"}), "strong_step_tokens.lognormal"),
    (lambda d: d.update(strong_step_tokens={"lognormal": {"mean": 60, "bins": 10**9}}),
     "strong_step_tokens.lognormal.bins"),
    (lambda d: d.update(strong_step_tokens={"values": ["a"]}), "strong_step_tokens.values[0]"),
    (lambda d: d.update(strong_step_tokens={}), "strong_step_tokens"),
    (lambda d: d.update(length_distribution={"hazard": [0.5, 2]}), "length_distribution.hazard[1]"),
    (lambda d: d.update(length_distribution={"pmf": "0.5"}), "length_distribution.pmf"),
    (lambda d: d.update(observation_model="."), "observation_model"),
    (lambda d: d.update(observation_model="trim_math_plain.json"), "observation_model"),
    (lambda d: d.update(observation_model=5), "observation_model"),
    (lambda d: d.update(observation_points="trim_math_plain.json"), "observation_points"),
    (lambda d: d.update(observation_points="pipe.npz"), "observation_points"),
])
def test_spec_fields(tmp_path, edit, field):
    spec = _copy_spec(tmp_path)
    os.mkfifo(tmp_path / "pipe.npz")
    d = json.loads(spec.read_text())
    edit(d)
    spec.write_text(json.dumps(d))
    with pytest.raises(TrimError) as e:
        TrimModel.load(spec)
    _one_line_error(e.value, str(spec), f"'{field}'")


def test_spec_file_itself_must_be_regular(tmp_path):
    os.mkfifo(tmp_path / "s.json")
    with pytest.raises(FormatError, match="not a regular file"):
        TrimModel.load(tmp_path / "s.json")
    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(TrimError, match="deep.json"):
        TrimModel.load(tmp_path / "deep.json")


# ------------------------------------------------------------------ trace record schema
def _trace_record():
    step = {"index": 1, "text": "s", "model": "weak", "weak_tokens": 3, "strong_tokens": 0, "prm_score": 0.9,
            "observation": [1.0, 0.9], "obs_bin": 3, "belief_before": [0.9, 0.1, 0.0],
            "belief_after": [0.95, 0.05, 0.0], "action": "keep", "q_keep": 1.0, "q_regenerate": 0.5}
    return {"format": "trimpomdp.trace", "version": 1, "id": "0", "question": "q", "reference": "1",
            "policy": "weak", "solution": "s", "answer": "1", "correct": True,
            "tokens": {"weak_kept": 3, "weak_discarded": 0, "strong": 0}, "finish": "answer", "error": None,
            "seconds": 0.5, "steps": [step]}


@pytest.mark.parametrize("edit, field", [
    (lambda r: r.pop("tokens"), "tokens"),
    (lambda r: r.update(finish="done"), "finish"),
    (lambda r: r["steps"][0].update(action="skip"), "steps[0].action"),
    (lambda r: r["steps"][0].update(belief_after=[0.5, 0.6, 0.1]), "steps[0].belief_after"),
    (lambda r: r["tokens"].update(strong=-1), "tokens.strong"),
    (lambda r: r.update(correct="yes"), "correct"),
])
def test_trace_record_schema(edit, field):
    schemas.check_fields(schemas.TRACE_RECORD, _trace_record(), "run.jsonl", line=4)
    rec = _trace_record()
    edit(rec)
    with pytest.raises(FormatError) as e:
        schemas.check_fields(schemas.TRACE_RECORD, rec, "run.jsonl", line=4)
    _one_line_error(e.value, "run.jsonl:4:", f"'{field}'")


# ------------------------------------------------------------------ random damage: TrimError or a valid load
_BAD_VALUES = [None, "x", [1, 2], {"a": 1}, -1, 0, 0.5, 3, 1e308, float("nan"), True, -2**40, 10**400]


def _mutations():
    """(op, key, value index, position) tuples drawn by hypothesis and applied by ``_mutate``."""
    return st.tuples(
        st.sampled_from(["drop", "shape", "nan", "index", "dtype", "meta", "meta_drop", "spec_meta"]),
        st.integers(0, 10_000),
        st.integers(0, len(_BAD_VALUES) - 1),
        st.integers(0, 10_000),
    )


def _mutate(arrays: dict, meta: dict, m):
    op, k, v, pos = m
    arrays, meta = dict(arrays), json.loads(json.dumps(meta))
    keys = sorted(arrays)
    key = keys[k % len(keys)] if keys else None
    if op == "drop" and key:
        arrays.pop(key)
    elif op == "shape" and key:
        x = arrays[key]
        arrays[key] = x.ravel()[: max(x.size - 1 - pos % 3, 0)] if pos % 2 else x[None]
    elif op == "nan" and key and arrays[key].size:
        x = arrays[key].astype(float)
        x.flat[pos % x.size] = np.nan
        arrays[key] = x
    elif op == "index" and key and arrays[key].size:
        x = arrays[key].copy()
        x.flat[pos % x.size] = [-1, 10**6, 0, x.size][pos % 4] if x.dtype.kind in "iu" else -1e6
        arrays[key] = x
    elif op == "dtype" and key:
        arrays[key] = arrays[key].astype(str if pos % 2 else np.float32)
    elif op in ("meta", "meta_drop", "spec_meta"):
        target = meta.get("spec") if op == "spec_meta" and isinstance(meta.get("spec"), dict) else meta
        fields = sorted(target)
        if fields:
            f = fields[pos % len(fields)]
            if op == "meta_drop":
                target.pop(f)
            else:
                target[f] = _BAD_VALUES[v]
    return arrays, meta


def _check_random_damage(tmp_path, arrays, meta, fmt, load, use):
    a, m = arrays, meta
    p = tmp_path / "m.npz"
    save_npz(p, a, m, fmt)
    try:
        obj = load(p)
    except TrimError:
        return
    use(obj)


HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@HYP
@given(st.lists(_mutations(), min_size=1, max_size=2))
def test_random_damage_routing_policy(solved, tmp_path_factory, muts):
    arrays, meta = _parts(solved / "cap.npz")
    for mu in muts:
        arrays, meta = _mutate(arrays, meta, mu)

    def use(pol):
        b = np.array([[0.9, 0.05, 0.05], [0.1, 0.1, 0.8]])
        lv = None if pol.cap is None else np.array([pol.n_levels - 1, 0])
        for t in (1, 2, 40):
            pol.decide_many(b, t, np.array([30.0, 500.0]), levels=lv)
        pol.alpha_sets(1)

    _check_random_damage(tmp_path_factory.mktemp("h"), arrays, meta, "trimpomdp.trim_policy",
                         PomdpPolicy.load, use)


@HYP
@given(st.lists(_mutations(), min_size=1, max_size=2))
def test_random_damage_alpha_policy(tmp_path_factory, muts):
    arrays = {"alphas": np.array([[1.0, 2.0], [3.0, 0.0]]), "actions": np.array([0, 1])}
    meta = {"model_fingerprint": "ab", "solver": "x"}
    for mu in muts:
        arrays, meta = _mutate(arrays, meta, mu)
    _check_random_damage(tmp_path_factory.mktemp("h"), arrays, meta, "trimpomdp.alpha_policy",
                         AlphaVectorPolicy.load, lambda pol: pol.action(np.full(pol.n_states, 1 / pol.n_states)))


@HYP
@given(st.lists(_mutations(), min_size=1, max_size=2))
def test_random_damage_observation_model(kde_file, tmp_path_factory, muts):
    arrays, meta = _parts(kde_file)
    for mu in muts:
        arrays, meta = _mutate(arrays, meta, mu)
    _check_random_damage(tmp_path_factory.mktemp("h"), arrays, meta, "trimpomdp.obs_kde", load_binned,
                         lambda b: b.likelihood(np.full(b.dims, 0.3)))


@HYP
@given(st.lists(_mutations(), min_size=1, max_size=2))
def test_random_damage_bins_table(tmp_path_factory, muts):
    arrays, _ = _mutate(_table_arrays(), {}, muts[0])
    for mu in muts[1:]:
        arrays, _ = _mutate(arrays, {}, mu)
    p = tmp_path_factory.mktemp("h") / "t.npz"
    np.savez(p, **arrays)
    try:
        b = load_binned(p)
    except TrimError:
        return
    b.likelihood(np.full(b.dims, 0.3))


_SPEC_DICT = json.loads(SPEC.read_text())


@HYP
@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, len(_BAD_VALUES) - 1), st.booleans(),
                          st.booleans()), min_size=1, max_size=3))
def test_random_damage_spec(tmp_path_factory, muts):
    d = tmp_path_factory.mktemp("h")
    spec = _copy_spec(d)
    data = json.loads(json.dumps(_SPEC_DICT))
    for k, v, drop, nested in muts:
        target = data
        if nested:
            objs = [x for x in data.values() if isinstance(x, dict) and x]
            target = objs[k % len(objs)] if objs else data
        keys = sorted(target)
        if not keys:
            continue
        key = keys[k % len(keys)]
        if drop:
            target.pop(key)
        else:
            target[key] = _BAD_VALUES[v]
    spec.write_text(json.dumps(data))
    try:
        tm = TrimModel.load(spec)
    except TrimError:
        return
    assert tm.max_steps >= 1 and np.isclose(tm.length_pmf.sum(), 1.0)


def test_step_stats_validation(data_dir, tmp_path):
    with np.load(data_dir / "step_stats_math_train.npz") as z:
        good = {k: z[k] for k in z.files}
    weak, strong = "qwen2.5-1.5b-instruct", "qwen2.5-7b-instruct"
    obs = SPEC.parent / "trim_math_obs_0.05.npz"
    for key, value, needle in [
        (f"{weak}__next_step_accuracy", np.array([0.8, 0.9]), "one number"),
        (f"{strong}__next_step_accuracy", np.array("high"), "finite numbers"),
        (f"{weak}__correct_solution_steps", np.array([1.5, np.nan]), "finite numbers"),
    ]:
        p = tmp_path / "stats.npz"
        np.savez(p, **dict(good, **{key: value}))
        with pytest.raises(FormatError) as e:
            TrimModel.from_step_stats(p, weak, strong, obs)
        _one_line_error(e.value, str(p), key, needle)
    os.mkfifo(tmp_path / "pipe.npz")
    with pytest.raises(FormatError, match="not a regular file"):
        TrimModel.from_step_stats(tmp_path / "pipe.npz", weak, strong, obs)
