"""Model servers over HTTP: an OpenAI-compatible completions client and two PRMs built on HTTP.

vLLM, SGLang and llama.cpp (``llama_cpp.server``, ``llama-server``) all serve ``POST /v1/completions``;
talking to them lets the routed loop use models far larger than fit in this process. Only the standard
library is used (``urllib``), requests run concurrently in a thread pool, and transient failures (5xx,
429, timeouts, refused connections) are retried with exponential backoff before a one-line
``TrimError`` naming the URL is raised.
"""
from __future__ import annotations

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

from trimpomdp.decode.backends import STEP_SEPARATOR, StepOut, boxed_closed, broadcast_questions
from trimpomdp.errors import TrimError

__all__ = ["OpenAICompatibleBackend", "HTTPScorePRM", "HTTPJudgePRM", "JsonHTTPClient", "judge_prompt",
           "backend_from_spec", "prm_from_spec"]

JUDGE_QUESTION = "Is the latest step correct? Answer Yes or No."
_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class JsonHTTPClient:
    """POST JSON, get JSON, with retries and a shared thread pool for concurrent calls."""

    def __init__(self, timeout: float = 60.0, retries: int = 3, concurrency: int = 8, backoff: float = 0.5,
                 api_key: str | None = None):
        if retries < 0 or concurrency < 1 or timeout <= 0:
            raise TrimError("http client: need retries >= 0, concurrency >= 1 and timeout > 0")
        self.timeout, self.retries, self.backoff = float(timeout), int(retries), float(backoff)
        self.concurrency = int(concurrency)
        self.api_key = api_key
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.n_requests = 0
        self.n_retries = 0

    def get(self, url: str) -> dict:
        """One JSON GET (same retries and errors as ``post``)."""
        return self.post(url, None)

    def post(self, url: str, payload: dict | None) -> dict:
        """One JSON POST (GET when ``payload`` is None); retried on transient errors; TrimError naming the
        URL when it finally fails."""
        body = None if payload is None else json.dumps(payload).encode("utf-8")
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = "no attempt"
        for attempt in range(self.retries + 1):
            if attempt:
                with self._lock:
                    self.n_retries += 1
                time.sleep(self.backoff * 2 ** (attempt - 1))
            with self._lock:
                self.n_requests += 1
            method = "GET" if body is None else "POST"
            req = urllib.request.Request(url, data=body, headers=headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    raw = resp.read()
            except urllib.error.HTTPError as exc:
                detail = _error_detail(exc)
                if exc.code in _RETRY_STATUS:
                    last = f"HTTP {exc.code}{detail}"
                    continue
                raise TrimError(f"{url}: HTTP {exc.code}{detail}") from None
            except (socket.timeout, TimeoutError):
                last = f"timed out after {self.timeout:g} s"
                continue
            except urllib.error.URLError as exc:
                reason = exc.reason
                if isinstance(reason, (socket.timeout, TimeoutError)):
                    last = f"timed out after {self.timeout:g} s"
                else:
                    last = f"cannot connect ({reason})"
                continue
            except (ConnectionError, OSError) as exc:
                last = f"connection failed ({exc})"
                continue
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise TrimError(f"{url}: the server did not answer JSON: {raw[:80]!r}") from None
        raise TrimError(f"{url}: request failed after {self.retries + 1} attempts: {last}")

    def map(self, fn, items: list) -> list:
        """``[fn(x) for x in items]`` run concurrently (order kept; the first error is re-raised)."""
        if len(items) <= 1 or self.concurrency == 1:
            return [fn(x) for x in items]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="trim-http")
        return list(self._pool.map(fn, items))

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


