"""Decode-loop benchmark: routing bookkeeping per step, KV-cache reuse, loop throughput vs plain generate,
and the concurrent scheduler against the lock-step loop on servers.

    python bench/decode.py [--model smollm2] [--problems 3] [--max-steps 4] [--max-step-tokens 32]
    python bench/decode.py --part servers [--server-problems 48] [--width 8] [--latency 0.02]

1. Routing bookkeeping (filter predict + correct + POMDP policy decision) per step, against the 1 ms target.
2. The weak-only routed loop with per-problem KV-cache reuse vs re-encoding every prefix (batched
   generate): prefill tokens per step, seconds, identical output check.
3. Tokens/s of the weak-only loop vs one plain ``model.generate`` per prompt producing the same number of
   tokens (no step stopping, no routing): the overhead of stepping.
4. Servers: the same problems decoded by the lock-step loop and by the concurrent scheduler (``--width``
   problems in flight each) against a loopback vLLM stand-in (weak, strong, PRM on ``/pooling``) whose
   requests take ``--latency`` s on average, 8x that for a tenth of them (long generations, preemptions):
   problems/s, how much of the wall time the server had work and how many requests it had in flight, and
   that both wrote the same records. Also against a real llama.cpp server (packaged SmolLM2) when
   ``llama-cpp-python[server]`` is installed.
``--model tiny`` uses a random 2-layer model (no packages needed).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def bench_routing(n_steps: int, lam: float) -> float:
    from trimpomdp.packaged import default_spec_path
    from trimpomdp.routing import BeliefFilter, TrimModel, load_policy

    tm = TrimModel.load(default_spec_path())
    t0 = time.perf_counter()
    policy = load_policy(f"pomdp:lambda={lam}", trim_model=tm)
    solve_s = time.perf_counter() - t0
    filt = BeliefFilter(policy.trim_model)
    rng = np.random.default_rng(0)
    scores = rng.uniform(0.02, 0.98, size=n_steps)
    toks = rng.integers(5, 200, size=n_steps)
    policy.decide(filt.correct(filt.predict(filt.start(), "keep"), (1.0, 0.5)), 1, 30, score=0.5)  # JIT warm-up
    post, action, m, t = None, "keep", 1.0, 0
    t0 = time.perf_counter()
    for i in range(n_steps):
        t += 1
        prior = filt.predict(filt.start() if post is None else post, action)
        post = filt.correct(prior, (m, scores[i]))
        d = policy.decide(post, t, int(toks[i]), score=scores[i])
        action = d.action
        m = min(m, scores[i]) if action == "keep" else m
        if t == 10:  # a new question every 10 steps
            post, action, m, t = None, "keep", 1.0, 0
    per_step = (time.perf_counter() - t0) / n_steps * 1e3
    print(f"[routing] POMDP lambda={lam}: solve {solve_s:.2f} s; filter+policy {per_step:.4f} ms/step over "
          f"{n_steps} steps (target < 1 ms: {per_step / 1.0:.3f}x of target)")
    return per_step


def _tiny():
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from trimpomdp.decode.prompts import render

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = [render("fewshot", "How many apples are there in 3 boxes of 4? Yes No")] * 4
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=200, special_tokens=["<pad>", "<eos>", "<unk>"],
                                                        show_progress=False))
    tk = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tk), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      pad_token_id=tk.pad_token_id, eos_token_id=tk.eos_token_id, bos_token_id=None)
    return LlamaForCausalLM(cfg).eval(), tk, "fewshot"


def bench_loop(model_spec: str, n_problems: int, max_steps: int, max_step_tokens: int, device: str, data: Path):
    import torch

    from trimpomdp.packaged import default_spec_path
    from trimpomdp.decode.hf import HFStepGenerator, load_causal_lm
    from trimpomdp.decode.loop import RoutedDecoder
    from trimpomdp.decode.problems import load_problems
    from trimpomdp.decode.prompts import render
    from trimpomdp.routing import BeliefFilter, TrimModel, load_policy

    if model_spec == "tiny":
        model, tok, style = _tiny()
    else:
        from trimpomdp.decode.models import resolve_model

        t0 = time.perf_counter()
        folder, gguf, style = resolve_model(model_spec)
        model, tok = load_causal_lm(folder, gguf, device)
        print(f"[load] {model_spec}: {time.perf_counter() - t0:.1f} s from {folder}")
    probs, _ = load_problems(data, limit=n_problems)
    tm = TrimModel.load(default_spec_path())

    class ConstPRM:  # the PRM is not what is measured here
        name = "const"

        def score(self, q, steps_list):
            return [0.9] * len(steps_list)

    results = {}
    for reuse in (True, False):
        g = HFStepGenerator(model, tok, name=model_spec, prompt_style=style, reuse_cache=reuse)
        dec = RoutedDecoder(g, None, ConstPRM(), load_policy("weak"), BeliefFilter(tm), policy_name="weak",
                            batch_size=n_problems, max_steps=max_steps, max_step_tokens=max_step_tokens)
        t0 = time.perf_counter()
        recs = dec.run(probs)
        secs = time.perf_counter() - t0
        steps = sum(len(r["steps"]) for r in recs)
        results[reuse] = (recs, g.stats, secs, steps)
        mode = "reuse (KV cache per problem)" if reuse else "re-encode (batched generate)"
        print(f"[loop] {mode:30s} steps {steps:3d}  prompt tokens/step {g.stats.prompt_tokens / steps:7.1f}  "
              f"prefill tokens/step {g.stats.prefill_tokens / steps:7.1f}  generated {g.stats.generated_tokens:4d}  "
              f"{secs:7.2f} s  {g.stats.generated_tokens / secs:6.2f} tok/s")
    (r1, s1, t1, n1), (r0, s0, t0_, n0) = results[True], results[False]
    same = [r["solution"] for r in r1] == [r["solution"] for r in r0]
    print(f"[loop] prefill tokens per step: reuse/re-encode = {s1.prefill_tokens / n1:.1f}/{s0.prefill_tokens / n0:.1f}"
          f" = {s1.prefill_tokens / max(1, s0.prefill_tokens):.3f}x; time ratio {t1 / t0_:.3f}x; same text: {same}")
    # plain generate on the same prompts, as many new tokens as the loop produced for that problem
    tok.padding_side = "left"
    gen_tokens, t_plain = 0, 0.0
    for p, rec in zip(probs, r1):
        n_new = rec["tokens"]["weak_kept"]
        enc = tok([render(style, p.question)], return_tensors="pt").to(model.device)
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(**enc, max_new_tokens=max(1, n_new), min_new_tokens=max(1, n_new), do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        t_plain += time.perf_counter() - t0
        gen_tokens += out.shape[1] - enc["input_ids"].shape[1]
    loop_tps = s1.generated_tokens / t1
    plain_tps = gen_tokens / t_plain
    print(f"[throughput] weak-only routed loop {loop_tps:.2f} tok/s vs plain generate {plain_tps:.2f} tok/s "
          f"(ratio {loop_tps / plain_tps:.3f}x, {gen_tokens} tokens)")


class InflightMeter:
    """Wraps the HTTP clients of some backends: seconds with at least one request in flight (the server
    had work), request-seconds (their sum: mean requests in flight = work / wall), the most at once."""

    def __init__(self, *backends):
        import threading

        self.lock = threading.Lock()
        self.inflight = self.most = 0
        self.busy = self.work = 0.0
        self.since = 0.0
        for b in backends:
            b.client.post = self._wrap(b.client.post)

    def _wrap(self, post):
        def metered(*a, **kw):
            t0 = time.perf_counter()
            with self.lock:
                if self.inflight == 0:
                    self.since = t0
                self.inflight += 1
                self.most = max(self.most, self.inflight)
            try:
                return post(*a, **kw)
            finally:
                t1 = time.perf_counter()
                with self.lock:
                    self.inflight -= 1
                    self.work += t1 - t0
                    if self.inflight == 0:
                        self.busy += t1 - self.since
        return metered


def _run_scheduled(kind: str, weak, strong, prm, probs, width: int, max_steps: int, policy: str):
    from trimpomdp.packaged import default_spec_path
    from trimpomdp.pipeline import build_decoder
    from trimpomdp.routing import BeliefFilter, TrimModel, load_policy

    tm = TrimModel.load(default_spec_path())
    pol = load_policy(policy, trim_model=tm)
    dec = build_decoder(weak, strong, prm, pol, BeliefFilter(getattr(pol, "trim_model", None) or tm),
                        scheduler=kind, batch_size=width, policy_name=policy, max_steps=max_steps,
                        max_step_tokens=64, problem_timeout=600.0)
    meter = InflightMeter(weak, strong, prm)
    t0 = time.perf_counter()
    recs = dec.run(probs)
    wall = time.perf_counter() - t0
    same = {r["id"]: {k: v for k, v in r.items() if k != "seconds"} for r in recs}
    return wall, meter, dec.stats, same


def _compare(label: str, make_parts, probs, width: int, max_steps: int, policy: str) -> float:
    rows = {}
    for kind in ("lockstep", "concurrent"):
        weak, strong, prm = make_parts()
        wall, meter, stats, recs = _run_scheduled(kind, weak, strong, prm, probs, width, max_steps, policy)
        rows[kind] = (wall, recs)
        print(f"[servers] {label} {kind:10s} {len(probs)} problems in {wall:6.2f} s = "
              f"{len(probs) / wall:6.2f} problems/s; server busy {100 * meter.busy / wall:5.1f}% of the time, "
              f"{meter.work / wall:5.2f} requests in flight on average (at most {meter.most}, width {width}); "
              f"{stats.steps} steps, {stats.regenerations} regenerated")
    (w0, r0), (w1, r1) = rows["lockstep"], rows["concurrent"]
    print(f"[servers] {label} concurrent/lock-step throughput = {w0 / w1:.2f}x; same records: {r0 == r1}")
    return w0 / w1


def bench_servers(n_problems: int, width: int, latency: float, max_steps: int, policy: str, llamacpp: bool):
    """Lock-step vs concurrent scheduling against a loopback server with injected latency (and llama.cpp)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from fake_servers import FakeVLLM, heavy_tail_latency

    from trimpomdp.decode.http import OpenAICompatibleBackend
    from trimpomdp.decode.pooling import PoolingPRM
    from trimpomdp.decode.problems import Problem

    probs = [Problem(str(i), f"Problem {i}: what is {i} + {2 * i}?", str(3 * i), "gsm8k")
             for i in range(n_problems)]
    server = FakeVLLM(latency=heavy_tail_latency(latency, seed=0, tail=0.1, factor=8.0))
    kw = {"timeout": 600.0, "retries": 0, "concurrency": width}

    def loopback():
        return (OpenAICompatibleBackend(server.url, "weak", **kw), OpenAICompatibleBackend(server.url, "strong", **kw),
                PoolingPRM(server.url, "prm", **kw))

    try:
        print(f"[servers] loopback vLLM stand-in: {latency * 1e3:.0f} ms a request on average (x8 for 10%), "
              f"policy {policy}")
        _compare("loopback", loopback, probs, width, max_steps, policy)
        if llamacpp:
            _bench_llamacpp(server, probs[: max(4, n_problems // 4)], width, max_steps, policy)
    finally:
        server.close()


def _bench_llamacpp(prm_server, probs, width: int, max_steps: int, policy: str) -> None:
    """Weak and strong on a real llama.cpp server (packaged SmolLM2 GGUF), the PRM on the loopback one."""
    import importlib.util
    import socket
    import subprocess
    import urllib.request

    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llama_cpp.server") is None:
        print("[servers] llama.cpp: skipped (pip install 'llama-cpp-python[server]' to include it)")
        return
    from trimpomdp.decode.http import OpenAICompatibleBackend
    from trimpomdp.decode.models import locate_gguf
    from trimpomdp.decode.pooling import PoolingPRM

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(locate_gguf("smollm2")),
                             "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
                             "--model_alias", "smollm2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=2).read()
                break
            except OSError:
                time.sleep(0.5)
        prm_server.latency = None
        kw = {"timeout": 600.0, "retries": 0, "concurrency": width}
        _compare("llama.cpp", lambda: (OpenAICompatibleBackend(url, "smollm2", **kw),
                                       OpenAICompatibleBackend(url, "smollm2", **kw),
                                       PoolingPRM(prm_server.url, "prm", **kw)), probs, width, max_steps, policy)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["all", "routing", "loop", "servers"], default="all")
    ap.add_argument("--model", default="smollm2", help="packaged name, folder, .gguf, or 'tiny'")
    ap.add_argument("--problems", type=int, default=3)
    ap.add_argument("--max-steps", type=int, default=4)
    ap.add_argument("--max-step-tokens", type=int, default=32)
    ap.add_argument("--routing-steps", type=int, default=5000)
    ap.add_argument("--lam", type=float, default=0.15)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--server-problems", type=int, default=48)
    ap.add_argument("--width", type=int, default=8, help="problems in flight (both schedulers)")
    ap.add_argument("--latency", type=float, default=0.02, help="mean seconds a loopback request takes")
    ap.add_argument("--policy", default="pomdp:lambda=0.15", help="routing policy of the servers part")
    ap.add_argument("--no-llamacpp", action="store_true", help="skip the llama.cpp server even if installed")
    ap.add_argument("--data", type=Path,
                    default=Path(__file__).resolve().parents[2] / "shared" / "data" / "benchmarks" / "gsm8k_test.jsonl")
    a = ap.parse_args(argv)
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)
    if a.part in ("all", "routing"):
        bench_routing(a.routing_steps, a.lam)
    if a.part in ("all", "loop"):
        bench_loop(a.model, a.problems, a.max_steps, a.max_step_tokens, a.device, a.data)
    if a.part in ("all", "servers"):
        bench_servers(a.server_problems, a.width, a.latency, max(a.max_steps, 6), a.policy, not a.no_llamacpp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
