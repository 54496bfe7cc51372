"""GPU check of the embedded (transformers) backend: decode throughput against plain ``generate`` and the
routed loop's cost per step, on random-weight models built from a config (no download, no network).

    python bench/gpu_check.py                 # CUDA: Qwen2-0.5B-shaped models (494M parameters, bf16)
    python bench/gpu_check.py --tiny          # CPU: 2-layer models, a few seconds (what the tests run)

Weights are random, so the text is noise, but every matmul, cache and kernel has the size of a real 0.5B
model (Qwen2-0.5B's published config: 24 layers, hidden 896, 14 heads, 2 KV heads, vocabulary 151,936),
so the timings mean what they would with real weights. The tokenizer is a byte-level BPE trained here on
the prompts themselves; its few hundred tokens are the first rows of the vocabulary and the other rows
of the (tied) output matrix are zero, so greedy decoding only emits real tokens. Prints:

1. cheap-only generation, ``--problems`` prompts x ``--tokens`` new tokens: tokens/s of one batched
   ``model.generate`` (the baseline, measured in the same run) against our ``HFStepGenerator`` with
   per-problem KV-cache reuse and with ``generate()`` + step stopping;
2. the routed loop (weak, strong, judge PRM on the weak model, ``--policy``) over ``--steps`` steps per
   problem: wall time per step split into weak generation, strong generation, PRM scoring, the
   filter+policy bookkeeping and the rest of the loop (the overhead routing adds to generation).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

#: Qwen2-0.5B's published architecture (config.json of Qwen/Qwen2-0.5B), typed in: nothing is fetched
QWEN2_05B = dict(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                 rope_theta=1_000_000.0, rms_norm_eps=1e-6, tie_word_embeddings=True)
#: a 2-layer model of the same family for --tiny (vocabulary = the trained tokenizer's)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True)

QUESTIONS = [
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many "
    "clips did Natalia sell altogether in April and May?",
    "Weng earns $12 an hour for babysitting. Yesterday, she just did 50 minutes of babysitting. How much did "
    "she earn?",
    "Betty is saving money for a new wallet which costs $100. Betty has only half of the money she needs. Her "
    "parents decided to give her $15 for that purpose, and her grandparents twice as much as her parents. "
    "How much more money does Betty need to buy the wallet?",
    "James writes a 3-page letter to 2 different friends twice a week. How many pages does he write a year?",
    "Mark has a garden with flowers. He planted plants of three different colors in it. Ten of them are "
    "yellow, and there are 80% more of those in purple. How many flowers does Mark have in his garden?",
    "Albert is wondering how much pizza he can eat in one day. He buys 2 large pizzas and 2 small pizzas. A "
    "large pizza has 16 slices and a small pizza has 8 slices. How many pieces does he eat that day?",
    "Ken created a care package to send to his brother. He placed a box on a scale and poured in enough jelly "
    "beans to bring the weight to 2 pounds. What was the final weight of the box?",
    "Alexis went to a department store with a budget of $200 to buy a new set of business clothes. How much "
    "did Alexis pay for the shoes?",
]


def make_tokenizer(texts, vocab: int = 512):
    """A byte-level BPE tokenizer trained on ``texts`` (in-process, seconds), EOS/pad ``<|endoftext|>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def make_model(tok, tiny: bool, device: str, seed: int):
    """A random-weight Qwen2 causal LM; output rows past the tokenizer's vocabulary are zero."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    shape = dict(TINY, vocab_size=len(tok)) if tiny else dict(QWEN2_05B)
    cfg = Qwen2Config(**shape, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    torch.manual_seed(seed)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    with torch.device(device):
        model = Qwen2ForCausalLM(cfg).to(dtype).eval()
    with torch.no_grad():
        model.get_output_embeddings().weight[len(tok):] = 0
    model.generation_config.pad_token_id = tok.pad_token_id
    return model


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def plain_generate(model, tok, prompts, n_new: int, device: str) -> tuple[int, float]:
    """One batched greedy ``model.generate`` of exactly ``n_new`` tokens per prompt: (tokens, seconds)."""
    import torch

    tok.padding_side = "left"
    enc = tok(prompts, return_tensors="pt", padding=True).to(device)
    _sync(device)
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**enc, max_new_tokens=n_new, min_new_tokens=n_new, do_sample=False,
                             temperature=None, top_p=None, top_k=None, pad_token_id=tok.pad_token_id)
    _sync(device)
    return int(out.shape[0] * (out.shape[1] - enc["input_ids"].shape[1])), time.perf_counter() - t0


def ours_generate(model, tok, prompts, n_new: int, device: str, reuse_cache: bool) -> tuple[int, float, dict]:
    """One ``HFStepGenerator.generate_steps`` call (steps stop at a blank line, so maybe fewer tokens)."""
    from trimpomdp.decode.hf import HFStepGenerator

    g = HFStepGenerator(model, tok, name="cheap", prompt_style="fewshot", reuse_cache=reuse_cache)
    _sync(device)
    t0 = time.perf_counter()
    g.generate_steps(prompts, n_new, keys=[str(i) for i in range(len(prompts))] if reuse_cache else None)
    _sync(device)
    return g.stats.generated_tokens, time.perf_counter() - t0, g.stats.as_dict()


class Timed:
    """Wraps a generator or PRM and adds up the seconds its calls take (synchronised on CUDA)."""

    def __init__(self, inner, device: str):
        self.inner, self.device, self.seconds = inner, device, 0.0
        self.name = inner.name
        self.prompt_style = getattr(inner, "prompt_style", None)

    def _timed(self, fn, *a, **kw):
        _sync(self.device)
        t0 = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            _sync(self.device)
            self.seconds += time.perf_counter() - t0

    def generate_steps(self, *a, **kw):
        return self._timed(self.inner.generate_steps, *a, **kw)

    def score(self, *a, **kw):
        return self._timed(self.inner.score, *a, **kw)

    def __getattr__(self, name):  # forget(), cached_keys(), stats, ...
        return getattr(self.inner, name)


def routed_loop(weak_model, strong_model, tok, n_problems: int, steps: int, n_new: int, policy_spec: str,
                device: str) -> dict:
    """The routed loop on ``n_problems`` problems of ``steps`` steps: wall time and its parts."""
    from trimpomdp.decode.hf import HFStepGenerator
    from trimpomdp.decode.loop import RoutedDecoder
    from trimpomdp.decode.prm import JudgePRM
    from trimpomdp.decode.problems import Problem
    from trimpomdp.pipeline import build_policy

    policy, filt = build_policy(policy_spec)
    weak = Timed(HFStepGenerator(weak_model, tok, name="cheap", prompt_style="fewshot"), device)
    strong = Timed(HFStepGenerator(strong_model, tok, name="strong", prompt_style="fewshot"), device)
    prm = Timed(JudgePRM(weak_model, tok, name="judge:cheap", prompt_style="fewshot"), device)
    dec = RoutedDecoder(weak, strong, prm, policy, filt, policy_name=policy_spec, batch_size=n_problems,
                        max_steps=steps, max_step_tokens=n_new, problem_timeout=3600.0)
    probs = [Problem(str(i), QUESTIONS[i % len(QUESTIONS)], None, "gsm8k") for i in range(n_problems)]
    _sync(device)
    t0 = time.perf_counter()
    recs = dec.run(probs)
    _sync(device)
    wall = time.perf_counter() - t0
    n_steps = sum(len(r["steps"]) for r in recs)
    errors = [r["error"] for r in recs if r.get("error")]
    routing = dec.stats.routing_seconds
    rest = wall - weak.seconds - strong.seconds - prm.seconds - routing
    return {"problems": n_problems, "steps": n_steps, "errors": errors, "wall": wall,
            "regenerated": sum(s["action"] == "regenerate" for r in recs for s in r["steps"]),
            "weak": weak.seconds, "strong": strong.seconds, "prm": prm.seconds, "routing": routing,
            "loop_rest": rest, "weak_tokens": sum(r["tokens"]["weak_kept"] + r["tokens"]["weak_discarded"]
                                                  for r in recs)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="2-layer models on the CPU (a quick check of this script).")
    ap.add_argument("--device", default=None, help="cuda, cuda:N or cpu [default: cuda, cpu with --tiny].")
    ap.add_argument("--problems", type=int, default=8, help="Prompts per batch / problems in the routed loop.")
    ap.add_argument("--tokens", type=int, default=64, help="New tokens per prompt (per step in the loop).")
    ap.add_argument("--steps", type=int, default=4, help="Steps per problem in the routed loop.")
    ap.add_argument("--policy", default="pomdp:lambda=0.15", help="Routing policy of the loop.")
    ap.add_argument("--repeats", type=int, default=3, help="Timed repetitions (the best is reported).")
    args = ap.parse_args(argv)
    import torch
    import transformers

    from trimpomdp.decode.prompts import render

    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible (run with --tiny to check the script on the CPU)",
              file=sys.stderr)
        return 2
    if args.tiny:  # thread synchronisation costs more than a tiny model's matmuls (and cores may be shared)
        torch.set_num_threads(1)
    prompts = [render("fewshot", QUESTIONS[i % len(QUESTIONS)]) for i in range(args.problems)]
    tok = make_tokenizer(prompts + [render("plain", q) for q in QUESTIONS], vocab=512 if not args.tiny else 300)
    t0 = time.perf_counter()
    cheap = make_model(tok, args.tiny, device, seed=1)
    strong = make_model(tok, args.tiny, device, seed=2)
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in cheap.parameters())
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    print(f"gpu_check on {where}: torch {torch.__version__}, transformers {transformers.__version__}; "
          f"{'tiny 2-layer' if args.tiny else 'Qwen2-0.5B-shaped'} random models, {n_params / 1e6:.1f}M "
          f"parameters, {next(cheap.parameters()).dtype}, built in {build_s:.1f} s; tokenizer {len(tok)} tokens")

    # 1. cheap-only generation
    plain_generate(cheap, tok, prompts[:2], 4, device)  # warm-up (kernels, allocator)
    ours_generate(cheap, tok, prompts[:2], 4, device, True)
    best = {}
    for _ in range(max(1, args.repeats)):
        for name, fn in (("plain model.generate (baseline)", lambda: plain_generate(cheap, tok, prompts, args.tokens,
                                                                                   device)[:2]),
                         ("HFStepGenerator, KV-cache reuse", lambda: ours_generate(cheap, tok, prompts, args.tokens,
                                                                                  device, True)[:2]),
                         ("HFStepGenerator, generate() + stop", lambda: ours_generate(cheap, tok, prompts,
                                                                                     args.tokens, device, False)[:2])):
            n, s = fn()
            rate = n / s if s > 0 else float("inf")
            if name not in best or rate > best[name][2]:
                best[name] = (n, s, rate)
    base = best["plain model.generate (baseline)"][2]
    print(f"\n1. cheap-only generation: {args.problems} prompts x up to {args.tokens} new tokens, best of "
          f"{args.repeats}")
    for name, (n, s, rate) in best.items():
        print(f"   {name:36s} {rate:10.1f} tokens/s  ({n} tokens in {s:.3f} s; {rate / base:.2f}x baseline)")

    # 2. the routed loop
    r = routed_loop(cheap, strong, tok, args.problems, args.steps, args.tokens, args.policy, device)
    if r["errors"]:
        print(f"routed loop: {len(r['errors'])} problems failed: {r['errors'][0]}", file=sys.stderr)
        return 1
    per = 1e3 / max(1, r["steps"])
    print(f"\n2. routed loop ({args.policy}): {r['problems']} problems, {r['steps']} steps "
          f"({r['regenerated']} regenerated), {r['wall']:.2f} s")
    print(f"   per step: {r['wall'] * per:.2f} ms = weak {r['weak'] * per:.2f} + strong {r['strong'] * per:.2f} "
          f"+ PRM {r['prm'] * per:.2f} + filter/policy {r['routing'] * per:.3f} + rest of the loop "
          f"{r['loop_rest'] * per:.2f} ms")
    gen = r["weak"] + r["strong"] + r["prm"]
    print(f"   routing overhead (filter/policy + loop) per step: {(r['routing'] + r['loop_rest']) * per:.2f} ms, "
          f"{100 * (r['routing'] + r['loop_rest']) / max(gen, 1e-9):.1f}% of the model time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