class OpenAICompatibleBackend:
    """A ``StepGenerator`` over an OpenAI-compatible ``/v1/completions`` endpoint.

    Each prompt is one request (the server batches them); greedy by default so runs are repeatable.
    ``StepOut.n_tokens`` is the server's ``usage.completion_tokens``; ``finished`` is True when the answer's
    ``\\boxed{}`` closed, when the server reports EOS (``stop_reason`` null, vLLM/SGLang), or when the
    model had nothing more to write (empty text). ``keys`` is accepted for interface compatibility; a
    server with prefix caching reuses the shared prefix on its own.
    """

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
                 logprobs: int | None = None) -> dict:
        """One completion request; returns the first choice (a dict) with ``usage`` attached."""
        payload = {"model": self.model, "prompt": prompt, "max_tokens": int(max_tokens),
                   "temperature": self.temperature, **self.extra}
        if stop:
            payload["stop"] = list(stop)
        if logprobs is not None:
            payload["logprobs"] = int(logprobs)
        out = self.client.post(self.url, payload)
        choices = out.get("choices") if isinstance(out, dict) else None
        if not choices or not isinstance(choices[0], dict) or not isinstance(choices[0].get("text"), str):
            raise TrimError(f"{self.url}: unexpected response without choices[0].text: {str(out)[:120]}")
        choice = dict(choices[0])
        choice["usage"] = out.get("usage") or {}
        return choice

    def generate_steps(self, prompts: Sequence[str], max_new_tokens: int,
                       keys: Sequence[str] | None = None, *,
                       stop: Sequence[str] | None = (STEP_SEPARATOR,)) -> list[StepOut]:
        """The next step for every prompt (concurrently), stopping at ``stop`` (a blank line)."""
        def tokens_of(choice: dict) -> int:
            n_tok = choice["usage"].get("completion_tokens")
            if not isinstance(n_tok, int):
                lp = choice.get("logprobs") or {}
                n_tok = len(lp.get("tokens") or []) or max(1, len(choice["text"].split()))
            return n_tok

        def one(prompt: str) -> StepOut:
            choice = self.complete(prompt, max_new_tokens, stop=stop)
            n_tok = tokens_of(choice)
            # a blank line before any content is not a step (vLLM/SGLang say which stop matched):
            # continue after it, as the in-process backend skips leading blank lines
            for _ in range(2):
                if choice["text"].strip() or choice.get("finish_reason") != "stop" \
                        or choice.get("stop_reason") not in (stop or ()):
                    break
                prompt = prompt + choice["text"] + choice["stop_reason"]
                choice = self.complete(prompt, max_new_tokens, stop=stop)
                n_tok += tokens_of(choice)
            text = choice["text"].strip()
            if boxed_closed(text):
                line_end = text.find("\n", text.rfind("\\boxed{"))
                return StepOut(text if line_end < 0 else text[:line_end].strip(), n_tok, True)
            reason = choice.get("finish_reason")
            eos = reason == "stop" and "stop_reason" in choice and choice.get("stop_reason") is None
            finished = eos or (reason == "stop" and not text)
            return StepOut(text, n_tok, finished)

        return self.client.map(one, list(prompts))

    def close(self) -> None:
        self.client.close()


# ------------------------------------------------------------------------------------------------- PRMs
class HTTPScorePRM:
    """A PRM served over HTTP: ``POST url {"question", "steps"} -> {"scores": [one per step]}``.

    ``score`` returns the score of the LAST step of each step list (the ``Scorer`` interface)."""

    def __init__(self, url: str, timeout: float = 60.0, retries: int = 3, concurrency: int = 8,
                 api_key: str | None = None, backoff: float = 0.5, name: str | None = None):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise TrimError(f"PRM URL must look like http://host:port/path, got {url!r}")
        self.url = url
        self.name = name or f"http-prm:{url}"
        self.client = JsonHTTPClient(timeout=timeout, retries=retries, concurrency=concurrency,
                                     backoff=backoff, api_key=api_key)

    def step_scores(self, question: str, steps: Sequence[str]) -> list[float]:
        """Scores of every step of one solution."""
        out = self.client.post(self.url, {"question": question, "steps": list(steps)})
        scores = out.get("scores") if isinstance(out, dict) else None
        if (not isinstance(scores, list) or len(scores) != len(steps)
                or not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores)):
            raise TrimError(f"{self.url}: expected {{\"scores\": [{len(steps)} numbers]}}, "
                            f"got {str(out)[:120]}")
        return [float(s) for s in scores]

    def score(self, question, steps_list) -> list[float]:
        qs = broadcast_questions(question, len(steps_list))
        return self.client.map(lambda qs_: self.step_scores(*qs_)[-1], list(zip(qs, map(list, steps_list))))

    def close(self) -> None:
        self.client.close()


def judge_prompt(question: str, steps: Sequence[str], prompt_style: str = "chatml") -> str:
    """The judge's question about the latest step (same layout as the in-process ``JudgePRM``)."""
    earlier = "".join(f"Step {i}: {s.strip()}\n" for i, s in enumerate(steps[:-1], start=1))
    latest = steps[-1].strip() if steps else ""
    body = (f"Problem: {question.strip()}\n\n" + (f"Earlier steps:\n{earlier}\n" if earlier else "")
            + f"Latest step (step {len(steps)}): {latest}\n\n{JUDGE_QUESTION}")
    if prompt_style == "chatml":
        return ("<|im_start|>system\nYou check math solutions.<|im_end|>\n"
                f"<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n")
    return body + "\nAnswer:"


def _top_logprobs(choice: dict) -> dict[str, float]:
    """The first generated token's top alternatives {token: logprob}, from the completions layout
    (``logprobs.top_logprobs[0]``) or the chat layout (``logprobs.content[0].top_logprobs``)."""
    lp = choice.get("logprobs") or {}
    top = lp.get("top_logprobs")
    if isinstance(top, list) and top and isinstance(top[0], dict):
        return {str(k): float(v) for k, v in top[0].items() if v is not None}
    content = lp.get("content")
    if isinstance(content, list) and content:
        alts = content[0].get("top_logprobs") or []
        return {str(a["token"]): float(a["logprob"]) for a in alts if "token" in a and "logprob" in a}
    return {}


