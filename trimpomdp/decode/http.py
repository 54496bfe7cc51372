"""Model servers over HTTP: an OpenAI-compatible completions client and two PRMs built on HTTP.

vLLM, SGLang and llama.cpp (``llama_cpp.server``, ``llama-server``) all serve ``POST /v1/completions``;
talking to them lets the routed loop use models far larger than fit in this process. Only the standard
library is used (``urllib``), requests run concurrently in a thread pool, and transient failures (5xx,
429, timeouts, refused connections, truncated bodies) are retried with exponential backoff before a
one-line ``TrimError`` naming the URL is raised. Numbers in answers (token counts, log-probabilities,
scores) are checked, so a misbehaving server gives an error naming the URL and field. Every call takes
an optional ``deadline`` (a ``time.monotonic()`` value) that bounds its retries.
"""
from __future__ import annotations

import http.client
import json
import math
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from trimpomdp.decode.backends import (STEP_SEPARATOR, BatchError, StepOut, boxed_closed,
                                       broadcast_questions)
from trimpomdp.decode.prompts import judge_prompt
from trimpomdp.errors import TrimError

__all__ = ["OpenAICompatibleBackend", "HTTPScorePRM", "HTTPJudgePRM", "JsonHTTPClient", "judge_prompt",
           "backend_from_spec", "prm_from_spec"]

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class JsonHTTPClient:
    """POST JSON, get JSON, with retries and a shared thread pool for concurrent calls.

    Transient failures (retryable HTTP statuses, timeouts, refused or dropped connections, a truncated
    or non-JSON body) are retried with exponential backoff. ``timeout`` bounds each attempt as a whole
    (a server trickling bytes cannot hold it longer), and a ``deadline`` (``time.monotonic()`` value)
    given by the caller bounds all attempts together. An endpoint whose last request ended in timeouts
    is marked down: requests to it get one attempt, no retries, until one succeeds, so a hung server
    costs one timeout per request rather than ``retries + 1``.
    """

    def __init__(self, timeout: float = 60.0, retries: int = 3, concurrency: int = 8, backoff: float = 0.5,
                 api_key: str | None = None):
        if retries < 0 or concurrency < 1 or not timeout > 0:
            raise TrimError("http client: need retries >= 0, concurrency >= 1 and timeout > 0")
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency = int(concurrency)
        self.api_key = api_key
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._down: set[str] = set()      # endpoints whose last request ended in timeouts
        self.n_requests = 0
        self.n_retries = 0

    def get(self, url: str, deadline: float | None = None) -> dict:
        """One JSON GET (same retries and errors as ``post``)."""
        return self.post(url, None, deadline=deadline)

    def post(self, url: str, payload: dict | None, deadline: float | None = None):
        """One JSON POST (GET when ``payload`` is None); retried on transient errors until the attempts or
        the ``deadline`` run out; TrimError naming the URL when it finally fails."""
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        with self._lock:
            attempts = 1 if url in self._down else self.retries + 1
        last, made, timed_out, full_timeouts, stopped = "no attempt", 0, False, 0, ""
        for attempt in range(attempts):
            if attempt:
                pause = self.backoff * 2 ** (attempt - 1)
                with self._lock:
                    if url in self._down:  # another request found it hung meanwhile
                        stopped = " (endpoint not answering)"
                        break
                if deadline is not None and time.monotonic() + pause >= deadline:
                    stopped = " (problem timeout reached)"
                    break
                with self._lock:
                    self.n_retries += 1
                time.sleep(pause)
            limit = self.timeout
            if deadline is not None:
                limit = min(limit, deadline - time.monotonic())
                if limit <= 0:
                    stopped = " (problem timeout reached)"
                    break
            made += 1
            with self._lock:
                self.n_requests += 1
            raw, last, timed_out = self._attempt(url, body, headers, limit)
            full_timeouts += timed_out and limit >= self.timeout  # not merely cut short by the deadline
            if raw is None:
                continue
            with self._lock:
                self._down.discard(url)
            try:
                return json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                last = f"truncated or non-JSON body ({len(raw)} bytes): {raw[:60]!r}"
        if timed_out and full_timeouts:
            with self._lock:
                self._down.add(url)
        if made == 0:
            raise TrimError(f"{url}: no time left for a request{stopped or ' (problem timeout reached)'}")
        plural = "attempt" if made == 1 else "attempts"
        raise TrimError(f"{url}: request failed after {made} {plural}{stopped}: {last}")

    def _attempt(self, url: str, body, headers: dict, limit: float) -> tuple[bytes | None, str, bool]:
        """One request with at most ``limit`` seconds in all: ``(body, "", False)`` on a 2xx answer, else
        ``(None, why, timed_out)`` for a transient failure; a TrimError for a permanent one."""
        req = urllib.request.Request(url, data=body, headers=headers, method="GET" if body is None else "POST")
        end = time.monotonic() + limit
        timeout_msg = f"timed out after {limit:.3g} s"
        try:
            with urllib.request.urlopen(req, timeout=limit) as resp:
                chunks = []
                while True:
                    chunk = resp.read1(1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    if time.monotonic() > end:
                        return None, timeout_msg + " (body still arriving)", True
                return b"".join(chunks), "", False
        except urllib.error.HTTPError as exc:
            with self._lock:
                self._down.discard(url)  # the server answers
            detail = _error_detail(exc)
            if exc.code in _RETRY_STATUS:
                return None, f"HTTP {exc.code}{detail}", False
            raise TrimError(f"{url}: HTTP {exc.code}{detail}") from None
        except (socket.timeout, TimeoutError):
            return None, timeout_msg, True
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (socket.timeout, TimeoutError)):
                return None, timeout_msg, True
            return None, f"cannot connect ({exc.reason})", False
        except http.client.HTTPException as exc:  # e.g. IncompleteRead: the body was cut off
            return None, f"broken response ({type(exc).__name__}: {str(exc)[:80]})", False
        except (ConnectionError, OSError) as exc:
            return None, f"connection failed ({exc})", False

    def map(self, fn, items: list) -> list:
        """``[fn(x) for x in items]``, run concurrently, order kept. When some items fail, a BatchError
        carries every item's outcome (so callers can fail only those); a single item's error is raised
        as it is."""
        items = list(items)
        if len(items) == 1:
            return [fn(items[0])]
        outcomes: list = []
        if self.concurrency == 1 or not items:
            for x in items:
                try:
                    outcomes.append(fn(x))
                except Exception as exc:  # noqa: BLE001 - reported per item below
                    outcomes.append(exc)
        else:
            with self._lock:
                if self._pool is None:
                    self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="trim-http")
            futures = [self._pool.submit(fn, x) for x in items]
            for f in futures:
                exc = f.exception()
                outcomes.append(f.result() if exc is None else exc)
        if any(isinstance(o, BaseException) for o in outcomes):
            raise BatchError(outcomes)
        return outcomes

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _error_detail(exc: urllib.error.HTTPError) -> str:
    try:
        text = exc.read().decode("utf-8", errors="replace")
    except Exception:  # noqa: BLE001 - the body is only decoration for the message
        return ""
    try:
        obj = json.loads(text)
        msg = obj.get("error", obj)
        if isinstance(msg, dict):
            msg = msg.get("message", msg)
        text = str(msg)
    except (json.JSONDecodeError, AttributeError):
        pass
    text = " ".join(text.split())[:160]
    return f": {text}" if text else ""


