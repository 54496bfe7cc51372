"""Learned routers (TRIM-Agg, TRIM-Seq): the training environments' rewards, costs and features against
hand-computed episodes (simulator and live decoding), seeded deterministic training, the exported network
equal to the trained one, policy files (round trip, corrupted, mismatched), decode = simulator decisions,
resumable checkpoints, and live training on tiny random models."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("stable_baselines3", reason="training needs the learn extra")

from test_baselines import POINTS, Problem, Script, Scripted, tiny_model
from test_baselines import ScorePRM as Scored  # noqa: E402

from trimpomdp.artifacts import load_npz, save_npz  # noqa: E402
from trimpomdp.cli.main import main  # noqa: E402
from trimpomdp.errors import FormatError, TrimError  # noqa: E402
from trimpomdp.interfaces import StepObservation  # noqa: E402
from trimpomdp.learned.env import DecodeCore, SimCore, make_env  # noqa: E402
from trimpomdp.learned.policy import ROUTER_FORMAT, LearnedRouter  # noqa: E402
from trimpomdp.learned.train import TrainConfig, train_router  # noqa: E402
from trimpomdp.routing import TrimModel, load_policy  # noqa: E402
from trimpomdp.routing import simulator as S  # noqa: E402

SPEC = Path(__file__).resolve().parents[1] / "data" / "trim_math_plain.json"
LAM = 2e-3


def tiny_cfg(kind, seed=0, **kw):
    base = dict(kind=kind, lam=LAM, timesteps=2048, seed=seed, envs=64, n_steps=16, batch_size=512, epochs=2,
                eval_every=1024, eval_episodes=500, checkpoint_every=1024, hidden=[8], seq_hidden=4)
    base.update(kw)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def trained(tm, pts, tmp_path_factory):
    d = tmp_path_factory.mktemp("routers")
    return {k: train_router(tm, pts, tiny_cfg(k), d / f"{k}.npz", progress=False, log=lambda m: None)[0]
            for k in ("agg", "seq")}


# ------------------------------------------------------------------------------- the simulator environment
def scripted_core(u_s3=0.5):
    """The hand-computed episode of test_baselines.run_one in one slot (step 1 correct, 0.9; step 2 a fresh
    error, 0.2, rewritten correctly; step 3 correct, 0.9), then a new 3-step question."""
    core = SimCore(tiny_model(), POINTS, 1, mode="independent")
    core.rng = Scripted([0.1, 0.5, 0.95, 0.9, 0.5, 0.3, 0.1, 0.5, u_s3, 0.5, 0.1, 0.5, 0.5, 0.5],
                        [2, 0, 0, 0, 2, 0])
    return core


@pytest.mark.parametrize("kind", ["agg", "seq"])
def test_sim_env_rewards_costs_and_features_hand_computed(kind):
    lam = 0.01  # a 50-token regeneration costs 0.5
    env = make_env(scripted_core(), kind, lam, token_scale=50.0, max_steps=3, window=3)
    obs = env.reset()
    seen, rewards, dones = [obs[0]], [], []
    for a in (0, 1, 0):
        obs, r, d, info = env.step(np.array([a]))
        seen.append(obs[0])
        rewards.append(float(r[0]))
        dones.append(bool(d[0]))
    assert rewards == pytest.approx([0.0, -0.5, 1.0]) and dones == [False, False, True]
    assert env.finished == [(pytest.approx(0.5), True, 50.0)]
    if kind == "agg":  # min / product of the kept cheap steps' scores, score, tokens / 50, step / 3
        want = [[1, 1, 0.9, 1, 1 / 3], [0.9, 0.9, 0.2, 1, 2 / 3], [0.9, 0.9, 0.9, 1, 1.0], [1, 1, 0.9, 1, 1 / 3]]
        np.testing.assert_allclose(np.array(seen[:4]), want, rtol=1e-6)
    else:  # padded history (score, tokens / 50, regenerated), current (score, tokens, step / 3), length
        np.testing.assert_allclose(seen[2], [0.9, 1, 0, 0.2, 1, 1, 0, 0, 0, 0.9, 1, 1.0, 2], rtol=1e-6)
        np.testing.assert_allclose(seen[3], [0] * 9 + [0.9, 1, 1 / 3, 0], rtol=1e-6)  # a new question


def test_sim_env_wrong_answer_earns_nothing():
    env = make_env(scripted_core(), "agg", 0.01, token_scale=50.0, max_steps=3)
    env.reset()
    rewards = [float(env.step(np.array([a]))[1][0]) for a in (0, 0, 0)]
    assert rewards == [0.0, 0.0, 0.0]  # the fresh error at step 2 is kept: wrong answer, nothing spent


# ------------------------------------------------------------------------------ the live decoding environment
def test_decode_env_rewards_and_records_hand_computed(tm, monkeypatch):
    from trimpomdp.decode import prompts
    from trimpomdp.decode.loop import RoutedDecoder

    monkeypatch.setattr("trimpomdp.decode.loop.render", lambda style, q, steps: "".join(s + "\n\n" for s in steps))
    weak, strong, prm = Script("w", 10), Script("s", 20), Scored([0.9, 0.2, 0.9, 0.9])
    dec = RoutedDecoder(weak, strong, prm, None, None, policy_name="t", batch_size=1, max_steps=6)
    core = DecodeCore(dec, [Problem("0", "1+1?", "2", "plain")], 1, tokens_per_weak_token=2.0)
    env = make_env(core, "agg", 0.01, token_scale=20.0, max_steps=4)
    obs = env.reset()
    np.testing.assert_allclose(obs[0], [1, 1, 0.9, 1.0, 0.25], rtol=1e-6)  # 10 cheap tokens x 2 / 20
    rewards = [float(env.step(np.array([a]))[1][0]) for a in (0, 1, 0, 0)]
    assert rewards == pytest.approx([0.0, -0.2, 0.0, 1.0])  # 20 strong tokens at 0.01; correct answer
    rec = core.records[0]
    assert [s["model"] for s in rec["steps"]] == ["weak", "strong", "weak", "weak"] and rec["correct"] is True
    assert rec["tokens"] == {"weak_kept": 30, "weak_discarded": 10, "strong": 20}
    assert weak.calls == 5 and strong.calls == 1  # the slot's next question has been started
    assert prompts.render  # the module's own render is untouched


# ------------------------------------------------------------------------------------------------ training
def test_training_is_deterministic_given_a_seed(tm, pts, tmp_path, trained):
    again = train_router(tm, pts, tiny_cfg("agg"), tmp_path / "a.npz", progress=False, log=lambda m: None)[0]
    other = train_router(tm, pts, tiny_cfg("agg", seed=1), tmp_path / "b.npz", progress=False,
                         log=lambda m: None)[0]
    a, b, c = (r.net.state_dict() for r in (trained["agg"], again, other))
    assert all(torch.equal(a[k], b[k]) for k in a) and not all(torch.equal(a[k], c[k]) for k in a)
    r1 = S.simulate(tm, trained["agg"], pts, 3000, 5, mode="sequence")
    r2 = S.simulate(tm, again, pts, 3000, 5, mode="sequence")
    assert np.array_equal(r1.strong_tokens, r2.strong_tokens) and np.array_equal(r1.correct, r2.correct)


@pytest.mark.parametrize("kind", ["agg", "seq"])
def test_exported_router_decides_as_the_trained_policy(tm, pts, kind):
    """The saved network (``RouterNet``) gives the trained stable-baselines3 policy's logits."""
    from trimpomdp.learned.nets import export_weights
    from trimpomdp.learned.train import _make_model

    env = make_env(SimCore(tm, pts, 64, 3), kind, LAM, tm.mean_step_tokens, tm.max_steps, tm.max_steps)
    model = _make_model(tiny_cfg(kind, envs=64), env, tm.max_steps)
    obs = env.reset()
    for _ in range(5):
        obs = env.step(np.random.default_rng(0).integers(0, 2, 64))[0]
    meta = {"lambda": LAM, "max_steps": tm.max_steps, "token_scale": tm.mean_step_tokens, "tokens_per_weak_token": 1,
            "n_features": 5 if kind == "agg" else 6, "hidden": [8], "seq_hidden": 4}
    router = LearnedRouter(kind, export_weights(model.policy, kind), meta)
    with torch.no_grad():
        t = torch.as_tensor(obs)
        want = model.policy.action_net(model.policy.mlp_extractor.forward_actor(model.policy.extract_features(
            t, model.policy.pi_features_extractor))).numpy()
    if kind == "agg":
        got = router.net.logits(obs)
    else:
        from trimpomdp.learned.nets import seq_encode_full, split_seq_obs

        hist, cur, length = split_seq_obs(t, tm.max_steps)
        got = router.net.logits(torch.cat([seq_encode_full(router.net.cell, hist, length), cur], 1))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["agg", "seq"])