def yes_probability(top: dict[str, float]) -> float | None:
    """P(Yes) / (P(Yes) + P(No)) over the spellings in the top alternatives; None if neither occurs."""
    yes = sum(math.exp(v) for k, v in top.items() if k.strip().lower() == "yes")
    no = sum(math.exp(v) for k, v in top.items() if k.strip().lower() == "no")
    if yes + no <= 0:
        return None
    return yes / (yes + no)


class HTTPJudgePRM:
    """LLM-as-judge over a completions endpoint: generate one token with ``logprobs`` and read
    P(Yes) / (P(Yes) + P(No)) from its top alternatives. When neither word is among them the judge is
    uninformative and the score is ``missing`` (0.5 by default; NaN makes the loop record an error)."""

    def __init__(self, backend: OpenAICompatibleBackend, prompt_style: str | None = None,
                 top_logprobs: int = 20, missing: float = 0.5, name: str | None = None):
        self.backend = backend
        self.prompt_style = prompt_style or backend.prompt_style
        self.top_logprobs = int(top_logprobs)
        self.missing = float(missing)
        self.name = name or f"http-judge:{backend.model}"

    def score_one(self, question: str, steps: Sequence[str]) -> float:
        choice = self.backend.complete(judge_prompt(question, steps, self.prompt_style), max_tokens=1,
                                       logprobs=self.top_logprobs)
        p = yes_probability(_top_logprobs(choice))
        return self.missing if p is None else p

    def score(self, question, steps_list) -> list[float]:
        qs = broadcast_questions(question, len(steps_list))
        return self.backend.client.map(lambda qs_: self.score_one(*qs_), list(zip(qs, map(list, steps_list))))

    def close(self) -> None:
        self.backend.close()


# ------------------------------------------------------------------------------------------------ specs
def _split_spec(spec: str) -> tuple[str, dict[str, str]]:
    parsed = urllib.parse.urlparse(spec)
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
    return urllib.parse.urlunparse(parsed._replace(query="", fragment="")), query


def backend_from_spec(spec: str, **kw) -> OpenAICompatibleBackend:
    """``http://host:port[/v1]?model=NAME&style=chatml&concurrency=8&timeout=60`` -> a backend.

    Without ``model`` the server's first entry of ``GET /v1/models`` is used (llama.cpp serves one);
    the API key comes from ``api_key_env`` (an environment variable name; default OPENAI_API_KEY)."""
    import os

    url, q = _split_spec(spec)
    known = {"model", "style", "concurrency", "timeout", "retries", "api_key_env", "temperature"}
    unknown = sorted(set(q) - known)
    if unknown:
        raise TrimError(f"server spec {spec!r}: unknown option {unknown[0]!r} "
                        f"(known: {', '.join(sorted(known))})")
    try:
        opts = {"prompt_style": q.get("style", kw.pop("prompt_style", "chatml")),
                "concurrency": int(q.get("concurrency", kw.pop("concurrency", 8))),
                "timeout": float(q.get("timeout", kw.pop("timeout", 60.0))),
                "retries": int(q.get("retries", kw.pop("retries", 3))),
                "temperature": float(q.get("temperature", kw.pop("temperature", 0.0)))}
    except ValueError as exc:
        raise TrimError(f"server spec {spec!r}: bad number ({exc})") from None
    api_key = os.environ.get(q.get("api_key_env", "OPENAI_API_KEY"))
    model = q.get("model")
    if model is None:
        probe = JsonHTTPClient(timeout=opts["timeout"], retries=opts["retries"], api_key=api_key)
        listing = probe.get(api_base(url) + "/models")
        data = listing.get("data") if isinstance(listing, dict) else None
        if not data or not isinstance(data[0], dict) or "id" not in data[0]:
            raise TrimError(f"{api_base(url)}/models: no model listed; give ?model=NAME in {spec!r}")
        model = str(data[0]["id"])
    name = kw.pop("name", None) or spec
    return OpenAICompatibleBackend(url, model, api_key=api_key, name=name, **opts, **kw)


def prm_from_spec(spec: str):
    """``http-score:URL`` -> HTTPScorePRM; ``http-judge:SERVER_SPEC`` -> HTTPJudgePRM on that server."""
    kind, _, target = spec.partition(":")
    if kind == "http-score" and target:
        url, q = _split_spec(target)
        return HTTPScorePRM(url, timeout=float(q.get("timeout", 60.0)),
                            concurrency=int(q.get("concurrency", 8)), name=spec)
    if kind == "http-judge" and target:
        return HTTPJudgePRM(backend_from_spec(target), name=spec)
    raise TrimError(f"HTTP PRM spec {spec!r} must be http-score:<url> or http-judge:<server url>")
