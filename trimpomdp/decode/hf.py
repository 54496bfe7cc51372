"""Embedded Hugging Face transformers backend: writes the next reasoning step for a batch of prefixes.

Two ways of running, chosen by ``reuse_cache``:
- reuse (default; the caller names problems with ``keys``): every problem keeps its own ``DynamicCache``
  and the token ids it covers. A new prefix is tokenised, its longest common token prefix with the
  cached ids is kept (the cache is cropped back to it, e.g. after a discarded weak step) and only the new
  tokens are encoded, problem by problem. Decoding then runs batched: the per-problem caches are
  left-padded into one batch cache (pads masked) and split back afterwards; models whose caches are not
  plain full-attention layers (sliding-window Gemma 3) decode problem by problem instead.
- no reuse: the prefixes are left-padded into one batch and ``model.generate`` runs with a stopping
  criterion that ends each sequence at its first blank line (or closed ``\\boxed{}``).
Counters (``stats``) record prompt tokens (what full re-encoding costs) and prefill tokens actually run.
The KV cache is passed by the keyword the installed transformers names (``cache``; ``past_key_values``
before 5.x), so neither version warns. A few-shot prompted base model (Gemma 3 270M) that starts the
pattern's next ``Question:`` has ended its solution: the step is cut there.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Sequence

from trimpomdp.decode.backends import StepOut, cut_step
from trimpomdp.errors import ModelError, TrimError

#: end-of-turn markers treated as end of the solution in addition to the tokenizer's EOS
END_MARKERS = ("<|im_end|>", "<end_of_turn>", "<|endoftext|>", "<|eot_id|>")

#: per prompt style, the text that opens the next example of its pattern: the solution ended before it
NEXT_EXAMPLE = {"fewshot": "Question:", "plain": "Question:"}


def cut_generated(text: str, prompt_style: str) -> tuple[str, str | None]:
    """``backends.cut_step`` plus the prompt pattern's own end: a line starting the next example
    (``Question: ...`` after a few-shot prompt) ends the solution there, reason ``"eos"``."""
    marker = NEXT_EXAMPLE.get(prompt_style)
    if marker is not None:
        at = text.find(marker)
        while at > 0 and text[at - 1] != "\n":  # only at a line start
            at = text.find(marker, at + 1)
        if at >= 0:
            head, reason = cut_step(text[:at])
            return head, reason or "eos"
    return cut_step(text)


def cache_keyword(model) -> str:
    """The ``forward()`` keyword of the KV cache: ``cache`` in current transformers, ``past_key_values``
    in older ones (the new name avoids a deprecation warning per call; the old one is all 4.x knows)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return "past_key_values"
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(out):
    """The KV cache a forward call returned, under either name."""
    return out["cache"] if "cache" in out.keys() else out["past_key_values"]


