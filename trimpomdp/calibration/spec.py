"""The calibrated routing spec: a TRIM spec (``routing.spec``) built from a calibration record.

Calibration fits a world to real runs (``calibration.model.ClassModel``); planning needs the same world as
a routing spec. What carries over: the difficulty classes (weights, cheap and strong step accuracy per
class), how often a derailed step scores like a fresh error (``derailed_as_error``), the solution-length
pmf, and the strong tokens of a rewrite (the regeneration cost of a future step; the current step's cost
is its cheap draft's tokens times rewrite / discarded-draft tokens). Accuracies on the boundary of [0, 1]
(a fit may put a class there) are pulled inside by ``EDGE``: a belief filter cannot recover from a state
its model calls impossible.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trimpomdp.errors import TrimError
from trimpomdp.routing.difficulty import Difficulty
from trimpomdp.routing.spec import DEFAULT_TOKEN_BINS, DEFAULT_TOKEN_SIGMA, TrimModel, lognormal_bins
from trimpomdp.routing.spec import load_observation_model, load_observation_points, mix_derailed_model

#: accuracies are kept in [EDGE, 1 - EDGE]
EDGE = 1e-3


def spec_from_record(record: dict, obs_path, points_path=None, *, reward: float = 100.0,
                     token_sigma: float = DEFAULT_TOKEN_SIGMA, token_bins: int = DEFAULT_TOKEN_BINS,
                     observation: str = "current") -> TrimModel:
    """The routing spec of a calibration record (``trimpomdp calibrate`` output); the table is read as
    ``observation`` (default 'current', the shipped choice: each PRM score counted once)."""
    try:
        m = record["model"]
        w = np.asarray(m["weights"], dtype=np.float64)
        pw = np.clip(np.asarray(m["p_weak"], dtype=np.float64), EDGE, 1 - EDGE)
        ps = np.clip(np.asarray(m["p_strong"], dtype=np.float64), EDGE, 1 - EDGE)
        alpha = float(m.get("alpha", 0.0))
        pmf = np.asarray(m["length_pmf"], dtype=np.float64)
        rewrite = float(m["rewrite_tokens"])
        discarded = float(m.get("discarded_step_tokens") or 0.0)
    except (KeyError, TypeError, ValueError) as exc:
        raise TrimError(f"calibration record: field 'model' lacks what a spec needs ({exc})") from None
    if not rewrite > 0:
        raise TrimError("calibration record: field 'model.rewrite_tokens' must be positive (fit on runs with "
                        "rewrites, i.e. threshold runs)")
    values, probs = lognormal_bins(rewrite, token_sigma, token_bins)
    obs = load_observation_model(obs_path)
    if 0 < alpha < 1:
        obs = mix_derailed_model(obs, alpha)
    tm = TrimModel(obs=obs, p_weak=float(w @ pw), p_strong=float(w @ ps), length_pmf=pmf, token_values=values,
                   token_probs=probs, reward=reward, tokens_per_weak_token=rewrite / discarded if discarded else 1.0,
                   difficulty=Difficulty(w, pw, ps), derailed_as_error=min(max(alpha, 0.0), 0.999),
                   derailed_repair=min(max(float(m.get("recover", 0.0)), 0.0), 1.0),
                   obs_path=str(obs_path), observation=observation,
                   info={"source": "trimpomdp calibrate", "fit": record.get("fit", {}),
                         "inputs": {k: Path(v).name if isinstance(v, str) and Path(v).is_absolute() else v
                                    for k, v in record.get("inputs", {}).items()},
                         "token_source": f"lognormal mean {rewrite:.4g} (strong tokens per rewrite) sigma "
                                         f"{token_sigma} in {token_bins} bins"})
    if points_path is not None:
        tm.obs_truth = tm.points_histogram(load_observation_points(points_path))
    return tm
