"""bench/gpu_check.py on the CPU (--tiny): the script a GPU owner runs is known to work, and its parts
measure what they say (exact token counts, only real tokens emitted, the loop's time split adding up)."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the GPU check needs torch (pip install torch==2.13.0)")
pytest.importorskip("transformers", reason="the GPU check needs transformers")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield mod
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny(gc):
    from trimpomdp.decode.prompts import render

    prompts = [render("fewshot", q) for q in gc.QUESTIONS[:3]]
    tok = gc.make_tokenizer(prompts, vocab=300)
    return tok, gc.make_model(tok, True, "cpu", seed=1), prompts


def test_full_size_config_is_qwen2_05b(gc):
    from transformers import Qwen2Config

    cfg = Qwen2Config(**gc.QWEN2_05B)
    # parameters of Qwen2-0.5B (tied embeddings): 494,032,768, computed from the config without building it
    h, i, n, v, kv = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size, 2 * 64
    per_layer = h * h + h + 2 * (h * kv + kv) + h * h + 3 * h * i + 2 * h
    assert v * h + n * per_layer + h == 494_032_768


def test_plain_generate_counts_exact_tokens(gc, tiny):
    tok, model, prompts = tiny
    n, secs = gc.plain_generate(model, tok, prompts, 5, "cpu")
    assert n == 3 * 5 and secs > 0


def test_random_model_emits_only_tokenizer_tokens(gc, tiny):
    tok, model, prompts = tiny
    enc = tok(prompts[:1], return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits[0, -1]
    assert logits.shape[0] == len(tok)  # --tiny: the vocabulary is the tokenizer's
    small = gc.make_tokenizer(prompts, vocab=300)  # 300 tokens for a 1,000-row output matrix
    from transformers import Qwen2Config, Qwen2ForCausalLM

    cfg = Qwen2Config(**dict(gc.TINY, vocab_size=1000))
    m = Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        m.get_output_embeddings().weight[len(small):] = 0
        out = m(**small(prompts[:1], return_tensors="pt")).logits[0, -1]
    assert torch.all(out[len(small):] == 0) and int(out.argmax()) < len(small)


def test_tiny_run_prints_rates_and_a_consistent_split(gc, capsys):
    rc = gc.main(["--tiny", "--repeats", "1", "--problems", "2", "--tokens", "6", "--steps", "2"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rates = re.findall(r"^\s+(plain model\.generate \(baseline\)|HFStepGenerator, [^\d]+?)\s+([\d.]+) tokens/s", out, re.M)
    assert [r[0].strip() for r in rates] == ["plain model.generate (baseline)", "HFStepGenerator, KV-cache reuse",
                                             "HFStepGenerator, generate() + stop"]
    assert all(float(r[1]) > 0 for r in rates)
    assert "(12 tokens in" in out  # the baseline writes exactly problems x tokens
    m = re.search(r"per step: ([\d.]+) ms = weak ([\d.]+) \+ strong ([\d.]+) \+ PRM ([\d.]+) \+ filter/policy "
                  r"([\d.]+) \+ rest of the loop (-?[\d.]+) ms", out)
    assert m, out
    total, *parts = (float(x) for x in m.groups())
    assert total == pytest.approx(sum(parts), abs=0.05)  # the parts are measured, the rest is what is left
    assert re.search(r"2 problems, [1-4] steps", out)
