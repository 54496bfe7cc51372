"""Trained routers as routing policies (``agg:FILE``, ``seq:FILE``) and their files.

A router file is an ``.npz`` of the network's weights (float32, named as ``nets.RouterNet``'s parameters)
with a JSON header (``trimpomdp.learned_router``, ``docs/formats.md``): the kind, the feature names, lambda,
the fingerprint of the routing spec it was trained on and of its training data, the scales of its
features and how it was trained. Never pickled; checked by ``ROUTER`` before any weight reaches torch.

A router decides by its larger logit (deterministic). Per-question state (decode, recorded in traces):
the earlier steps it has seen, ``{"scores": [...], "tokens": [...], "regenerated": [0/1, ...]}``. In the
simulator (``start_many``/``act_many``) the state is vectorised: ``features.History`` for Agg, the GRU state
per episode for Seq.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trimpomdp import schemas
from trimpomdp.artifacts import load_npz, save_npz
from trimpomdp.errors import FormatError, TrimError
from trimpomdp.interfaces import Decision, StepObservation
from trimpomdp.learned.features import (AGG_FEATURES, SEQ_CURRENT, SEQ_INPUTS, History, agg_from_steps,
                                        step_fraction, token_feature)
from trimpomdp.routing.policies import RoutingPolicy

ROUTER_FORMAT = "trimpomdp.learned_router"
KINDS = ("agg", "seq")
EXPECTED_FEATURES = {"agg": list(AGG_FEATURES), "seq": list(SEQ_INPUTS) + list(SEQ_CURRENT)}


def _router_arrays(meta) -> tuple:
    """The weight arrays a file of this header must hold (shapes tie them to the feature count)."""
    hidden = meta["hidden"]
    arrays = []
    if meta["kind"] == "seq":
        H = meta.get("seq_hidden", 1)
        arrays += [schemas.Array("cell.weight_ih", (3 * H, len(SEQ_INPUTS))), schemas.Array("cell.weight_hh", (3 * H, H)),
                   schemas.Array("cell.bias_ih", (3 * H,)), schemas.Array("cell.bias_hh", (3 * H,))]
        last = H + len(SEQ_CURRENT)
    else:
        last = "F"
    for i, h in enumerate(hidden):
        arrays += [schemas.Array(f"pi.{2 * i}.weight", (h, last)), schemas.Array(f"pi.{2 * i}.bias", (h,))]
        last = h
    arrays += [schemas.Array("action.weight", (2, last)), schemas.Array("action.bias", (2,))]
    return tuple(arrays)


def _router_rules(a, meta, n):
    feats = meta["features"]
    want = EXPECTED_FEATURES[meta["kind"]]
    if meta["kind"] == "agg" and n.get("F") != len(feats):
        raise schemas.Invalid("array 'pi.0.weight'", f"reads {n.get('F')} features but field 'features' names "
                              f"{len(feats)}")
    if meta["n_features"] != len(feats):
        raise schemas.Invalid("field 'n_features'", f"is {meta['n_features']} but field 'features' names {len(feats)}")
    if feats != want:
        raise schemas.Invalid("field 'features'", f"{schemas.quote(feats)} are not the {meta['kind']} features this "
                              f"version computes ({schemas.quote(want)}); retrain the router")
    if meta["kind"] == "seq" and "seq_hidden" not in meta:
        raise schemas.Invalid("field 'seq_hidden'", "is missing (a seq router's GRU size)")


ROUTER = schemas.register(schemas.Schema(
    ROUTER_FORMAT, 1,
    fields=(schemas.Field("kind", "str", choices=KINDS),
            schemas.Field("features", "list", items=schemas.Field("", "str"), min_len=1),
            schemas.Field("n_features", "int", ge=1, le=10_000),
            schemas.Field("hidden", "list", items=schemas.Field("", "int", ge=1, le=4096), min_len=1, max_len=8),
            schemas.Field("seq_hidden", "int", required=False, ge=1, le=4096),
            schemas.Field("lambda", "number", ge=0),
            schemas.Field("model_fingerprint", "str", min_len=1),
            schemas.Field("data_fingerprint", "str", min_len=1),
            schemas.Field("max_steps", "int", ge=1, le=100_000),
            schemas.Field("token_scale", "number", gt=0),
            schemas.Field("tokens_per_weak_token", "number", ge=0),
            schemas.Field("training", "object", required=False)),
    arrays=_router_arrays,
    rules=(_router_rules,),
))


class LearnedRouter(RoutingPolicy):
    """A trained TRIM-Agg or TRIM-Seq router (see the module docstring)."""

    needs_belief = False

    def __init__(self, kind: str, weights: dict, meta: dict, path=None):
        from trimpomdp.learned.nets import RouterNet

        self.kind, self.meta, self.path = kind, dict(meta), path
        self.lam = float(meta["lambda"])
        self.max_steps = int(meta["max_steps"])
        self.token_scale = float(meta["token_scale"])
        self.tokens_per_weak_token = float(meta["tokens_per_weak_token"])
        self.net = RouterNet(kind, int(meta["n_features"]), list(meta["hidden"]), int(meta.get("seq_hidden", 0)))
        import torch

        self.net.load_state_dict({k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in weights.items()})
        self.net.eval()
        self.name = f"{kind}:{Path(path).name if path else 'router'}"

    # ------------------------------------------------------------------------------------- files
    def save(self, path) -> Path:
        w = {k: v.detach().numpy().astype(np.float32) for k, v in self.net.state_dict().items()}
        return save_npz(path, w, self.meta, ROUTER_FORMAT)

    @classmethod
    def load(cls, path, kind: str | None = None) -> "LearnedRouter":
        p = Path(path)
        if not p.is_file():
            raise FormatError("file not found (expected a trained router .npz from trimpomdp train-router)", str(p))
        arrays, meta = load_npz(p, ROUTER_FORMAT)
        if kind is not None and meta["kind"] != kind:
            raise FormatError(f"field 'kind': this is a {meta['kind']} router; load it as {meta['kind']}:{path}",
                              str(p))
        return cls(meta["kind"], arrays, meta, path=str(p))

    # ------------------------------------------------------------------------- decisions (decode)
    def start(self):
        return {"scores": [], "tokens": [], "regenerated": []}

    def act(self, state, obs: StepObservation) -> tuple[Decision, dict]:
        if not isinstance(state, dict) or not all(isinstance(state.get(k), list) for k in self.start()):
            raise TrimError(f"{self.name}: state must be the earlier steps from start()/act(), got {state!r}")
        tok = float(token_feature(obs.n_tokens * self.tokens_per_weak_token, self.token_scale))
        earlier = list(zip(state["scores"], state["regenerated"]))
        if self.kind == "agg":
            logits = self.net.logits(agg_from_steps(earlier, obs.score, tok, obs.step, self.max_steps))[0]
        else:
            h = np.zeros((1, self.net.seq_hidden), dtype=np.float32)
            for s, t, r in zip(state["scores"], state["tokens"], state["regenerated"]):
                h = self.net.encode(np.array([[s, t, r]], dtype=np.float32), h)
            cur = np.array([[obs.score, tok, float(step_fraction(obs.step, self.max_steps))]], dtype=np.float32)
            logits = self.net.logits(np.concatenate([h, cur], axis=1))[0]
        regen = bool(logits[1] > logits[0])
        new = {"scores": state["scores"] + [float(obs.score)], "tokens": state["tokens"] + [tok],
               "regenerated": state["regenerated"] + [int(regen)]}
        return Decision("regenerate" if regen else "keep"), new

    def decide(self, belief, step, n_tokens, score=None, remaining=None) -> Decision:
        raise TrimError(f"{self.name} decides on the question's earlier steps: use start()/act()")

    # ---------------------------------------------------------------------- decisions (simulator)
    def start_many(self, n: int):
        if self.kind == "agg":
            return History(n)
        return np.zeros((n, self.net.seq_hidden), dtype=np.float32)

    def act_many(self, state, batch):
        """Decisions for a ``simulator.StepBatch`` and the updated per-episode state (rows in place)."""
        rows = batch.rows
        if rows.size == 0:
            return np.zeros(0, dtype=bool), state
        tok = token_feature(batch.costs, self.token_scale)
        if self.kind == "agg":
            x = state.agg(rows, batch.scores, tok, batch.step, self.max_steps)
            logits = self.net.logits(x)
            regen = logits[:, 1] > logits[:, 0]
            state.record(rows, batch.scores, tok, regen)
            return regen, state
        cur = np.stack([batch.scores, tok, step_fraction(batch.step, self.max_steps)], axis=1)
        logits = self.net.logits(np.concatenate([state[rows], cur.astype(np.float32)], axis=1))
        regen = logits[:, 1] > logits[:, 0]
        x = np.stack([batch.scores, tok, regen.astype(np.float64)], axis=1).astype(np.float32)
        state[rows] = self.net.encode(x, state[rows])
        return regen, state

    def decide_many(self, beliefs, step, costs, scores, levels=None):
        raise TrimError(f"{self.name} keeps per-episode state: the simulator calls start_many/act_many")


def load_router(path, kind: str, trim_model=None) -> LearnedRouter:
    """``agg:FILE`` / ``seq:FILE``; with ``trim_model``, the file must have been trained on that spec."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        raise TrimError(f"{kind}:{path}: running a learned router needs torch: pip install 'trimpomdp[learn]' "
                        "(with torch==2.13.0 pinned first)")
    router = LearnedRouter.load(path, kind)
    fp = router.meta["model_fingerprint"]
    if trim_model is not None and fp != trim_model.fingerprint():
        raise TrimError(f"{path}: field 'model_fingerprint': the router was trained on spec fingerprint {fp}, but "
                        f"this spec ({trim_model.source or 'in memory'}) is {trim_model.fingerprint()}; pass the "
                        "spec it was trained on (--trim-model / SPEC) or retrain it")
    return router
