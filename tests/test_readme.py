"""The README's "From Python" block runs as written (with the shared data folder beside the checkout)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _block(section: str) -> str:
    text = (ROOT / "README.md").read_text()
    part = text.split(f"## {section}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", part, re.S).group(1)


def test_readme_from_python_runs(shared, tmp_path):
    pytest.importorskip("torch", reason="the block decodes with the packaged models (needs torch)")
    from trimpomdp.decode import models as M

    missing = [n for n in ("smollm2", "gemma3") if not M.is_installed(n)]
    if missing:
        pytest.skip("packaged models not installed: " + ", ".join(missing))
    code = _block("From Python").replace('Path("../shared/data")', repr(str(shared / "data")).join(("Path(", ")")))
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout.splitlines()
    predicted = eval(out[0], {"__builtins__": {}})  # noqa: S307 - the dict printed by the block
    assert abs(predicted["strong_tokens"] - 60) < 1.0 and 0 < predicted["accuracy"] < 1
    names = [ln.split()[0] for ln in out[1:]]
    assert names == ["routed", "weak"]
    assert float(out[2].split()[2]) == 0.0  # the cheap-only run spends no strong tokens
    for f in ("obs_bins.npz", "trim.json", "route.npz", "routed.jsonl", "weak.jsonl"):
        assert (tmp_path / f).is_file()
