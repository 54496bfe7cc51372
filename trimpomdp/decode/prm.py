"""Process reward models: P(the latest step is correct), batched over problems.

- ``QwenStylePRM``: Qwen2.5-Math-PRM layout. The steps are joined with the separator token ``<extra_0>``
  (one after every step) and a 2-class head gives P(positive) at each separator; the last separator's
  value scores the last step. Any token-classification model with 2 labels in a local folder works (the
  real Qwen2ForProcessRewardModel needs its own remote code, which is only used when the folder ships it).
- ``JudgePRM``: any causal LM is asked "Is the latest step correct? Answer Yes or No" and the score is
  P(Yes) / (P(Yes) + P(No)) from its next-token distribution; works with the packaged small models.
``specs.load_prm`` builds them from ``judge:<model spec>`` (packaged name, folder or .gguf) and
``qwen:<folder>``, and the served PRMs (``vllm-pooling:``, ``http-score:``, ``http-judge:``) from theirs.
"""
from __future__ import annotations

from typing import Sequence

from trimpomdp.decode.backends import broadcast_questions
from trimpomdp.decode.prompts import judge_prompt
from trimpomdp.errors import ModelError, TrimError

QWEN_STEP_TOKEN = "<extra_0>"
QWEN_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def _batches(n: int, size: int):
    for i in range(0, n, max(1, size)):
        yield slice(i, min(n, i + max(1, size)))


