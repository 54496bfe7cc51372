"""Which step writer or PRM a spec string names: the one place that reads ``--strong``/``--weak``/``--prm``.

The backends and PRMs each know only their own options; this module sits above all of them, so that the
HTTP, chat, pooling and in-process modules import only downward (``httpclient`` and ``backends`` below).

- a server spec ``http://host:port[/v1]?model=NAME&...`` -> ``http.OpenAICompatibleBackend``, or with
  ``api=chat`` a ``chat.ChatBackend`` (``backend_from_spec``);
- a PRM spec -> a Scorer (``load_prm``): ``judge:<model>`` and ``qwen:<folder>`` run in this process
  (``prm``); ``http-score:URL``, ``http-judge:SERVER_SPEC`` and ``vllm-pooling:SERVER?model=NAME`` are
  served (``prm_from_spec``).
"""
from __future__ import annotations

import os

from trimpomdp.decode.chat import ChatBackend
from trimpomdp.decode.http import HTTPJudgePRM, HTTPScorePRM, OpenAICompatibleBackend
from trimpomdp.decode.httpclient import first_model, split_spec
from trimpomdp.decode.pooling import pooling_prm_from_spec
from trimpomdp.decode.prm import JudgePRM, QwenStylePRM
from trimpomdp.errors import TrimError

__all__ = ["PRM_KINDS", "backend_from_spec", "load_prm", "prm_from_spec"]

#: the served PRM kinds of ``--prm``
PRM_KINDS = ("http-score", "http-judge", "vllm-pooling")

#: the options of a server spec
BACKEND_OPTIONS = ("api", "api_key_env", "concurrency", "continue", "model", "retries", "style",
                   "temperature", "thinking", "timeout")


def backend_from_spec(spec: str, **kw):
    """``http://host:port[/v1]?model=NAME&style=chatml&concurrency=8&timeout=60`` -> a backend.

    ``api=chat`` (with ``continue=final|prefix|trailing|none`` and ``thinking=off``) gives a
    ``chat.ChatBackend`` on ``/v1/chat/completions`` for servers that serve only the chat API; the default,
    ``api=completions``, an ``OpenAICompatibleBackend``. Without ``model`` the server's first entry of
    ``GET /v1/models`` is used (llama.cpp serves one); the API key comes from ``api_key_env`` (an
    environment variable name; default OPENAI_API_KEY)."""
    url, q = split_spec(spec)
    unknown = sorted(set(q) - set(BACKEND_OPTIONS))
    if unknown:
        raise TrimError(f"server spec {spec!r}: unknown option {unknown[0]!r} "
                        f"(known: {', '.join(BACKEND_OPTIONS)})")
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
        if "continue" in chat_opts:
            kw["continuation"] = chat_opts["continue"]
        if "thinking" in chat_opts:
            kw["thinking"] = chat_opts["thinking"]
        return ChatBackend(url, model, api_key=api_key, name=name, **opts, **kw)
    return OpenAICompatibleBackend(url, model, api_key=api_key, name=name, **opts, **kw)


def prm_from_spec(spec: str):
    """``http-score:URL`` -> HTTPScorePRM; ``http-judge:SERVER_SPEC`` -> HTTPJudgePRM on that server;
    ``vllm-pooling:SERVER?model=NAME`` -> ``pooling.PoolingPRM`` (vLLM's ``/pooling``, STEP pooling)."""
    kind, _, target = spec.partition(":")
    if kind == "http-score" and target:
        url, q = split_spec(target)
        unknown = sorted(set(q) - {"timeout", "concurrency"})
        if unknown:
            raise TrimError(f"PRM spec {spec!r}: unknown option {unknown[0]!r} (known: concurrency, timeout)")
        try:
            timeout, concurrency = float(q.get("timeout", 60.0)), int(q.get("concurrency", 8))
        except ValueError as exc:
            raise TrimError(f"PRM spec {spec!r}: bad number ({exc})") from None
        return HTTPScorePRM(url, timeout=timeout, concurrency=concurrency, name=spec)
    if kind == "http-judge" and target:
        return HTTPJudgePRM(backend_from_spec(target), name=spec)
    if kind == "vllm-pooling" and target:
        return pooling_prm_from_spec(target, name=spec)
    raise TrimError(f"HTTP PRM spec {spec!r} must be http-score:<url> or http-judge:<server url> or "
                    "vllm-pooling:<server url>?model=NAME")


def load_prm(spec: str, device: str = "auto", batch_size: int = 8):
    """``judge:<model>`` or ``qwen:<folder>`` (loaded here on ``device``) or a served kind
    (``PRM_KINDS``, ``prm_from_spec``) -> a Scorer."""
    kind, _, target = spec.partition(":")
    if kind in PRM_KINDS:
        return prm_from_spec(spec)
    if not target:
        raise TrimError(f"PRM spec {spec!r} must be judge:<model> or qwen:<folder>")
    if kind == "judge":
        return JudgePRM.from_spec(target, device=device, batch_size=batch_size)
    if kind == "qwen":
        return QwenStylePRM.from_folder(target, device=device, batch_size=batch_size)
    raise TrimError(f"unknown PRM kind {kind!r} in {spec!r}; expected judge:<model> or qwen:<folder>")
