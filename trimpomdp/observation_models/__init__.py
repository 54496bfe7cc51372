"""Observation models P(PRM observation | hidden state): reflected KDEs and their discretisation."""
from trimpomdp.observation_models.binned import TRIM_STATES, BinnedObservationModel

__all__ = ["BinnedObservationModel", "TRIM_STATES"]
