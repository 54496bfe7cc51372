"""The vLLM ``/pooling`` PRM client (STEP pooling) against a loopback fake of the endpoint: request
layouts (Qwen chat text, chat messages, math-shepherd), batching, concurrency, index order, retries, and
every malformed or partial answer as a one-line error naming the URL."""
from __future__ import annotations

import re
import threading
import time

import pytest
from fake_servers import SHEPHERD_TAG, FakeVLLM, prm_probability
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.decode.backends import BatchError
from trimpomdp.decode.pooling import PoolingPRM, pooling_prm_from_spec, pooling_url, step_rows
from trimpomdp.decode.prm import score_all_steps
from trimpomdp.errors import TrimError

MODEL = "Qwen/Qwen2.5-Math-PRM-7B"
Q = "What is 4 * 3?"
STEPS = ["First, 2 + 2 = 4.", "Then 4 * 3 = 12.", "So the answer is \\boxed{12}."]


@pytest.fixture(scope="module")
def server():
    s = FakeVLLM(served={MODEL})
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _reset(server):
    server.pool_mode, server.tag, server.positive, server.latency = "ok", "<extra_0>", 1, None
    server.reset_stats()
    server.fail_once.clear()


def prm(server, **kw):
    kw = {"timeout": 5.0, "retries": 1, "backoff": 0.01, **kw}
    return PoolingPRM(server.url, MODEL, **kw)


# ----------------------------------------------------------------------------------- known answers
def test_qwen_layout_request_and_scores(server):
    p = prm(server)
    assert p.step_probabilities(Q, STEPS) == [prm_probability(s) for s in STEPS]
    (call,) = server.calls
    assert call["path"] == "/pooling"
    body = call["body"]
    assert body == {"model": MODEL, "encoding_format": "float", "input": [
        "<|im_start|>system\nPlease reason step by step, and put your final answer within \\boxed{}.<|im_end|>\n"
        "<|im_start|>user\nWhat is 4 * 3?<|im_end|>\n<|im_start|>assistant\nFirst, 2 + 2 = 4.<extra_0>Then 4 * 3 "
        "= 12.<extra_0>So the answer is \\boxed{12}.<extra_0><|im_end|>\n"]}
    # the last step's score of each step list, the reference's observation
    assert p.score(Q, [STEPS[:1], STEPS]) == [prm_probability(STEPS[0]), prm_probability(STEPS[2])]


def test_pooling_sits_at_the_server_root():
    assert pooling_url("http://h:8000") == "http://h:8000/pooling"
    assert pooling_url("http://h:8000/v1/") == "http://h:8000/pooling"
    assert pooling_url("https://h/pooling") == "https://h/pooling"
    with pytest.raises(TrimError, match="http://host:port"):
        pooling_url("h:8000")


def test_messages_layout_is_one_conversation_per_request(server):
    p = prm(server, style="messages")
    assert p.score(Q, [STEPS[:2], STEPS]) == [prm_probability(STEPS[1]), prm_probability(STEPS[2])]
    bodies = sorted((c["body"] for c in server.calls), key=lambda b: len(b["messages"][2]["content"]))
    assert len(bodies) == 2 and all("input" not in b and b["add_generation_prompt"] is False for b in bodies)
    assert bodies[0]["messages"][2] == {"role": "assistant", "content": "First, 2 + 2 = 4.<extra_0>"
                                                                        "Then 4 * 3 = 12.<extra_0>"}


def test_math_shepherd_layout_reads_the_plus_class(server):
    server.tag, server.positive = SHEPHERD_TAG, 0  # rows are [P(+), P(-)] (returned_token_ids [648, 387])
    p = prm(server, style="shepherd")
    assert p.step_probabilities(Q, STEPS[:2]) == [prm_probability(s) for s in STEPS[:2]]
    assert server.calls[-1]["body"]["input"] == [f"{Q} Step 1: {STEPS[0]} ки\nStep 2: {STEPS[1]} ки"]


def test_task_is_sent_only_when_asked(server):
    prm(server, task="token_classify").score(Q, [STEPS[:1]])
    assert server.calls[-1]["body"]["task"] == "token_classify"


def test_tag_inside_a_step_is_removed(server):
    assert prm(server).step_probabilities(Q, ["2 + 2 = 4 <extra_0>", "x"]) == [prm_probability("2 + 2 = 4"),
                                                                             prm_probability("x")]


def test_items_without_index_are_taken_in_order(server):
    server.pool_mode = "no_index"
    assert prm(server).score(Q, [STEPS[:1], STEPS]) == [prm_probability(STEPS[0]), prm_probability(STEPS[2])]


