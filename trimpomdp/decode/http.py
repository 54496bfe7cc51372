"""The completions backend and the two PRMs built on plain HTTP endpoints.

vLLM, SGLang and llama.cpp (``llama_cpp.server``, ``llama-server``) all serve ``POST /v1/completions``;
talking to them lets the routed loop use models far larger than fit in this process. The client, its
retries and the reading of a choice are ``httpclient``'s; numbers in answers (token counts,
log-probabilities, scores) are checked, so a misbehaving server gives an error naming the URL and field.
Spec strings (``http://...?model=``, ``http-score:``, ``http-judge:``) are read by ``specs``.
"""
from __future__ import annotations

import math
import urllib.parse
from typing import Sequence

from trimpomdp.decode.backends import STEP_SEPARATOR, StepOut, broadcast_questions
from trimpomdp.decode.httpclient import (JsonHTTPClient, api_base, blank_stop, check_usage, choice_tokens,
                                         is_num, matched_stop, step_from_choice)
from trimpomdp.decode.prompts import judge_prompt
from trimpomdp.errors import TrimError

__all__ = ["OpenAICompatibleBackend", "HTTPScorePRM", "HTTPJudgePRM", "yes_probability"]



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
                or not all(is_num(s) for s in scores)):
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


def _logprob(v, field: str, where: str) -> float:
    """A log-probability from a server: a number <= 0, -inf allowed (a hair above 0 is rounding)."""
    if not (is_num(v) and not math.isnan(v) and v <= 1e-4):
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