def api_base(base_url: str) -> str:
    """``http://h:p`` or ``http://h:p/v1`` -> ``http://h:p/v1`` (no trailing slash)."""
    url = base_url.strip().rstrip("/")
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise TrimError(f"server URL must look like http://host:port[/v1], got {base_url!r}")
    if url.endswith("/completions"):
        url = url[: -len("/completions")]
    return url if url.endswith("/v1") else url + "/v1"


def choice_tokens(choice: dict) -> int:
    """Tokens a choice cost: the server's ``usage.completion_tokens`` (checked by the caller), else the
    number of returned log-probability tokens, else the word count (at least 1)."""
    n_tok = choice["usage"].get("completion_tokens")
    if n_tok is None:
        lp = choice.get("logprobs")
        toks = lp.get("tokens") if isinstance(lp, dict) else None
        if not isinstance(toks, list):
            content = lp.get("content") if isinstance(lp, dict) else None
            toks = content if isinstance(content, list) else None
        n_tok = (len(toks) if isinstance(toks, list) else 0) or max(1, len(choice["text"].split()))
    return n_tok


def matched_stop(choice: dict) -> tuple[bool, str | None]:
    """``(known, stop string)`` for a choice that ended with ``finish_reason`` stop: vLLM says which in
    ``stop_reason``, SGLang in ``matched_stop`` (the stop string, or null / a token id for the end of the
    text, then ``(True, None)``); ``(False, None)`` when the server does not say (OpenAI, llama.cpp)."""
    if choice.get("finish_reason") != "stop":
        return False, None
    for key in ("stop_reason", "matched_stop"):
        if key in choice:
            value = choice[key]
            return True, value if isinstance(value, str) else None
    return False, None


