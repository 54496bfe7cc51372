"""``trimpomdp solve``: JSON summary, policy file, solver choice and one-line errors."""
from __future__ import annotations

import json

import pytest

from trimpomdp.cli.main import main
from trimpomdp.policies.alpha import AlphaVectorPolicy


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


def test_solve_tiger_json(capsys, pomdp_dir, tmp_path):
    out_path = tmp_path / "tiger.policy.npz"
    rc, out, err = run(capsys, "solve", str(pomdp_dir / "tiger.95.POMDP"), "-o", str(out_path), "--json",
                       "--progress", "none")
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    for key in ("lower", "upper", "gap", "solve_seconds", "jit_seconds", "alphas", "beliefs", "iterations",
                "converged", "output"):
        assert key in summary
    assert summary["converged"] and abs(summary["lower"] - 19.3713) < 1e-3
    pol = AlphaVectorPolicy.load(out_path)
    assert pol.meta["solver"] == "sarsop"
    assert "policy written to" in out


def test_solve_table_progress_on_stderr(capsys, pomdp_dir, tmp_path):
    rc, out, err = run(capsys, "solve", str(pomdp_dir / "tiger.95.POMDP"), "-o", str(tmp_path / "p.npz"))
    assert rc == 0
    assert "LBound" in err and "UBound" in err and "#Alphas" in err


def test_default_output_next_to_model(capsys, pomdp_dir, tmp_path):
    model = tmp_path / "tiger.pomdp"
    model.write_text((pomdp_dir / "tiger.95.POMDP").read_text())
    rc, out, err = run(capsys, "solve", str(model), "--progress", "none", "--solver", "qmdp")
    assert rc == 0, err
    assert (tmp_path / "tiger.policy.npz").is_file()


@pytest.mark.parametrize("args,needle", [
    (["--budget", "lambda=1"], "--budget"),
    (["--sweep", "1,2"], "--sweep"),
    (["--precision", "0"], "--precision"),
    (["--timeout", "-1"], "--timeout"),
    (["--memory", "0"], "--memory"),
    (["-o", "policy.txt"], "must end with"),
])
def test_bad_options_one_line_errors(capsys, pomdp_dir, tmp_path, args, needle):
    if args[0] == "-o":
        args = ["-o", str(tmp_path / "policy.txt")]
    rc, out, err = run(capsys, "solve", str(pomdp_dir / "tiger.95.POMDP"), "--progress", "none", *args)
    assert rc == 2
    lines = [l for l in err.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0]


def test_missing_model_file(capsys, tmp_path):
    rc, out, err = run(capsys, "solve", str(tmp_path / "nope.pomdp"))
    assert rc == 2 and err.startswith("Error:") and "nope.pomdp" in err