def test_decode_act_matches_the_simulator(tm, pts, trained, kind):
    """Per question (decode) and vectorised (simulator) the router sees and decides the same."""
    router = trained[kind]
    sim = S.StepSimulator(tm, pts, 200, np.random.default_rng(9), pool=S.ScorePool(pts))
    vec = router.start_many(200)
    states = [router.start() for _ in range(200)]
    n_regen = 0
    while (b := sim.observe()) is not None:
        regen, vec = router.act_many(vec, b)
        for r, row in enumerate(b.rows):
            d, states[row] = router.act(states[row], StepObservation(int(b.step[r]), float(b.costs[r]),
                                                                     float(b.scores[r])))
            assert d.regenerate == bool(regen[r])
        n_regen += int(regen.sum())
        sim.step(regen)
    assert n_regen > 0


# ----------------------------------------------------------------------------------------------- files
@pytest.mark.parametrize("kind", ["agg", "seq"])
def test_router_file_round_trip(tm, pts, trained, kind, tmp_path):
    router = trained[kind]
    path = router.save(tmp_path / f"{kind}.npz")
    back = load_policy(f"{kind}:{path}", tm)
    assert back.meta["model_fingerprint"] == tm.fingerprint() and back.meta["lambda"] == LAM
    assert back.meta["training"]["timesteps"] >= 2048 and back.meta["training"]["env"] == "sim"
    a = S.simulate(tm, router, pts, 2000, 1, mode="sequence")
    b = S.simulate(tm, back, pts, 2000, 1, mode="sequence")
    assert np.array_equal(a.correct, b.correct) and np.array_equal(a.strong_tokens, b.strong_tokens)
    assert load_policy(f"takeover:{kind}:{path}", tm).name == f"takeover:{kind}:{kind}.npz"