def blank_stop(choice: dict, text: str, stop) -> bool:
    """True when the server stopped at a stop string before writing anything (a leading blank line,
    which is not a step); only servers that say which stop matched (vLLM, SGLang) tell."""
    known, which = matched_stop(choice)
    return not text.strip() and known and which is not None and which in (stop or ())


def step_from_choice(text: str, n_tokens: int, choice: dict) -> StepOut:
    """The step in a server's answer, by the stopping rule of every backend: finished when the answer's
    ``\\boxed{}`` closed (text after its line dropped), when the server reports the end of the text
    (``matched_stop``), or when the model had nothing more to write."""
    text = text.strip()
    if boxed_closed(text):
        line_end = text.find("\n", text.rfind("\\boxed{"))
        return StepOut(text if line_end < 0 else text[:line_end].strip(), n_tokens, True)
    known, which = matched_stop(choice)
    eos = known and which is None
    return StepOut(text, n_tokens, eos or (choice.get("finish_reason") == "stop" and not text))


def check_usage(out, url: str) -> dict:
    """A response's ``usage`` (``{}`` when absent), its ``completion_tokens`` checked."""
    usage = out.get("usage") if isinstance(out, dict) else None
    usage = usage if isinstance(usage, dict) else {}
    n_tok = usage.get("completion_tokens")
    if n_tok is not None and not (_is_int(n_tok) and 0 <= n_tok <= 10 ** 9):
        raise TrimError(f"{url}: usage.completion_tokens must be a non-negative integer, got {n_tok!r}")
    return usage


