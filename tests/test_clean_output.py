"""What a user sees: help on a bare ``trimpomdp``, one wording for missing files, unreachable budgets with
their range, ``inspect`` in id order with a legend and a summary line, an aligned ``fit-obs`` table,
Ctrl-C with what was saved, no deprecation warnings from decoding, quiet loading, plots that keep to
their benchmark, the few-shot ``Question:`` cut, and an install without the license warning."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from trimpomdp.cli.main import main
from trimpomdp.decode.backends import cut_step
from trimpomdp.decode.hf import cut_generated
from trimpomdp.decode.trace import TraceWriter

ROOT = Path(__file__).resolve().parents[1]


def run(capsys, *args):
    rc = main(list(args))
    out, err = capsys.readouterr()
    return rc, out, err


# ------------------------------------------------------------------------------------------- help, errors
def test_bare_trimpomdp_prints_help_not_an_error_line(capsys):
    rc, out, err = run(capsys)
    text = out + err
    assert rc in (0, 2)
    assert not text.startswith("Error") and "Usage: trimpomdp [OPTIONS] COMMAND" in text
    assert len(text.splitlines()) > 10 and re.search(r"^\s+decode\s+Routed", text, re.M)  # one command a line


@pytest.mark.parametrize("args", [
    ["info", "{d}/nope.pomdp"], ["solve", "{d}/nope.pomdp"], ["simulate", "{d}/nope.pomdp", "{d}/p.npz"],
    ["fit-obs", "{d}/nope.npz", "-o", "{d}/o.npz"], ["simulate-routing", "{d}/nope.json"],
    ["score-steps", "{d}/nope.json", "-o", "{d}/s.jsonl"], ["decode", "{d}/nope.jsonl"],
    ["inspect", "{d}/nope.jsonl"], ["eval", "{d}/nope.jsonl"],
    ["trim-model", "--step-stats", "{d}/nope.npz", "--weak", "a", "--strong", "b", "--obs", "{d}/o.npz", "-o",
     "{d}/t.json"],
])
def test_a_missing_file_is_reported_one_way(capsys, tmp_path, args):
    rc, out, err = run(capsys, *[a.format(d=tmp_path) for a in args])
    assert rc == 2 and out == ""
    assert re.fullmatch(rf"Error: {re.escape(str(tmp_path))}/nope\.\w+: file not found( \(expected [^)]+\))?\n", err), err


# ---------------------------------------------------------------------------------------------- budgets
def test_unreachable_mean_budget_reports_the_reachable_range(capsys, tmp_path):
    from trimpomdp.packaged import default_spec_path

    rc, out, err = run(capsys, "solve", str(default_spec_path()), "--budget", "mean=5000", "--json")
    assert rc == 0, err
    row = json.loads(out)["points"][0]
    most = row["predicted_strong_tokens"]
    assert 0 < most < 5000 and row["lambda"] < 1e-6  # the price went to ~0: the most it can spend
    assert row["note"] == (f"a mean of 5000 is not reachable: this spec's policies spend 0 to {most:.4g} strong "
                           f"tokens per question (0 never regenerates; {most:.4g} as the price per token goes "
                           f"to 0); solved for {most:.4g}")
    rc, out, err = run(capsys, "solve", str(default_spec_path()), "--budget", f"mean={most / 2:.3f}", "--json")
    row = json.loads(out)["points"][0]
    assert rc == 0 and row["note"] is None and abs(row["predicted_strong_tokens"] - most / 2) < 0.02 * most


# ---------------------------------------------------------------------------------------------- inspect
def _rec(pid, actions, correct=False, models=None):
    steps = []
    for k, a in enumerate(actions, 1):
        steps.append({"index": k, "text": f"step {k}", "model": "strong" if a == "regenerate" else "weak",
                      "weak_text": f"w{k}", "weak_tokens": 5, "strong_tokens": 7 if a == "regenerate" else 0,
                      "prm_score": 0.5, "observation": [1.0, 0.5], "obs_bin": 10,
                      "belief_before": [0.8, 0.2, 0.0], "belief_after": [0.7, 0.3, 0.0], "action": a,
                      "q_keep": 1.0, "q_regenerate": 0.5})
    n_regen = sum(a == "regenerate" for a in actions)
    return {"id": pid, "question": "q", "reference": "1", "policy": "pomdp:lambda=0.15",
            "models": models or {"weak": "smollm2", "strong": "gemma3", "prm": "judge:smollm2"},
            "solution": "s", "answer": "1" if correct else "2", "correct": correct,
            "tokens": {"weak_kept": 5 * (len(actions) - n_regen), "weak_discarded": 5 * n_regen,
                       "strong": 7 * n_regen},
            "finish": "answer", "error": None, "seconds": 0.1, "steps": steps}


def test_inspect_lists_ids_in_order_with_a_legend_and_a_summary(capsys, tmp_path):
    path = tmp_path / "run.jsonl"
    with TraceWriter(path, header={"policy": "pomdp:lambda=0.15"}) as w:  # finished out of order
        for pid, acts, ok in (("10", ["keep", "regenerate"], False), ("2", ["keep"], True),
                              ("1", ["regenerate", "keep", "keep"], False)):
            w.write(_rec(pid, acts, ok))
    rc, out, err = run(capsys, "inspect", str(path))
    assert rc == 0, err
    summary_ids = re.findall(r"^(\d+)\s+answer", out, re.M)
    assert summary_ids == ["1", "2", "10"]
    assert re.findall(r"^problem (\d+):", out, re.M) == ["1", "2", "10"]
    assert "legend: b_before/b_after" in out and "Q_keep/Q_regen" in out and "C (correct so far)" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("summary: 4 of 6 steps kept, 2 regenerated by the strong model")
    assert "1 of 3 correct: 135M/270M models" in last and "--prm 'vllm-pooling:" in last


def test_summary_names_neither_small_models_nor_servers_for_server_runs(tmp_path):
    from trimpomdp.analysis.inspection import routing_summary
    from trimpomdp.decode.trace import read_run

    path = tmp_path / "srv.jsonl"
    models = {"weak": "http://h:1/v1?model=a", "strong": "http://h:2/v1?model=b", "prm": "vllm-pooling:http://h:3"}
    with TraceWriter(path, header={"policy": "weak"}) as w:
        w.write(_rec("0", ["keep", "keep"], True, models))
    assert routing_summary(read_run(path)) == "summary: 2 of 2 steps kept, 0 regenerated by the strong model"


def test_id_order_compares_numbers_by_value():
    from trimpomdp.analysis.inspection import id_order

    ids = ["test/algebra/10.json", "test/algebra/9.json", "b", "a2", "a10", "3", "21", "test/geo/1.json"]
    assert sorted(ids, key=id_order) == ["3", "21", "a2", "a10", "b", "test/algebra/9.json",
                                         "test/algebra/10.json", "test/geo/1.json"]


# ---------------------------------------------------------------------------------------------- fit-obs
def _columns_aligned(table: str) -> bool:
    """Every numeric column's header and values end where its rule ends (numbers sit under their names)."""
    head, rule, *rows = table.splitlines()
    spans = [m.span() for m in re.finditer(r"-+", rule)]
    return all(line[a:b].strip() == "" or line[b - 1:b] not in ("", " ")
               for a, b in spans[1:] for line in (head, *rows))


