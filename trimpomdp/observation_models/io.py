"""Saving and loading fitted reflected-KDE observation models (.npz + JSON header, never pickle).

A fitted model is stored as its training points and per-state kernel covariances, which determine the
density exactly, so a loaded model gives bit-identical likelihoods. ``load_binned`` is what consumers of
"the observation model file" call: it accepts either such a fitted-model file (and discretises it) or a
bins table in the reference ``<state>_centers`` / ``<state>_probs`` layout.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trimpomdp.artifacts import META_KEY, load_npz, save_npz
from trimpomdp.errors import FormatError, ModelError
from trimpomdp.observation_models.binned import BinnedObservationModel

FORMAT = "trimpomdp.obs_kde"
VERSION = 1


def save_obs_model(model, path, bin_size: float = 0.05, extra_meta: dict | None = None) -> Path:
    """Write a fitted ``ReflectedKDE``; ``bin_size`` is the default grid of ``load_binned``."""
    model._check_fitted()
    arrays = {}
    for i, s in enumerate(model.states_):
        arrays[f"points_{i}"] = model._dens[s].X
        arrays[f"bandwidth_{i}"] = model.bandwidths_[s]
    bwp = model.bandwidth if isinstance(model.bandwidth, str) else "explicit"
    meta = {
        "states": list(model.states_), "dims": model.n_dims_, "bin_size": float(bin_size),
        "bandwidth_rule": bwp, "covariance": model.covariance,
        "counts": model.counts_, "cv_scales": model.cv_scales_,
    }
    if extra_meta:
        meta.update(extra_meta)
    return save_npz(path, arrays, meta, FORMAT, VERSION)


def load_obs_model(path):
    """Load a model written by ``save_obs_model`` as a fitted ``ReflectedKDE``."""
    from trimpomdp.observation_models.kde import ReflectedKDE

    arrays, meta = load_npz(path, FORMAT, VERSION)  # checked against schemas.OBS_KDE
    states = list(meta["states"])
    points = {s: arrays[f"points_{i}"] for i, s in enumerate(states)}
    bws = {s: arrays[f"bandwidth_{i}"] for i, s in enumerate(states)}
    rule = meta.get("bandwidth_rule", "explicit")
    try:
        model = ReflectedKDE.from_fitted(states, points, bws, bandwidth=rule,
                                         covariance=meta.get("covariance", "full"))
    except ModelError as exc:
        raise FormatError(f"arrays 'points_*'/'bandwidth_*': {exc}", str(path)) from None
    model.cv_scales_ = dict(meta.get("cv_scales", {}))
    model.meta_ = meta
    return model


def is_fitted_model_file(path) -> bool:
    from trimpomdp.schemas import file_problem

    if file_problem(path):
        return False
    try:
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as z:
            if META_KEY not in z.files:
                return False
            import json
            return json.loads(str(z[META_KEY])).get("format") == FORMAT
    except Exception:
        return False


def load_binned(path, bin_size: float | None = None) -> BinnedObservationModel:
    """The observation model in ``path`` as bins: a fitted model (discretised on ``bin_size``, default the
    bin size stored at fit time) or a bins table (whose bin size must then match ``bin_size`` if given)."""
    from trimpomdp.schemas import file_problem

    path = Path(path)
    problem = file_problem(path)
    if problem:
        raise FormatError("file not found" if problem == "does not exist" else problem, str(path))
    if is_fitted_model_file(path):
        model = load_obs_model(path)
        b = float(bin_size if bin_size is not None else model.meta_["bin_size"])
        try:
            return model.discretize(b)
        except ModelError as exc:
            raise FormatError(str(exc), str(path)) from None
    table = BinnedObservationModel.load(path)
    if bin_size is not None and abs(table.bin_size - float(bin_size)) > 1e-12:
        raise FormatError(f"bins table has bin size {table.bin_size:g}, but bin size {bin_size:g} was asked for; "
                          "pass the fitted model (fit-obs -o) to re-discretise", str(path))
    return table