class OpenAICompatibleBackend:
    """A ``StepGenerator`` over an OpenAI-compatible ``/v1/completions`` endpoint.

    Each prompt is one request (the server batches them); greedy by default so runs are repeatable.
    ``StepOut.n_tokens`` is the server's ``usage.completion_tokens``; ``finished`` is True when the answer's
    ``\\boxed{}`` closed, when the server reports EOS (``stop_reason`` null, vLLM; ``matched_stop`` null or
    a token id, SGLang), or when the model had nothing more to write (empty text). ``keys`` is accepted for
    interface compatibility; a server with prefix caching reuses the shared prefix on its own.
    """

    thread_safe = True  # calls from several threads at once are fine (trimpomdp.decode.concurrent)

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, concurrency: int = 8, prompt_style: str = "chatml",
                 temperature: float = 0.0, backoff: float = 0.5, name: str | None = None,
                 extra: dict | None = None):
        self.base = api_base(base_url)
        self.url = self.base + "/completions"
        self.model = model
        self.name = name or f"http:{model}"
        self.prompt_style = prompt_style
        self.temperature = float(temperature)
        self.extra = dict(extra or {})
        self.client = JsonHTTPClient(timeout=timeout, retries=retries, concurrency=concurrency,
                                     backoff=backoff, api_key=api_key)

    def complete(self, prompt: str, max_tokens: int, stop: Sequence[str] | None = None,
                 logprobs: int | None = None, deadline: float | None = None) -> dict:
        """One completion request; returns the first choice (a dict) with ``usage`` attached."""
        payload = {"model": self.model, "prompt": prompt, "max_tokens": int(max_tokens),
                   "temperature": self.temperature, **self.extra}
        if stop:
            payload["stop"] = list(stop)
        if logprobs is not None:
            payload["logprobs"] = int(logprobs)
        out = self.client.post(self.url, payload, deadline=deadline)
        choices = out.get("choices") if isinstance(out, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict) \
                or not isinstance(choices[0].get("text"), str):
            raise TrimError(f"{self.url}: unexpected response without choices[0].text: {str(out)[:120]}")
        choice = dict(choices[0])
        choice["usage"] = check_usage(out, self.url)
        return choice

    def generate_steps(self, prompts: Sequence[str], max_new_tokens: int,
                       keys: Sequence[str] | None = None, *,
                       stop: Sequence[str] | None = (STEP_SEPARATOR,),
                       deadline: float | None = None) -> list[StepOut]:
        """The next step for every prompt (concurrently), stopping at ``stop`` (a blank line). When some
        requests fail, a ``BatchError`` says which."""
        def one(prompt: str) -> StepOut:
            choice = self.complete(prompt, max_new_tokens, stop=stop, deadline=deadline)
            n_tok = choice_tokens(choice)
            # a blank line before any content is not a step (vLLM and SGLang say which stop matched):
            # continue after it, as the in-process backend skips leading blank lines
            for _ in range(2):
                if not blank_stop(choice, choice["text"], stop):
                    break
                prompt = prompt + choice["text"] + matched_stop(choice)[1]
                choice = self.complete(prompt, max_new_tokens, stop=stop, deadline=deadline)
                n_tok += choice_tokens(choice)
            return step_from_choice(choice["text"], n_tok, choice)

        return self.client.map(one, list(prompts))

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------------------------------------------------------- PRMs
class HTTPScorePRM:
    """A PRM served over HTTP: ``POST url {"question", "steps"} -> {"scores": [one per step]}``.

    ``score`` returns the score of the LAST step of each step list (the ``Scorer`` interface)."""

    thread_safe = True

    def __init__(self, url: str, timeout: float = 60.0, retries: int = 3, concurrency: int = 8,
                 api_key: str | None = None, backoff: float = 0.5, name: str | None = None):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise TrimError(f"PRM URL must look like http://host:port/path, got {url!r}")
        self.url = url
        self.name = name or f"http-prm:{url}"
        self.client = JsonHTTPClient(timeout=timeout, retries=retries, concurrency=concurrency,
                                     backoff=backoff, api_key=api_key)

    def step_scores(self, question: str, steps: Sequence[str], deadline: float | None = None) -> list[float]:
        """Scores of every step of one solution (each a probability in [0, 1])."""
        out = self.client.post(self.url, {"question": question, "steps": list(steps)}, deadline=deadline)
        scores = out.get("scores") if isinstance(out, dict) else None
        if (not isinstance(scores, list) or len(scores) != len(steps)
                or not all(_is_num(s) for s in scores)):
            raise TrimError(f"{self.url}: expected {{\"scores\": [{len(steps)} numbers]}}, "
                            f"got {str(out)[:120]}")
        for i, v in enumerate(scores):
            if not (math.isfinite(v) and -1e-6 <= v <= 1 + 1e-6):
                raise TrimError(f"{self.url}: scores[{i}] must be a probability in [0, 1], got {v!r}")
        return [float(s) for s in scores]

    def score(self, question, steps_list, deadline: float | None = None) -> list[float]:
        """The last step's score of every step list (one request each; a BatchError says which failed)."""
        qs = broadcast_questions(question, len(steps_list))
        return self.client.map(lambda qs_: self.step_scores(*qs_, deadline=deadline)[-1],
                               list(zip(qs, map(list, steps_list))))

    def close(self) -> None:
        self.client.close()


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _logprob(v, field: str, where: str) -> float:
    """A log-probability from a server: a number <= 0, -inf allowed (a hair above 0 is rounding)."""
    if not (_is_num(v) and not math.isnan(v) and v <= 1e-4):
        raise TrimError(f"{where}: {field} must be a log-probability (a number <= 0), got {v!r}")
    return min(0.0, float(v))


