"""A loopback stand-in for vLLM's OpenAI-compatible server: ``/v1/models``, ``/v1/completions``,
``/v1/chat/completions`` and ``/pooling`` (STEP pooling), deterministic, with injected latency and
misbehaviour on request. Used by the tests and by ``bench/decode.py`` (no GPU, no network).

The "models" write scripted solutions: a problem (the prompt before the solution) has 2-5 steps, each a
pure function of the problem, the model name and the step index, so any two runs that send the same
requests get the same answers whatever their order or timing. The PRM's P(correct) of a step is a pure
function of the step's text.
"""
from __future__ import annotations

import json
import random
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SEP = "\n\n"
QWEN_TAG = "<extra_0>"
SHEPHERD_TAG = "ки"


def h(*parts) -> int:
    return zlib.crc32("\x1f".join(map(str, parts)).encode())


def script(seed: str, model: str) -> list[str]:
    """The solution ``model`` writes for the problem whose prompt head is ``seed``."""
    n = 2 + h(seed) % 4
    steps = [f"{model} step {k}: {h(seed, model, k) % 97} + {k} = {h(seed, model, k) % 97 + k}."
             for k in range(1, n)]
    return steps + [f"So the answer is \\boxed{{{h(seed) % 50 if h(seed, model) % 3 else h(seed, model) % 50}}}."]


def prm_probability(step: str) -> float:
    """The fake PRM's P(correct) of a step: spread over [0.02, 0.98] by the step's text."""
    return round(0.02 + 0.96 * (h(step.strip()) % 1000) / 999, 4)


def split_solution(prompt: str) -> tuple[str, str]:
    """(seed, partial solution) of a completions prompt (ChatML, plain or few-shot layout). The seed of a
    ChatML prompt is its user turn, as for a chat request, so both APIs write the same solution."""
    k = 0
    for marker in ("<|im_start|>assistant\n", "Solution:\n"):
        at = prompt.rfind(marker)
        if at >= 0:
            k = max(k, at + len(marker))
    head = prompt[:k]
    if "<|im_start|>user\n" in head:
        head = head.split("<|im_start|>user\n")[-1].split("<|im_end|>")[0]
    return head, prompt[k:]


def continuation(seed: str, model: str, partial: str) -> str:
    """Everything the model would still write after ``partial`` (steps separated by blank lines)."""
    done = len([p for p in partial.split(SEP) if p.strip()])
    rest = script(seed, model)[done:]
    if not rest:
        return ""
    lead = "" if not partial or partial.endswith(SEP) else SEP
    return lead + SEP.join(rest)


