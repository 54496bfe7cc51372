"""PPO training of TRIM-Agg / TRIM-Seq routers (stable-baselines3) on a training core (``env``).

Why stable-baselines3: a well-kept PPO (clipping, GAE, advantage normalisation, minibatch epochs) that
installs in seconds as two pure-Python wheels (stable-baselines3 and gymnasium, about 6 MB, no torch
upgrade: it runs on the pinned torch==2.13.0) and takes a custom vectorised environment, so the simulator
stays vectorised (one numpy call advances all slots). TorchRL would also fit but brings tensordict and a
much larger API for the same algorithm.

Reward: 1 for a correct final answer minus ``lam`` per strong token; undiscounted (gamma = 1: a question is
a finite episode). Every ``eval_every`` steps the current router is evaluated (deterministic) on
``eval_episodes`` simulated questions of a fixed seed (``seed + EVAL_SEED_OFFSET``, never the seed tables are
reported on) and the best one by eval reward (accuracy - lam * strong tokens) is what is saved. Every
``checkpoint_every`` steps the whole training state (network, optimiser, step count, best router, random
states) is written to ``<out>.ckpt.npz`` (npz + JSON, never pickled); ``resume=True`` continues from it
(questions in flight at the checkpoint are started afresh).
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from trimpomdp import schemas
from trimpomdp.artifacts import load_npz, save_npz
from trimpomdp.errors import TrimError
from trimpomdp.learned.features import AGG_FEATURES, SEQ_CURRENT, SEQ_INPUTS

CHECKPOINT_FORMAT = "trimpomdp.router_checkpoint"
schemas.register(schemas.Schema(CHECKPOINT_FORMAT, 1, fields=(
    schemas.Field("config", "object"), schemas.Field("num_timesteps", "int", ge=0),
    schemas.Field("model_fingerprint", "str"), schemas.Field("data_fingerprint", "str"))))
EVAL_SEED_OFFSET = 1_000_003


@dataclass
class TrainConfig:
    """Settings of one training run (all recorded in the router file and checked on resume)."""

    kind: str = "agg"
    lam: float = 8e-4
    timesteps: int = 300_000
    seed: int = 0
    envs: int = 256  # parallel questions
    n_steps: int = 32  # steps per slot per rollout
    batch_size: int = 2048
    epochs: int = 4
    learning_rate: float = 1e-3
    gae_lambda: float = 0.95
    ent_coef: float = 0.003
    hidden: list = field(default_factory=lambda: [32, 32])
    seq_hidden: int = 16
    mode: str = "sequence"
    eval_every: int = 50_000
    eval_episodes: int = 20_000
    checkpoint_every: int = 100_000
    env: str = "sim"

    def check(self) -> None:
        if self.kind not in ("agg", "seq"):
            raise TrimError(f"router kind must be agg or seq, got {self.kind!r}")
        if not (np.isfinite(self.lam) and self.lam >= 0):
            raise TrimError(f"--lambda must be a non-negative price per strong token, got {self.lam!r}")
        for name in ("timesteps", "envs", "n_steps", "batch_size", "epochs", "eval_every", "eval_episodes",
                     "checkpoint_every", "seq_hidden"):
            if int(getattr(self, name)) < 1:
                raise TrimError(f"{name.replace('_', '-')} must be at least 1, got {getattr(self, name)!r}")
        if not self.hidden or any(int(h) < 1 for h in self.hidden):
            raise TrimError(f"hidden layer sizes must be positive, got {self.hidden!r}")


def data_fingerprint(points: dict, mode: str) -> str:
    """sha256 (16 hex) of the labelled points the simulator draws scores from, and the observation mode."""
    h = hashlib.sha256(mode.encode())
    for k in sorted(points):
        a = np.ascontiguousarray(points[k], dtype=np.float64)
        h.update(f"\0{k}\0{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def router_meta(cfg: TrainConfig, tm, data_fp: str, window: int, training: dict) -> dict:
    feats = list(AGG_FEATURES) if cfg.kind == "agg" else list(SEQ_INPUTS) + list(SEQ_CURRENT)
    meta = {"kind": cfg.kind, "features": feats, "n_features": len(feats), "hidden": [int(h) for h in cfg.hidden],
            "lambda": float(cfg.lam), "model_fingerprint": tm.fingerprint(), "data_fingerprint": data_fp,
            "max_steps": int(tm.max_steps), "token_scale": float(tm.mean_step_tokens),
            "tokens_per_weak_token": float(tm.tokens_per_weak_token), "training": training,
            "spec_source": None if tm.source is None else str(Path(tm.source).resolve())}
    if cfg.kind == "seq":
        meta["seq_hidden"] = int(cfg.seq_hidden)
        meta["window"] = int(window)
    return meta


def _make_model(cfg: TrainConfig, env, window: int):
    from stable_baselines3 import PPO
    from torch import nn

    from trimpomdp.learned.nets import make_seq_encoder

    kw = dict(net_arch=dict(pi=list(cfg.hidden), vf=list(cfg.hidden)), activation_fn=nn.Tanh)
    if cfg.kind == "seq":
        kw.update(features_extractor_class=make_seq_encoder(),
                  features_extractor_kwargs=dict(window=window, hidden=int(cfg.seq_hidden)))
    return PPO("MlpPolicy", env, n_steps=cfg.n_steps, batch_size=min(cfg.batch_size, cfg.n_steps * cfg.envs),
               n_epochs=cfg.epochs, learning_rate=cfg.learning_rate, gamma=1.0, gae_lambda=cfg.gae_lambda,
               ent_coef=cfg.ent_coef, policy_kwargs=kw, seed=cfg.seed, device="cpu", verbose=0)


def train_router(tm, points: dict, cfg: TrainConfig, out, *, core=None, resume: bool = False,
                 progress: bool = True, log=print):
    """Train a router with PPO on ``core`` (default: the simulator, ``SimCore``) and save it to ``out``.
    Returns (router, report); ``report`` has the evaluations, seconds and timesteps."""
    try:
        import torch
        from stable_baselines3.common.callbacks import BaseCallback
    except ImportError:
        raise TrimError("training a router needs the learn extra: pip install 'trimpomdp[learn]' (with "
                        "torch==2.13.0 pinned first)") from None
    from trimpomdp.learned.env import SimCore, make_env
    from trimpomdp.learned.nets import export_weights
    from trimpomdp.learned.policy import LearnedRouter
    from trimpomdp.routing.simulator import simulate_summary

    cfg.check()
    out = Path(out)
    ckpt = out.with_name(out.name + ".ckpt.npz")
    data_fp = data_fingerprint(points, cfg.mode)
    window = tm.max_steps if core is None else max(tm.max_steps, getattr(core.dec, "max_steps", 0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small networks: threads cost more than they give (and cores are shared)
    try:
        state = _read_checkpoint(ckpt, cfg, tm, data_fp) if resume and ckpt.is_file() else None
        if core is None:
            core = SimCore(tm, points, cfg.envs, cfg.seed, cfg.mode)
            if state is not None:
                core.rng.bit_generator.state = state["meta"]["env_rng"]
        elif cfg.env == "sim":
            cfg.env = "decode"
        env = make_env(core, cfg.kind, cfg.lam, tm.mean_step_tokens, tm.max_steps, window)
        model = _make_model(cfg, env, window)
        evals, best = [], {"reward": -np.inf, "weights": None, "eval": None}
        done0, seconds0 = 0, 0.0
        if state is not None:
            done0, seconds0 = _restore(model, state, best, evals)
            log(f"resumed from {ckpt} at {done0:,} of {cfg.timesteps:,} steps")
        t_start = time.perf_counter()

        def router_of(weights, training):
            return LearnedRouter(cfg.kind, weights, router_meta(cfg, tm, data_fp, window, training), path=str(out))

        def evaluate():
            w = export_weights(model.policy, cfg.kind)
            r = simulate_summary(tm, router_of(w, {}), points, cfg.eval_episodes, cfg.seed + EVAL_SEED_OFFSET,
                                 mode=cfg.mode)
            e = {"timesteps": int(model.num_timesteps), "accuracy": r["accuracy"],
                 "strong_tokens": r["strong_tokens"], "reward": r["accuracy"] - cfg.lam * r["strong_tokens"],
                 "seconds": round(seconds0 + time.perf_counter() - t_start, 2)}
            evals.append(e)
            if e["reward"] > best["reward"]:
                best.update(reward=e["reward"], weights=w, eval=e)
            return e

        def checkpoint():
            _write_checkpoint(ckpt, model, cfg, tm, data_fp, core, best, evals,
                              seconds0 + time.perf_counter() - t_start)

        class Progress(BaseCallback):
            def __init__(self):
                super().__init__()
                self.bar = None
                self.next_eval = (done0 // cfg.eval_every + 1) * cfg.eval_every
                self.next_ckpt = (done0 // cfg.checkpoint_every + 1) * cfg.checkpoint_every

            def _on_training_start(self):
                import sys

                from tqdm import tqdm

                self.bar = tqdm(total=cfg.timesteps, initial=done0, desc=f"train {cfg.kind} lambda={cfg.lam:g}",
                                unit="step", unit_scale=True, disable=not progress, file=sys.stderr,
                                dynamic_ncols=True)

            def _on_step(self):
                self.bar.update(self.model.num_timesteps - self.bar.n)
                return True

            def _on_rollout_end(self):
                fin = env.finished[-2000:]
                if fin:
                    self.bar.set_postfix(acc=f"{np.mean([f[1] for f in fin]):.3f}",
                                         tok=f"{np.mean([f[2] for f in fin]):.1f}")
                n = self.model.num_timesteps
                if n >= self.next_eval:
                    e = evaluate()
                    self.next_eval = (n // cfg.eval_every + 1) * cfg.eval_every
                    msg = (f"eval at {n:,} steps: accuracy {e['accuracy']:.4f}, strong tokens "
                           f"{e['strong_tokens']:.1f}, reward {e['reward']:.4f}")
                    self.bar.write(msg) if progress else log(msg)
                if n >= self.next_ckpt:
                    checkpoint()
                    self.next_ckpt = (n // cfg.checkpoint_every + 1) * cfg.checkpoint_every

            def _on_training_end(self):
                self.bar.close()

        remaining = cfg.timesteps - done0
        if remaining > 0:
            model.learn(remaining, callback=Progress(), reset_num_timesteps=state is None)
        if not evals or evals[-1]["timesteps"] != model.num_timesteps:
            evaluate()
        seconds = seconds0 + time.perf_counter() - t_start
        checkpoint()
        training = {"algorithm": "PPO (stable-baselines3)", "env": cfg.env, "timesteps": int(model.num_timesteps),
                    "seconds": round(seconds, 2), "config": asdict(cfg), "evaluations": evals,
                    "selected": best["eval"], "eval_seed": cfg.seed + EVAL_SEED_OFFSET}
        router = router_of(best["weights"], training)
        router.save(out)
        return router, training
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------- checkpoints
def _write_checkpoint(path: Path, model, cfg, tm, data_fp, core, best, evals, seconds) -> None:
    import torch

    arrays = {f"policy/{k}": v.detach().cpu().numpy() for k, v in model.policy.state_dict().items()}
    opt = model.policy.optimizer.state_dict()
    for i, st in opt["state"].items():
        for k, v in st.items():
            arrays[f"optim/{i}/{k}"] = v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
    if best["weights"] is not None:
        arrays.update({f"best/{k}": v for k, v in best["weights"].items()})
    arrays["torch_rng"] = torch.get_rng_state().numpy()
    meta = {"config": asdict(cfg), "num_timesteps": int(model.num_timesteps), "model_fingerprint": tm.fingerprint(),
            "data_fingerprint": data_fp, "param_groups": opt["param_groups"], "evaluations": evals,
            "best": best["eval"], "seconds": seconds,
            "env_rng": getattr(getattr(core, "rng", None), "bit_generator", None) and core.rng.bit_generator.state}
    save_npz(path, arrays, json.loads(json.dumps(meta, default=_plain)), CHECKPOINT_FORMAT)


def _plain(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"not JSON: {type(o).__name__}")


def _read_checkpoint(path: Path, cfg: TrainConfig, tm, data_fp: str) -> dict:
    arrays, meta = load_npz(path, CHECKPOINT_FORMAT)
    if meta["model_fingerprint"] != tm.fingerprint() or meta["data_fingerprint"] != data_fp:
        raise TrimError(f"{path}: cannot resume: the checkpoint was trained on another spec or other points "
                        f"(fingerprints {meta['model_fingerprint']}/{meta['data_fingerprint']}, now "
                        f"{tm.fingerprint()}/{data_fp}); start afresh without --resume")
    saved, now = dict(meta["config"]), asdict(cfg)
    saved.pop("timesteps", None)
    now.pop("timesteps", None)
    diff = [k for k in now if saved.get(k) != now[k]]
    if diff:
        k = diff[0]
        raise TrimError(f"{path}: cannot resume: {k} is {now[k]!r} but the checkpoint was trained with "
                        f"{saved.get(k)!r} (same settings, or start afresh without --resume)")
    return {"arrays": arrays, "meta": meta}


def _restore(model, state, best, evals) -> tuple[int, float]:
    import torch

    arrays, meta = state["arrays"], state["meta"]
    sd = model.policy.state_dict()
    model.policy.load_state_dict({k: torch.as_tensor(arrays[f"policy/{k}"], dtype=v.dtype).reshape(v.shape)
                                  for k, v in sd.items()})
    opt = model.policy.optimizer.state_dict()
    for i in list(opt["state"]) or range(len(opt["param_groups"][0]["params"])):
        keys = {k.split("/")[2] for k in arrays if k.startswith(f"optim/{i}/")}
        if keys:
            opt["state"][i] = {k: torch.as_tensor(arrays[f"optim/{i}/{k}"], dtype=torch.float32) for k in keys}
    opt["param_groups"] = meta["param_groups"]
    model.policy.optimizer.load_state_dict(opt)
    torch.set_rng_state(torch.as_tensor(arrays["torch_rng"], dtype=torch.uint8))
    model.num_timesteps = int(meta["num_timesteps"])
    bw = {k[5:]: arrays[k].astype(np.float32) for k in arrays if k.startswith("best/")}
    if bw:
        e = meta["best"]
        best.update(reward=e["reward"], weights=bw, eval=e)
    evals.extend(meta.get("evaluations") or [])
    return model.num_timesteps, float(meta.get("seconds", 0.0))
