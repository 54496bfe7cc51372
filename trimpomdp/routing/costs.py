"""The full bill of a routing policy, per question: strong tokens, cheap tokens kept and discarded, PRM
tokens read, wall time, and their price when the user gives one per token kind (``docs/metrics.md``).

Strong tokens are what the routing metrics charge, but not the whole cost: the cheap model writes a
candidate for every step (discarded when the step is regenerated) and the PRM re-reads the solution so
far at every scored step, so its input grows quadratically with the solution length. Three sources:

- decode traces (``trace_costs``): counted exactly from each step's token counts (the PRM's input is
  counted in the generating models' tokens, without the question and prompt, which traces do not count);
- the simulator (``simulated_costs``): it draws strong tokens but not cheap ones, so the cheap and PRM
  tokens are expected values derived from its step and regeneration counts with a per-step cheap-token
  mean (by default the spec's, ``spec_cheap_step_tokens``), and wall time is not modelled;
- the reference's run summaries (``routing.reference_runs``): cheap and strong tokens as recorded; they
  record neither PRM tokens nor wall time.

A quantity that is not known is None, and a priced total says which priced kinds it leaves out.
"""
from __future__ import annotations

import math

import numpy as np

from trimpomdp.errors import TrimError

#: token kinds that can be priced: strong-model tokens written, cheap-model tokens written (kept and
#: discarded), PRM tokens read
KINDS = ("strong", "cheap", "prm")
_ALIASES = {"weak": "cheap"}
_EXAMPLE = "e.g. strong=5e-6,cheap=1e-7,prm=2e-7"


def parse_prices(text: str | None, option: str = "--price") -> dict[str, float] | None:
    """``'strong=5e-6,cheap=1e-7,prm=2e-7'`` -> {kind: price per token}; ``weak`` means ``cheap``; kinds
    left out are not priced. None for None; a TrimError naming the bad part otherwise."""
    if text is None:
        return None
    prices: dict[str, float] = {}
    parts = [p.strip() for p in str(text).split(",")]
    if not any(parts):
        raise TrimError(f"{option} {text!r}: empty; expected KIND=PRICE per token ({_EXAMPLE})")
    for part in parts:
        kind, eq, value = part.partition("=")
        kind = kind.strip().lower()
        kind = _ALIASES.get(kind, kind)
        if not eq or not kind:
            raise TrimError(f"{option} {text!r}: {part!r} is not KIND=PRICE ({_EXAMPLE})")
        if kind not in KINDS:
            raise TrimError(f"{option} {text!r}: unknown token kind {kind!r}; expected one of "
                            f"{', '.join(KINDS)} ({_EXAMPLE})")
        if kind in prices:
            raise TrimError(f"{option} {text!r}: {kind} is priced twice")
        try:
            price = float(value)
        except ValueError:
            raise TrimError(f"{option} {text!r}: {value.strip()!r} is not a number (price per {kind} "
                            f"token, {_EXAMPLE})") from None
        if not (math.isfinite(price) and price >= 0):
            raise TrimError(f"{option} {text!r}: the {kind} price must be a finite number >= 0, got {value.strip()}")
        prices[kind] = price
    return prices


def _amounts(c: dict) -> dict[str, float | None]:
    cheap = None if c.get("cheap_kept") is None or c.get("cheap_discarded") is None else (
        c["cheap_kept"] + c["cheap_discarded"])
    return {"strong": c.get("strong_tokens"), "cheap": cheap, "prm": c.get("prm_tokens")}


def price(costs: dict, prices: dict[str, float] | None) -> dict | None:
    """{"total", "by_kind", "excludes"} per question for ``costs`` (keys strong_tokens, cheap_kept,
    cheap_discarded, prm_tokens); ``excludes`` lists the priced kinds whose amount is unknown (left out
    of ``total``, which is None when every priced kind is unknown). None without prices."""
    if not prices:
        return None
    amounts = _amounts(costs)
    by_kind = {k: (None if amounts[k] is None else amounts[k] * p) for k, p in prices.items()}
    known = [v for v in by_kind.values() if v is not None]
    return {"total": float(sum(known)) if known else None, "by_kind": by_kind,
            "excludes": [k for k, v in by_kind.items() if v is None]}


