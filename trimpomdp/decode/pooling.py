"""Process reward models served by vLLM's pooling API with STEP pooling: every step scored in one pass.

A step-tag PRM scores a solution whose steps each end with a tag token: Qwen2.5-Math-PRM puts ``<extra_0>``
after every step inside its chat conversation, and a 2-class head gives ``[P(wrong), P(correct)]`` at each
tag; math-shepherd writes ``Step i: ... ки`` and reads the softmax over its ``+``/``-`` tokens there.
``vllm serve Qwen/Qwen2.5-Math-PRM-7B --trust-remote-code`` pools exactly those rows (STEP pooling, the
model's default; ``--task classify`` must not be given, it replaces them with one score per input), so no
custom scoring server is needed.

The request (``POST <server root>/pooling``; vLLM serves it beside ``/v1``, not under it)::

    {"model": M, "input": [text, ...], "encoding_format": "float"}    (+ "task" when asked for)
    {"model": M, "messages": [...], "add_generation_prompt": false}   (style=messages: the server's template)

and its answer: ``{"data": [{"index": i, "object": "pooling", "data": [[p_0, p_1], ...]}], "usage": ...}``,
one row per tag of input ``i`` (one value per returned class). Across vLLM versions the task of the STEP
pooler was called ``encode``, then ``token_classify``; without a ``task`` field the server uses the model's
default, which is why none is sent unless the spec asks (``task=``). A row is used only when it is a
probability vector; anything else (one flat score, a count of rows other than the number of steps,
logits, base64, missing or repeated indices) is a one-line error naming the URL and what was expected.

SGLang has no equivalent: its reward models (``--is-embedding``) return one score per input through
``/classify`` or ``/v1/embeddings``, and it does not serve Qwen2ForProcessRewardModel's step head.
"""
from __future__ import annotations

import math
import os
import urllib.parse
from dataclasses import dataclass
from typing import Sequence

from trimpomdp.decode.backends import BatchError, broadcast_questions
from trimpomdp.decode.httpclient import JsonHTTPClient, first_model, is_int, is_num, split_spec
from trimpomdp.decode.prm import QWEN_STEP_TOKEN, QWEN_SYSTEM
from trimpomdp.errors import TrimError

__all__ = ["PoolingPRM", "PoolingStyle", "STYLES", "pooling_prm_from_spec", "pooling_url", "step_rows"]


@dataclass(frozen=True)
class PoolingStyle:
    """How a PRM family wants a solution written: the step tag, which class is "correct", the text."""

    name: str
    tag: str
    positive: int           # index of the correct class in each pooled row
    chat: bool              # one conversation per request as ``messages`` (the server renders it)


#: the solution layouts: Qwen2.5-Math-PRM rendered here (``qwen``) or by the server's chat template
#: (``messages``), math-shepherd's ``Step i: ... ки`` lines (rows are [P(+), P(-)]: positive class 0), and
#: ``plain`` (question, newline, every step followed by the tag) for other step-tag PRMs
STYLES = {
    "qwen": PoolingStyle("qwen", QWEN_STEP_TOKEN, 1, False),
    "messages": PoolingStyle("messages", QWEN_STEP_TOKEN, 1, True),
    "shepherd": PoolingStyle("shepherd", "ки", 0, False),
    "plain": PoolingStyle("plain", QWEN_STEP_TOKEN, 1, False),
}

#: how far a pooled row may be from summing to 1 (a bf16 softmax keeps about 3 digits)
ROW_SUM_TOLERANCE = 0.02


def pooling_url(server: str) -> str:
    """``http://h:p``, ``http://h:p/v1`` or ``http://h:p/pooling`` -> ``http://h:p/pooling``."""
    url = server.strip().rstrip("/")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise TrimError(f"PRM server URL must look like http://host:port, got {server!r}")
    for tail in ("/pooling", "/v1"):
        if url.endswith(tail):
            url = url[: -len(tail)]
    return url + "/pooling"


def _clean(step: str, tag: str) -> str:
    """A step's text without the tag (a tag written by the model would add a row), stripped."""
    return step.replace(tag, "").strip()


def render_solution(style: PoolingStyle, question: str, steps: Sequence[str], tag: str | None = None):
    """The input of one solution: a string, or the ``messages`` list for a chat-style request."""
    tag = tag or style.tag
    clean = [_clean(s, tag) for s in steps]
    if style.name == "shepherd":
        return f"{question.strip()} " + "\n".join(f"Step {i}: {s} {tag}" for i, s in enumerate(clean, 1))
    body = "".join(s + tag for s in clean)
    if style.name == "plain":
        return f"{question.strip()}\n{body}"
    messages = [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": question},
                {"role": "assistant", "content": body}]
    if style.chat:
        return messages
    # Qwen2.5's chat template, as the model card's example renders it (add_generation_prompt=False)
    return "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)