class QwenStylePRM:
    """Token-classification PRM scoring the last step at its ``<extra_0>`` separator."""

    def __init__(self, model, tokenizer, name: str = "qwen-prm", step_token: str = QWEN_STEP_TOKEN,
                 batch_size: int = 8, chat: bool | None = None):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.batch_size = batch_size
        self.step_token = step_token
        ids = tokenizer.convert_tokens_to_ids(step_token)
        if ids is None or ids == tokenizer.unk_token_id:
            raise ModelError(f"PRM tokenizer of {name} has no step separator token {step_token!r}")
        self.step_id = int(ids)
        self.chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token or step_token
        self.device = next(model.parameters()).device

    @classmethod
    def from_folder(cls, folder, device: str = "auto", **kw) -> "QwenStylePRM":
        """Load a local PRM folder: a 2-label token-classification model, or a Qwen2ForProcessRewardModel
        whose remote code ships in the folder. Anything else is a one-line ModelError."""
        import json
        from pathlib import Path

        import torch
        from transformers import AutoModel, AutoModelForTokenClassification, AutoTokenizer

        from trimpomdp.decode.hf import pick_device

        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise TrimError(f"PRM folder {folder} not found or has no config.json")
        cfg = json.loads((folder / "config.json").read_text())
        archs = cfg.get("architectures") or []
        device = pick_device(device)
        dtype = torch.float32 if device == "cpu" else torch.bfloat16
        try:
            tok = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            if "Qwen2ForProcessRewardModel" in archs:
                if not any(folder.glob("modeling_*.py")):
                    raise ModelError(f"{folder}: Qwen2ForProcessRewardModel needs its remote code "
                                     "(modeling_qwen2_rm.py) in the folder, which is missing; it cannot be "
                                     "fetched offline")
                model = AutoModel.from_pretrained(str(folder), local_files_only=True, trust_remote_code=True,
                                                  dtype=dtype)
            else:
                model = AutoModelForTokenClassification.from_pretrained(str(folder), local_files_only=True,
                                                                        dtype=dtype)
                if model.config.num_labels != 2:
                    raise ModelError(f"{folder}: a PRM head needs 2 labels, found {model.config.num_labels}")
        except (OSError, ValueError, KeyError, ImportError) as exc:
            if isinstance(exc, TrimError):
                raise
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"could not load a PRM from {folder}: {msg}") from None
        model.to(device).eval()
        return cls(model, tok, name=f"qwen:{folder}", **kw)

    def format(self, question: str, steps: Sequence[str]) -> str:
        body = "".join(s.strip() + self.step_token for s in steps)
        if self.chat:
            return self.tokenizer.apply_chat_template(
                [{"role": "system", "content": QWEN_SYSTEM}, {"role": "user", "content": question},
                 {"role": "assistant", "content": body}], tokenize=False, add_generation_prompt=False)
        return f"{question.strip()}\n{body}"

    def step_probabilities(self, question: str, steps: Sequence[str]) -> list[float]:
        """P(positive) at every separator (one per step) of one solution."""
        return self._run([self.format(question, steps)], last_only=False)[0]

    def score(self, question, steps_list) -> list[float]:
        qs = broadcast_questions(question, len(steps_list))
        texts = [self.format(q, s) for q, s in zip(qs, steps_list)]
        return [p[-1] if p else float("nan") for p in self._run(texts, last_only=True)]

    def _run(self, texts: list[str], last_only: bool) -> list[list[float]]:
        import torch

        out: list[list[float]] = []
        tok = self.tokenizer
        for sl in _batches(len(texts), self.batch_size):
            enc = tok(texts[sl], return_tensors="pt", padding=True, add_special_tokens=False)
            enc = {k: v.to(self.device) for k, v in enc.items()}
            pos = (enc["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
            with torch.inference_mode():
                res = self.model(**enc, position_ids=pos)
            logits = res.logits if hasattr(res, "logits") else res[0]
            probs = torch.softmax(logits.float(), dim=-1)[..., 1]
            mask = (enc["input_ids"] == self.step_id) & (enc["attention_mask"] > 0)
            for row in range(probs.shape[0]):
                vals = probs[row][mask[row]].tolist()
                out.append(vals[-1:] if last_only else vals)
        return out


class JudgePRM:
    """A causal LM as judge: score = P(Yes) / (P(Yes) + P(No)) for the next token after the question."""

    def __init__(self, model, tokenizer, name: str = "judge", prompt_style: str = "chatml", batch_size: int = 8):
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.prompt_style = prompt_style
        self.batch_size = batch_size
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.device = next(model.parameters()).device
        yes = self._word_ids(("Yes", " Yes", "yes", " yes"))
        no = self._word_ids(("No", " No", "no", " no"))
        shared = set(yes) & set(no)  # e.g. a lone space when a tokenizer splits " Yes" as " " + "Yes"
        self.yes_ids = [i for i in yes if i not in shared]
        self.no_ids = [i for i in no if i not in shared]
        if not self.yes_ids or not self.no_ids:
            raise ModelError(f"judge {name}: cannot find distinct single tokens for Yes and No")

    @classmethod
    def from_spec(cls, spec: str, device: str = "auto", **kw) -> "JudgePRM":
        from trimpomdp.decode.hf import load_causal_lm
        from trimpomdp.decode.models import resolve_model

        folder, gguf, style = resolve_model(spec)
        model, tok = load_causal_lm(folder, gguf, device)
        return cls(model, tok, name=f"judge:{spec}", prompt_style=style, **kw)

    def _word_ids(self, words) -> list[int]:
        """First token of each spelling (deduplicated): the mass the model puts on starting that word."""
        ids = []
        for w in words:
            toks = self.tokenizer(w, add_special_tokens=False)["input_ids"]
            if toks and toks[0] not in ids:
                ids.append(int(toks[0]))
        return ids

    def format(self, question: str, steps: Sequence[str]) -> str:
        return judge_prompt(question, steps, self.prompt_style)

    def score(self, question, steps_list) -> list[float]:
        import torch

        qs = broadcast_questions(question, len(steps_list))
        texts = [self.format(q, s) for q, s in zip(qs, steps_list)]
        tok = self.tokenizer
        scores: list[float] = []
        old = tok.padding_side
        tok.padding_side = "left"  # the last position is then every row's next-token position
        try:
            for sl in _batches(len(texts), self.batch_size):
                enc = tok(texts[sl], return_tensors="pt", padding=True, add_special_tokens=True)
                enc = {k: v.to(self.device) for k, v in enc.items()}
                pos = (enc["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
                with torch.inference_mode():
                    logits = self.model(**enc, position_ids=pos, logits_to_keep=1).logits[:, -1, :].float()
                logp = torch.log_softmax(logits, dim=-1)
                yes = torch.logsumexp(logp[:, self.yes_ids], dim=-1)
                no = torch.logsumexp(logp[:, self.no_ids], dim=-1)
                scores.extend(torch.sigmoid(yes - no).tolist())
        finally:
            tok.padding_side = old
        return scores


def score_all_steps(prm, question: str, steps: Sequence[str]) -> list[float]:
    """P(correct) of every step of one solution: one pass for a Qwen-style PRM (a score at each
    separator), else the last-step score of every prefix, batched."""
    if not steps:
        return []
    if hasattr(prm, "step_probabilities"):
        vals = prm.step_probabilities(question, steps)
        if len(vals) != len(steps):
            raise ModelError(f"PRM {prm.name} gave {len(vals)} scores for {len(steps)} steps (the separator "
                             "token may occur inside a step or be cut off)")
        return vals
    return prm.score(question, [list(steps[:k]) for k in range(1, len(steps) + 1)])
