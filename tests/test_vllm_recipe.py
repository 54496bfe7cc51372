"""The README's "Serving models with vLLM" recipe: its three ``vllm serve`` commands are consistent with
its ``trimpomdp decode`` line, and that line runs end to end against loopback stand-ins of the three
servers (each serving only the model its command names; no GPU)."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from fake_servers import FakeVLLM

ROOT = Path(__file__).resolve().parents[1]


def recipe() -> tuple[list[list[str]], list[str]]:
    """(the ``vllm serve`` commands, the ``trimpomdp decode`` command) of the README's recipe block."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Serving models with vLLM", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    lines = [shlex.split(ln.rstrip(" &")) for ln in block.splitlines() if ln.strip()]
    serves = [ln for ln in lines if "vllm" in ln and "serve" in ln]
    (decode,) = [ln for ln in lines if ln[:2] == ["trimpomdp", "decode"]]
    return serves, decode


def test_serve_commands():
    serves, decode = recipe()
    assert len(serves) == 3
    models = [c[c.index("serve") + 1] for c in serves]
    ports = [c[c.index("--port") + 1] for c in serves]
    assert len(set(ports)) == 3
    prm = serves[models.index("Qwen/Qwen2.5-Math-PRM-7B")]
    assert "--trust-remote-code" in prm
    for c in serves:  # --task classify would replace STEP pooling with one score per input
        assert not {"--task", "--convert"} & set(c), c
    joined = " ".join(decode)
    for model, port in zip(models, ports):
        assert f"127.0.0.1:{port}" in joined and f"model={model}" in joined


def test_decode_line_runs_against_stand_ins(tmp_path, shared):
    pytest.importorskip("torch", reason="the decode command needs torch")
    from trimpomdp.cli.main import main
    from trimpomdp.decode.trace import read_run

    serves, decode = recipe()
    fakes = {c[c.index("--port") + 1]: FakeVLLM(served={c[c.index("serve") + 1]}) for c in serves}
    try:
        args = []
        for a in decode[1:]:
            for port, fake in fakes.items():
                a = a.replace(f"http://127.0.0.1:{port}", fake.url)
            args.append(str(ROOT / a) if a.startswith("../shared/") else a)
        out = tmp_path / "math500.jsonl"
        assert main(args + ["--limit", "3", "-o", str(out), "--quiet"]) == 0
        run = read_run(out)
        assert len(run.records) == 3 and all(r["finish"] in ("answer", "eos", "max_steps") for r in run.records)
        assert all(isinstance(s["prm_score"], float) for r in run.records for s in r["steps"])
        by_path = {p: [c for f in fakes.values() for c in f.calls if c["path"] == p]
                   for p in ("/v1/completions", "/pooling")}
        assert by_path["/pooling"] and {c["body"]["model"] for c in by_path["/pooling"]} == \
            {"Qwen/Qwen2.5-Math-PRM-7B"}
        assert {c["body"]["model"] for c in by_path["/v1/completions"]} <= \
            {"Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct"}
        assert run.header["settings"]["scheduler"] == "auto"
    finally:
        for f in fakes.values():
            f.close()


def test_chat_example_spec_builds_a_chat_backend(monkeypatch):
    from trimpomdp.decode.chat import ChatBackend
    from trimpomdp.decode.specs import backend_from_spec

    text = (ROOT / "README.md").read_text().split("## Serving models with vLLM", 1)[1]
    spec = re.search(r"--strong '(https://api\.example\.com[^']+)'", text).group(1)
    monkeypatch.setenv("EXAMPLE_KEY", "k")
    be = backend_from_spec(spec)
    assert isinstance(be, ChatBackend) and be.continuation == "none" and be.client.api_key == "k"
