"""From our own decode traces to a calibrated routing spec and a policy: the new-model-pair workflow of
the README (calibrate --traces ... --spec; solve; the spec carries what the fit found)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.routing import TrimModel


def _traces(tmp_path):
    from test_calibration import _trace

    return [_trace(tmp_path / "w.jsonl", "weak", 40, 16, ()),
            _trace(tmp_path / "s.jsonl", "strong", 40, 32, (1, 2, 3, 4)),
            _trace(tmp_path / "t5.jsonl", "threshold:0.5", 40, 24, (2,)),
            _trace(tmp_path / "t9.jsonl", "threshold:0.9", 40, 28, (2, 3))]


def test_calibrate_traces_to_spec_to_policy(tmp_path, capsys):
    paths = _traces(tmp_path)
    spec = tmp_path / "trim_new.json"
    rc = main(["calibrate", "--traces", *paths, "--classes", "2", "--starts", "1", "-o", str(tmp_path / "c.json"),
               "--spec", str(spec)])
    out = capsys.readouterr().out
    assert rc == 0 and "2 difficulty classes" in out and str(spec) in out
    rec = json.loads((tmp_path / "c.json").read_text())
    tm = TrimModel.load(spec)
    m = rec["model"]
    assert tm.n_classes == 2 and tm.max_steps == len(m["length_pmf"])
    np.testing.assert_allclose(tm.classes.weights, m["weights"], atol=1e-9)
    np.testing.assert_allclose(tm.classes.p_weak, np.clip(m["p_weak"], 1e-3, 1 - 1e-3), atol=1e-9)
    assert tm.derailed_repair == pytest.approx(min(max(m.get("recover", 0.0), 0), 1))
    assert tm.mean_step_tokens == pytest.approx(m["rewrite_tokens"], rel=1e-6)
    rc = main(["solve", str(spec), "--budget", "lambda=0.2", "-o", str(tmp_path / "route.npz")])
    assert rc == 0 and (tmp_path / "route.npz").is_file()
    from trimpomdp.routing import load_policy

    pol = load_policy(f"pomdp:{tmp_path / 'route.npz'}")
    assert pol.trim_model.fingerprint() == tm.fingerprint() and 0 <= pol.predicted["accuracy"] <= 1


def test_a_record_without_rewrites_is_refused_in_one_line(tmp_path):
    from trimpomdp.calibration.spec import spec_from_record
    from trimpomdp.errors import TrimError

    rec = {"model": {"weights": [1.0], "p_weak": [0.9], "p_strong": [0.95], "alpha": 0.1, "length_pmf": [0.5, 0.5],
                     "rewrite_tokens": 0.0}}
    with pytest.raises(TrimError, match="rewrite_tokens") as exc:
        spec_from_record(rec, "data/trim_math_obs_0.05.npz")
    assert "\n" not in str(exc.value)