def test_one_value_rows_are_the_probability(server):
    server.pool_mode = "one_class"
    assert prm(server).score(Q, [STEPS]) == [prm_probability(STEPS[2])]


# --------------------------------------------------------------------------- batching, concurrency
def test_batches_run_concurrently_and_keep_order(server):
    server.latency = lambda path, body: 0.2
    server.pool_mode = "reversed"  # data items out of order: the index decides
    lists = [STEPS[:k] for k in (1, 2, 3, 1, 2, 3, 1)]
    t0 = time.perf_counter()
    got = prm(server, batch=2, concurrency=4).score(Q, lists)
    wall = time.perf_counter() - t0
    assert got == [prm_probability(s[-1]) for s in lists]
    assert sorted(len(c["body"]["input"]) for c in server.calls) == [1, 2, 2, 2]
    assert server.max_inflight >= 3 and wall < 4 * 0.2 * 0.8


def test_failed_request_fails_only_its_step_lists(server):
    lists = [STEPS[:1], ["POOLFAIL"], STEPS[:2], STEPS]
    with pytest.raises(BatchError) as exc:
        prm(server, batch=2).score(Q, lists)
    outs = exc.value.outcomes
    assert isinstance(outs[1], TrimError) and "HTTP 400: input rejected" in str(outs[1])
    # its batch-mate of the failed request was scored again alone
    assert outs[:1] + outs[2:] == [prm_probability(STEPS[0]), prm_probability(STEPS[1]), prm_probability(STEPS[2])]
    assert sorted(len(c["body"]["input"]) for c in server.calls) == [1, 1, 2, 2]
    with pytest.raises(TrimError, match="HTTP 400") as one:  # a single list: its error as it is
        prm(server).score(Q, [["POOLFAIL"]])
    assert not isinstance(one.value, BatchError)


def test_server_error_is_retried(server):
    server.pool_mode = "http500_once"
    assert prm(server).score(Q, [STEPS]) == [prm_probability(STEPS[2])]
    assert len(server.calls) == 2


# ------------------------------------------------------------------------------- malformed answers
@pytest.mark.parametrize("mode, message", [
    ("flat", r"one flat score per input, not one row per step: .*--task classify"),
    ("extra_rows", r"data\[0\]: (8 pooled rows for 3|7 pooled rows for 2) steps: the step tag is not pooled"),
    ("missing_rows", r"data\[0\]: (2 pooled rows for 3|1 pooled rows for 2) steps: the input was truncated"),
    ("logits", r"row 0 holds values outside \[0, 1\] .*raw logits"),
    ("unnormalised", r"row 0 sums to 0\.5, not 1"),
    ("base64", r"base64-encoded"),
    ("nan", r"row 0 holds values outside \[0, 1\]"),
    ("string_row", r"row 0 must be a list of numbers"),
    ("count", r"0 pooled outputs for 1 inputs"),
    ("no_data", r"expected a pooling response"),
    ("short_body", r"request failed after 2 attempts: (broken response|truncated or non-JSON body)"),
    ("not_json", r"request failed after 2 attempts: truncated or non-JSON body"),
    ("http400", r"HTTP 400: This model's maximum context length is 4096 tokens\."),
])
def test_malformed_and_partial_answers_are_one_line_errors(server, mode, message):
    server.pool_mode = mode
    with pytest.raises(TrimError) as exc:
        prm(server, batch=2).score(Q, [STEPS, STEPS[:2]])
    assert isinstance(exc.value, BatchError) and len(exc.value.outcomes) == 2
    for failure in exc.value.outcomes:  # the request failed, then each solution alone
        text = str(failure)
        assert "\n" not in text and text.startswith(f"{server.url}/pooling: ")
        assert re.search(message, text), text


@pytest.mark.parametrize("mode, message", [
    ("count", r"1 pooled outputs for 2 inputs"),
    ("dup_index", r"data\[1\]\.index must be a distinct integer in \[0, 1\], got 0"),
])
def test_partial_multi_input_answers(server, mode, message):
    server.pool_mode = mode
    with pytest.raises(TrimError, match=message):
        prm(server).pool([(Q, STEPS), (Q, STEPS[:1])], None)


def test_unserved_model_is_named(server):
    with pytest.raises(TrimError, match=r"HTTP 404: The model `other` does not exist\."):
        PoolingPRM(server.url, "other", retries=0).score(Q, [STEPS])


