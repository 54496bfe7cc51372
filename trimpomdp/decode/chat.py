"""A step writer over ``/v1/chat/completions``, for models served only behind the chat API.

The loop hands every backend the text a completions model would continue (``prompts.render``); a chat
server needs the question and the solution so far instead, so both are read back out of that text
(``split_prompt``) and sent as a conversation whose last assistant turn is the partial solution. How the
server is told to continue that turn rather than answer it (``continuation``):

- ``final`` (vLLM, SGLang): ``continue_final_message: true`` with ``add_generation_prompt: false``;
- ``prefix`` (DeepSeek's and Mistral's APIs): ``"prefix": true`` on the assistant message;
- ``trailing`` (llama.cpp's server, Anthropic-style gateways): a trailing assistant message is a prefill;
- ``none``, the fallback for servers without prefill (e.g. OpenAI's): the solution so far goes into the
  user turn with a request for the next step only, and the reply is that step.

The first step has no partial solution and is asked for with a plain generation prompt in every mode (an
empty final message would be rendered as a finished turn by Hugging Face chat templates). Stopping and
token accounting are those of the completions backend (``httpclient.step_from_choice``): stop at a blank line,
``usage.completion_tokens`` is the cost. A template that trims the final message (Llama 3's) loses the
blank line after the last step, so the model writes it first and stops at once; such a reply is asked for
again without the stop string and cut here (``backends.cut_step``), both calls' tokens charged.
"""
from __future__ import annotations

from typing import Sequence

from trimpomdp.decode.backends import STEP_SEPARATOR, StepOut, cut_step
from trimpomdp.decode.httpclient import (JsonHTTPClient, api_base, blank_stop, check_usage, choice_tokens,
                                         step_from_choice)
from trimpomdp.decode.prompts import INSTRUCTION, SYSTEM, render
from trimpomdp.errors import TrimError

__all__ = ["ChatBackend", "CONTINUATIONS", "split_prompt"]

CONTINUATIONS = ("final", "prefix", "trailing", "none")

#: the fallback's request when the server cannot continue a prefilled assistant turn
NEXT_STEP_REQUEST = ("The solution so far:\n\n{partial}\n\nWrite only the next step (one paragraph), or the "
                     "final answer in \\boxed{{}} if the solution is complete.")

_MARK = "\x00QUESTION\x00"


def split_prompt(style: str, prompt: str) -> tuple[str, str]:
    """``(question, solution so far)`` from ``render(style, question, steps)``; the solution keeps its
    trailing blank line. A TrimError when ``prompt`` is not such a text."""
    pre, _, post = render(style, _MARK).partition(_MARK)
    at = prompt.find(post, len(pre)) if prompt.startswith(pre) else -1
    if at < 0:
        raise TrimError(f"chat backend: the prompt is not a {style!r} prompt ({prompt[:60]!r})")
    return prompt[len(pre):at], prompt[at + len(post):]


class ChatBackend:
    """A ``StepGenerator`` over an OpenAI-compatible ``/v1/chat/completions`` endpoint (module docstring).

    Greedy by default; each prompt is one request, run concurrently; ``thinking="off"`` sends
    ``chat_template_kwargs: {"enable_thinking": false}`` (Qwen3-style templates). ``prompt_style`` only
    names the layout the loop renders prompts in, which is read back here.
    """

    thread_safe = True

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0,
                 retries: int = 3, concurrency: int = 8, prompt_style: str = "chatml",
                 temperature: float = 0.0, backoff: float = 0.5, name: str | None = None,
                 extra: dict | None = None, continuation: str = "final", thinking: str | None = None):
        if continuation not in CONTINUATIONS:
            raise TrimError(f"chat continuation must be one of {', '.join(CONTINUATIONS)}, "
                            f"got {continuation!r}")
        if thinking not in (None, "on", "off"):
            raise TrimError(f"chat thinking must be 'on' or 'off', got {thinking!r}")
        self.base = api_base(base_url)
        self.url = self.base + "/chat/completions"
        self.model = model
        self.name = name or f"chat:{model}"
        self.prompt_style = prompt_style
        self.temperature = float(temperature)
        self.continuation = continuation
        self.extra = dict(extra or {})
        if thinking is not None:
            self.extra["chat_template_kwargs"] = {"enable_thinking": thinking == "on"}
        self.client = JsonHTTPClient(timeout=timeout, retries=retries, concurrency=concurrency,
                                     backoff=backoff, api_key=api_key)

    def request(self, question: str, partial: str) -> dict:
        """The chat request body (without ``max_tokens``/``stop``) that continues ``partial``."""
        user = f"{question}\n\n{INSTRUCTION}"
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
        body: dict = {"model": self.model, "temperature": self.temperature, **self.extra}
        if partial and self.continuation == "none":
            messages[1]["content"] = user + "\n\n" + NEXT_STEP_REQUEST.format(partial=partial.strip())
        elif partial:
            messages.append({"role": "assistant", "content": partial})
            if self.continuation == "final":
                body.update(continue_final_message=True, add_generation_prompt=False)
            elif self.continuation == "prefix":
                messages[-1]["prefix"] = True
        body["messages"] = messages
        return body

    def chat(self, body: dict, max_tokens: int, stop: Sequence[str] | None,
             deadline: float | None = None) -> dict:
        """One chat request; the first choice with ``text`` (the message content) and ``usage``."""
        payload = {**body, "max_tokens": int(max_tokens)}
        if stop:
            payload["stop"] = list(stop)
        out = self.client.post(self.url, payload, deadline=deadline)
        choices = out.get("choices") if isinstance(out, dict) else None
        msg = choices[0].get("message") if isinstance(choices, list) and choices \
            and isinstance(choices[0], dict) else None
        content = msg.get("content", "") if isinstance(msg, dict) else 0
        if content is None:  # e.g. a reasoning model that spent every token thinking
            content = ""
        if not isinstance(content, str):
            raise TrimError(f"{self.url}: unexpected response without choices[0].message.content: "
                            f"{str(out)[:120]}")
        choice = dict(choices[0])
        choice["text"] = content
        choice["usage"] = check_usage(out, self.url)
        return choice

    def generate_steps(self, prompts: Sequence[str], max_new_tokens: int,
                       keys: Sequence[str] | None = None, *,
                       stop: Sequence[str] | None = (STEP_SEPARATOR,),
                       deadline: float | None = None) -> list[StepOut]:
        """The next step for every prompt (concurrently); a ``BatchError`` says which requests failed."""
        def one(prompt: str) -> StepOut:
            body = self.request(*split_prompt(self.prompt_style, prompt))
            choice = self.chat(body, max_new_tokens, stop, deadline)
            if not blank_stop(choice, choice["text"], stop):
                return step_from_choice(choice["text"], choice_tokens(choice), choice)
            n_tok = choice_tokens(choice)
            again = self.chat(body, max_new_tokens, None, deadline)
            n_tok += choice_tokens(again)
            text, reason = cut_step(again["text"])
            if reason is None:  # no blank line after the step: the server's own end decides
                return step_from_choice(text, n_tok, again)
            return StepOut(text, n_tok, reason == "answer")

        return self.client.map(one, list(prompts))

    def close(self) -> None:
        self.client.close()