# ------------------------------------------------------------------------------------------------ traces
def record_prm_tokens(rec: dict) -> int | None:
    """Tokens the PRM read for one trace record: at every scored step, the kept steps before it (the cheap
    step's tokens, or the strong rewrite's) plus the cheap step itself. None when a step lacks its counts."""
    total = prefix = 0
    for s in rec["steps"]:
        w = s.get("weak_tokens")
        kept = s.get("strong_tokens") if s.get("model") == "strong" else w
        if w is None or kept is None:
            return None
        if s.get("prm_score") is not None:
            total += prefix + w
        prefix += kept
    return total


def trace_costs(records: list[dict]) -> dict:
    """Per-question means over decode trace records: strong tokens, cheap kept/discarded, PRM tokens read
    (None if any record lacks step token counts) and wall seconds (mean over the records that carry it;
    ``seconds_known`` says how many; per problem, so overlapping problems of a batch each count fully)."""
    n = len(records)
    if n == 0:
        raise TrimError("no records to cost")
    prm = [record_prm_tokens(r) for r in records]
    secs = [float(r["seconds"]) for r in records if isinstance(r.get("seconds"), (int, float))]
    return {
        "strong_tokens": sum(r["tokens"]["strong"] for r in records) / n,
        "cheap_kept": sum(r["tokens"]["weak_kept"] for r in records) / n,
        "cheap_discarded": sum(r["tokens"]["weak_discarded"] for r in records) / n,
        "prm_tokens": None if any(p is None for p in prm) else sum(prm) / n,
        "seconds": sum(secs) / len(secs) if secs else None,
        "seconds_known": len(secs),
    }


# ------------------------------------------------------------------------------------------- simulator
def spec_cheap_step_tokens(trim_model) -> tuple[float, str]:
    """(mean cheap tokens per step, where it comes from) implied by a spec: a regenerated step costs
    ``tokens_per_weak_token`` strong tokens per cheap token, so its mean strong step tokens over that
    ratio is the cheap step the simulator implies."""
    ratio = float(trim_model.tokens_per_weak_token)
    mean = float(trim_model.mean_step_tokens)
    if not ratio > 0:
        raise TrimError("the spec's tokens_per_weak_token is 0, so it implies no cheap step length: pass "
                        "--cheap-step-tokens")
    return mean / ratio, (f"the spec's mean strong tokens per step {mean:.1f} / tokens_per_weak_token "
                          f"{ratio:g}")


def simulated_costs(summary: dict, trim_model, cheap_step_tokens: float | None = None) -> dict:
    """Expected per-question cheap and PRM tokens of a simulated policy from its summary (``mean_steps``
    E[L], ``regenerations`` R, ``strong_tokens`` S), with cheap steps of mean m tokens (default: the
    spec's, ``spec_cheap_step_tokens``).

    Every step gets a cheap candidate, m E[L] tokens written. The simulator charges a regenerated step
    ``tokens_per_weak_token`` (r) strong tokens per token of its candidate, so the discarded candidates
    hold S / r tokens (a cost-aware policy regenerates shorter steps than average), scaled by m over the
    spec's mean when m is given; with r = 0 they hold R m. The PRM reads, at step t, the t - 1 kept steps
    before it and the candidate: m E[L] + k E[L (L - 1) / 2], k = (kept cheap + S) / E[L] the mean kept
    step (strong rewrites included), E[L (L - 1) / 2] from the spec's length distribution (step lengths
    taken as independent of position). Wall time is not modelled (None)."""
    ratio = float(trim_model.tokens_per_weak_token)
    m_spec = float(trim_model.mean_step_tokens) / ratio if ratio > 0 else None
    m = m_spec if cheap_step_tokens is None else float(cheap_step_tokens)
    if m is None:
        spec_cheap_step_tokens(trim_model)  # raises: the spec implies no cheap step length
    if not (math.isfinite(m) and m >= 0):
        raise TrimError(f"--cheap-step-tokens: must be a number >= 0, got {cheap_step_tokens!r}")
    steps, regen, strong = (float(summary[k]) for k in ("mean_steps", "regenerations", "strong_tokens"))
    if m_spec:
        discarded = strong / ratio * (m / m_spec)
    else:
        discarded = regen * m
    written = steps * m
    kept = 0.0 if regen >= steps else max(0.0, written - discarded)  # every step rewritten: none kept
    pmf = np.asarray(trim_model.length_pmf, dtype=np.float64)
    t = np.arange(1, pmf.size + 1, dtype=np.float64)
    pairs = float((t * (t - 1) / 2) @ pmf)
    kept_step = (kept + strong) / steps if steps > 0 else 0.0
    return {"strong_tokens": strong, "cheap_kept": kept, "cheap_discarded": discarded,
            "prm_tokens": written + pairs * kept_step, "seconds": None}