def test_positive_index_out_of_range_is_named():
    with pytest.raises(TrimError, match="positive class index 2 is out of range"):
        step_rows({"data": [[0.3, 0.7]]}, 1, 2, "u")


# ------------------------------------------------------------------------------------ properties
_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)


@settings(max_examples=25, deadline=None)
@given(lists=st.lists(st.lists(_text.filter(lambda s: s.strip() and "<extra_0>" not in s), min_size=1,
                               max_size=4), min_size=1, max_size=6),
       batch=st.integers(1, 4))
def test_scores_are_the_last_rows_whatever_the_batching(server, lists, batch):
    p = prm(server, batch=batch)
    assert p.score(Q, lists) == [prm_probability(s[-1]) for s in lists]
    # STEP pooling scores every prefix in one pass: the k-th row is the score of the k-step prefix
    full = lists[0]
    assert p.step_probabilities(Q, full) == p.score(Q, [full[:k] for k in range(1, len(full) + 1)])


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.floats(0, 1), min_size=1, max_size=8), positive=st.integers(0, 1))
def test_step_rows_reads_the_positive_class(rows, positive):
    two = [[1 - p, p] if positive else [p, 1 - p] for p in rows]
    assert step_rows({"data": two}, len(rows), positive, "u") == pytest.approx(rows, abs=1e-12)
    with pytest.raises(TrimError, match=rf"{len(rows)} pooled rows for {len(rows) + 1} steps"):
        step_rows({"data": two}, len(rows) + 1, positive, "u")


# ----------------------------------------------------------------------------------------- specs
def test_spec_strings(server, monkeypatch):
    monkeypatch.setenv("PRM_KEY", "k")
    p = pooling_prm_from_spec(f"{server.url}/v1?model={MODEL}&style=shepherd&batch=4&concurrency=2&"
                              "api_key_env=PRM_KEY&positive=1", name="x")
    assert (p.url, p.tag, p.positive, p.batch, p.client.concurrency, p.client.api_key, p.name) == \
        (f"{server.url}/pooling", SHEPHERD_TAG, 1, 4, 2, "k", "x")
    assert pooling_prm_from_spec(server.url).model == MODEL  # the server's first listed model
    with pytest.raises(TrimError, match="unknown option 'colour'"):
        pooling_prm_from_spec(f"{server.url}?model=m&colour=red")
    with pytest.raises(TrimError, match="bad number"):
        pooling_prm_from_spec(f"{server.url}?model=m&batch=many")
    with pytest.raises(TrimError, match="style must be one of qwen, messages, shepherd, plain"):
        pooling_prm_from_spec(f"{server.url}?model=m&style=llama")


def test_pipeline_builds_it_and_score_steps_uses_one_request(server):
    from trimpomdp.pipeline import ModelPool

    p = ModelPool("cpu").prm(f"vllm-pooling:{server.url}?model={MODEL}")
    assert isinstance(p, PoolingPRM) and p.name == f"vllm-pooling:{server.url}?model={MODEL}"
    server.reset_stats()
    assert score_all_steps(p, Q, STEPS) == [prm_probability(s) for s in STEPS]
    assert len(server.calls) == 1


def test_concurrent_callers_share_one_client(server):
    server.latency = lambda path, body: 0.05
    p = prm(server)
    results: dict[int, float] = {}

    def call(i):
        results[i] = p.score(Q, [STEPS[: 1 + i % 3]])[0]

    threads = [threading.Thread(target=call, args=(i,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: prm_probability(STEPS[i % 3]) for i in range(9)}


def test_score_steps_cli_scores_processbench_through_pooling(server, shared, tmp_path):
    """`score-steps --prm vllm-pooling:...` on real ProcessBench solutions: one request per solution, each
    step's score the server's row for it."""
    import json

    from trimpomdp.cli.main import main
    from trimpomdp.observation_models.data import load_processbench

    src = shared / "data" / "processbench" / "gsm8k.json"
    out = tmp_path / "scores.jsonl"
    assert main(["score-steps", str(src), "-o", str(out), "--limit", "4", "--quiet",
                 "--prm", f"vllm-pooling:{server.url}?model={MODEL}"]) == 0
    items = load_processbench(src, need_problem=True)[:4]
    lines = [json.loads(ln) for ln in out.read_text().splitlines()]
    assert [ln["id"] for ln in lines] == [it["id"] for it in items]
    for ln, it in zip(lines, items):
        assert ln["scores"] == [prm_probability(s.replace("<extra_0>", "")) for s in it["steps"]]
        assert ln["label"] == it["label"]
    assert len(server.calls) == 4