def step_rows(item, n_steps: int, positive: int, where: str) -> list[float]:
    """P(correct) of every step from one pooled output ``item`` (``{"index", "data": rows}``); a
    TrimError naming ``where`` when it is not one probability row per step."""
    rows = item.get("data") if isinstance(item, dict) else None
    if isinstance(rows, str):
        raise TrimError(f"{where}: pooled data is base64-encoded text; expected float rows "
                        "(the client asks for encoding_format float)")
    if not isinstance(rows, list):
        raise TrimError(f"{where}: expected a list of rows in data, got {str(rows)[:60]}")
    if rows and all(is_num(v) for v in rows):
        raise TrimError(f"{where}: one flat score per input, not one row per step: the server pools the "
                        "whole sequence (started with --task classify?); serve the PRM with STEP pooling")
    if len(rows) != n_steps:
        hint = ("the step tag is not pooled (set step_tag_id in --pooler-config)" if len(rows) > n_steps
                else "the input was truncated (max model length) or the tag is not one token")
        raise TrimError(f"{where}: {len(rows)} pooled rows for {n_steps} steps: {hint}")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, list) or not row or not all(is_num(v) for v in row):
            raise TrimError(f"{where}: row {i} must be a list of numbers, got {str(row)[:60]}")
        if not all(math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6 for v in row):
            raise TrimError(f"{where}: row {i} holds values outside [0, 1] ({str(row)[:60]}): raw logits? "
                            "the pooler must apply its softmax")
        if len(row) > 1 and abs(sum(row) - 1.0) > ROW_SUM_TOLERANCE:
            raise TrimError(f"{where}: row {i} sums to {sum(row):.4g}, not 1: not class probabilities")
        if len(row) > 1 and positive >= len(row):
            raise TrimError(f"{where}: row {i} has {len(row)} classes; the positive class index {positive} "
                            "is out of range (set positive=)")
        out.append(min(1.0, max(0.0, float(row[positive] if len(row) > 1 else row[0]))))
    return out


