"""The demo judge's packaged observation model is what ``scripts/fit_judge_obs.sh`` says made it: the
shipped scores are exactly the seeded ProcessBench GSM8K sample with its labels, ``fit-obs`` on them gives
the shipped table, the recorded AUC is the pairwise one, and decode reads ``judge:smollm2`` through it."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from trimpomdp.cli.main import main
from trimpomdp.packaged import PRM_SPECS, data_path, default_spec_path, prm_calibration

ROOT = Path(__file__).resolve().parents[1]
SPEC = data_path(PRM_SPECS["judge:smollm2"])
INFO = json.loads(SPEC.read_text())["info"]
SCORES = ROOT / "data" / "judge_smollm2_processbench_gsm8k.jsonl"


def _helper():
    spec = importlib.util.spec_from_file_location("judge_obs_info", ROOT / "scripts" / "judge_obs_info.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scores_are_the_seeded_processbench_sample(data_dir):
    from trimpomdp.decode.scoring import sample_items
    from trimpomdp.observation_models.data import load_processbench

    items = load_processbench(data_dir / "processbench" / "gsm8k.json", need_problem=True)
    rows = [json.loads(ln) for ln in SCORES.read_text().splitlines()]
    n = INFO["prm_solutions"]
    assert len(rows) == n and {r["id"] for r in rows} == {it["id"] for it in sample_items(items, n, 0)}
    by_id = {it["id"]: it for it in items}
    for r in rows:
        assert r["prm"] == "judge:smollm2" and r["label"] == by_id[r["id"]]["label"]
        assert len(r["scores"]) == len(by_id[r["id"]]["steps"]) and all(0 < s < 1 for s in r["scores"])
    assert INFO["prm_steps"] == sum(len(r["scores"]) for r in rows)


def test_fit_obs_on_the_scores_gives_the_shipped_table(tmp_path, capsys):
    from trimpomdp.observation_models.io import load_binned

    assert main(["fit-obs", str(SCORES), "--dims", "1", "--no-diagnostics", "-o", str(tmp_path / "o.npz")]) == 0
    capsys.readouterr()
    spec = json.loads(SPEC.read_text())
    mine, shipped = load_binned(tmp_path / "o.npz"), load_binned(SPEC.parent / spec["observation_model"])
    assert mine.states == shipped.states
    np.testing.assert_allclose(mine.probs, shipped.probs, atol=1e-12)


def test_recorded_auc_is_the_pairwise_auc():
    from trimpomdp.observation_models.sequences import load_score_steps

    seqs = load_score_steps(SCORES)
    good, bad, _, _ = _helper().step_scores(seqs)
    pairs = (good[:, None] > bad[None, :]).mean() + 0.5 * (good[:, None] == bad[None, :]).mean()
    assert INFO["prm_auc"] == pytest.approx(pairs, abs=1e-4)
    assert INFO["prm_correct_steps"] == good.size and INFO["prm_first_wrong_steps"] == bad.size
    lo, hi = INFO["prm_auc_ci95"]
    assert lo < INFO["prm_auc"] < hi and hi - lo < 0.3
    assert prm_calibration("judge:smollm2")["prm_auc"] == INFO["prm_auc"] and prm_calibration("qwen:x") is None


def test_decode_reads_the_packaged_judge_through_its_own_spec(monkeypatch, data_dir, tmp_path):
    import trimpomdp.pipeline as pipeline

    assert default_spec_path("judge:smollm2") == SPEC and default_spec_path().name == "trim_math.json"
    assert default_spec_path("judge:gemma3").name == "trim_math.json"  # no fitted model: the default
    seen = []

    class Stop(Exception):
        pass

    def spy(policy, spec=None):
        seen.append(Path(spec))
        raise Stop

    monkeypatch.setattr(pipeline, "build_policy", spy)
    problems = data_dir / "benchmarks" / "gsm8k_test.jsonl"
    for prm, given in (("judge:smollm2", None), ("judge:gemma3", None), ("judge:smollm2", tmp_path / "t.json")):
        with pytest.raises(Stop):
            pipeline.decode_file(problems, tmp_path / "o.jsonl", prm=prm, trim_model=given, limit=1)
    assert seen == [SPEC, default_spec_path(), tmp_path / "t.json"]


def test_the_spec_loads_and_solves_at_the_documented_budget():
    from trimpomdp.routing import TrimModel, load_policy

    tm = TrimModel.load(SPEC)
    assert tm.observation == "current" and tm.obs.n_bins == 20
    pol = load_policy("pomdp:lambda=0.15", trim_model=tm)
    assert 0 < pol.predicted["accuracy"] < 1