def _top_logprobs(choice: dict, where: str = "server") -> dict[str, float]:
    """The first generated token's top alternatives {token: logprob}, from the completions layout
    (``logprobs.top_logprobs[0]``) or the chat layout (``logprobs.content[0].top_logprobs``); a value
    that is not a log-probability is a TrimError naming ``where`` (the URL) and the field."""
    lp = choice.get("logprobs")
    if not isinstance(lp, dict):
        return {}
    top = lp.get("top_logprobs")
    if isinstance(top, list) and top and isinstance(top[0], dict):
        return {str(k): _logprob(v, f"logprobs.top_logprobs[0][{k!r}]", where)
                for k, v in top[0].items() if v is not None}
    content = lp.get("content")
    if isinstance(content, list) and content and isinstance(content[0], dict):
        alts = content[0].get("top_logprobs") or []
        return {str(a["token"]): _logprob(a["logprob"], f"logprobs.content[0].top_logprobs[{i}].logprob", where)
                for i, a in enumerate(alts) if isinstance(a, dict) and "token" in a and "logprob" in a}
    return {}


def yes_probability(top: dict[str, float]) -> float | None:
    """P(Yes) / (P(Yes) + P(No)) over the spellings in the top alternatives; None if neither occurs.
    Computed relative to the largest log-probability, so any finite values are safe."""
    vals = [(k.strip().lower(), float(v)) for k, v in top.items()]
    vals = [(k, v) for k, v in vals if k in ("yes", "no") and v != -math.inf]
    if not vals:
        return None
    m = max(v for _, v in vals)
    yes = sum(math.exp(v - m) for k, v in vals if k == "yes")
    no = sum(math.exp(v - m) for k, v in vals if k == "no")
    return yes / (yes + no)


class HTTPJudgePRM:
    """LLM-as-judge over a completions endpoint: generate one token with ``logprobs`` and read
    P(Yes) / (P(Yes) + P(No)) from its top alternatives. When neither word is among them the judge is
    uninformative and the score is ``missing`` (0.5 by default; NaN makes the loop record an error)."""

    thread_safe = True

    def __init__(self, backend: OpenAICompatibleBackend, prompt_style: str | None = None,
                 top_logprobs: int = 20, missing: float = 0.5, name: str | None = None):
        self.backend = backend
        self.prompt_style = prompt_style or backend.prompt_style
        self.top_logprobs = int(top_logprobs)
        self.missing = float(missing)
        self.name = name or f"http-judge:{backend.model}"

    def score_one(self, question: str, steps: Sequence[str], deadline: float | None = None) -> float:
        choice = self.backend.complete(judge_prompt(question, steps, self.prompt_style), max_tokens=1,
                                       logprobs=self.top_logprobs, deadline=deadline)
        p = yes_probability(_top_logprobs(choice, self.backend.url))
        return self.missing if p is None else p

    def score(self, question, steps_list, deadline: float | None = None) -> list[float]:
        """P(Yes) of every step list (one request each; a BatchError says which failed)."""
        qs = broadcast_questions(question, len(steps_list))
        return self.backend.client.map(lambda qs_: self.score_one(*qs_, deadline=deadline),
                                       list(zip(qs, map(list, steps_list))))

    def close(self) -> None:
        self.backend.close()


# ------------------------------------------------------------------------------------------------ specs
def _split_spec(spec: str) -> tuple[str, dict[str, str]]:
    parsed = urllib.parse.urlparse(spec)
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
    return urllib.parse.urlunparse(parsed._replace(query="", fragment="")), query


