"""Observation models P(PRM observation | hidden state): reflected KDEs and their discretisation."""
from trimpomdp.observation_models.binned import TRIM_STATES, BinnedObservationModel

__all__ = ["BinnedObservationModel", "TRIM_STATES", "ReflectedKDE", "load_binned", "save_obs_model", "load_obs_model",
           "load_labelled", "processbench_prefixes"]


def __getattr__(name):  # lazy: importing the binned contract must not pull in numba/scipy
    if name == "ReflectedKDE":
        from trimpomdp.observation_models.kde import ReflectedKDE
        return ReflectedKDE
    if name in ("load_binned", "save_obs_model", "load_obs_model"):
        from trimpomdp.observation_models import io
        return getattr(io, name)
    if name in ("load_labelled", "processbench_prefixes"):
        from trimpomdp.observation_models import data
        return getattr(data, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
