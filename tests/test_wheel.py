"""The wheel carries everything a user needs: built here, installed into a fresh environment outside the
checkout, it solves the packaged default spec and inspects a shipped example."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd, cwd, env=None, timeout=600):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{cmd} failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
    return res


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A new venv (no pip, no access to the checkout) with the wheel installed and our dependencies
    visible through a path entry (the network is not needed)."""
    work = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
          str(work / "dist"), str(ROOT)], cwd=work)
    wheel = next((work / "dist").glob("trimpomdp-*.whl"))
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=work)
    py = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index",
          str(wheel)], cwd=work)
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     cwd=work).stdout.strip())
    # dependencies from this environment; its .pth files (our editable install) are not processed
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["NUMBA_CACHE_DIR"] = str(work / "numba")
    return work, venv, env


def test_wheel_solves_the_packaged_spec_outside_the_checkout(fresh_env):
    work, venv, env = fresh_env
    cli = str(venv / "bin" / "trimpomdp")
    where = _run([str(venv / "bin" / "python"), "-c", "import trimpomdp; print(trimpomdp.__file__)"],
                 cwd=work, env=env).stdout.strip()
    assert str(venv) in where and str(ROOT) not in where
    spec = _run([cli, "examples", "--path", "trim_math.json"], cwd=work, env=env).stdout.strip()
    assert spec.startswith(str(venv))
    _run([cli, "solve", spec, "--budget", "lambda=0.15", "-o", "route.npz"], cwd=work, env=env)
    assert (work / "route.npz").is_file()
    tiger = _run([cli, "examples", "--path", "tiger.95.POMDP"], cwd=work, env=env).stdout.strip()
    info = json.loads(_run([cli, "info", tiger, "--json"], cwd=work, env=env).stdout)
    assert info["states"] == 2 and info["actions"] == 3
