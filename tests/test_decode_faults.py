"""Decode fault isolation against a misbehaving loopback server: failures stay with their problem, waits
are bounded per problem, transient garbage is retried, bad numbers are clear errors, failed problems
make `decode` exit 1 and are retried by `--resume`, and a resume never mixes policies silently."""
from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from trimpomdp.decode.backends import BatchError, StepOut
from trimpomdp.decode.http import HTTPJudgePRM, HTTPScorePRM, OpenAICompatibleBackend
from trimpomdp.decode.loop import RoutedDecoder, run_to_trace
from trimpomdp.decode.problems import Problem
from trimpomdp.decode.trace import read_run
from trimpomdp.errors import TrimError

STEP = "2 + 2 = 4, so the answer is \\boxed{4}."


class FaultServer:
    """/v1/completions (one-step solutions, or a judge's logprobs) and /score (a PRM), misbehaving when
    the prompt or question holds a marker: HANG (never answers in time), TRUNC (a 200 with half a JSON
    body, first time only), SHORTREAD (fewer bytes than Content-Length, first time only), TRICKLE (the
    body one byte at a time), LOGP1000 / LOGPNAN (judge log-probabilities), BADTOKENS (negative token
    count), PRMFAIL (the PRM answers 500 while ``prm_broken`` is set), SCORENAN (the PRM scores NaN)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.seen: dict[str, int] = {}
        self.calls: list[tuple[str, str]] = []
        self.prm_broken = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                text = body.get("prompt") or body.get("question") or ""
                with server.lock:
                    server.calls.append((self.path, text))
                    key = (self.path, text)
                    n = server.seen[key] = server.seen.get(key, 0) + 1
                try:
                    server.respond(self, self.path, body, text, n)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @staticmethod
    def send(h, code: int, data: bytes, length: int | None = None):
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data) if length is None else length))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def respond(self, h, path, body, text, n):
        if "HANG" in text:
            self.release.wait(10)
            return
        if path == "/score":
            if "PRMFAIL" in text and self.prm_broken:
                return self.send(h, 500, b'{"error": "scorer crashed"}')
            score = float("nan") if "SCORENAN" in text else 0.9
            return self.send(h, 200, json.dumps({"scores": [score] * len(body["steps"])}).encode())
        if body.get("logprobs"):
            top = {"Yes": math.log(0.9), "No": math.log(0.1)}
            if "LOGP1000" in text:
                top = {"Yes": 1000.0, "No": -1.0}
            if "LOGPNAN" in text:
                top = {"Yes": float("nan"), "No": -1.0}
            out = {"choices": [{"text": "Yes", "finish_reason": "length",
                                "logprobs": {"tokens": ["Yes"], "top_logprobs": [top]}}],
                   "usage": {"completion_tokens": 1}}
        else:
            out = {"choices": [{"text": STEP, "finish_reason": "stop", "stop_reason": None}],
                   "usage": {"completion_tokens": -5 if "BADTOKENS" in text else 12}}
        data = json.dumps(out).encode()
        if "TRUNC" in text and n == 1:
            return self.send(h, 200, data[: len(data) // 2])
        if "SHORTREAD" in text and n == 1:
            self.send(h, 200, data[:10], length=len(data))
            h.close_connection = True
            return
        if "TRICKLE" in text:
            h.send_response(200)
            h.send_header("Content-Length", str(len(data)))
            h.end_headers()
            for i in range(len(data)):
                if self.release.wait(0.02):
                    return
                h.wfile.write(data[i:i + 1])
                h.wfile.flush()
            return
        self.send(h, 200, data)

    def count(self, marker: str) -> int:
        return sum(marker in t for _, t in self.calls)

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    s = FaultServer()
    yield s
    s.close()


@pytest.fixture(scope="module")
def routing():
    from trimpomdp.packaged import default_spec_path
    from trimpomdp.routing import BeliefFilter, TrimModel, load_policy

    tm = TrimModel.load(default_spec_path())
    return lambda spec="threshold:0.5": (load_policy(spec, trim_model=tm), BeliefFilter(tm))


def backend(server, **kw):
    kw = {"timeout": 5.0, "retries": 2, "backoff": 0.01, **kw}
    return OpenAICompatibleBackend(server.url, "m", **kw)


def make_decoder(routing, weak, prm, *, batch_size=4, problem_timeout=30.0, policy="threshold:0.5"):
    pol, filt = routing(policy)
    return RoutedDecoder(weak, None, prm, pol, filt, policy_name=policy, batch_size=batch_size, max_steps=3,
                         max_step_tokens=32, problem_timeout=problem_timeout)


def probs(questions):
    return [Problem(str(i), q, "4", "gsm8k") for i, q in enumerate(questions)]


# ----------------------------------------------------------------------------------- PRM isolation
def test_prm_failure_of_one_problem_leaves_its_batch_mates_alone(server, routing):
    prm = HTTPScorePRM(server.url + "/score", timeout=5, retries=1, backoff=0.01)
    dec = make_decoder(routing, backend(server), prm)
    recs = {r["id"]: r for r in dec.run(probs(["What is 2+2?", "PRMFAIL what is 2+2?", "2+2?", "Two plus two?"]))}
    bad = recs["1"]
    assert bad["finish"] == "error" and "\n" not in bad["error"]
    assert bad["error"].startswith(f"PRM failed: {server.url}/score: request failed after 2 attempts: HTTP 500")
    assert all(recs[i]["finish"] == "answer" and recs[i]["error"] is None for i in ("0", "2", "3"))
    assert server.count("PRMFAIL") == 2 + 1  # one generation, two PRM attempts: no extra re-sends


def test_opaque_batch_failure_is_retried_alone_once(routing, server):
    """An in-process PRM failing a whole batch: each problem is retried alone once; only the culprit fails."""
    calls = []

    class Picky:
        name = "picky"

        def score(self, qs, steps_list):
            calls.append(list(qs))
            if any("POISON" in q for q in qs):
                raise RuntimeError("poisoned batch\nsecond line")
            return [0.9] * len(qs)

    dec = make_decoder(routing, backend(server), Picky(), batch_size=3)
    recs = {r["id"]: r for r in dec.run(probs(["a?", "POISON b?", "c?"]))}
    assert recs["1"]["error"] == "PRM failed: RuntimeError: poisoned batch"
    assert recs["0"]["finish"] == recs["2"]["finish"] == "answer"
    assert len(calls) == 1 + 3 and all(len(c) == 1 for c in calls[1:])


def test_opaque_batch_failure_past_the_deadline_is_not_retried(routing, server):
    calls = []

    class Slow:
        name = "slow"

        def score(self, qs, steps_list):
            calls.append(len(qs))
            time.sleep(0.3)
            raise RuntimeError("device lost")

    dec = make_decoder(routing, backend(server), Slow(), batch_size=3, problem_timeout=0.2)
    recs = dec.run(probs(["a?", "b?", "c?"]))
    assert calls == [3]
    assert all(r["finish"] == "error" and "not retried alone" in r["error"] for r in recs)


# ------------------------------------------------------------------------------------ bounded waits
def test_hung_server_costs_about_one_problem_timeout_not_one_per_batch_mate(server, routing):
    weak = backend(server, timeout=0.3, retries=3)
    dec = make_decoder(routing, weak, HTTPScorePRM(server.url + "/score", timeout=5), problem_timeout=0.5)
    t0 = time.perf_counter()
    recs = dec.run(probs([f"HANG {i}" for i in range(4)]))
    wall = time.perf_counter() - t0
    # before: batch (4 x 0.3 s) then each problem alone (4 x 4 x 0.3 s) = 6 s; now one 0.5 s deadline
    assert wall < 1.5, wall
    assert all(r["finish"] == "error" and "timed out after" in r["error"]
               and f"{server.url}/v1/completions: request failed after 2 attempts (" in r["error"] for r in recs)
    assert weak.client.n_requests == 4 * 2  # 0.3 s timed out, then the 0.2 s left


def test_hung_endpoint_is_not_retried_at_full_timeout_again(server, routing):
    weak = backend(server, timeout=0.25, retries=3)
    dec = make_decoder(routing, weak, HTTPScorePRM(server.url + "/score", timeout=5), problem_timeout=30)
    t0 = time.perf_counter()
    recs = dec.run(probs([f"HANG {i}" for i in range(8)]))
    wall = time.perf_counter() - t0
    # first batch: 4 concurrent requests, 4 attempts each; then the endpoint is known hung: 1 attempt each
    assert weak.client.n_requests == 4 * 4 + 4 * 1
    assert wall < 2.5, wall  # before: 2 x (1 + 4) x 4 x 0.25 s = 10 s
    assert all(r["finish"] == "error" and "timed out after 0.25 s" in r["error"] for r in recs)
    # a good answer marks the endpoint alive again: retries come back
    (out,) = weak.generate_steps(["fine"], 32)
    assert out.finished and "fine" not in weak.client._down


def test_trickling_body_is_bounded_by_the_timeout(server):
    be = backend(server, timeout=0.3, retries=0)
    t0 = time.perf_counter()
    with pytest.raises(TrimError, match=r"/v1/completions: request failed after 1 attempt: timed out after "
                                        r"0.3 s \(body still arriving\)"):
        be.generate_steps(["TRICKLE"], 32)
    assert time.perf_counter() - t0 < 1.0


# --------------------------------------------------------------------------------- transient garbage
@pytest.mark.parametrize("marker", ["TRUNC", "SHORTREAD"])
def test_truncated_body_then_good_one_is_retried(server, marker):
    be = backend(server)
    (out,) = be.generate_steps([f"{marker} q"], 32)
    assert out == StepOut(STEP, 12, True)
    assert be.client.n_retries == 1 and server.count(marker) == 2


def test_truncated_bodies_until_out_of_attempts_name_the_url(server):
    be = backend(server, retries=0)
    with pytest.raises(TrimError, match=r"/v1/completions: request failed after 1 attempt: truncated or "
                                        r"non-JSON body"):
        be.generate_steps(["TRUNC again"], 32)


# -------------------------------------------------------------------------------- numbers validated
@pytest.mark.parametrize("marker,shown", [("LOGP1000", "1000.0"), ("LOGPNAN", "nan")])
def test_bad_judge_logprob_is_a_per_problem_error_naming_url_and_field(server, routing, marker, shown):
    judge = HTTPJudgePRM(backend(server), prompt_style="plain")
    with pytest.raises(TrimError) as exc:
        judge.score("q", [[f"{marker} step"]])
    msg = str(exc.value)
    assert f"{server.url}/v1/completions" in msg and "logprobs.top_logprobs[0]['Yes']" in msg and shown in msg
    dec = make_decoder(routing, backend(server), judge)
    recs = {r["id"]: r for r in dec.run(probs(["2+2?", f"{marker} 2+2?", "two plus two?"]))}
    assert recs["1"]["finish"] == "error" and recs["1"]["error"].startswith("PRM failed: http://127.0.0.1:")
    assert "must be a log-probability" in recs["1"]["error"]
    assert recs["0"]["finish"] == recs["2"]["finish"] == "answer"
    assert 0.89 < recs["0"]["steps"][0]["prm_score"] < 0.91


def test_bad_numbers_in_other_answers(server):
    with pytest.raises(TrimError, match=r"usage.completion_tokens must be a non-negative integer, got -5"):
        backend(server).generate_steps(["BADTOKENS"], 32)
    prm = HTTPScorePRM(server.url + "/score", timeout=5)
    with pytest.raises(TrimError, match=r"/score: scores\[0\] must be a probability in \[0, 1\], got nan"):
        prm.score("SCORENAN", [["a"]])
    with pytest.raises(BatchError) as exc:  # per item: which of the batch failed
        prm.score(["fine", "SCORENAN"], [["a"], ["b"]])
    assert exc.value.outcomes[0] == 0.9 and isinstance(exc.value.outcomes[1], TrimError)


# ------------------------------------------------------------------------------- trace and resume
def test_run_to_trace_resume_retries_failed_problems_once_each(server, routing, tmp_path):
    out = tmp_path / "run.jsonl"
    prm = HTTPScorePRM(server.url + "/score", timeout=5, retries=0)
    qs = ["a?", "PRMFAIL b?", "c?", "PRMFAIL d?"]
    kw = {"progress": False, "header": {"policy": "threshold:0.5"}}
    s1 = run_to_trace(make_decoder(routing, backend(server), prm), probs(qs), out, **kw)
    assert s1["failed"] == 2 and s1["problems"] == 4
    kept = run_to_trace(make_decoder(routing, backend(server), prm), probs(qs), out, resume=True,
                        retry_errors=False, **kw)
    assert kept["decoded"] == 0 and kept["failed"] == 2
    server.prm_broken = False
    s2 = run_to_trace(make_decoder(routing, backend(server), prm), probs(qs), out, resume=True, **kw)
    assert s2["decoded"] == 2 and s2["skipped"] == 2 and s2["failed"] == 0
    run = read_run(out)
    assert sorted(r["id"] for r in run.records) == ["0", "1", "2", "3"]  # one record per problem
    assert all(r["finish"] == "answer" for r in run.records)
    assert out.read_text().count("\n") == 1 + 4  # header + records, nothing superseded left behind


@pytest.fixture()
def problem_file(tmp_path):
    pf = tmp_path / "p.jsonl"
    pf.write_text("".join(json.dumps({"question": q, "answer": "#### 4"}) + "\n"
                          for q in ["What is 2+2?", "PRMFAIL what is 2+2?", "Two plus two?"]))
    return pf


def _decode_args(server, pf, out, *extra):
    return ["decode", str(pf), "-o", str(out), "--policy", "threshold:0.4", "--quiet",
            "--weak", f"{server.url}/v1?model=weak&retries=0", "--strong", f"{server.url}/v1?model=strong",
            "--prm", f"http-score:{server.url}/score", "--max-steps", "3", *extra]


def test_decode_cli_exit_code_and_resume(server, problem_file, tmp_path, capsys):
    pytest.importorskip("torch", reason="the decode command needs torch")
    from trimpomdp.cli.main import main

    out = tmp_path / "runs" / "x.jsonl"
    assert main(_decode_args(server, problem_file, out)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f'1 of 3 problems failed (see "error" in {out}); rerun with --resume to retry them')
    assert main(_decode_args(server, problem_file, out, "--resume", "--skip-errors")) == 1
    assert "skipped 3 already done" in capsys.readouterr().err
    server.prm_broken = False
    assert main(_decode_args(server, problem_file, out, "--resume")) == 0
    err = capsys.readouterr().err
    assert "decoded 1 problems (skipped 2 already done, 0 errors)" in err and "failed" not in err
    recs = read_run(out).records
    assert sorted(r["id"] for r in recs) == ["0", "1", "2"] and all(r["finish"] == "answer" for r in recs)


def test_decode_cli_every_problem_failed_exits_1(server, problem_file, tmp_path, capsys):
    pytest.importorskip("torch", reason="the decode command needs torch")
    from trimpomdp.cli.main import main

    args = _decode_args(server, problem_file, tmp_path / "o.jsonl")
    args[args.index("--prm") + 1] = f"http-score:{server.url}/nothing?timeout=5"
    assert main(args) == 1
    assert "3 of 3 problems failed" in capsys.readouterr().err


def test_decode_cli_resume_refuses_another_policy(server, problem_file, tmp_path, capsys):
    pytest.importorskip("torch", reason="the decode command needs torch")
    from trimpomdp.cli.main import main

    server.prm_broken = False
    out = tmp_path / "o.jsonl"
    assert main(_decode_args(server, problem_file, out, "--limit", "2")) == 0
    capsys.readouterr()
    args = _decode_args(server, problem_file, out, "--resume")
    args[args.index("--policy") + 1] = "weak"
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith(f"Error: {out}: cannot resume")
    assert "policy is 'weak'" in err and "policy 'threshold:0.4'" in err and "--force-mixed" in err
    assert len(read_run(out).records) == 2  # untouched
    assert main(args + ["--force-mixed"]) == 0
    run = read_run(out)
    assert [r["policy"] for r in run.records] == ["threshold:0.4", "threshold:0.4", "weak"]
    assert main(_decode_args(server, problem_file, out, "--skip-errors")) == 2
    assert "only applies with --resume" in capsys.readouterr().err