def pick_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise TrimError(f"device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise TrimError("device 'cuda' requested but no CUDA GPU is available")
    return device


def load_causal_lm(folder, gguf_file: str | None = None, device: str = "auto"):
    """Load ``(model, tokenizer)`` from a local folder (or a GGUF file inside it); never downloads."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = pick_device(device)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    kw = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, **kw)
        model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True, dtype=dtype, **kw)
    except (OSError, ValueError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"could not load a causal LM from {folder}{'/' + gguf_file if gguf_file else ''}: "
                         f"{msg}") from None
    model.to(device).eval()
    return model, tok


def _plain_cache(cache) -> bool:
    """True when every layer is a plain full-attention DynamicLayer (safe to pad and stack)."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer and layer.is_initialized for layer in layers)


@dataclass
class _Entry:
    ids: list          # token ids the cache covers
    cache: object      # transformers DynamicCache


@dataclass
class GenStats:
    """Token counters; ``prompt_tokens`` is what re-encoding every prefix in full would prefill."""

    calls: int = 0
    sequences: int = 0
    prompt_tokens: int = 0
    prefill_tokens: int = 0
    generated_tokens: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class HFStepGenerator:
    """A transformers causal LM as a :class:`~trimpomdp.decode.backends.StepGenerator`."""

    def __init__(self, model, tokenizer, name: str = "hf", prompt_style: str = "chatml",
                 reuse_cache: bool = True, temperature: float = 0.0, seed: int | None = None,
                 batch_decode: bool = True):
        import torch

        self.model, self.tokenizer = model, tokenizer
        self.name, self.prompt_style = name, prompt_style
        self.reuse_cache = reuse_cache
        self.batch_decode = batch_decode
        self.temperature = float(temperature)
        self.device = next(model.parameters()).device
        self._gen = torch.Generator(device="cpu")
        if seed is not None:
            self._gen.manual_seed(int(seed))
        self._cache: dict[str, _Entry] = {}
        self._cache_kw = cache_keyword(model)
        self.stats = GenStats()
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.eos_ids = self._eos_ids()

    @classmethod
    def from_spec(cls, spec: str, device: str = "auto", **kw) -> "HFStepGenerator":
        """Build from a model spec (packaged name, folder or .gguf file; see ``models.resolve_model``)."""
        from trimpomdp.decode.models import resolve_model

        folder, gguf, style = resolve_model(spec)
        model, tok = load_causal_lm(folder, gguf, device)
        kw.setdefault("prompt_style", style)
        return cls(model, tok, name=spec, **kw)

    def _eos_ids(self) -> set[int]:
        ids = set()
        tok = self.tokenizer
        if tok.eos_token_id is not None:
            ids.add(int(tok.eos_token_id))
        gc = getattr(self.model, "generation_config", None)
        eos = getattr(gc, "eos_token_id", None) if gc is not None else None
        if eos is not None:
            ids.update(int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos]))
        vocab = tok.get_vocab()
        ids.update(int(vocab[m]) for m in END_MARKERS if m in vocab)
        return ids

    # ------------------------------------------------------------------------------------------- helpers
    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=True)["input_ids"])

    def _decode(self, ids) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _next_token(self, logits) -> int:
        import torch

        if self.temperature <= 0:
            return int(torch.argmax(logits).item())
        probs = torch.softmax(logits.float().cpu() / self.temperature, dim=-1)
        return int(torch.multinomial(probs, 1, generator=self._gen).item())

    def forget(self, key: str | None = None) -> None:
        """Drop one problem's cache (when it finishes) or all of them."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)

    def cached_keys(self) -> list[str]:
        return list(self._cache)

    # ---------------------------------------------------------------------------------------- generation
    def generate_steps(self, prefixes: Sequence[str], max_new_tokens: int,
                       keys: Sequence[str] | None = None) -> list[StepOut]:
        """The next step after each prefix (see module docstring for the two modes)."""
        if keys is not None and len(keys) != len(prefixes):
            raise ValueError(f"got {len(keys)} keys for {len(prefixes)} prefixes")
        if not prefixes:
            return []
        if max_new_tokens < 1:
            raise TrimError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        t0 = time.perf_counter()
        self.stats.calls += 1
        self.stats.sequences += len(prefixes)
        if self.reuse_cache:
            keys = list(keys) if keys is not None else [None] * len(prefixes)
            pre = [self._prefill(p, k) for p, k in zip(prefixes, keys)]
            if self.batch_decode and len(pre) > 1 and all(_plain_cache(c) for _, c, _ in pre):
                outs = self._decode_batched(pre, max_new_tokens, keys)
            else:
                outs = [self._decode_one(ids, cache, logits, max_new_tokens, k) for (ids, cache, logits), k
                        in zip(pre, keys)]
        else:
            outs = self._generate_batch(list(prefixes), max_new_tokens)
        self.stats.seconds += time.perf_counter() - t0
        return outs

    def _prefill(self, prefix: str, key: str | None):
        """Tokenise, keep the cached common prefix (cropping the rest), encode only the new tokens.
        Returns (ids, cache covering all ids, next-token logits)."""
        import torch
        from transformers import DynamicCache

        ids = self.encode(prefix)
        if not ids:
            raise TrimError("empty prompt")
        self.stats.prompt_tokens += len(ids)
        entry = self._cache.pop(key, None) if key is not None else None
        keep, cache = 0, None
        if entry is not None:
            n = min(len(entry.ids), len(ids) - 1)  # feed at least one token to get the next logits
            while keep < n and entry.ids[keep] == ids[keep]:
                keep += 1
            drop = len(entry.ids) - keep
            try:
                if drop > 0:
                    entry.cache.crop(-drop)
                cache = entry.cache if keep > 0 else None
            except (RuntimeError, ValueError):  # e.g. a sliding-window layer past its window
                cache = None
        if cache is None:
            keep = 0
            cache = DynamicCache(config=self.model.config)
        feed = ids[keep:]
        self.stats.prefill_tokens += len(feed)
        with torch.inference_mode():
            inp = torch.tensor([feed], device=self.device)
            pos = torch.arange(keep, keep + len(feed), device=self.device)[None]
            out = self.model(input_ids=inp, use_cache=True, position_ids=pos, logits_to_keep=1,
                             **{self._cache_kw: cache})
        return ids, returned_cache(out), out.logits[0, -1]

    def _step_done(self, gen: list[int]) -> tuple[bool, str, bool]:
        """(stop now?, step text, solution finished?) after appending a token."""
        if gen[-1] in self.eos_ids:
            return True, cut_generated(self._decode(gen[:-1]), self.prompt_style)[0], True
        text, reason = cut_generated(self._decode(gen), self.prompt_style)
        return reason is not None, text, reason in ("answer", "eos")

    def _decode_one(self, ids, cache, logits, max_new_tokens: int, key: str | None) -> StepOut:
        import torch

        gen: list[int] = []
        text, finished = "", False
        cur = len(ids)
        with torch.inference_mode():
            while True:
                gen.append(self._next_token(logits))
                stop, text, finished = self._step_done(gen)
                if stop or len(gen) == max_new_tokens:
                    break
                out = self.model(input_ids=torch.tensor([[gen[-1]]], device=self.device), use_cache=True,
                                 position_ids=torch.tensor([[cur]], device=self.device), **{self._cache_kw: cache})
                cache = returned_cache(out)
                cur += 1
                logits = out.logits[0, -1]
        self.stats.generated_tokens += len(gen)
        if key is not None:
            self._cache[key] = _Entry(ids + gen[:-1], cache)
        return StepOut(text=text, n_tokens=len(gen), finished=finished)

    def _decode_batched(self, pre, max_new_tokens: int, keys) -> list[StepOut]:
        """Decode all rows together: the per-problem caches are left-padded into one batch cache (pads
        masked out) and split back afterwards, each row keeping exactly its own tokens."""
        import torch
        from transformers import DynamicCache

        B = len(pre)
        lens = [len(ids) for ids, _, _ in pre]
        L = max(lens)
        n_layers = len(pre[0][1].layers)
        bc = DynamicCache(config=self.model.config)
        for li in range(n_layers):
            ks, vs = [], []
            for (_, c, _), n in zip(pre, lens):
                ks.append(torch.nn.functional.pad(c.layers[li].keys, (0, 0, L - n, 0)))
                vs.append(torch.nn.functional.pad(c.layers[li].values, (0, 0, L - n, 0)))
            bc.update(torch.cat(ks), torch.cat(vs), li)
        mask = torch.zeros(B, L, dtype=torch.long, device=self.device)
        for i, n in enumerate(lens):
            mask[i, L - n:] = 1
        logits = torch.stack([lg for _, _, lg in pre])
        gens: list[list[int]] = [[] for _ in range(B)]
        res: list[tuple[str, bool] | None] = [None] * B
        pad = self.tokenizer.pad_token_id or 0
        step = 0
        with torch.inference_mode():
            while True:
                feed = []
                for i in range(B):
                    if res[i] is None:
                        gens[i].append(self._next_token(logits[i]))
                        stop, text, fin = self._step_done(gens[i])
                        if stop or len(gens[i]) == max_new_tokens:
                            res[i] = (text, fin)
                    feed.append(gens[i][-1] if res[i] is None else pad)
                if all(r is not None for r in res):
                    break
                mask = torch.cat([mask, torch.ones(B, 1, dtype=mask.dtype, device=self.device)], dim=1)
                pos = torch.tensor([[n + step] for n in lens], device=self.device)
                out = self.model(input_ids=torch.tensor(feed, device=self.device)[:, None], attention_mask=mask,
                                 position_ids=pos, use_cache=True, **{self._cache_kw: bc})
                bc = returned_cache(out)
                logits = out.logits[:, -1]
                step += 1
        outs = []
        for i, ((ids, _, _), n, key) in enumerate(zip(pre, lens, keys)):
            g = gens[i]
            self.stats.generated_tokens += len(g)
            if key is not None:  # row i fed its first len(g) - 1 tokens right after the prefix
                c = DynamicCache(config=self.model.config)
                for li in range(n_layers):
                    lay = bc.layers[li]
                    c.update(lay.keys[i:i + 1, :, L - n:L + len(g) - 1].clone(),
                             lay.values[i:i + 1, :, L - n:L + len(g) - 1].clone(), li)
                self._cache[key] = _Entry(ids + g[:-1], c)
            outs.append(StepOut(text=res[i][0], n_tokens=len(g), finished=res[i][1]))
        return outs

    def _generate_batch(self, prefixes: list[str], max_new_tokens: int) -> list[StepOut]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList

        tok = self.tokenizer
        old_side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(prefixes, return_tensors="pt", padding=True, add_special_tokens=True)
        finally:
            tok.padding_side = old_side
        n_prompt = int(enc["attention_mask"].sum())
        self.stats.prompt_tokens += n_prompt
        self.stats.prefill_tokens += n_prompt
        width = enc["input_ids"].shape[1]
        eos = self.eos_ids
        style = self.prompt_style

        def decode(ids):
            return cut_generated(self._decode(ids), style)

        class _StepStop(StoppingCriteria):
            def __call__(self, input_ids, scores, **kwargs):
                done = []
                for row in input_ids[:, width:].tolist():
                    hit_eos = any(t in eos for t in row)
                    done.append(hit_eos or decode(row)[1] is not None)
                return torch.tensor(done, device=input_ids.device)

        enc = {k: v.to(self.device) for k, v in enc.items()}
        kw = {"do_sample": self.temperature > 0}
        if self.temperature > 0:
            kw["temperature"] = self.temperature
        else:
            kw.update(temperature=None, top_p=None, top_k=None)
        with torch.inference_mode():
            seqs = self.model.generate(**enc, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id,
                                       eos_token_id=sorted(eos), stopping_criteria=StoppingCriteriaList([_StepStop()]),
                                       **kw)
        outs = []
        for row in seqs[:, width:].tolist():
            gen: list[int] = []
            finished, text = False, ""
            for t in row:
                gen.append(t)
                if t in eos:
                    finished = True
                    text, _ = decode(gen[:-1])
                    break
                text, reason = decode(gen)
                if reason is not None:
                    finished = reason in ("answer", "eos")
                    break
            self.stats.generated_tokens += len(gen)
            outs.append(StepOut(text=text, n_tokens=len(gen), finished=finished))
        return outs
