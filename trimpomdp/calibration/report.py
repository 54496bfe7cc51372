"""The calibration's artifacts and text: the fitted model as versioned JSON, the observed-vs-predicted
table, and the issue's prediction targets checked on it."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from trimpomdp.tables import format_table

FORMAT, VERSION = "trimpomdp.calibration", 1


def calibrate(runs_path, points_path, lengths_path, length_model: str, classes: int = 3, starts: int = 8,
              seed: int = 0, anchor_weight: float | None = None, step_log_sd: float | None = None,
              step_stats=None, first_error_weight: float | None = None) -> dict:
    """Fit a difficulty-class model to run summaries (a file or folder in the reference's format) or to
    our decode traces (a list of trace files); returns the calibration record (see ``save``).
    ``step_stats``: the cheap model's step statistics (``step_stats_*.npz``, model ``length_model``), whose
    first-error steps the classes must also explain (``calibration.first_error``)."""
    from trimpomdp.calibration import first_error as fe
    from trimpomdp.calibration.estimate import ANCHOR_WEIGHT, FIRST_ERROR_WEIGHT, fit, fit_table
    from trimpomdp.calibration.runs import length_pmf_from_traces, load_run_dir, runs_from_traces
    from trimpomdp.calibration.steps import STEP_LOG_SD
    from trimpomdp.errors import TrimError
    traces = isinstance(runs_path, (list, tuple))
    runs = runs_from_traces(runs_path) if traces else load_run_dir(runs_path)
    points = labelled_points(points_path)
    if lengths_path is None and traces:
        pmf = length_pmf_from_traces(runs_path)
    elif lengths_path is None:
        raise TrimError("--lengths is needed with run summaries (traces give their own lengths)")
    else:
        pmf = load_length_pmf(lengths_path, length_model)
    counts = None if step_stats is None else fe.load_first_errors(step_stats, length_model, pmf.size)
    model, info = fit(runs, points, pmf, classes=classes, starts=starts, seed=seed,
                      anchor_weight=ANCHOR_WEIGHT if anchor_weight is None else anchor_weight,
                      step_log_sd=STEP_LOG_SD if step_log_sd is None else step_log_sd, first_errors=counts,
                      first_error_weight=FIRST_ERROR_WEIGHT if first_error_weight is None else first_error_weight)
    table = fit_table(model, runs, points)
    if counts is not None:
        info["first_errors"] = {"observed": counts.tolist(),
                                "predicted": (fe.outcome_probs(model.weights, model.p_weak, pmf) * counts.sum()).tolist()}
    return {"format": FORMAT, "version": VERSION, "model": model.to_dict(), "fit": info,
            "inputs": {"runs": [str(p) for p in runs_path] if isinstance(runs_path, (list, tuple)) else str(runs_path), "points": str(points_path), "lengths": None if lengths_path is None else str(lengths_path),
                       "length_model": length_model, "step_stats": None if step_stats is None else str(step_stats)},
            "table": table, "targets": targets(table)}


def labelled_points(path) -> dict:
    """Labelled PRM pairs per state from a points .npz or from a PRM score-sequence file (``score-steps``)."""
    from trimpomdp.observation_models import sequences as sq
    from trimpomdp.observation_models.binned import TRIM_STATES
    from trimpomdp.routing.spec import load_observation_points

    if not sq.is_sequence_file(path):
        return load_observation_points(path)
    data, _ = sq.labelled_steps([q for q in sq.load_sequences(path) if q.labelled], 2)
    return {s: data.X[data.y == s] for s in TRIM_STATES}


def load_length_pmf(path, model: str) -> np.ndarray:
    """P(L = t), t = 1..max from a ``solution_length_pmf`` file (``steps`` and one pmf per model)."""
    from trimpomdp.artifacts import read_npz
    from trimpomdp.errors import FormatError

    z = read_npz(path)
    if "steps" not in z or model not in z:
        names = ", ".join(k for k in z if k != "steps")
        raise FormatError(f"expected arrays 'steps' and {model!r} (models here: {names})", str(path))
    steps, p = np.asarray(z["steps"]), np.asarray(z[model], dtype=np.float64)
    if steps.shape != p.shape or steps.ndim != 1 or np.any(steps < 1) or np.any(p < 0) or p.sum() <= 0:
        raise FormatError(f"'steps' and {model!r} must be matching 1-D arrays of steps >= 1 and weights >= 0",
                          str(path))
    pmf = np.zeros(int(steps.max()))
    np.add.at(pmf, steps.astype(int) - 1, p)
    return pmf / pmf.sum()


def targets(table: list[dict]) -> list[tuple[str, float, float, bool]]:
    """(target, measured, bound, met) for the issue's prediction targets that exact evaluation reaches."""
    by = {r["family"]: r for r in table if r["family"] in ("cheap", "strong")}
    thr = [r for r in table if r["family"] == "threshold"]
    out = []
    for fam in ("cheap", "strong"):
        r = by.get(fam)
        if r:
            e = abs(r["predicted"]["accuracy"] - r["accuracy"])
            out.append((f"{fam}-only accuracy error", e, 0.01, e <= 0.01))
    r = by.get("strong")
    if r:
        e = abs(r["predicted"]["strong_tokens"] / r["strong_tokens"] - 1)
        out.append(("strong-only tokens relative error", e, 0.05, e <= 0.05))
    if thr:
        ea = float(np.mean([abs(r["predicted"]["accuracy"] - r["accuracy"]) for r in thr]))
        et = float(np.mean([abs(r["predicted"]["strong_tokens"] / r["strong_tokens"] - 1) for r in thr]))
        out.append(("threshold family mean |accuracy error|", ea, 0.03, ea <= 0.03))
        out.append(("threshold family mean relative token error", et, 0.15, et <= 0.15))
    return out


def save(record: dict, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, default=float) + "\n")
    return path


