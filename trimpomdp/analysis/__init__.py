"""Reading decode runs: evaluation (accuracy, strong tokens, PGR / CPT / IBC), inspection (per-step
decisions and belief trajectories) and the text tables they print."""
from trimpomdp.analysis.inspection import plot_trajectories, select_problems, step_rows
from trimpomdp.analysis.runs import evaluate, plot_cost_accuracy, run_point

__all__ = ["evaluate", "run_point", "plot_cost_accuracy", "plot_trajectories", "select_problems", "step_rows"]
