"""The two small interfaces the routed loop needs from any model backend, and the step-stopping rule.

Keeping them tiny lets the loop run on real Hugging Face models, on tiny in-process test models, or on
anything else that can write "the next step" for a batch of text prefixes and score a step.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

from trimpomdp.errors import TrimError

#: Steps end at a blank line (the TRIM step format).
STEP_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class StepOut:
    """One generated step: its text (stripped, without the separator), the number of decoded tokens
    (the cost of writing it, separator token included) and whether the solution ended with it (EOS, or
    the answer's ``\\boxed{}`` closed)."""

    text: str
    n_tokens: int
    finished: bool


@runtime_checkable
class StepGenerator(Protocol):
    """Writes the next step for each prefix. ``keys`` (optional, one per prefix) name the problem a
    prefix belongs to so that a backend can keep that problem's KV cache between calls."""

    name: str
    prompt_style: str

    def generate_steps(self, prefixes: Sequence[str], max_new_tokens: int,
                       keys: Sequence[str] | None = None) -> list[StepOut]: ...


@runtime_checkable
class Scorer(Protocol):
    """A process reward model: the probability that the LAST step of each step list is correct."""

    name: str

    def score(self, question: str | Sequence[str], steps_list: Sequence[Sequence[str]]) -> list[float]: ...


class BatchError(TrimError):
    """A batched call in which some items failed: ``outcomes`` holds one result or exception per item.

    Backends that run one request per item (the HTTP ones) raise it so that the loop fails only the
    problems whose items failed, instead of every problem of the batch. Its message is the first
    failure's."""

    def __init__(self, outcomes: Sequence):
        self.outcomes = list(outcomes)
        first = next((o for o in self.outcomes if isinstance(o, BaseException)), None)
        n_bad = sum(isinstance(o, BaseException) for o in self.outcomes)
        msg = str(first).strip().splitlines()[0] if first is not None and str(first).strip() else \
            type(first).__name__
        super().__init__(msg if n_bad <= 1 else f"{msg} (and {n_bad - 1} more of {len(self.outcomes)} items)")


def broadcast_questions(question: str | Sequence[str], n: int) -> list[str]:
    """One question for every step list (a single string applies to all)."""
    if isinstance(question, str):
        return [question] * n
    qs = list(question)
    if len(qs) != n:
        raise ValueError(f"got {len(qs)} questions for {n} step lists")
    return qs


def boxed_closed(text: str) -> bool:
    """True when the text contains a ``\\boxed{...}`` whose braces are balanced (the answer is complete)."""
    start = text.find("\\boxed{")
    while start >= 0:
        depth = 0
        for ch in text[start + len("\\boxed"):]:
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    return True
        start = text.find("\\boxed{", start + 1)
    return False


_LEADING_WS = re.compile(r"^\s*")


def cut_step(generated: str) -> tuple[str, str | None]:
    """Apply the stopping rule to text generated so far.

    Returns ``(step_text, reason)``: ``reason`` is ``"separator"`` once a blank line follows some
    content (leading blank lines are skipped, not steps), ``"answer"`` as soon as a ``\\boxed{}`` closes (text
    after the line holding it is dropped), else None (keep generating). The step text is stripped.
    """
    body_start = _LEADING_WS.match(generated).end()
    body = generated[body_start:]
    sep = body.find(STEP_SEPARATOR)
    head = body if sep < 0 else body[:sep]
    if boxed_closed(head):
        # the answer is complete: stop at once, keeping the line that holds it but nothing after it
        line_end = head.find("\n", head.rfind("\\boxed{"))
        return (head if line_end < 0 else head[:line_end]).strip(), "answer"
    if sep >= 0:
        return head.strip(), "separator"
    return head.strip(), None
