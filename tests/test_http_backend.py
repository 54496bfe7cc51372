"""OpenAI-compatible client and HTTP PRMs against a tiny fake server on 127.0.0.1 (threaded http.server)."""
from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trimpomdp.decode.backends import StepOut
from trimpomdp.decode.http import HTTPJudgePRM, HTTPScorePRM, OpenAICompatibleBackend, yes_probability
from trimpomdp.decode.httpclient import api_base
from trimpomdp.decode.prompts import judge_prompt
from trimpomdp.decode.specs import backend_from_spec, load_prm, prm_from_spec
from trimpomdp.errors import TrimError

SCRIPT = "First, 2 + 2 = 4.\n\nThen 4 * 3 = 12.\n\nSo the answer is \\boxed{12}.\n\nExtra text."


class FakeServer:
    """Serves /v1/completions like vLLM: applies ``stop`` strings, counts words as tokens, and misbehaves
    on request (marker words in the prompt) to exercise retries and timeouts."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0
        self.calls: list[dict] = []
        self.fail_left = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                code, obj = (200, {"object": "list", "data": [{"id": "served-model"}]}) \
                    if self.path == "/v1/models" else (404, {"error": "no route"})
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.calls.append({"path": self.path, "body": body,
                                         "auth": self.headers.get("Authorization")})
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                try:
                    code, obj = server.respond(self.path, body)
                finally:
                    with server.lock:
                        server.inflight -= 1
                data = json.dumps(obj).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def respond(self, path, body):
        if path == "/score":
            steps = body["steps"]
            return 200, {"scores": [round(1.0 / (1 + i), 3) for i in range(len(steps))]}
        if path == "/badscore":
            return 200, {"scores": [0.5]}
        if path != "/v1/completions":
            return 404, {"error": {"message": f"no route {path}"}}
        prompt = body["prompt"]
        for marker in ("FAIL500", "FAIL400"):
            if marker in prompt:
                with self.lock:
                    left = self.fail_left.get(prompt, 2 if marker == "FAIL500" else 99)
                    self.fail_left[prompt] = left - 1
                if left > 0:
                    return (503 if marker == "FAIL500" else 400), {"error": {"message": "model overloaded"}}
        if "SLOW" in prompt:
            time.sleep(1.0)
        if "SLEEP" in prompt:
            time.sleep(0.25)
        if body.get("logprobs"):
            if "Latest step (step 1): good" in prompt:
                top = {"Yes": math.log(0.6), " yes": math.log(0.2), "No": math.log(0.1),
                       "Maybe": math.log(0.05)}
            elif "Latest step (step 1): weird" in prompt:
                top = {"Hmm": math.log(0.9)}
            else:
                top = {"No": math.log(0.7), "Yes": math.log(0.1)}
            first = max(top, key=top.get)
            return 200, {"choices": [{"text": first, "finish_reason": "length",
                                      "logprobs": {"tokens": [first], "token_logprobs": [top[first]],
                                                   "top_logprobs": [top]}}],
                         "usage": {"completion_tokens": 1}}
        # continuation: what the "model" writes after the prompt's already-written part of SCRIPT
        if prompt.endswith("BLANKFIRST"):
            return 200, {"choices": [{"text": "", "finish_reason": "stop", "stop_reason": "\n\n"}],
                         "usage": {"completion_tokens": 1}}
        done = prompt.split("PROMPT:", 1)[-1].replace("BLANKFIRST\n\n", "")
        rest = SCRIPT[len(done):] if SCRIPT.startswith(done) else SCRIPT
        words = rest.split(" ")[: body["max_tokens"]]
        text = " ".join(words)
        finish, stop_reason = ("length", None) if len(words) < len(rest.split(" ")) else ("stop", None)
        for s in body.get("stop") or []:
            k = text.find(s)
            if k >= 0:
                text, finish, stop_reason = text[:k], "stop", s
        choice = {"text": text, "finish_reason": finish, "index": 0}
        if "NOSTOPREASON" not in prompt:
            choice["stop_reason"] = stop_reason
        return 200, {"choices": [choice], "usage": {"completion_tokens": len(text.split())}}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = FakeServer()
    yield s
    s.close()


def test_step_generation_with_stop_sequences(server):
    be = OpenAICompatibleBackend(server.url, "fake-model", api_key="k123", timeout=5)
    prompts = ["PROMPT:", "PROMPT:First, 2 + 2 = 4.\n\n", "PROMPT:First, 2 + 2 = 4.\n\nThen 4 * 3 = 12.\n\n"]
    outs = be.generate_steps(prompts, max_new_tokens=50)
    assert outs == [StepOut("First, 2 + 2 = 4.", 6, False), StepOut("Then 4 * 3 = 12.", 6, False),
                    StepOut("So the answer is \\boxed{12}.", 5, True)]
    body = server.calls[0]["body"]
    assert body["stop"] == ["\n\n"] and body["model"] == "fake-model" and body["temperature"] == 0.0
    assert server.calls[0]["auth"] == "Bearer k123"
    # truncated by max_new_tokens: not finished
    (cut,) = be.generate_steps(["PROMPT:"], max_new_tokens=2)
    assert cut == StepOut("First, 2", 2, False)
    # EOS after the last text (vLLM: finish_reason stop, stop_reason null) -> finished
    (eos,) = be.generate_steps(["PROMPT:" + SCRIPT[:-len("Extra text.")]], max_new_tokens=50)
    assert eos.text == "Extra text." and eos.finished
    # without stop_reason (llama.cpp), an empty continuation means the model is done
    (empty,) = be.generate_steps(["NOSTOPREASON PROMPT:" + SCRIPT], max_new_tokens=50)
    assert empty.text == "" and empty.finished
    be.close()


def test_leading_blank_line_is_skipped(server):
    be = OpenAICompatibleBackend(server.url, "m", timeout=5)
    (out,) = be.generate_steps(["PROMPT:BLANKFIRST"], max_new_tokens=50)
    assert out == StepOut("First, 2 + 2 = 4.", 1 + 6, False)
    assert server.calls[-1]["body"]["prompt"] == "PROMPT:BLANKFIRST\n\n"


def test_requests_run_concurrently(server):
    be = OpenAICompatibleBackend(server.url + "/v1", "m", concurrency=8, timeout=5)
    t0 = time.perf_counter()
    outs = be.generate_steps([f"SLEEP {i} PROMPT:" for i in range(8)], max_new_tokens=20)
    wall = time.perf_counter() - t0
    assert len(outs) == 8 and all(o.text == "First, 2 + 2 = 4." for o in outs)
    # concurrency is what the server saw in flight; the wall time is only a loose check, since a loaded
    # machine stretches it (the eight 0.25 s sleeps one after another would take 2 s)
    assert server.max_inflight >= 4
    assert wall < 8 * 0.25
    be.close()


def test_retry_then_success(server):
    be = OpenAICompatibleBackend(server.url, "m", retries=3, backoff=0.01, timeout=5)
    (out,) = be.generate_steps(["FAIL500 PROMPT:"], max_new_tokens=20)
    assert out.text == "First, 2 + 2 = 4."
    assert be.client.n_retries == 2 and len(server.calls) == 3


def test_retries_exhausted_and_client_errors_are_one_line(server):
    be = OpenAICompatibleBackend(server.url, "m", retries=1, backoff=0.01, timeout=5)
    with pytest.raises(TrimError, match=r"/v1/completions: request failed after 2 attempts: HTTP 503"):
        be.generate_steps(["FAIL500 FAIL500 PROMPT:", ], max_new_tokens=5)
    with pytest.raises(TrimError, match=r"HTTP 400: model overloaded") as exc:
        be.generate_steps(["FAIL400 PROMPT:"], max_new_tokens=5)
    assert "\n" not in str(exc.value)
    assert sum("FAIL400" in c["body"]["prompt"] for c in server.calls) == 1  # 4xx is not retried


def test_timeout_gives_clear_error(server):
    be = OpenAICompatibleBackend(server.url, "m", retries=1, backoff=0.01, timeout=0.2)
    t0 = time.perf_counter()
    with pytest.raises(TrimError, match=r"127\.0\.0\.1:\d+/v1/completions: .*timed out after 0.2 s"):
        be.generate_steps(["SLOW PROMPT:"], max_new_tokens=5)
    assert time.perf_counter() - t0 < 3


def test_unreachable_server():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    be = OpenAICompatibleBackend(f"http://127.0.0.1:{port}", "m", retries=1, backoff=0.01, timeout=1)
    with pytest.raises(TrimError, match=rf"127.0.0.1:{port}/v1/completions: .*cannot connect"):
        be.generate_steps(["x"], 5)


def test_logprobs_judge(server):
    be = OpenAICompatibleBackend(server.url, "judge-model", timeout=5)
    prm = HTTPJudgePRM(be, prompt_style="plain")
    scores = prm.score("What is 2+2?", [["good"], ["bad"], ["weird"]])
    assert scores[0] == pytest.approx(0.8 / 0.9)
    assert scores[1] == pytest.approx(0.1 / 0.8)
    assert scores[2] == 0.5  # neither Yes nor No among the alternatives: uninformative
    sent = [c["body"] for c in server.calls]
    assert all(b["max_tokens"] == 1 and b["logprobs"] == 20 for b in sent)
    assert judge_prompt("What is 2+2?", ["good"], "plain") in [b["prompt"] for b in sent]
    assert prm.name == "http-judge:judge-model"
    nan_prm = HTTPJudgePRM(be, missing=float("nan"))
    assert math.isnan(nan_prm.score("q", [["weird"]])[0])


def test_yes_probability_layouts():
    assert yes_probability({"Yes": 0.0}) == 1.0
    assert yes_probability({"no": math.log(0.5), "NO ": math.log(0.5)}) == 0.0
    assert yes_probability({"maybe": 0.0}) is None


def test_score_endpoint_prm(server):
    prm = HTTPScorePRM(server.url + "/score", timeout=5)
    assert prm.score("q", [["a"], ["a", "b"], ["a", "b", "c", "d"]]) == [1.0, 0.5, 0.25]
    assert prm.score(["q1", "q2"], [["a"], ["a", "b"]]) == [1.0, 0.5]
    assert {"question": "q", "steps": ["a", "b"]} in [c["body"] for c in server.calls]
    bad = HTTPScorePRM(server.url + "/badscore", timeout=5)
    with pytest.raises(TrimError, match=r"/badscore: expected \{\"scores\": \[2 numbers\]\}"):
        bad.score("q", [["a", "b"]])
    with pytest.raises(TrimError, match="HTTP 404"):
        HTTPScorePRM(server.url + "/nothing", retries=0).score("q", [["a"]])


def test_url_validation():
    assert api_base("http://h:1") == "http://h:1/v1"
    assert api_base("http://h:1/v1/") == "http://h:1/v1"
    assert api_base("https://h/v1/completions") == "https://h/v1"
    with pytest.raises(TrimError, match="http://host:port"):
        api_base("localhost:8000")
    with pytest.raises(TrimError):
        HTTPScorePRM("ftp://x/score")


def test_specs(server, monkeypatch):
    monkeypatch.setenv("MY_KEY", "secret")
    be = backend_from_spec(server.url + "?style=plain&concurrency=2&api_key_env=MY_KEY")
    assert be.model == "served-model" and be.prompt_style == "plain" and be.client.concurrency == 2
    (out,) = be.generate_steps(["PROMPT:"], 20)
    assert out.text == "First, 2 + 2 = 4." and server.calls[-1]["auth"] == "Bearer secret"
    assert backend_from_spec(server.url + "/v1?model=x").model == "x"
    with pytest.raises(TrimError, match="unknown option 'colour'"):
        backend_from_spec(server.url + "?colour=red")
    score = prm_from_spec(f"http-score:{server.url}/score?timeout=5&concurrency=3")
    assert isinstance(score, HTTPScorePRM) and score.url == f"{server.url}/score"
    assert (score.client.timeout, score.client.concurrency) == (5.0, 3)
    assert score.score("q", [["a", "b"]]) == [0.5]
    with pytest.raises(TrimError, match="bad number"):
        prm_from_spec(f"http-score:{server.url}/score?timeout=soon")
    with pytest.raises(TrimError, match="unknown option 'colour'"):
        prm_from_spec(f"http-score:{server.url}/score?colour=red")
    # load_prm (the --prm of score-steps and decode) hands the served kinds to prm_from_spec
    assert isinstance(load_prm(f"http-judge:{server.url}?model=j"), HTTPJudgePRM)
    judge = prm_from_spec(f"http-judge:{server.url}?model=j&style=plain")
    assert judge.score("What is 2+2?", [["good"]])[0] == pytest.approx(0.8 / 0.9)
    with pytest.raises(TrimError, match="http-score:<url> or http-judge"):
        prm_from_spec("judge:smollm2")


def test_decode_cli_routes_through_http_servers(server, tmp_path):
    """`trimpomdp decode` with server-hosted weak/strong models and an HTTP score PRM, end to end."""
    from trimpomdp.cli.main import main
    from trimpomdp.decode.trace import read_run

    problems = tmp_path / "p.jsonl"
    problems.write_text(json.dumps({"question": "What is 4 * 3?", "answer": "#### 12"}) + "\n")
    out = tmp_path / "out.jsonl"
    rc = main(["decode", str(problems), "-o", str(out), "--policy", "threshold:0.4", "--quiet",
               "--weak", f"{server.url}/v1?model=weak", "--strong", f"{server.url}/v1?model=strong",
               "--prm", f"http-score:{server.url}/score", "--max-steps", "4"])
    assert rc == 0
    (rec,) = read_run(out).records
    scores = [s["prm_score"] for s in rec["steps"]]
    # the fake PRM scores step i with 1/i, so the threshold policy regenerates from step 3 on
    assert scores[:3] == pytest.approx([1.0, 0.5, 0.333], abs=1e-3)
    assert [s["action"] for s in rec["steps"]][:3] == ["keep", "keep", "regenerate"]
    assert rec["tokens"]["strong"] == sum(s["strong_tokens"] for s in rec["steps"]) > 0
    models = {c["body"].get("model") for c in server.calls if c["path"] == "/v1/completions"}
    assert models == {"weak", "strong"}
