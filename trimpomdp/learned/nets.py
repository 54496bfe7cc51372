"""The routers' torch networks, as inference modules (``RouterNet``) and as the pieces PPO trains
(``SeqEncoder``, a stable-baselines3 features extractor): one set of layers, so a trained policy's weights
load into ``RouterNet`` by name (``export_weights``) and decide exactly as the trained policy does.

Agg: features -> MLP (tanh) -> 2 logits (keep, regenerate). Seq: a GRU cell reads the earlier steps one by
one (``SEQ_INPUTS``); its last state and the current step's ``SEQ_CURRENT`` go through the same head.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trimpomdp.learned.features import SEQ_CURRENT, SEQ_INPUTS


def mlp(n_in: int, hidden) -> nn.Sequential:
    """Linear + tanh layers, named as stable-baselines3's ``mlp_extractor.policy_net`` (0, 2, ...)."""
    layers, last = [], n_in
    for h in hidden:
        layers += [nn.Linear(last, h), nn.Tanh()]
        last = h
    return nn.Sequential(*layers)


class RouterNet(nn.Module):
    """Inference network of a trained router: ``logits(features)``; Seq also ``encode`` (one GRU step)."""

    def __init__(self, kind: str, n_features: int, hidden, seq_hidden: int = 0):
        super().__init__()
        self.kind = kind
        self.seq_hidden = seq_hidden
        if kind == "seq":
            self.cell = nn.GRUCell(len(SEQ_INPUTS), seq_hidden)
            n_features = seq_hidden + len(SEQ_CURRENT)
        self.pi = mlp(n_features, hidden)
        self.action = nn.Linear(hidden[-1] if hidden else n_features, 2)

    @torch.no_grad()
    def logits(self, x) -> np.ndarray:
        return self.action(self.pi(torch.as_tensor(x, dtype=torch.float32))).numpy()

    @torch.no_grad()
    def encode(self, x, h):
        """The GRU state after reading one more earlier step (rows of ``SEQ_INPUTS``)."""
        return self.cell(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(h, dtype=torch.float32)).numpy()


def seq_encode_full(cell: nn.GRUCell, hist: torch.Tensor, length: torch.Tensor) -> torch.Tensor:
    """The GRU state after each row's first ``length`` history entries (the rest is padding)."""
    h = torch.zeros(hist.shape[0], cell.hidden_size, dtype=hist.dtype)
    for k in range(int(length.max().item()) if length.numel() else 0):
        h = torch.where((length > k).unsqueeze(1), cell(hist[:, k], h), h)
    return h


def split_seq_obs(obs: torch.Tensor, window: int):
    """(history (B, window, 3), current (B, 3), length (B,)) of flat Seq observations."""
    n = window * len(SEQ_INPUTS)
    return (obs[:, :n].reshape(-1, window, len(SEQ_INPUTS)), obs[:, n:n + len(SEQ_CURRENT)],
            obs[:, -1].round().long())


def make_seq_encoder():
    """The stable-baselines3 features extractor of TRIM-Seq (defined here so that running a trained router
    does not need stable-baselines3)."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class SeqEncoder(BaseFeaturesExtractor):
        """Flat Seq observation -> [GRU state after the earlier steps, current step's features]."""

        def __init__(self, observation_space, window: int, hidden: int):
            super().__init__(observation_space, features_dim=hidden + len(SEQ_CURRENT))
            self.window = window
            self.cell = nn.GRUCell(len(SEQ_INPUTS), hidden)

        def forward(self, obs):
            hist, cur, length = split_seq_obs(obs, self.window)
            return torch.cat([seq_encode_full(self.cell, hist, length), cur], dim=1)

    return SeqEncoder


def export_weights(sb3_policy, kind: str) -> dict[str, np.ndarray]:
    """The decision part of a trained stable-baselines3 policy, named as ``RouterNet``'s parameters."""
    sd = sb3_policy.state_dict()
    out = {}
    for name, t in sd.items():
        if name.startswith("mlp_extractor.policy_net."):
            out["pi." + name[len("mlp_extractor.policy_net."):]] = t
        elif name.startswith("action_net."):
            out["action." + name[len("action_net."):]] = t
        elif kind == "seq" and name.startswith("features_extractor.cell."):
            out["cell." + name[len("features_extractor.cell."):]] = t
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in out.items()}
