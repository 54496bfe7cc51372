"""``trimpomdp info``: text and JSON output, invalid models described, unreadable files one-line errors."""
from __future__ import annotations

import json

import pytest

from trimpomdp.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_json_keys_and_values(capsys, pomdp_dir):
    code, out, err = run(capsys, "info", str(pomdp_dir / "tiger.95.POMDP"), "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    for key in ("states", "actions", "observations", "discount", "sparsity", "nnz", "valid", "problems",
                "reward_min", "reward_max", "file"):
        assert key in d
    assert (d["states"], d["actions"], d["observations"], d["discount"]) == (2, 3, 2, 0.95)
    assert d["nnz"] == {"T": 10, "O": 12} and d["valid"] is True and d["problems"] == []
    assert (d["reward_min"], d["reward_max"]) == (-100.0, 10.0)
    assert d["sparsity"]["T"] == pytest.approx(2 / 12) and d["initial_support"] == 2


def test_text_output(capsys, pomdp_dir):
    code, out, _ = run(capsys, "info", str(pomdp_dir / "Hallway.pomdpx"))
    assert code == 0
    assert "states 60, actions 5, observations 21, discount 0.95" in out
    assert "initial belief on 56 of 60 states" in out and out.rstrip().endswith("valid")


def test_invalid_model_lists_problems(capsys, tmp_path):
    p = tmp_path / "bad.pomdp"
    p.write_text("discount: 0.9\nstates: 2\nactions: 1\nobservations: 1\nT: 0\n0.5 0.4\n0 1\nO: 0\n1\n1\n")
    code, out, _ = run(capsys, "info", str(p))
    assert code == 1 and "INVALID (1 problems)" in out and "T[0] row '0' sums to 0.9" in out
    code, out, _ = run(capsys, "info", str(p), "--json")
    d = json.loads(out)
    assert d["valid"] is False and len(d["problems"]) == 1


@pytest.mark.parametrize("content,fragment", [
    ("discount: 0.9\nstates: 2\nT: 0 identity\n", "bad.pomdp:3: 'actions:' must be declared"),
    ("discount: 0.9\nstates: 2\nactions: 1\nobservations: 1\nT: 0 : 0 : 5 1\n", "state index 5 out of range"),
])
def test_unparseable_file_is_one_line_error(capsys, tmp_path, content, fragment):
    p = tmp_path / "bad.pomdp"
    p.write_text(content)
    code, out, err = run(capsys, "info", str(p))
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and fragment in err and err.count("\n") == 1


def test_missing_and_unknown_files(capsys, tmp_path):
    code, _, err = run(capsys, "info", str(tmp_path / "nope.pomdp"))
    assert code == 2 and "nope.pomdp: file not found" in err and err.count("\n") == 1
    other = tmp_path / "model.txt"
    other.write_text("x")
    code, _, err = run(capsys, "info", str(other))
    assert code == 2 and "unknown model file type '.txt'" in err