def backend_from_spec(spec: str, **kw):
    """``http://host:port[/v1]?model=NAME&style=chatml&concurrency=8&timeout=60`` -> a backend.

    ``api=chat`` (with ``continue=final|prefix|trailing|none`` and ``thinking=off``) gives a
    ``chat.ChatBackend`` on ``/v1/chat/completions`` for servers that serve only the chat API; the default,
    ``api=completions``, an ``OpenAICompatibleBackend``. Without ``model`` the server's first entry of
    ``GET /v1/models`` is used (llama.cpp serves one); the API key comes from ``api_key_env`` (an
    environment variable name; default OPENAI_API_KEY)."""
    import os

    url, q = _split_spec(spec)
    known = {"model", "style", "concurrency", "timeout", "retries", "api_key_env", "temperature", "api",
             "continue", "thinking"}
    unknown = sorted(set(q) - known)
    if unknown:
        raise TrimError(f"server spec {spec!r}: unknown option {unknown[0]!r} "
                        f"(known: {', '.join(sorted(known))})")
    api = q.get("api", "completions")
    if api not in ("completions", "chat"):
        raise TrimError(f"server spec {spec!r}: api must be 'completions' or 'chat', got {api!r}")
    chat_opts = {k: q[k] for k in ("continue", "thinking") if k in q}
    if chat_opts and api != "chat":
        raise TrimError(f"server spec {spec!r}: {sorted(chat_opts)[0]}= needs api=chat")
    try:
        opts = {"prompt_style": q.get("style", kw.pop("prompt_style", "chatml")),
                "concurrency": int(q.get("concurrency", kw.pop("concurrency", 8))),
                "timeout": float(q.get("timeout", kw.pop("timeout", 60.0))),
                "retries": int(q.get("retries", kw.pop("retries", 3))),
                "temperature": float(q.get("temperature", kw.pop("temperature", 0.0)))}
    except ValueError as exc:
        raise TrimError(f"server spec {spec!r}: bad number ({exc})") from None
    api_key = os.environ.get(q.get("api_key_env", "OPENAI_API_KEY"))
    model = q.get("model") or first_model(url, opts["timeout"], opts["retries"], api_key, spec)
    name = kw.pop("name", None) or spec
    if api == "chat":
        from trimpomdp.decode.chat import ChatBackend

        if "continue" in chat_opts:
            kw["continuation"] = chat_opts["continue"]
        if "thinking" in chat_opts:
            kw["thinking"] = chat_opts["thinking"]
        return ChatBackend(url, model, api_key=api_key, name=name, **opts, **kw)
    return OpenAICompatibleBackend(url, model, api_key=api_key, name=name, **opts, **kw)


def first_model(url: str, timeout: float, retries: int, api_key: str | None, spec: str) -> str:
    """The first model a server lists at ``GET /v1/models`` (for a spec without ``model=``)."""
    probe = JsonHTTPClient(timeout=timeout, retries=retries, api_key=api_key)
    listing = probe.get(api_base(url) + "/models")
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "id" not in data[0]:
        raise TrimError(f"{api_base(url)}/models: no model listed; give ?model=NAME in {spec!r}")
    return str(data[0]["id"])


#: the HTTP PRM kinds of ``--prm``
PRM_KINDS = ("http-score", "http-judge", "vllm-pooling")


def prm_from_spec(spec: str):
    """``http-score:URL`` -> HTTPScorePRM; ``http-judge:SERVER_SPEC`` -> HTTPJudgePRM on that server;
    ``vllm-pooling:SERVER?model=NAME`` -> ``pooling.PoolingPRM`` (vLLM's ``/pooling``, STEP pooling)."""
    kind, _, target = spec.partition(":")
    if kind == "http-score" and target:
        url, q = _split_spec(target)
        return HTTPScorePRM(url, timeout=float(q.get("timeout", 60.0)),
                            concurrency=int(q.get("concurrency", 8)), name=spec)
    if kind == "http-judge" and target:
        return HTTPJudgePRM(backend_from_spec(target), name=spec)
    if kind == "vllm-pooling" and target:
        from trimpomdp.decode.pooling import pooling_prm_from_spec

        return pooling_prm_from_spec(target, name=spec)
    raise TrimError(f"HTTP PRM spec {spec!r} must be http-score:<url> or http-judge:<server url> or "
                    "vllm-pooling:<server url>?model=NAME")
