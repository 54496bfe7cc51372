"""The per-problem concurrent decoder against loopback servers: the same records as the lock-step loop
(routing, tokens, errors) whatever the timing, bounded concurrency, no waiting for a slow batch-mate, and
the scheduler chosen by ``pipeline``/``decode --scheduler``."""
from __future__ import annotations

import json
import time

import pytest
from fake_servers import FakeVLLM, heavy_tail_latency
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.decode.chat import ChatBackend
from trimpomdp.decode.concurrent import ConcurrentDecoder
from trimpomdp.decode.http import OpenAICompatibleBackend
from trimpomdp.decode.loop import RoutedDecoder
from trimpomdp.decode.pooling import PoolingPRM
from trimpomdp.decode.problems import Problem
from trimpomdp.errors import TrimError

PRM = "prm"


@pytest.fixture(scope="module")
def server():
    s = FakeVLLM()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _reset(server):
    server.latency = None
    server.reset_stats()


@pytest.fixture(scope="module")
def routing():
    from trimpomdp.packaged import default_spec_path
    from trimpomdp.routing import BeliefFilter, TrimModel, load_policy

    tm = TrimModel.load(default_spec_path())
    cache = {}

    def get(spec):
        if spec not in cache:
            pol = load_policy(spec, trim_model=tm)
            cache[spec] = (pol, BeliefFilter(getattr(pol, "trim_model", None) or tm))
        return cache[spec]
    return get


def parts(server, strong_api="completions"):
    kw = {"timeout": 10.0, "retries": 0}
    weak = OpenAICompatibleBackend(server.url, "weak", **kw)
    strong = (ChatBackend if strong_api == "chat" else OpenAICompatibleBackend)(server.url, "strong", **kw)
    return weak, strong, PoolingPRM(server.url, PRM, **kw)


def problems(n, special=()):
    qs = [f"Problem {i}: what is {i} + {2 * i}?" for i in range(n)]
    for i, marker in special:
        qs[i] = f"{marker} {qs[i]}"
    return [Problem(str(i), q, str(3 * i), "gsm8k") for i, q in enumerate(qs)]


def decode(kind, server, routing, probs, *, policy="threshold:0.5", width=4, strong=True, strong_api="completions"):
    weak, strong_gen, prm = parts(server, strong_api)
    pol, filt = routing(policy)
    cls, key = (ConcurrentDecoder, "concurrency") if kind == "concurrent" else (RoutedDecoder, "batch_size")
    dec = cls(weak, strong_gen if strong else None, prm, pol, filt, policy_name=policy, max_steps=6,
              max_step_tokens=48, problem_timeout=20.0, **{key: width})
    order = []
    recs = dec.run(probs, on_record=lambda r: order.append(r["id"]))
    assert [r["id"] for r in recs] == order
    return {r["id"]: {k: v for k, v in r.items() if k != "seconds"} for r in recs}, dec.stats


def same_stats(a, b):
    return [(s.steps, s.regenerations, s.problems, s.errors) for s in (a, b)]


# ------------------------------------------------------------------------------------ equivalence
@pytest.mark.parametrize("policy", ["threshold:0.5", "pomdp:lambda=0.15"])
def test_same_records_as_the_lockstep_loop(server, routing, policy):
    server.latency = heavy_tail_latency(0.004, seed=1, tail=0.2)  # completion order differs from the loop's
    probs = problems(10, special=[(3, "POOLFAIL"), (7, "GENFAIL")])
    lock, s_lock = decode("lockstep", server, routing, probs, policy=policy)
    conc, s_conc = decode("concurrent", server, routing, probs, policy=policy)
    assert conc == lock
    (a, b) = same_stats(s_lock, s_conc)
    assert a == b
    actions = [s["action"] for r in lock.values() for s in r["steps"]]
    assert "keep" in actions and "regenerate" in actions  # both paths exercised
    assert lock["3"]["finish"] == "error" and lock["3"]["error"].startswith("PRM failed: ")
    assert lock["7"]["error"].startswith("weak generation failed: ") and "GENFAIL" in lock["7"]["error"]


def test_same_records_with_a_chat_strong_model_and_without_strong(server, routing):
    probs = problems(6)
    assert decode("concurrent", server, routing, probs, strong_api="chat")[0] == \
        decode("lockstep", server, routing, probs, strong_api="chat")[0]
    lock, _ = decode("lockstep", server, routing, probs, strong=False)
    assert decode("concurrent", server, routing, probs, strong=False)[0] == lock
    assert any(r["error"] == "policy chose regenerate but no strong model is loaded" for r in lock.values())


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 7), width=st.integers(1, 5), seed=st.integers(0, 10 ** 6),
       policy=st.sampled_from(["threshold:0.3", "threshold:0.7", "weak", "strong"]))
