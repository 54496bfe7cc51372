"""Metrics of the reference's real runs (shared/data/anchor_runs) against values computed by hand from the
files, bad reference folders (one error line naming file and line), and `simulate-routing --reference`."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trimpomdp.cli.main import main
from trimpomdp.errors import TrimError
from trimpomdp.routing.reference_runs import read_reference_file, reference_metrics

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "data" / "trim_math_plain.json"
THR, POMDP = "trim_thr_math500_qwen1.5b_7b", "trim_pomdp_math500_qwen1.5b_7b"
AW, AS, CS = 0.364, 0.73, 494.84  # threshold 0 (cheap only) and 1 (strong only) lines of the threshold file


@pytest.fixture(scope="module")
def anchors(data_dir):
    return data_dir / "anchor_runs"


def test_anchor_curves_known_values(anchors):
    res = reference_metrics(anchors)
    (b,) = res["benchmarks"]
    assert b["benchmark"] == "math500"
    assert (b["acc_weak"], b["acc_strong"], b["cost_strong"]) == (AW, AS, CS)
    assert b["weak"]["where"].endswith(f"{THR}.jsonl:1") and b["strong"]["where"].endswith(f"{THR}.jsonl:21")
    thr, pom = b["families"][THR], b["families"][POMDP]
    gap = AS - AW
    # threshold front: PGR 0.5 = accuracy 0.547, between thresholds 0.05 (70.684 tokens, 0.508) and
    # 0.1 (98.218, 0.548); 0.8 = 0.6568 between 0.3 (133.492, 0.654) and 0.5 (163.838, 0.674) (the 0.35-0.45
    # points are dominated); 0.95 = 0.7117 between 0.85 (204.772, 0.706) and 0.9 (219.062, 0.714)
    assert thr["cpt50"] == pytest.approx((70.684 + (AW + 0.5 * gap - 0.508) / 0.040 * (98.218 - 70.684)) / CS)
    assert thr["cpt80"] == pytest.approx((133.492 + (AW + 0.8 * gap - 0.654) / 0.020 * (163.838 - 133.492)) / CS)
    assert thr["cpt95"] == pytest.approx((204.772 + (AW + 0.95 * gap - 0.706) / 0.008 * (219.062 - 204.772)) / CS)
    assert thr["cpt_not_reached"] == [] and thr["delta_ibc_points"] == 19
    assert thr["max_pgr"] == pytest.approx((0.716 - AW) / gap)
    # POMDP: PGR 0.5 between cost 0.25 -> 0.65 ... (34.218, 0.51) and (79.672, 0.556); it tops out at
    # 0.684 (PGR 0.874): CPT95 is not reached
    assert pom["cpt50"] == pytest.approx((34.218 + (AW + 0.5 * gap - 0.51) / 0.046 * (79.672 - 34.218)) / CS)
    assert pom["cpt95"] is None and pom["cpt_not_reached"] == ["cpt95"]
    assert pom["max_pgr"] == pytest.approx((0.684 - AW) / gap)
    # Delta-IBC of each POMDP point: ((acc - 0.364) / tokens) / (0.366 / 494.84) - 1; best at lambda 0.75
    pts = [(172.358, 0.684), (147.644, 0.646), (127.046, 0.662), (95.084, 0.582), (79.672, 0.556),
           (44.524, 0.502), (34.218, 0.51), (22.888, 0.438)]
    dibc = [(a - AW) / c / (gap / CS) - 1 for c, a in pts]
    assert pom["delta_ibc_mean"] == pytest.approx(sum(dibc) / 8)
    assert pom["delta_ibc_max"] == pytest.approx((0.51 - AW) / 34.218 / (gap / CS) - 1)  # 4.769
    assert pom["front_levels_reached"] == 87  # PGR 0.01 .. 0.87
    p0 = pom["points"][0]
    assert p0["label"] == "cost_per_token=0.15" and p0["where"].endswith(f"{POMDP}.jsonl:1")
    assert (p0["cheap_kept"], p0["cheap_discarded"], p0["strong_calls"]) == (309.522, 167.972, 2.356)
    assert p0["prm_tokens"] is None and p0["pgr"] == pytest.approx((0.684 - AW) / gap)


def test_reference_costs_priced(anchors):
    b = reference_metrics(anchors, prices={"strong": 1.0, "cheap": 0.1, "prm": 0.5})["benchmarks"][0]
    cost = b["families"][THR]["points"][0]["cost"]  # threshold 0.05
    assert cost["total"] == pytest.approx(70.684 + 0.1 * (375.468 + 75.486))
    assert cost["excludes"] == ["prm"]  # the reference records no PRM tokens
    assert b["weak"]["cost"]["total"] == pytest.approx(0.1 * 400.946)


def _folder(tmp_path, anchors, name="ref"):
    d = tmp_path / name
    d.mkdir()
    for f in anchors.glob("*.jsonl"):
        shutil.copy(f, d / f.name)
    return d


def _corrupt(path: Path, line: int, new_text: str):
    lines = path.read_text().splitlines()
    lines[line - 1] = new_text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("bad, says", [
    ('{"accuracy": 0.5, "avg_target_tokens_per_question": ', "invalid JSON"),
    ('{"avg_target_tokens_per_question": 10}', "field 'accuracy': is missing"),
    ('{"accuracy": 1.5, "avg_target_tokens_per_question": 10}', "field 'accuracy': must be at most 1"),
    ('{"accuracy": 0.5, "avg_target_tokens_per_question": "ten"}', "must be a number"),
    ('{"accuracy": 0.5, "avg_target_tokens_per_question": -3}', "must be at least 0"),
    ('[0.5, 10]', "must be a JSON object"),
])
def test_bad_reference_line_names_file_and_line(tmp_path, anchors, bad, says):
    d = _folder(tmp_path, anchors)
    _corrupt(d / f"{POMDP}.jsonl", 3, bad)
    with pytest.raises(TrimError) as e:
        reference_metrics(d)
    assert f"{POMDP}.jsonl:3:" in str(e.value) and says in str(e.value)


def test_bad_reference_folders(tmp_path, anchors, capsys):
    with pytest.raises(TrimError, match="folder not found"):
        reference_metrics(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrimError, match=r"no \*\.jsonl"):
        reference_metrics(tmp_path / "empty")
    (tmp_path / "blank.jsonl").write_text("\n\n")
    with pytest.raises(TrimError, match="blank.jsonl: no operating points"):
        read_reference_file(tmp_path / "blank.jsonl")
    # two different cheap-only runs on one benchmark: which is the PGR anchor?
    d = _folder(tmp_path, anchors, "two")
    with open(d / f"{POMDP}.jsonl", "a") as fh:
        fh.write(json.dumps({"accuracy": 0.3, "avg_target_tokens_per_question": 0.0,
                             "avg_target_calls_per_question": 0.0}) + "\n")
    msg = rf"several different cheap-only runs on math500.*{POMDP}.jsonl:9.*{THR}.jsonl:1"
    with pytest.raises(TrimError, match=msg):
        reference_metrics(d)
    # a folder without the anchors is reported, not guessed at
    d = tmp_path / "pomdp_only"
    d.mkdir()
    shutil.copy(anchors / f"{POMDP}.jsonl", d)
    b = reference_metrics(d)["benchmarks"][0]
    assert b["families"] == {} and "no cheap-only and strong-only run" in b["note"]
    # the command refuses a bad folder at once (before simulating) with one error line
    bad = _folder(tmp_path, anchors, "cli")
    _corrupt(bad / f"{THR}.jsonl", 5, "{not json")
    assert main(["simulate-routing", str(SPEC), "--reference", str(bad), "--episodes", "100"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{THR}.jsonl:5: invalid JSON" in err


def test_simulate_routing_prints_real_runs_beside_in_model(anchors, capsys):
    args = ["simulate-routing", str(SPEC), "--sweep", "threshold:0.2,0.5,0.8", "--episodes", "3000",
            "--mode", "independent", "--reference", str(anchors), "--price", "strong=5e-6,cheap=1e-7,prm=2e-7"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "families, in-model" in out and "full cost per question, in-model" in out
    assert "== real runs" in out and "families, real runs (math500" in out
    real = out[out.index("== real runs"):]
    assert "not reached" in real and POMDP in real and "not recorded" in real
    assert "nan" not in out.lower()
    assert main(args + ["--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    ind = res["modes"]["independent"]
    assert res["cost_model"]["cheap_step_tokens"] > 0 and "spec" in res["cost_model"]["source"]
    weak = ind["policies"][0]
    assert weak["name"] == "weak" and weak["cheap_discarded"] == 0 and weak["prm_tokens"] > weak["cheap_kept"] > 0
    assert weak["cost"]["total"] > 0 and weak["cost"]["excludes"] == []
    fam = ind["families"]["threshold:0.2,0.5,0.8"]
    assert {"delta_ibc_mean", "delta_ibc_max", "delta_ibc_front", "cpt_not_reached"} <= set(fam)
    assert res["reference"]["benchmarks"][0]["families"][POMDP]["cpt95"] is None