class FakeVLLM:
    """One loopback server (see the module docstring). Attributes to steer it:

    ``served``: model names it serves (None: any); ``latency(path, body) -> seconds``; ``chat_flavour``:
    ``vllm`` (``continue_final_message``), ``llamacpp`` (a trailing assistant message is a prefill),
    ``openai`` (no prefill; unknown fields are a 400), ``deepseek`` (``prefix: true``); ``trim_template``:
    the chat template strips the final message (Llama 3), so a prefill loses its trailing blank line;
    ``pool_mode``: ``ok`` or one of the malformed answers in ``_pool_answer``; ``tag``/``positive``: the
    PRM's step tag and which class is "correct" (0 for math-shepherd's [+, -] rows). A request whose text
    holds GENFAIL (generation) or POOLFAIL (pooling) is refused with a 400.
    """

    def __init__(self, served=None, latency=None):
        self.served = None if served is None else set(served)
        self.latency = latency
        self.chat_flavour = "vllm"
        self.trim_template = False
        self.pool_mode = "ok"
        self.tag, self.positive = QWEN_TAG, 1
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.inflight = self.max_inflight = 0
        self.busy = 0.0            # seconds with at least one request in flight
        self.work = 0.0            # request-seconds (sum over requests of their durations)
        self._busy_since = None
        self.fail_once: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args):
                pass

            def do_GET(self):
                ids = sorted(server.served or {"fake-model"})
                server.send(self, 200, {"object": "list", "data": [{"id": i, "object": "model"} for i in ids]}
                            if self.path == "/v1/models" else None)

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    return server.send(self, 400, _error(400, "body is not JSON"))
                t0 = server._enter(self.path, body)
                # the request leaves the in-flight count when its reply starts (``send``): counted after the
                # reply, a client's next request could arrive first and be seen in flight beside it
                self.before_reply = lambda: server._leave(t0)
                try:
                    if server.latency is not None:
                        time.sleep(server.latency(self.path, body))
                    server.route(self, self.path, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    if self.before_reply is not None:  # no reply was sent
                        self.before_reply()
                        self.before_reply = None

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       daemon=True)
        self.thread.start()

    # ------------------------------------------------------------------------------------- plumbing
    def _enter(self, path, body) -> float:
        now = time.perf_counter()
        with self.lock:
            self.calls.append({"path": path, "body": body})
            if self.inflight == 0:
                self._busy_since = now
            self.inflight += 1
            self.max_inflight = max(self.max_inflight, self.inflight)
        return now

    def _leave(self, t0: float) -> None:
        now = time.perf_counter()
        with self.lock:
            self.inflight -= 1
            self.work += now - t0
            if self.inflight == 0:
                self.busy += now - self._busy_since

    def reset_stats(self) -> None:
        with self.lock:
            self.calls.clear()
            self.busy = self.work = 0.0
            self.max_inflight = 0

    @staticmethod
    def send(h, code: int, obj, raw: bytes | None = None, length: int | None = None) -> None:
        if obj is None and raw is None:
            code, obj = 404, _error(404, f"no route {h.path}")
        data = raw if raw is not None else json.dumps(obj).encode()
        leave = getattr(h, "before_reply", None)
        if leave is not None:
            h.before_reply = None
            leave()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data) if length is None else length))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    def route(self, h, path: str, body: dict) -> None:
        model = body.get("model")
        if self.served is not None and model not in self.served:
            return self.send(h, 404, _error(404, f"The model `{model}` does not exist."))
        if "GENFAIL" in json.dumps(body.get("prompt", body.get("messages", ""))) and path.startswith("/v1/"):
            return self.send(h, 400, _error(400, "generation rejected (GENFAIL)"))
        if path == "/v1/completions":
            return self.send(h, 200, self._completion(body))
        if path == "/v1/chat/completions":
            code, obj = self._chat(body)
            return self.send(h, code, obj)
        if path == "/pooling":
            return self._pool_answer(h, body)
        return self.send(h, 404, _error(404, "Not Found"))

    # ---------------------------------------------------------------------------------- generation
    @staticmethod
    def _apply_stop(text: str, body: dict) -> dict:
        """vLLM's choice for ``text`` under ``max_tokens`` (words) and ``stop`` strings."""
        words = text.split(" ")
        cut = " ".join(words[: body["max_tokens"]])
        finish, stop_reason = ("length", None) if len(words) > body["max_tokens"] else ("stop", None)
        hits = [(cut.find(s), s) for s in body.get("stop") or [] if cut.find(s) >= 0]
        if hits:
            k, s = min(hits)
            cut, finish, stop_reason = cut[:k], "stop", s
        return {"text": cut, "finish_reason": finish, "stop_reason": stop_reason,
                "usage": {"prompt_tokens": 10, "completion_tokens": len(cut.split()) + (stop_reason is not None),
                          "total_tokens": 0}}

    def _completion(self, body: dict) -> dict:
        head, partial = split_solution(body["prompt"])
        c = self._apply_stop(continuation(head, body["model"], partial), body)
        return {"id": "cmpl-fake", "object": "text_completion", "model": body["model"],
                "choices": [{"index": 0, "text": c["text"], "logprobs": None, "finish_reason": c["finish_reason"],
                             "stop_reason": c["stop_reason"]}], "usage": c["usage"]}

    def _chat(self, body: dict):
        flavour = self.chat_flavour
        allowed = {"openai": {"model", "messages", "max_tokens", "stop", "temperature"},
                   "deepseek": {"model", "messages", "max_tokens", "stop", "temperature"}}.get(flavour)
        if allowed is not None:
            extra = sorted(set(body) - allowed)
            if extra:
                return 400, _error(400, f"Unrecognized request argument supplied: {extra[0]}")
        msgs = body["messages"]
        if not msgs or msgs[0].get("role") not in ("system", "user"):
            return 400, _error(400, "messages must start with a system or user message")
        user = next(m["content"] for m in msgs if m["role"] == "user")
        seed, _, rest = user.partition("\n\nThe solution so far:\n\n")
        partial = rest.split("\n\nWrite only the next step")[0] + SEP if rest else ""
        last = msgs[-1]
        if last["role"] == "assistant":
            if flavour == "openai" and "prefix" in last:
                return 400, _error(400, "Unrecognized message field: prefix")
            prefill = {"vllm": bool(body.get("continue_final_message")), "llamacpp": True,
                       "openai": False, "deepseek": bool(last.get("prefix"))}[flavour]
            if flavour == "vllm" and body.get("continue_final_message") and body.get("add_generation_prompt", True):
                return 400, _error(400, "Cannot set both `continue_final_message` and `add_generation_prompt`")
            if prefill:
                partial = last["content"].strip() if self.trim_template else last["content"]
            # otherwise the assistant turn is closed and the model starts a new answer from scratch
        c = self._apply_stop(continuation(seed, body["model"], partial), body)
        choice = {"index": 0, "message": {"role": "assistant", "content": c["text"]},
                  "finish_reason": c["finish_reason"]}
        if flavour == "vllm":
            choice["stop_reason"] = c["stop_reason"]
        return 200, {"id": "chatcmpl-fake", "object": "chat.completion", "model": body["model"],
                     "choices": [choice], "usage": c["usage"]}

    # ------------------------------------------------------------------------------------- pooling
    def _rows(self, text: str) -> list[list[float]]:
        pieces = text.split(self.tag)[:-1]
        out = []
        for piece in pieces:
            if self.tag == SHEPHERD_TAG:
                step = piece[piece.rfind("Step "):].split(": ", 1)[-1]
            else:
                step = piece.split("<|im_start|>assistant\n")[-1]
            p = prm_probability(step)
            out.append([1 - p, p] if self.positive == 1 else [p, 1 - p])
        return out

    def _pool_answer(self, h, body: dict) -> None:
        mode = self.pool_mode
        if mode == "http400":
            return self.send(h, 400, _error(400, "This model's maximum context length is 4096 tokens."))
        if mode == "http500_once":
            key = json.dumps(body, sort_keys=True)
            if key not in self.fail_once:
                self.fail_once.add(key)
                return self.send(h, 500, _error(500, "engine busy"))
        if "messages" in body:
            texts = ["".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in body["messages"])]
        else:
            inp = body.get("input")
            texts = [inp] if isinstance(inp, str) else list(inp)
        if any("POOLFAIL" in t for t in texts):
            return self.send(h, 400, _error(400, "input rejected (POOLFAIL)"))
        data = []
        for i, t in enumerate(texts):
            rows = self._rows(t)
            if mode == "flat":
                rows = rows[-1] if rows else [0.5, 0.5]
            elif mode == "extra_rows":
                rows = rows + [[0.5, 0.5]] * 5
            elif mode == "missing_rows":
                rows = rows[:-1]
            elif mode == "logits":
                rows = [[3.2 * a - 1, 2.5 * b + 0.7] for a, b in rows]
            elif mode == "unnormalised":
                rows = [[a * 0.5, b * 0.5] for a, b in rows]
            elif mode == "base64":
                rows = "AAAAPwAAAD8="
            elif mode == "nan":
                rows = [[float("nan"), float("nan")] for _ in rows]
            elif mode == "string_row":
                rows = [["0.5", "0.5"] for _ in rows]
            elif mode == "one_class":
                rows = [[r[self.positive]] for r in rows]
            data.append({"index": i, "object": "pooling", "data": rows})
        if mode == "reversed":
            data.reverse()
        if mode == "count":
            data = data[:-1]
        if mode == "dup_index":
            data = [{**d, "index": 0} for d in data]
        if mode == "no_index":
            data = [{k: v for k, v in d.items() if k != "index"} for d in data]
        obj = {"id": "pool-fake", "object": "list", "created": 0, "model": body.get("model"), "data": data,
               "usage": {"prompt_tokens": 7, "total_tokens": 7, "completion_tokens": 0}}
        if mode == "no_data":
            obj = {"object": "list", "result": data}
        raw = json.dumps(obj).encode()
        if mode == "short_body":
            self.send(h, 200, None, raw=raw[: len(raw) // 2], length=len(raw))
            h.close_connection = True
            return
        if mode == "not_json":
            return self.send(h, 200, None, raw=b"<html>Bad Gateway</html>")
        self.send(h, 200, None, raw=raw)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _error(code: int, message: str) -> dict:
    """vLLM's error body."""
    kind = {400: "BadRequestError", 404: "NotFoundError"}.get(code, "InternalServerError")
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


def heavy_tail_latency(base: float, seed: int = 0, tail: float = 0.1, factor: float = 8.0):
    """Latency of a loaded server: ``base`` * U(0.5, 1.5), and ``factor`` times that for a ``tail``
    fraction of requests (a long generation, a preemption); deterministic per request body."""
    def latency(path, body) -> float:
        r = random.Random(h(seed, json.dumps(body, sort_keys=True)))
        t = base * r.uniform(0.5, 1.5)
        return t * factor if r.random() < tail else t
    return latency
