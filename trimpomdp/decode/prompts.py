"""Prompts that make a model write a solution as blank-line separated steps ending in ``\\boxed{}``.

Every model sees the same kept steps, each in its own prompt format: ``render(style, question, steps)``
is the text the model continues to write the next step. ``chatml`` suits chat models (SmolLM2);
``fewshot`` is a 2-shot plain prompt for base models (Gemma 3 270M) whose examples show the step format.
"""
from __future__ import annotations

from typing import Sequence

from trimpomdp.decode.backends import STEP_SEPARATOR

INSTRUCTION = ("Solve the problem step by step. Separate the steps with a blank line and put the final "
               "answer in \\boxed{}.")

SYSTEM = "You are a careful math tutor."

FEWSHOT_EXAMPLES = (
    ("Tom has 3 boxes with 4 apples each. He eats 2 apples. How many apples are left?",
     ["Tom starts with 3 * 4 = 12 apples.", "After eating 2 apples he has 12 - 2 = 10 apples.",
      "The answer is \\boxed{10}."]),
    ("A pen costs $2 and a notebook costs 3 times as much. What do 2 pens and 1 notebook cost?",
     ["A notebook costs 3 * 2 = 6 dollars.", "Two pens cost 2 * 2 = 4 dollars.",
      "Together they cost 4 + 6 = 10 dollars.", "The answer is \\boxed{10}."]),
)

STYLES = ("chatml", "fewshot", "plain")


def join_steps(steps: Sequence[str]) -> str:
    """The solution text: steps joined by blank lines (the trace's ``solution``)."""
    return STEP_SEPARATOR.join(s.strip() for s in steps)


def _continuation(steps: Sequence[str]) -> str:
    return join_steps(steps) + STEP_SEPARATOR if steps else ""


def chatml_prompt(question: str) -> str:
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{question.strip()}\n\n{INSTRUCTION}"
            "<|im_end|>\n<|im_start|>assistant\n")


def fewshot_prompt(question: str) -> str:
    parts = [f"Question: {q}\nSolution:\n{join_steps(s)}\n" for q, s in FEWSHOT_EXAMPLES]
    return "\n".join(parts) + f"\nQuestion: {question.strip()}\nSolution:\n"


def plain_prompt(question: str) -> str:
    return f"Question: {question.strip()}\n{INSTRUCTION}\nSolution:\n"


def render(style: str, question: str, steps: Sequence[str] = ()) -> str:
    """The text a model of prompt ``style`` continues to write step ``len(steps) + 1``."""
    if style == "chatml":
        head = chatml_prompt(question)
    elif style == "fewshot":
        head = fewshot_prompt(question)
    elif style == "plain":
        head = plain_prompt(question)
    else:
        raise ValueError(f"unknown prompt style {style!r}; expected one of {', '.join(STYLES)}")
    return head + _continuation(steps)


#: what the LLM judge is asked about the latest step; P("Yes") is its score
JUDGE_QUESTION = "Is the latest step correct? Answer Yes or No."


def judge_prompt(question: str, steps: Sequence[str], prompt_style: str = "chatml") -> str:
    """The judge's question about the latest step, for the in-process judge and a judge server alike."""
    earlier = "".join(f"Step {i}: {s.strip()}\n" for i, s in enumerate(steps[:-1], start=1))
    latest = steps[-1].strip() if steps else ""
    body = (f"Problem: {question.strip()}\n\n" + (f"Earlier steps:\n{earlier}\n" if earlier else "")
            + f"Latest step (step {len(steps)}): {latest}\n\n{JUDGE_QUESTION}")
    if prompt_style == "chatml":
        return ("<|im_start|>system\nYou check math solutions.<|im_end|>\n"
                f"<|im_start|>user\n{body}<|im_end|>\n<|im_start|>assistant\n")
    return body + "\nAnswer:"
