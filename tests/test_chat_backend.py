"""The chat-completions step backend against loopback chat servers of several flavours (vLLM, llama.cpp,
an OpenAI-like one without prefill, DeepSeek-style prefix): continuation layouts, the fallback, the same
steps and token counts as the completions backend, and one-line errors."""
from __future__ import annotations

import pytest
from fake_servers import FakeVLLM, script
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.decode.backends import STEP_SEPARATOR, StepOut
from trimpomdp.decode.chat import ChatBackend, split_prompt
from trimpomdp.decode.http import OpenAICompatibleBackend
from trimpomdp.decode.specs import backend_from_spec
from trimpomdp.decode.prompts import INSTRUCTION, SYSTEM, join_steps, render
from trimpomdp.errors import TrimError

Q = "Tom has 3 boxes of 4 apples. How many apples?"
SEED = f"{Q}\n\n{INSTRUCTION}"


@pytest.fixture(scope="module")
def server():
    s = FakeVLLM()
    yield s
    s.close()


@pytest.fixture(autouse=True)
def _reset(server):
    server.chat_flavour, server.trim_template = "vllm", False
    server.reset_stats()


def chat(server, **kw):
    return ChatBackend(server.url + "/v1", "strong", timeout=5, retries=0, **kw)


def prompts_along(model="strong"):
    """The loop's prompt before every step of the fake model's own solution."""
    steps = script(SEED, model)
    return [render("chatml", Q, steps[:k]) for k in range(len(steps))], steps


# ------------------------------------------------------------------------------- prompt round trip
_q = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
_step = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(style=st.sampled_from(["chatml", "plain", "fewshot"]), question=_q, steps=st.lists(_step, max_size=4))
def test_split_prompt_inverts_render(style, question, steps):
    question = question.strip() or "q"
    q, partial = split_prompt(style, render(style, question, steps))
    assert q == question
    assert partial == (join_steps(steps) + STEP_SEPARATOR if steps else "")


def test_split_prompt_refuses_other_text():
    with pytest.raises(TrimError, match="not a 'chatml' prompt"):
        split_prompt("chatml", "Question: x\nSolution:\n")


# -------------------------------------------------------------------------------------- layouts
def test_request_layouts():
    be = ChatBackend("http://h:1/v1", "m", continuation="final")
    first = be.request("q", "")
    assert first["messages"] == [{"role": "system", "content": SYSTEM},
                                 {"role": "user", "content": f"q\n\n{INSTRUCTION}"}]
    assert "continue_final_message" not in first  # an empty final message would close the turn
    later = be.request("q", "a.\n\n")
    assert later["messages"][-1] == {"role": "assistant", "content": "a.\n\n"}
    assert later["continue_final_message"] is True and later["add_generation_prompt"] is False
    prefix = ChatBackend("http://h:1", "m", continuation="prefix").request("q", "a.\n\n")
    assert prefix["messages"][-1] == {"role": "assistant", "content": "a.\n\n", "prefix": True}
    trailing = ChatBackend("http://h:1", "m", continuation="trailing").request("q", "a.\n\n")
    assert trailing["messages"][-1]["role"] == "assistant" and "continue_final_message" not in trailing
    none = ChatBackend("http://h:1", "m", continuation="none").request("q", "a.\n\nb.\n\n")
    assert [m["role"] for m in none["messages"]] == ["system", "user"]
    assert none["messages"][1]["content"].endswith("The solution so far:\n\na.\n\nb.\n\nWrite only the next step "
                                                   "(one paragraph), or the final answer in \\boxed{} if the "
                                                   "solution is complete.")
    off = ChatBackend("http://h:1", "m", thinking="off").request("q", "")
    assert off["chat_template_kwargs"] == {"enable_thinking": False}
    with pytest.raises(TrimError, match="continuation must be one of final, prefix, trailing, none"):
        ChatBackend("http://h:1", "m", continuation="maybe")


# --------------------------------------------------------------------- same steps as completions
def test_chat_steps_and_tokens_equal_the_completions_backend(server):
    prompts, steps = prompts_along()
    comp = OpenAICompatibleBackend(server.url, "strong", timeout=5, retries=0)
    got = chat(server).generate_steps(prompts, 64)
    assert got == comp.generate_steps(prompts, 64)
    assert [o.text for o in got] == steps and [o.finished for o in got] == [False] * (len(steps) - 1) + [True]
    assert [o.n_tokens for o in got] == [len(s.split()) + 1 for s in steps[:-1]] + [len(steps[-1].split())]
    # truncated by max tokens: not finished, the server's token count
    (cut,) = chat(server).generate_steps(prompts[:1], 2)
    assert cut == StepOut(" ".join(steps[0].split()[:2]), 2, False)
    bodies = [c["body"] for c in server.calls if c["path"] == "/v1/chat/completions"]
    assert all(b["stop"] == ["\n\n"] and b["temperature"] == 0.0 for b in bodies)


@pytest.mark.parametrize("flavour, continuation", [("vllm", "final"), ("llamacpp", "trailing"),
                                                   ("deepseek", "prefix"), ("openai", "none")])
