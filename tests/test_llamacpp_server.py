"""End-to-end against a real llama.cpp server (llama-cpp-python[server]) with the packaged SmolLM2 GGUF.

Skipped unless ``llama_cpp`` is importable (it needs a long native build, so it is optional)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = pytest.mark.server
pytest.importorskip("llama_cpp", reason="llama-cpp-python[server] is not installed")
pytest.importorskip("llama_cpp.server", reason="llama-cpp-python is installed without its [server] extra")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server():
    from trimpomdp.decode.models import locate_gguf
    from trimpomdp.errors import TrimError

    try:
        gguf = locate_gguf("smollm2")
    except TrimError as exc:
        pytest.skip(f"packaged SmolLM2 GGUF not available: {exc}")
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2"]
    proc = subprocess.Popen(cmd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {proc.returncode}: {proc.stderr.read()[-500:]}")
        try:
            urllib.request.urlopen(url + "/v1/models", timeout=2).read()
            break
        except OSError:
            time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("llama_cpp.server did not come up within 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def test_step_generation_and_judge(llama_server):
    from trimpomdp.decode.http import HTTPJudgePRM, OpenAICompatibleBackend
    from trimpomdp.decode.prompts import render

    be = OpenAICompatibleBackend(llama_server, "smollm2", timeout=120, concurrency=2, prompt_style="chatml")
    prompts = [render("chatml", "What is 3 + 4?"), render("chatml", "What is 2 * 5?", ["2 * 5 = 10."])]
    outs = be.generate_steps(prompts, max_new_tokens=32)
    assert len(outs) == 2
    for out in outs:
        assert 0 < out.n_tokens <= 32 + 2
        assert "\n\n" not in out.text
    judge = HTTPJudgePRM(be)
    scores = judge.score("What is 3 + 4?", [["3 + 4 = 7."], ["3 + 4 = 9."]])
    assert all(0.0 <= s <= 1.0 for s in scores)
    be.close()