def test_corrupted_or_mismatched_router_files(tm, trained, tmp_path, capsys):
    path = trained["agg"].save(tmp_path / "agg.npz")
    arrays, meta = load_npz(path, ROUTER_FORMAT)
    # a network reading 4 features under a header naming 5
    bad = dict(arrays, **{"pi.0.weight": arrays["pi.0.weight"][:, :4]})
    save_npz(tmp_path / "f4.npz", bad, meta, ROUTER_FORMAT)
    with pytest.raises(FormatError, match="pi.0.weight.*reads 4 features but field 'features' names 5"):
        load_policy(f"agg:{tmp_path / 'f4.npz'}", tm)
    save_npz(tmp_path / "nf.npz", arrays, dict(meta, n_features=4), ROUTER_FORMAT)
    with pytest.raises(FormatError, match="field 'n_features': is 4 but field 'features' names 5"):
        load_policy(f"agg:{tmp_path / 'nf.npz'}", tm)
    save_npz(tmp_path / "ft.npz", arrays, dict(meta, features=meta["features"][::-1]), ROUTER_FORMAT)
    with pytest.raises(FormatError, match="field 'features'.*retrain"):
        load_policy(f"agg:{tmp_path / 'ft.npz'}", tm)
    # trained on another spec
    other = TrimModel.from_dict(dict(tm.to_dict(), p_weak=0.8), base_dir=SPEC.parent)
    with pytest.raises(TrimError, match="field 'model_fingerprint': the router was trained on spec fingerprint"):
        load_policy(f"agg:{path}", other)
    with pytest.raises(FormatError, match="this is a agg router; load it as agg:"):
        load_policy(f"seq:{path}", tm)
    # bytes damaged after saving
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (tmp_path / "broken.npz").write_bytes(bytes(raw))
    with pytest.raises(FormatError):
        load_policy(f"agg:{tmp_path / 'broken.npz'}", tm)
    # the command line: one Error line, exit 2
    assert main(["simulate-routing", str(SPEC), "--policy", f"agg:{tmp_path / 'f4.npz'}", "--episodes", "10"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error:") and "f4.npz" in err[0]


# ---------------------------------------------------------------------------------------- checkpoints
def test_resume_continues_from_the_checkpoint(tm, pts, tmp_path):
    out = tmp_path / "r.npz"
    _, first = train_router(tm, pts, tiny_cfg("agg", timesteps=1024), out, progress=False, log=lambda m: None)
    assert (tmp_path / "r.npz.ckpt.npz").is_file() and first["timesteps"] == 1024
    said = []
    _, rep = train_router(tm, pts, tiny_cfg("agg", timesteps=3072), out, resume=True, progress=False,
                          log=said.append)
    assert said[0] == f"resumed from {tmp_path / 'r.npz.ckpt.npz'} at 1,024 of 3,072 steps"
    assert [m.split(":")[0] for m in said[1:]] == ["eval at 2,048 steps", "eval at 3,072 steps"]
    assert rep["timesteps"] == 3072 and [e["timesteps"] for e in rep["evaluations"]][:1] == [1024]
    with pytest.raises(TrimError, match="cannot resume: lam is 0.001 but the checkpoint was trained with 0.002"):
        train_router(tm, pts, tiny_cfg("agg", timesteps=4096, lam=1e-3), out, resume=True, progress=False)


def test_cli_train_router(tmp_path, capsys):
    out = tmp_path / "cli.npz"
    args = ["train-router", "agg", str(SPEC), "-o", str(out), "--timesteps", "1024", "--envs", "32",
            "--eval-every", "1024", "--eval-episodes", "300", "--hidden", "8", "--quiet", "--lambda", "0.002"]
    assert main(args) == 0
    said = capsys.readouterr().out
    assert "trained agg router (lambda 0.002, 1,024 steps" in said and str(out) in said
    assert main(args[:-2] + ["--lambda", "-1"]) == 2
    assert "--lambda must be a non-negative" in capsys.readouterr().err
    assert main(args + ["--hidden", "8,x"]) == 2
    assert "expected layer sizes" in capsys.readouterr().err


# ----------------------------------------------------------------------------- live training, tiny models
def test_live_training_through_the_decode_loop(tm, pts, tmp_path):
    """PPO on real (tiny random) models through Episode and the decode loop's batched calls."""
    from test_decode_loop import QUESTIONS, REFS, make_lm, make_tokenizer

    from trimpomdp.decode.hf import HFStepGenerator
    from trimpomdp.decode.loop import RoutedDecoder
    from trimpomdp.decode.prm import JudgePRM
    from trimpomdp.decode.problems import Problem as P

    tok = make_tokenizer()
    gens = [HFStepGenerator(make_lm(tok, s), tok, name=n, prompt_style="plain", temperature=1.0, seed=7)
            for s, n in ((1, "weak"), (2, "strong"))]
    prm = JudgePRM(make_lm(tok, 3), tok, name="judge", prompt_style="plain")
    dec = RoutedDecoder(gens[0], gens[1], prm, None, None, policy_name="t", batch_size=2, max_steps=3,
                        max_step_tokens=6)
    core = DecodeCore(dec, [P(str(i), QUESTIONS[i], REFS[i], "gsm8k") for i in range(2)], 2)
    cfg = tiny_cfg("agg", timesteps=16, envs=2, n_steps=8, batch_size=8, eval_every=10**6, eval_episodes=200)
    router, rep = train_router(tm, pts, cfg, tmp_path / "live.npz", core=core, progress=False)
    assert rep["env"] == "decode" and rep["timesteps"] == 16
    assert core.records and all(len(r["steps"]) <= 3 for r in core.records)
    assert load_policy(f"agg:{tmp_path / 'live.npz'}", tm).meta["training"]["env"] == "decode"


@pytest.mark.parametrize("kind", ["agg", "seq"])
def test_decode_with_a_router_records_what_it_saw(tm, trained, kind, monkeypatch):
    from trimpomdp.decode.loop import RoutedDecoder
    from trimpomdp.decode.trace import validate_record
    from trimpomdp.routing import BeliefFilter

    monkeypatch.setattr("trimpomdp.decode.loop.render", lambda style, q, steps: "".join(s + "\n\n" for s in steps))
    router = trained[kind]
    prm = Scored([0.9, 0.05, 0.9, 0.9])
    dec = RoutedDecoder(Script("w", 60), Script("s", 60), prm, router, BeliefFilter(tm), policy_name=kind,
                        batch_size=1, max_steps=6)
    (rec,) = dec.run([Problem("0", "1+1?", "2", "plain")])
    validate_record(rec)
    steps = rec["steps"]
    acts = [int(s["action"] == "regenerate") for s in steps]
    for k, s in enumerate(steps):
        assert s["policy_state"]["scores"] == pytest.approx([0.9, 0.05, 0.9, 0.9][:k])
        assert s["policy_state"]["regenerated"] == acts[:k]
        d, _ = router.act(s["policy_state"], StepObservation(k + 1, 60, s["prm_score"]))
        assert d.action == s["action"]  # the decision follows from what the trace says it saw