def test_identical_whatever_the_width_and_timing(server, routing, n, width, seed, policy):
    server.latency = heavy_tail_latency(0.002, seed=seed, tail=0.3)
    probs = problems(n)
    assert decode("concurrent", server, routing, probs, policy=policy, width=width)[0] == \
        decode("lockstep", server, routing, probs, policy=policy, width=width)[0]


# ----------------------------------------------------------------------------------- scheduling
def test_bounded_and_not_held_back_by_a_slow_problem(server, routing):
    def latency(path, body):
        return 0.15 if "SLOW" in json.dumps(body) else 0.01
    server.latency = latency
    probs = problems(8, special=[(0, "SLOW")])
    server.reset_stats()
    t0 = time.perf_counter()
    weak, strong, prm = parts(server)
    pol, filt = routing("threshold:0.5")
    order = []
    ConcurrentDecoder(weak, strong, prm, pol, filt, policy_name="t", concurrency=3, max_steps=6,
                      max_step_tokens=48).run(probs, on_record=lambda r: order.append(r["id"]))
    wall = time.perf_counter() - t0
    assert 1 <= server.max_inflight <= 3       # one request per problem in flight, three problems
    assert order[-1] == "0" and sorted(order) == sorted(p.id for p in probs)
    n_slow = sum("SLOW" in json.dumps(c["body"]) for c in server.calls)
    # the slow problem's own requests bound the run; the others finished meanwhile
    assert wall < n_slow * 0.15 + 1.0


def test_unexpected_errors_reach_the_caller(server, routing):
    class Broken:
        def start(self):
            return None

        def act(self, state, obs):
            raise RuntimeError("policy bug")

    weak, strong, prm = parts(server)
    _, filt = routing("threshold:0.5")
    dec = ConcurrentDecoder(weak, strong, prm, Broken(), filt, policy_name="b", concurrency=2)
    with pytest.raises(RuntimeError, match="policy bug"):
        dec.run(problems(3))


def test_pipeline_picks_the_scheduler(server, routing):
    from trimpomdp.pipeline import build_decoder

    weak, strong, prm = parts(server)
    pol, filt = routing("threshold:0.5")
    kw = {"policy_name": "t", "batch_size": 3}
    assert isinstance(build_decoder(weak, strong, prm, pol, filt, **kw), ConcurrentDecoder)
    assert isinstance(build_decoder(weak, strong, prm, pol, filt, scheduler="lockstep", **kw), RoutedDecoder)

    class Local:  # an in-process model: no thread_safe declaration
        name, prompt_style = "local", "chatml"

    assert isinstance(build_decoder(Local(), strong, prm, pol, filt, **kw), RoutedDecoder)
    with pytest.raises(TrimError, match="concurrent scheduler needs server-hosted models"):
        build_decoder(Local(), strong, prm, pol, filt, scheduler="concurrent", **kw)
    assert build_decoder(weak, None, prm, pol, filt, **kw).concurrency == 3


def test_decode_cli_schedulers_write_the_same_trace(server, tmp_path):
    pytest.importorskip("torch", reason="the decode command needs torch")
    from trimpomdp.cli.main import main
    from trimpomdp.decode.trace import read_run

    pf = tmp_path / "p.jsonl"
    pf.write_text("".join(json.dumps({"question": p.question, "answer": f"#### {p.reference}"}) + "\n"
                          for p in problems(5)))
    runs = {}
    for sched in ("lockstep", "concurrent", "auto"):
        out = tmp_path / f"{sched}.jsonl"
        assert main(["decode", str(pf), "-o", str(out), "--quiet", "--policy", "threshold:0.5",
                     "--weak", f"{server.url}/v1?model=weak", "--strong", f"{server.url}/v1?model=strong&api=chat",
                     "--prm", f"vllm-pooling:{server.url}?model={PRM}", "--max-steps", "6",
                     "--scheduler", sched]) == 0
        run = read_run(out)
        assert run.header["settings"]["scheduler"] == sched
        runs[sched] = {r["id"]: {k: v for k, v in r.items() if k != "seconds"} for r in run.records}
    assert runs["lockstep"] == runs["concurrent"] == runs["auto"]