def test_fit_obs_table_headers_sit_over_their_columns(capsys, data_dir, tmp_path):
    rc, out, err = run(capsys, "fit-obs", str(data_dir / "prm_obs_processbench_math.npz"), "--bandwidth", "scott",
                       "--folds", "0", "-o", str(tmp_path / "o.npz"))
    assert rc == 0, err
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("state "))
    table = "\n".join(lines[start:start + 5])
    assert lines[start].split() == ["state", "n", "H00", "H01", "H11", "loglik", "AUC"]  # no cv scale, no nan
    assert "nan" not in out and _columns_aligned(table)
    rc, out, err = run(capsys, "fit-obs", str(data_dir / "prm_obs_processbench_math.npz"), "--dims", "1",
                       "--folds", "0", "-o", str(tmp_path / "o1.npz"))
    head = next(ln for ln in out.splitlines() if ln.startswith("state "))
    assert rc == 0 and head.split() == ["state", "n", "sd^2", "cv", "scale", "loglik", "AUC"]
    assert "cv scale: the rule's factor chosen by cross-validation" in out and "nan" not in out


# ---------------------------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_in_decode_says_what_is_saved_and_how_to_resume(capsys, monkeypatch, tmp_path):
    import trimpomdp.pipeline as pipeline

    out = tmp_path / "run.jsonl"

    def interrupted_decode(problems, out_path, **kw):
        with TraceWriter(out_path, header={"policy": "weak"}) as w:
            w.write(_rec("0", ["keep"]))
            w.write(_rec("1", ["keep"]))
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "decode_file", interrupted_decode)
    rc, stdout, err = run(capsys, "decode", str(tmp_path / "p.jsonl"), "-o", str(out))
    assert rc == 130 and stdout == ""
    assert f"interrupted: 2 problems saved in {out}" in err and "--resume" in err and "Aborted" not in err