def report_text(record: dict) -> str:
    m = record["model"]
    rows = []
    for r in record["table"]:
        p = r["predicted"]
        rows.append([r["run"], "fit" if r["fitted"] else "test", f"{r['accuracy']:.3f}",
                     f"{p['accuracy']:.3f}" if p else "-", f"{r['strong_tokens']:.1f}",
                     f"{p['strong_tokens']:.1f}" if p else "-", f"{r['strong_calls']:.2f}",
                     f"{p['strong_calls']:.2f}" if p else "-"])
    classes = "; ".join(f"class {i + 1}: weight {w:.3f}, p_weak {a:.3f}, p_strong {b:.3f}"
                        for i, (w, a, b) in enumerate(zip(m["weights"], m["p_weak"], m["p_strong"])))
    src = record["inputs"]["runs"]
    src = f"{len(src)} traces" if isinstance(src, list) else src
    lines = [f"calibrated on {record['fit']['fitted_runs']} runs of {src} "
             f"({record['fit']['classes']} difficulty classes, anchors weighted x{record['fit']['anchor_weight']:g})",
             classes,
             f"derailed steps score as fresh errors with probability {m['alpha']:.3f}; a strong rewrite in a derailed "
             f"solution repairs it with probability {m.get('recover', 0):.3f}",
             f"strong tokens per rewrite "
             f"{m['rewrite_tokens']:.1f}, per strong-only step {m['strong_step_tokens']:.1f}; cheap tokens per kept "
             f"step {m['cheap_step_tokens']:.1f}, per discarded step {m['discarded_step_tokens']:.1f} (observed means)",
             f"token model: cheap step tokens lognormal (log-sd {m.get('step_log_sd', 0):.3f}), mean "
             f"{m.get('cheap_tokens_correct', 0):.1f} (correct or derailed state), {m.get('cheap_tokens_error', 0):.1f} "
             f"(fresh error); the strong model's version of an n-token step: {m.get('strong_coef', 0):.2f} * n^"
             f"{m.get('strong_exponent', 1):.2f} tokens",
             format_table(["run", "use", "accuracy", "predicted", "strong tok", "predicted", "calls", "predicted"],
                          rows, align="llrrrrrr")]
    fe_fit = record["fit"].get("first_errors")
    if fe_fit:
        o, p = np.asarray(fe_fit["observed"]), np.asarray(fe_fit["predicted"])
        n = o.sum()
        steps = ", ".join(f"{t + 1}: {100 * o[t] / n:.1f}/{100 * p[t] / n:.1f}" for t in range(min(6, o.size - 1)))
        lines.append(f"cheap model's first error (% of {int(n)} real solutions, observed/predicted; fitted with "
                     f"weight {record['fit']['first_error_weight']:g}): step {steps}; correct "
                     f"{100 * o[-1] / n:.1f}/{100 * p[-1] / n:.1f}")
    lines += [f"{'PASS' if ok else 'FAIL'} {name}: {v:.3f} (target <= {b:g})" for name, v, b, ok in record["targets"]]
    pomdp = [r for r in record["table"] if r["family"] == "pomdp"]
    if pomdp:
        lines.append(f"POMDP family ({len(pomdp)} runs) held out: bench/calibration.py predicts them with the "
                     "reference's policy emulated in the calibrated world (calibration.emulate)")
    return "\n".join(lines)
