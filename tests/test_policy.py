"""AlphaVectorPolicy files (.npz and APPL .policy XML) and the ``simulate`` command."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from trimpomdp.cli.main import main
from trimpomdp.errors import FormatError, ModelError
from trimpomdp.policies.alpha import AlphaVectorPolicy
from trimpomdp.policies.xml import read_policy_xml, write_policy_xml
from trimpomdp.pomdp import load_model

from tests.test_exact import tiger


def sample_policy():
    alphas = np.array([[1.5, -2.0, 1e-17], [0.1, 0.2, 0.3], [-1e6, 3.141592653589793, 2.0 / 3.0]])
    return AlphaVectorPolicy(alphas, [2, 0, 1], {"solver": "test", "model_fingerprint": "ab" * 32})


def test_npz_round_trip(tmp_path):
    pol = sample_policy()
    pol.save(tmp_path / "p.npz")
    back = AlphaVectorPolicy.load(tmp_path / "p.npz")
    assert np.array_equal(back.alphas, pol.alphas) and np.array_equal(back.actions, pol.actions)
    assert back.meta == pol.meta
    assert back.action(np.array([1.0, 0.0, 0.0])) == 2
    assert back.value(np.array([0.0, 1.0, 0.0])) == pytest.approx(3.141592653589793)


def test_npz_refuses_pickle_wrong_format_and_newer_version(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, alphas=np.array([{"a": 1}], dtype=object), actions=np.array([0]))
    with pytest.raises(FormatError, match="pickled.npz"):
        AlphaVectorPolicy.load(pickled)
    from trimpomdp.artifacts import save_npz

    save_npz(tmp_path / "v3.npz", {"alphas": np.zeros((1, 2)), "actions": np.zeros(1)}, {},
             "trimpomdp.alpha_policy", version=3)
    with pytest.raises(FormatError, match="version 3"):
        AlphaVectorPolicy.load(tmp_path / "v3.npz")
    save_npz(tmp_path / "other.npz", {"x": np.zeros(1)}, {}, "something.else")
    with pytest.raises(FormatError, match="alpha_policy"):
        AlphaVectorPolicy.load(tmp_path / "other.npz")


def test_xml_round_trip_and_layout(tmp_path):
    pol = sample_policy()
    path = write_policy_xml(AlphaVectorPolicy(pol.alphas, pol.actions), None, tmp_path / "p.policy")
    text = path.read_text(encoding="latin-1")
    assert text.startswith("<?xml version='1.0' encoding='ISO-8859-1'?>")
    assert 'xsi:noNamespaceSchemaLocation="policyx.xsd"' in text
    assert '<AlphaVector vectorLength="3" numObsValue="1" numVectors="3">' in text
    assert '<Vector action="2" obsValue="0">1.5 -2.0 1e-17 </Vector>' in text
    back = read_policy_xml(path)
    assert np.array_equal(back.alphas, pol.alphas) and np.array_equal(back.actions, pol.actions)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=4, max_size=4), min_size=1, max_size=6),
       st.integers(0, 5))
def test_xml_round_trip_is_bit_exact(tmp_path_factory, rows, a):
    pol = AlphaVectorPolicy(np.array(rows), [a] * len(rows))
    path = write_policy_xml(pol, None, tmp_path_factory.mktemp("x") / "p.policy")
    back = read_policy_xml(path)
    assert np.array_equal(back.alphas, pol.alphas) and back.actions.tolist() == [a] * len(rows)


def test_xml_sparse_vectors_and_errors(tmp_path):
    head = ('<?xml version="1.0" encoding="ISO-8859-1"?>\n<Policy version="0.1" type="value" model="m">'
            '<AlphaVector vectorLength="3" numObsValue="{n}" numVectors="{k}">{body}</AlphaVector></Policy>')
    p = tmp_path / "s.policy"
    p.write_text(head.format(n=1, k=2, body='<SparseVector action="1" obsValue="0"><Entry>2 4.5</Entry>'
                             '</SparseVector><Vector action="0" obsValue="0">1 2 3</Vector>'))
    pol = read_policy_xml(p)
    assert pol.alphas.tolist() == [[0, 0, 4.5], [1, 2, 3]] and pol.actions.tolist() == [1, 0]
    cases = {
        "numVectors=5": head.format(n=1, k=5, body='<Vector action="0" obsValue="0">1 2 3</Vector>'),
        "obsValue 2 is outside 0..1": head.format(n=2, k=1, body='<Vector action="0" obsValue="2">1 2 3</Vector>'),
        "no obsValue attribute": head.format(n=2, k=1, body='<Vector action="0">1 2 3</Vector>'),
        "numObsValue must be": head.format(n=0, k=1, body='<Vector action="0" obsValue="0">1 2 3</Vector>'),
        "2 entries": head.format(n=1, k=1, body='<Vector action="0" obsValue="0">1 2</Vector>'),
        "non-numeric": head.format(n=1, k=1, body='<Vector action="0" obsValue="0">1 x 3</Vector>'),
        "action": head.format(n=1, k=1, body='<Vector obsValue="0">1 2 3</Vector>'),
        "well-formed": "<Policy><AlphaVector>",
    }
    for msg, text in cases.items():
        p.write_text(text)
        with pytest.raises(FormatError, match=msg) as err:
            read_policy_xml(p)
        assert "s.policy" in str(err.value) and "\n" not in str(err.value)


def test_xml_write_checks_the_model(tmp_path):
    with pytest.raises(ModelError, match="fingerprint"):
        write_policy_xml(AlphaVectorPolicy(np.zeros((1, 2)), [0], {"model_fingerprint": "x"}), tiger(),
                         tmp_path / "p.policy")


# ---------------------------------------------------------------- CLI: trimpomdp simulate
@pytest.fixture(scope="module")
def tiger_files(pomdp_dir, tmp_path_factory):
    from trimpomdp.solvers.exact import ExactSolver

    model_path = pomdp_dir / "tiger.95.POMDP"
    model = load_model(model_path)
    res = ExactSolver(tol=1e-3).solve(model)
    d = tmp_path_factory.mktemp("cli")
    res.policy.save(d / "tiger.npz")
    write_policy_xml(res.policy, model, d / "tiger.policy")
    return model_path, d


def test_cli_simulate_text_and_json(tiger_files, capsys):
    model_path, d = tiger_files
    assert main(["simulate", str(model_path), str(d / "tiger.npz"), "--episodes", "400", "--seed", "1",
                 "--horizon", "60"]) == 0
    out = capsys.readouterr().out
    assert "mean discounted return" in out and "95% CI" in out
    assert main(["simulate", str(model_path), str(d / "tiger.policy"), "--episodes", "400", "--seed", "1",
                 "--horizon", "60", "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["episodes"] == 400 and rec["horizon"] == 60
    assert rec["ci95_low"] <= rec["mean"] <= rec["ci95_high"]
    assert rec["ci95_low"] < 19.37 < rec["ci95_high"] + 2.0  # 60 steps: the tail is about 0.95^60 * 19


def test_cli_simulate_errors(tiger_files, pomdp_dir, tmp_path, capsys):
    model_path, d = tiger_files
    assert main(["simulate", str(pomdp_dir / "parr95.95.POMDP"), str(d / "tiger.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error:") and "\n" not in err and "states" in err
    pol = AlphaVectorPolicy.load(d / "tiger.npz")
    pol.meta["model_fingerprint"] = "0" * 64
    pol.save(tmp_path / "other.npz")
    assert main(["simulate", str(model_path), str(tmp_path / "other.npz")]) == 2
    err = capsys.readouterr().err.strip()
    assert "fingerprint" in err and "\n" not in err
    assert main(["simulate", str(model_path), str(d / "tiger.npz"), "--episodes", "0"]) == 2
    assert "--episodes" in capsys.readouterr().err
    assert main(["simulate", str(model_path), str(tmp_path / "missing.npz")]) == 2
    assert "missing.npz" in capsys.readouterr().err
