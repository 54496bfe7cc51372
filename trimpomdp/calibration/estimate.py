"""Fitting a difficulty-class routing model to real run summaries by maximum likelihood.

Each fitted run contributes the binomial log-likelihood of its number of correct answers and a Gaussian
log-likelihood of its mean strong calls per question (variance of a mean of Poisson counts: calls / n).
The K class weights, p_weak, p_strong and the derailed-score mixing ``alpha`` are optimised on unbounded
(softmax / logit) coordinates by Nelder-Mead from several seeded starts; the token means have closed forms
(tokens over calls of the runs that use them). Which runs are fitted is the caller's choice: the POMDP
runs are kept out so that they test the model. Optionally the classes must also explain where the cheap
model's first error falls in real step statistics (``calibration.first_error``, a weighted multinomial term).

The token model (``fit_tokens``, after the accuracy fit, which does not depend on it): given the spread of
step lengths ``step_log_sd`` (measured on real solutions, ``calibration.steps``), the mean cheap tokens of a
correct-state and a fresh-error step are least squares on the runs' kept and discarded cheap tokens (linear
in the two means, through the fitted model's expected steps by state), and the strong-length rule
``strong_coef * n ** strong_exponent`` is least squares on the strong tokens of the strong-only and the
threshold runs (relative errors; the exponent on a grid, the coefficient in closed form).
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, softmax

from trimpomdp.calibration import first_error as fe
from trimpomdp.calibration.model import ClassModel, evaluate_many, predict, regenerate_probs, rewrite_rows
from trimpomdp.errors import TrimError

FITTED_FAMILIES = ("cheap", "strong", "threshold")


def token_means(runs) -> dict:
    """Strong tokens per rewrite and per strong-only step, cheap tokens per kept and per discarded step."""
    thr = [r for r in runs if r.family == "threshold" and r.strong_calls > 0]
    strong = [r for r in runs if r.family == "strong"]
    cheap = [r for r in runs if r.family == "cheap"]
    if not thr or not strong or not cheap:
        raise TrimError("calibration needs a cheap-only run, a strong-only run and at least one threshold run")
    calls = sum(r.strong_calls for r in thr)
    return {"rewrite_tokens": sum(r.strong_tokens for r in thr) / calls,
            "strong_step_tokens": sum(r.strong_tokens for r in strong) / sum(r.strong_calls for r in strong),
            "discarded_step_tokens": sum(r.discarded_tokens for r in thr) / calls,
            "cheap_tokens_cheap_only": float(np.mean([r.cheap_tokens for r in cheap]))}


def _unpack(theta, K, length_pmf, tokens, recover=False):
    w = softmax(np.concatenate([[0.0], theta[:K - 1]]))
    pw = expit(theta[K - 1:2 * K - 1])
    ps = expit(theta[2 * K - 1:3 * K - 1])
    rec = float(expit(theta[3 * K])) if recover else 0.0
    return ClassModel(w, pw, ps, float(expit(theta[3 * K - 1])), length_pmf, recover=rec, **tokens)


#: the cheap-only and strong-only runs weigh this many times their questions: every policy's PGR and
#: normalised cost are measured against them, so they are matched more tightly than any one threshold run
ANCHOR_WEIGHT = 50.0


#: weight of the first-error term (``calibration.first_error``) per real solution: 1, the plain likelihood of
#: independent data (7,500 real solutions of the same cheap model beside 21 runs of 500 questions). Not more:
#: they come from another split (MATH train) and a PRM located their errors. Not less: without it the runs
#: leave the classes' step accuracies free, and the fit chose a class whose first step fails 89% of the time
#: where the real solutions fail there 13%. Chosen before looking at any held-out run.
FIRST_ERROR_WEIGHT = 1.0


def fit(runs, points: dict, length_pmf, classes: int = 3, starts: int = 8, seed: int = 0,
        anchor_weight: float = ANCHOR_WEIGHT, step_log_sd: float | None = None,
        recover: bool = True, first_errors=None,
        first_error_weight: float = FIRST_ERROR_WEIGHT) -> tuple[ClassModel, dict]:
    """The (weighted) maximum-likelihood ClassModel for the cheap, strong and threshold runs, and the
    fit's info; with ``step_log_sd`` also its token model (``fit_tokens``). ``recover``: also fit the
    chance that a strong rewrite in a derailed solution repairs it (the strong model reads the whole flawed
    prefix and can redo an earlier result); otherwise derailed is final, as in the TRIM formulation."""
    if classes < 1:
        raise TrimError("--classes must be at least 1")
    if first_errors is not None:
        first_errors = np.asarray(first_errors, dtype=np.float64)
        if first_errors.shape != (np.size(length_pmf) + 1,) or first_error_weight < 0:
            raise TrimError("first-error counts need one cell per step of the length pmf and one for correct "
                            "solutions, and a non-negative weight")
    used = [r for r in runs if r.family in FITTED_FAMILIES]
    tm = token_means(used)
    length_pmf = np.asarray(length_pmf, dtype=np.float64)
    tokens = {k: tm[k] for k in ("rewrite_tokens", "strong_step_tokens", "discarded_step_tokens")}
    mean_steps = float(np.arange(1, length_pmf.size + 1) @ length_pmf)
    tokens["cheap_step_tokens"] = tm["cheap_tokens_cheap_only"] / mean_steps
    Q0 = np.array([np.zeros(3) if r.family == "cheap" else np.ones(3) if r.family == "strong"
                   else regenerate_probs(points, r.knob, 0.0) for r in used])
    is_thr = np.array([r.family == "threshold" for r in used])
    n = np.array([r.questions * (anchor_weight if r.family in ("cheap", "strong") else 1.0) for r in used],
                 dtype=np.float64)
    k = np.array([r.accuracy for r in used]) * n
    obs_calls = np.array([r.strong_calls for r in used])
    has_calls = np.array([r.family != "cheap" for r in used])

    def nll(theta):
        m = _unpack(theta, classes, length_pmf, tokens, recover)
        Q = Q0.copy()  # a derailed step scores as a fresh error with probability alpha
        Q[is_thr, 2] = (1 - m.alpha) * Q0[is_thr, 2] + m.alpha * Q0[is_thr, 1]
        acc, calls = evaluate_many(m, Q)
        acc = np.clip(acc, 1e-9, 1 - 1e-9)
        out = -np.sum(k * np.log(acc) + (n - k) * np.log1p(-acc))
        out += np.sum((n * (calls - obs_calls) ** 2 / (2 * np.maximum(calls, 1e-3)))[has_calls])
        if first_errors is not None:
            out -= first_error_weight * fe.log_likelihood(first_errors, m.weights, m.p_weak, length_pmf)
        return out

    rng = np.random.default_rng(seed)
    best = None
    for s in range(starts):
        theta0 = np.concatenate([rng.normal(0, 1, classes - 1), rng.normal(2, 1, classes),
                                 rng.normal(3, 1, classes), [rng.normal(0, 1)]] + ([[rng.normal(-2, 1)]] if recover else []))
        r = minimize(nll, theta0, method="Nelder-Mead",
                     options={"maxiter": 4000 * classes, "xatol": 1e-5, "fatol": 1e-7})
        if best is None or r.fun < best.fun:
            best = r
    model = _unpack(best.x, classes, length_pmf, tokens, recover)
    if step_log_sd is not None:
        model = fit_tokens(model, used, points, step_log_sd)
    return model, {"nll": float(best.fun), "fitted_runs": len(used), "classes": classes, "recover": recover,
                   "anchor_weight": anchor_weight, "starts": starts, "seed": seed,
                   "first_error_weight": None if first_errors is None else first_error_weight}


#: exponents tried for the strong-length rule
EXPONENTS = np.linspace(0.0, 2.5, 251)


def fit_tokens(model: ClassModel, runs, points: dict, step_log_sd: float) -> ClassModel:
    """``model`` with its token model fitted to the cheap, strong and threshold runs (see the module)."""
    used = [r for r in runs if r.family in FITTED_FAMILIES]
    if step_log_sd < 0:
        raise TrimError("the spread of step lengths (log-sd) must be non-negative")
    m = dataclasses.replace(model, step_log_sd=float(step_log_sd))
    Q = np.array([rewrite_rows(m, r.family, r.knob, points) for r in used])
    _, _, calls, steps = evaluate_many(m, Q, by_state=True)
    # cheap tokens: kept = (steps - calls) . means, discarded = calls . means; means = (correct/derailed, error)
    rows, obs = [], []
    for i, r in enumerate(used):
        if r.family == "strong":
            continue
        for n, o in ((steps[i] - calls[i], r.cheap_tokens), (calls[i], r.discarded_tokens)):
            if o > 0:
                rows.append([n[0] + n[2], n[1]])
                obs.append(o)
    A, o = np.array(rows), np.array(obs)
    means, *_ = np.linalg.lstsq(A / o[:, None], np.ones(len(o)), rcond=None)
    if np.any(means <= 0):
        raise TrimError("the runs' cheap tokens give no positive mean step length per state")
    m = dataclasses.replace(m, cheap_tokens_correct=float(means[0]), cheap_tokens_error=float(means[1]))
    # strong tokens: the strong-only run weighs as much as all threshold runs together
    has = np.array([r.family != "cheap" and r.strong_tokens > 0 for r in used])
    so = np.array([r.strong_tokens for r in used])[has]
    w = np.array([max(1, sum(r.family == "threshold" for r in used)) if r.family == "strong" else 1.0
                  for r in used])[has]
    best = None
    for b in EXPONENTS:
        u = calls[has] @ dataclasses.replace(m, strong_coef=1.0, strong_exponent=float(b)).strong_means() / so
        c = float(np.sum(w * u) / np.sum(w * u * u))
        err = float(np.sum(w * (c * u - 1) ** 2))
        if best is None or err < best[0]:
            best = (err, c, float(b))
    return dataclasses.replace(m, strong_coef=best[1], strong_exponent=best[2])


def fit_table(model: ClassModel, runs, points: dict) -> list[dict]:
    """Observed vs predicted per run (POMDP runs have no exact evaluation here: predicted is None)."""
    rows = []
    order = {"cheap": 0, "threshold": 1, "strong": 2, "pomdp": 3}
    for r in sorted(runs, key=lambda r: (order[r.family], r.knob)):
        pred = predict(model, r.family, r.knob, points) if r.family in FITTED_FAMILIES else None
        rows.append({"run": r.name, "family": r.family, "fitted": r.family in FITTED_FAMILIES,
                     "accuracy": r.accuracy, "strong_tokens": r.strong_tokens, "strong_calls": r.strong_calls,
                     "predicted": pred})
    return rows