def test_ctrl_c_in_score_steps_says_what_is_saved(capsys, monkeypatch, tmp_path):
    import trimpomdp.decode.scoring as scoring
    import trimpomdp.decode.specs as specs

    items = tmp_path / "items.json"
    items.write_text(json.dumps([{"id": f"x{i}", "problem": "p", "steps": ["a", "b"], "label": -1}
                                 for i in range(3)]))
    out = tmp_path / "s.jsonl"

    def interrupted(items, prm, out_path, name, resume=False, progress=True):
        Path(out_path).write_text(json.dumps({"id": "x0", "scores": [0.5, 0.5], "label": -1}) + "\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(specs, "load_prm", lambda *a, **k: object())
    monkeypatch.setattr(scoring, "score_labelled", interrupted)
    rc, _, err = run(capsys, "score-steps", str(items), "-o", str(out))
    assert rc == 130 and f"interrupted: 1 solution saved in {out}" in err and "--resume" in err


# ---------------------------------------------------------------------------------------------- plots
def test_references_are_drawn_only_on_their_own_benchmark():
    from trimpomdp.routing.plots import benchmark_key, select_references

    ref = {"trim_thr_math500_qwen1.5b_7b": 1, "trim_pomdp_math500_qwen1.5b_7b": 2}
    assert [benchmark_key(n) for n in ("gsm8k_test", "math500", "aime24", "aime_test", "minerva_math")] == \
        ["gsm8k", "math500", "aime24", "aime_test", "minerva_math"]
    kept, note = select_references(ref, "gsm8k_test")
    assert kept == {} and note.startswith("reference runs not drawn: they are on math500; these runs are on gsm8k")
    assert select_references(ref, "math500") == (ref, None)
    kept, note = select_references(ref, None)
    assert kept == {} and "name no benchmark" in note


def test_eval_plot_of_a_gsm8k_run_leaves_math500_references_out(capsys, monkeypatch, data_dir, tmp_path):
    from trimpomdp.routing import plots

    seen = {}
    real = plots.plot_cost_accuracy

    def spy(curves, path, reference=None, title="", points=None, note=None):
        seen.update(reference=reference, note=note)
        return real(curves, path, reference=reference, title=title, points=points, note=note)

    monkeypatch.setattr(plots, "plot_cost_accuracy", spy)
    paths = []
    for name, pol, acts in (("weak", "weak", ["keep"]), ("strong", "strong", ["regenerate"]),
                            ("routed", "pomdp:lambda=0.15", ["keep", "regenerate"])):
        p = tmp_path / f"{name}.jsonl"
        with TraceWriter(p, header={"policy": pol, "problems": "gsm8k_test.jsonl"}) as w:
            w.write(dict(_rec("0", acts, name != "weak"), policy=pol))
        paths.append(str(p))
    png = tmp_path / "plot.png"
    rc, out, err = run(capsys, "eval", *paths, "--plot", str(png), "--reference", str(data_dir / "anchor_runs"))
    assert rc == 0, err
    assert png.read_bytes()[:4] == b"\x89PNG" and seen["reference"] == {} and "math500" in seen["note"]


# ---------------------------------------------------------------------------------- decoding, loading
@given(st.text(alphabet="ab \n{}Q:uestion\\boxed", max_size=40))
@example("A robe takes 3 bolts.\nQuestion: A store has 1000 items.")
@example("Question: next")
@example("x = \\boxed{3}.\nQuestion: y")
def test_fewshot_cut_at_the_next_question(text):
    head, reason = cut_generated(text, "fewshot")
    lines = text.split("\n")
    starts = [i for i, ln in enumerate(lines) if ln.startswith("Question:")]
    if not starts:
        assert (head, reason) == cut_step(text)
        return
    before = "".join(ln + "\n" for ln in lines[:starts[0]])  # the text up to that line
    ref_head, ref_reason = cut_step(before)
    assert head == ref_head and reason == (ref_reason or "eos")
    assert cut_generated(text, "chatml") == cut_step(text)  # only the few-shot patterns have a next example


def test_known_cuts():
    assert cut_generated("A robe takes 3 bolts.\nQuestion: A store", "fewshot") == ("A robe takes 3 bolts.", "eos")
    assert cut_generated("Question: A store has", "fewshot") == ("", "eos")
    assert cut_generated("So \\boxed{3}.\nQuestion: x", "fewshot") == ("So \\boxed{3}.", "answer")
    assert cut_generated("The Question: is fine", "fewshot") == ("The Question: is fine", None)


def test_decoding_warns_nothing(recwarn, capfd):
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from transformers import LlamaConfig, LlamaForCausalLM

    from trimpomdp.decode.hf import HFStepGenerator, cache_keyword
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    tk.train_from_iterator(["Tom has 3 apples.\n\nSo \\boxed{3}."] * 5, trainers.BpeTrainer(
        vocab_size=280, special_tokens=["<eos>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<eos>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, bos_token_id=None,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    model = LlamaForCausalLM(cfg).eval()
    import transformers

    if int(transformers.__version__.split(".")[0]) >= 5:
        assert cache_keyword(model) == "cache"
    g = HFStepGenerator(model, tok, name="t", prompt_style="plain")
    capfd.readouterr()
    outs = g.generate_steps(["Tom has", "So"], 6, keys=["a", "b"])  # batched decode with cache reuse
    outs += g.generate_steps(["Tom has 3"], 6, keys=["a"])  # cropped cache, one row
    outs += HFStepGenerator(model, tok, name="t", prompt_style="plain", reuse_cache=False).generate_steps(
        ["Tom has", "So"], 6)  # model.generate with step stopping
    assert len(outs) == 5 and all(o.n_tokens >= 1 for o in outs)
    assert [str(w.message) for w in recwarn if "deprecat" in str(w.message).lower()] == []
    assert "deprecated" not in capfd.readouterr().err


def test_loading_messages_off_hides_transformers_bars_and_restores_them():
    pytest.importorskip("transformers")
    from transformers.utils import logging as tf_logging

    from trimpomdp.decode.models import loading_messages, showing_messages

    tf_logging.enable_progress_bar()
    with loading_messages(False):
        assert not tf_logging.is_progress_bar_enabled() and not showing_messages()
    assert tf_logging.is_progress_bar_enabled() and showing_messages()


def test_one_time_conversion_names_itself_and_its_stages(capsys, monkeypatch, tmp_path):
    from trimpomdp.decode import models as M

    monkeypatch.setenv("TRIMPOMDP_CACHE", str(tmp_path))
    monkeypatch.setattr(M, "locate_gguf", lambda name: tmp_path / "x.gguf")

    def fake_convert(gguf, out_dir, meta, stage=None):
        for s in ("reading the tokenizer from the GGUF file", "dequantising the weights", "saving"):
            stage(s)
        return out_dir

    monkeypatch.setattr(M, "convert_gguf", fake_convert)
    M.prepare("smollm2")
    err = capsys.readouterr().err
    assert "one-time conversion of packaged model smollm2" in err and "this happens once" in err
    assert re.findall(r"\[(\d)/4\]", err) == ["1", "2", "3", "4"] and "later runs load this folder directly" in err
    with M.loading_messages(False):
        M.prepare("smollm2")
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------------------------------------- install
def test_building_the_package_prints_no_license_warning(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v", "-w",
                          str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    text = res.stdout + res.stderr
    assert "Successfully built trimpomdp" in text
    assert not re.search(r"license", "\n".join(ln for ln in text.splitlines() if "arn" in ln), re.I)


def test_openmp_threads_sleep_while_waiting_unless_the_user_chose(monkeypatch):
    import os

    from trimpomdp.cli import main as cli_main

    for preset, expected in ((None, "PASSIVE"), ("ACTIVE", "ACTIVE")):
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        if preset:
            monkeypatch.setenv("OMP_WAIT_POLICY", preset)
        cli_main._passive_openmp_waits()
        assert os.environ.get("OMP_WAIT_POLICY") == expected
