"""Calibrating the routing model against real runs: run summaries, a difficulty-class model evaluated
exactly for score-threshold policies, and its maximum-likelihood fit."""
from trimpomdp.calibration.estimate import fit, fit_table
from trimpomdp.calibration.model import ClassModel, predict
from trimpomdp.calibration.runs import RunPoint, load_run_dir, load_runs

__all__ = ["ClassModel", "RunPoint", "fit", "fit_table", "load_run_dir", "load_runs", "predict"]