def test_each_server_flavour_with_its_continuation(server, flavour, continuation):
    server.chat_flavour = flavour
    prompts, steps = prompts_along()
    got = chat(server, continuation=continuation).generate_steps(prompts, 64)
    assert [o.text for o in got] == steps and got[-1].finished


def test_without_prefill_a_closed_turn_starts_over(server):
    """Why the continuation mode matters: vLLM given a trailing assistant message without
    continue_final_message answers anew, so the 'next' step is the first one again."""
    prompts, steps = prompts_along()
    (o,) = chat(server, continuation="trailing").generate_steps(prompts[1:2], 64)
    assert o.text == steps[0]


def test_unsupported_fields_are_a_one_line_error(server):
    server.chat_flavour = "openai"
    prompts, _ = prompts_along()
    with pytest.raises(TrimError) as exc:
        chat(server, continuation="final").generate_steps(prompts[1:2], 64)
    assert str(exc.value) == (f"{server.url}/v1/chat/completions: HTTP 400: Unrecognized request argument "
                              "supplied: add_generation_prompt")


def test_template_that_trims_the_prefill(server):
    """Llama 3's template strips the final message: the blank line after the last step is lost, the
    model writes it first and stops at once; the step is asked for again without stop strings."""
    server.trim_template = True
    prompts, steps = prompts_along()
    server.reset_stats()
    (o,) = chat(server).generate_steps(prompts[1:2], 64)
    assert o == StepOut(steps[1], 1 + len((steps[1] + " " + " ".join(steps[2:])).split()), False)
    first, again = (c["body"] for c in server.calls)
    assert first["stop"] == ["\n\n"] and "stop" not in again
    (last,) = chat(server).generate_steps(prompts[-1:], 64)
    assert last.text == steps[-1] and last.finished


# ------------------------------------------------------------------------------------- responses
class _Canned(ChatBackend):
    def __init__(self, answer):
        super().__init__("http://h:1", "m")
        self.client.post = lambda url, payload, deadline=None: answer


@pytest.mark.parametrize("answer, message", [
    ({"choices": []}, r"unexpected response without choices\[0\]\.message\.content"),
    ({"choices": [{"message": {"content": 3}}]}, r"without choices\[0\]\.message\.content"),
    ({"choices": [{"message": {"content": "x"}, "finish_reason": "stop"}], "usage": {"completion_tokens": -1}},
     r"usage\.completion_tokens must be a non-negative integer, got -1"),
])
def test_malformed_answers(answer, message):
    with pytest.raises(TrimError, match=message) as exc:
        _Canned(answer).generate_steps([render("chatml", "q")], 8)
    assert "\n" not in str(exc.value) and str(exc.value).startswith("http://h:1/v1/chat/completions: ")


def test_null_content_is_an_empty_step():
    out = _Canned({"choices": [{"message": {"content": None}, "finish_reason": "length"}],
                   "usage": {"completion_tokens": 8}}).generate_steps([render("chatml", "q")], 8)
    assert out == [StepOut("", 8, False)]


def test_specs(server):
    be = backend_from_spec(f"{server.url}/v1?model=strong&api=chat&continue=none&thinking=off&concurrency=3")
    assert isinstance(be, ChatBackend) and be.continuation == "none" and be.client.concurrency == 3
    assert be.extra == {"chat_template_kwargs": {"enable_thinking": False}}
    assert isinstance(backend_from_spec(f"{server.url}/v1?model=m"), OpenAICompatibleBackend)
    with pytest.raises(TrimError, match="continue= needs api=chat"):
        backend_from_spec(f"{server.url}/v1?model=m&continue=final")
    with pytest.raises(TrimError, match="api must be 'completions' or 'chat'"):
        backend_from_spec(f"{server.url}/v1?model=m&api=responses")


@pytest.mark.parametrize("choice, known, which, finished", [
    ({"finish_reason": "stop", "stop_reason": None}, True, None, True),               # vLLM: EOS
    ({"finish_reason": "stop", "stop_reason": "\n\n"}, True, "\n\n", False),          # vLLM: stop string
    ({"finish_reason": "stop", "stop_reason": 151643}, True, None, True),             # vLLM: stop token id
    ({"finish_reason": "stop", "matched_stop": 151645}, True, None, True),            # SGLang: EOS token id
    ({"finish_reason": "stop", "matched_stop": "\n\n"}, True, "\n\n", False),         # SGLang: stop string
    ({"finish_reason": "stop"}, False, None, False),                                  # OpenAI, llama.cpp
    ({"finish_reason": "length", "stop_reason": None}, False, None, False),
])
def test_servers_say_how_a_step_ended(choice, known, which, finished):
    from trimpomdp.decode.httpclient import blank_stop, matched_stop, step_from_choice

    assert matched_stop(choice) == (known, which)
    assert step_from_choice("x = 1.", 4, choice) == StepOut("x = 1.", 4, finished)
    assert blank_stop(choice, " \n", ["\n\n"]) == (which == "\n\n")
    assert step_from_choice("", 1, choice).finished == (choice["finish_reason"] == "stop")
