"""Wiring: build generators, PRMs and routing policies from their spec strings.

The command line and Python users share this, so ``trimpomdp decode --weak X --prm Y --policy Z`` and
``pipeline.build_policy("Z")`` mean the same thing. Spec strings:

- models (``--weak``/``--strong``): a packaged name (``smollm2``, ``gemma3``), a Hugging Face folder, a
  ``.gguf`` file, or an OpenAI-compatible server ``http://host:port/v1?model=NAME``;
- PRMs: ``judge:<model>`` (LLM-as-judge), ``qwen:<folder>`` (Qwen2.5-Math-PRM style), ``http-score:URL``,
  ``http-judge:SERVER``;
- policies: ``pomdp:PATH.npz``, ``pomdp:lambda=X`` / ``pomdp:mean=B`` / ``pomdp:cap=...`` (solved on the
  routing spec), ``threshold:K``, ``weak``, ``strong``.
"""
from __future__ import annotations

from pathlib import Path

from trimpomdp.errors import TrimError
from trimpomdp.packaged import default_spec_path

#: the policy ``decode`` uses when none is given: the POMDP at 0.15 reward units per strong token
DEFAULT_POLICY = "pomdp:lambda=0.15"


class ModelPool:
    """Loads each model spec once, so a judge PRM on the weak model shares its weights."""

    def __init__(self, device: str):
        self.device = device
        self._loaded: dict[str, tuple] = {}

    def get(self, spec: str):
        """(model, tokenizer, prompt style) of a local model spec, loaded on first use."""
        from trimpomdp.decode.hf import load_causal_lm
        from trimpomdp.decode.models import resolve_model

        if spec not in self._loaded:
            folder, gguf, style = resolve_model(spec)
            model, tok = load_causal_lm(folder, gguf, self.device)
            self._loaded[spec] = (model, tok, style)
        return self._loaded[spec]

    def generator(self, spec: str, seed: int | None = 0, temperature: float = 0.0, reuse_cache: bool = True):
        """A ``StepGenerator`` for a model spec (local weights or an OpenAI-compatible server)."""
        if spec.startswith(("http://", "https://")):
            from trimpomdp.decode.http import backend_from_spec

            return backend_from_spec(spec)
        from trimpomdp.decode.hf import HFStepGenerator

        model, tok, style = self.get(spec)
        return HFStepGenerator(model, tok, name=spec, prompt_style=style, reuse_cache=reuse_cache,
                               temperature=temperature, seed=seed)

    def prm(self, spec: str, batch_size: int = 4):
        """A ``StepScorer`` for a PRM spec."""
        from trimpomdp.decode.prm import JudgePRM, load_prm

        kind, _, target = spec.partition(":")
        if kind in ("http-score", "http-judge"):
            from trimpomdp.decode.http import prm_from_spec

            return prm_from_spec(spec)
        if kind == "judge" and target:
            model, tok, style = self.get(target)
            return JudgePRM(model, tok, name=spec, prompt_style=style, batch_size=batch_size)
        return load_prm(spec, device=self.device, batch_size=batch_size)


def load_trim_model(path=None):
    """The routing spec at ``path``, or the packaged default (fitted on MATH statistics)."""
    from trimpomdp.routing.spec import TrimModel

    p = Path(path) if path else default_spec_path()
    if not p.is_file():
        raise TrimError(f"{p}: TRIM model spec not found (expected a .json file)")
    return TrimModel.load(p)


def build_policy(policy_spec: str, trim_model_path=None):
    """(policy, belief filter) for a policy spec; the filter uses the policy's own model when it has one
    (a policy file embeds the spec it was solved for)."""
    from trimpomdp.routing import BeliefFilter, load_policy

    tm = load_trim_model(trim_model_path)
    policy = load_policy(policy_spec, trim_model=tm)
    return policy, BeliefFilter(getattr(policy, "trim_model", None) or tm)