class PoolingPRM:
    """A ``Scorer`` on vLLM's ``/pooling`` endpoint (see the module docstring for the wire format).

    Solutions are sent ``batch`` to a request (vLLM batches them itself; a chat-style request holds one)
    and requests run concurrently, ``concurrency`` at a time, with the retries and deadline of
    ``http.JsonHTTPClient``; a request that fails is sent again one solution at a time, so that a bad
    input (too long, say) fails only its own problem. ``score`` returns the last step's P(correct) of every step list;
    ``step_probabilities`` every step's, from one request (``score-steps`` uses it).
    """

    thread_safe = True

    def __init__(self, server: str, model: str, *, style: str = "qwen", tag: str | None = None,
                 positive: int | None = None, task: str | None = None, batch: int = 16,
                 timeout: float = 60.0, retries: int = 3, concurrency: int = 8, backoff: float = 0.5,
                 api_key: str | None = None, name: str | None = None):
        if style not in STYLES:
            raise TrimError(f"pooling PRM style must be one of {', '.join(STYLES)}, got {style!r}")
        if batch < 1:
            raise TrimError(f"pooling PRM batch must be >= 1, got {batch}")
        if positive is not None and not (is_int(positive) and positive >= 0):
            raise TrimError(f"pooling PRM positive class index must be an integer >= 0, got {positive!r}")
        self.url = pooling_url(server)
        self.model = model
        self.style = STYLES[style]
        self.tag = tag or self.style.tag
        self.positive = self.style.positive if positive is None else int(positive)
        self.task = task
        self.batch = 1 if self.style.chat else int(batch)
        self.name = name or f"vllm-pooling:{model}"
        self.client = JsonHTTPClient(timeout=timeout, retries=retries, concurrency=concurrency,
                                     backoff=backoff, api_key=api_key)

    def _request(self, inputs: list) -> dict:
        payload: dict = {"model": self.model, "encoding_format": "float"}
        if self.style.chat:
            (messages,) = inputs
            payload.update(messages=messages, add_generation_prompt=False)
        else:
            payload["input"] = inputs
        if self.task:
            payload["task"] = self.task
        return payload

    def pool(self, solutions: list[tuple[str, list[str]]], deadline: float | None) -> list[list[float]]:
        """Every step's P(correct) for a few solutions, from one request."""
        inputs = [render_solution(self.style, q, s, self.tag) for q, s in solutions]
        out = self.client.post(self.url, self._request(inputs), deadline=deadline)
        data = out.get("data") if isinstance(out, dict) else None
        if not isinstance(data, list):
            raise TrimError(f"{self.url}: expected a pooling response {{\"data\": [...]}}, "
                            f"got {str(out)[:100]}")
        if len(data) != len(inputs):
            raise TrimError(f"{self.url}: {len(data)} pooled outputs for {len(inputs)} inputs")
        by_index: dict[int, dict] = {}
        for k, item in enumerate(data):
            idx = item.get("index", k) if isinstance(item, dict) else None
            if not (is_int(idx) and 0 <= idx < len(inputs)) or idx in by_index:
                raise TrimError(f"{self.url}: data[{k}].index must be a distinct integer in "
                                f"[0, {len(inputs) - 1}], got {idx!r}")
            by_index[idx] = item
        return [step_rows(by_index[i], len(s), self.positive, f"{self.url}: data[{i}]")
                for i, (_, s) in enumerate(solutions)]

    def step_probabilities(self, question: str, steps: Sequence[str],
                           deadline: float | None = None) -> list[float]:
        """P(correct) of every step of one solution (one request)."""
        return self.pool([(question, list(steps))], deadline)[0] if steps else []

    def score(self, question, steps_list, deadline: float | None = None) -> list[float]:
        """The last step's P(correct) of every step list. When some requests fail, a ``BatchError`` holds
        each list's score or the error of the request that carried it."""
        qs = broadcast_questions(question, len(steps_list))
        items = [(q, list(s)) for q, s in zip(qs, steps_list)]
        if any(not s for _, s in items):
            raise TrimError(f"{self.url}: a step list to score is empty")
        chunks = [items[i:i + self.batch] for i in range(0, len(items), self.batch)]

        def alone(item):
            try:
                return self.pool([item], deadline)[0][-1]
            except Exception as exc:  # noqa: BLE001 - reported per step list below
                return exc

        def one(chunk) -> list:  # a list, so that the client's map takes a returned error as a result
            try:
                return [p[-1] for p in self.pool(chunk, deadline)]
            except Exception:  # noqa: BLE001 - one bad input must not fail its batch-mates: each alone
                return [alone(item) for item in chunk]

        outcomes = [o for res in self.client.map(one, chunks) for o in res]
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        if failed and len(outcomes) == 1:
            raise failed[0]
        if failed:
            raise BatchError(outcomes)
        return outcomes

    def close(self) -> None:
        self.client.close()


#: the options of a ``vllm-pooling:`` spec
SPEC_OPTIONS = ("model", "style", "tag", "positive", "task", "batch", "concurrency", "timeout", "retries",
                "api_key_env")


def pooling_prm_from_spec(target: str, name: str | None = None) -> PoolingPRM:
    """``http://host:8000?model=Qwen/Qwen2.5-Math-PRM-7B[&style=qwen|messages|shepherd|plain][&tag=..]
    [&positive=1][&task=token_classify][&batch=16][&concurrency=8][&timeout=60][&retries=3]
    [&api_key_env=VAR]`` -> a PoolingPRM (without ``model`` the server's first listed model)."""
    url, q = split_spec(target)
    unknown = sorted(set(q) - set(SPEC_OPTIONS))
    if unknown:
        raise TrimError(f"vllm-pooling spec {target!r}: unknown option {unknown[0]!r} "
                        f"(known: {', '.join(SPEC_OPTIONS)})")
    try:
        num = {"batch": int(q.get("batch", 16)), "concurrency": int(q.get("concurrency", 8)),
               "timeout": float(q.get("timeout", 60.0)), "retries": int(q.get("retries", 3)),
               "positive": int(q["positive"]) if "positive" in q else None}
    except ValueError as exc:
        raise TrimError(f"vllm-pooling spec {target!r}: bad number ({exc})") from None
    api_key = os.environ.get(q.get("api_key_env", "OPENAI_API_KEY"))
    pooling_url(url)  # a bad URL is refused before any request
    model = q.get("model") or first_model(url.rstrip("/").removesuffix("/pooling"), num["timeout"],
                                          num["retries"], api_key, target)
    return PoolingPRM(url, model, style=q.get("style", "qwen"), tag=q.get("tag"), task=q.get("task"),
                      api_key=api_key, name=name, **num)
