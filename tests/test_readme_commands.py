"""The README's shell commands as written: every Quick tour command runs in order in a scratch folder
(``data/`` and ``../shared`` laid out as beside a checkout) and exits 0; the Set-up command's decode and
inspect use only flags the CLI has (the decode itself, with the packaged models, is the slow
``tests/test_decode_real.py``)."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def bash_block(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    part = text.split(f"## {section}", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```bash\n(.*?)```", part, re.S).group(1)


def commands(block: str) -> list[list[str]]:
    """One argv per command: continuation lines joined, comments dropped."""
    out = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            out.append(words)
    return out


def _cli() -> str:
    exe = Path(sys.executable).with_name("trimpomdp")
    return str(exe) if exe.is_file() else shutil.which("trimpomdp") or "trimpomdp"


def test_quick_tour_runs_as_written(shared, tmp_path):
    cmds = commands(bash_block("Quick tour"))
    assert [c[:2] for c in cmds][-1] == ["trimpomdp", "simulate-routing"] and len(cmds) >= 7
    work = tmp_path / "work"
    work.mkdir()
    (work / "data").symlink_to(ROOT / "data")
    (tmp_path / "shared").symlink_to(shared)  # ../shared from the working folder
    for argv in cmds:
        assert argv[0] == "trimpomdp"
        res = subprocess.run([_cli(), *argv[1:]], cwd=work, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, f"{shlex.join(argv)} exited {res.returncode}:\n{res.stderr[-1500:]}"
        assert "Traceback" not in res.stderr and "Warning" not in res.stderr, res.stderr[-1500:]
    out = res.stdout
    assert re.search(r"^pomdp:route\.npz\s+0\.\d+", out, re.M) and re.search(r"^threshold:0\.5\s+0\.\d+", out, re.M)
    for f in ("tiger.policy.npz", "obs_model.npz", "obs.png", "trim.json", "route.npz"):
        assert (work / f).is_file(), f


def test_setup_command_uses_existing_flags():
    from trimpomdp.cli.main import cli

    (line,) = [ln for ln in bash_block("Set-up").splitlines() if "trimpomdp decode" in ln]
    parts = [shlex.split(p) for p in line.split("&&")]
    assert parts[0] == ["bash", "scripts/install.sh"] and (ROOT / "scripts" / "install.sh").is_file()
    for argv in parts:
        if argv[0] != "trimpomdp":
            continue
        cmd = cli.get_command(None, argv[1])
        ctx = cmd.make_context(argv[1], list(argv[2:]), resilient_parsing=False)
        assert ctx.params  # parsed: every flag exists and every value has its type
    decode = next(p for p in parts if p[:2] == ["trimpomdp", "decode"])
    assert "--prm" not in decode and "--trim-model" not in decode  # the demo runs on the defaults
