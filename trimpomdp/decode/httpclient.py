"""The HTTP layer every served model shares: a JSON client with retries, and the OpenAI-API helpers.

vLLM, SGLang and llama.cpp speak the same OpenAI-compatible dialect, so the completions backend
(``http``), the chat backend (``chat``) and the pooling PRM (``pooling``) share one client, one reading of
a choice (its tokens, its stop, the step it holds) and one parser of spec strings (``URL?key=value``);
they sit here, below all of them, so that none imports another. Only the standard library is used
(``urllib``); transient failures (5xx, 429, timeouts, refused connections, truncated bodies) are retried
with exponential backoff before a one-line ``TrimError`` naming the URL is raised, and every call takes an
optional ``deadline`` (a ``time.monotonic()`` value) that bounds its retries.
"""
from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from trimpomdp.decode.backends import BatchError, StepOut, boxed_closed
from trimpomdp.errors import TrimError

__all__ = ["JsonHTTPClient", "api_base", "blank_stop", "check_usage", "choice_tokens", "first_model",
           "is_int", "is_num", "matched_stop", "split_spec", "step_from_choice"]

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
    if n_tok is not None and not (is_int(n_tok) and 0 <= n_tok <= 10 ** 9):
        raise TrimError(f"{url}: usage.completion_tokens must be a non-negative integer, got {n_tok!r}")
    return usage


def is_num(x) -> bool:
    """A JSON number (a bool is not one)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def is_int(x) -> bool:
    """A JSON integer (a bool is not one)."""
    return isinstance(x, int) and not isinstance(x, bool)


# ------------------------------------------------------------------------------------------------ specs
def split_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``URL?k=v&...`` -> ``(URL, {k: v})`` (the last value of a repeated key wins)."""
    parsed = urllib.parse.urlparse(spec)
    query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
    return urllib.parse.urlunparse(parsed._replace(query="", fragment="")), query


def first_model(url: str, timeout: float, retries: int, api_key: str | None, spec: str) -> str:
    """The first model a server lists at ``GET /v1/models`` (for a spec without ``model=``)."""
    probe = JsonHTTPClient(timeout=timeout, retries=retries, api_key=api_key)
    listing = probe.get(api_base(url) + "/models")
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "id" not in data[0]:
        raise TrimError(f"{api_base(url)}/models: no model listed; give ?model=NAME in {spec!r}")
    return str(data[0]["id"])
