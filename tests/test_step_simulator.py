"""The step-able simulator (``simulator.StepSimulator``): ``simulate`` runs on it and draws, decides and
scores exactly as the per-step loop it replaced (``legacy_simulator.py``, frozen), for every policy kind
of that time, both observation modes, any seed and size; takeover and query policies against
hand-computed episodes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import legacy_simulator
from trimpomdp.routing import load_policy, solve_trim
from trimpomdp.routing.budgets import parse_budget
from trimpomdp.routing import simulator as S



@pytest.fixture(scope="module")
def policies(tm):
    cap = parse_budget("cap=2regen")
    tok = parse_budget("cap=120tokens,lambda=0.02")
    return {
        "weak": load_policy("weak"),
        "strong": load_policy("strong"),
        "threshold": load_policy("threshold:0.5"),
        "pomdp": solve_trim(tm, lam=0.1, evaluate=False),
        "cap_regen": solve_trim(tm, lam=0.0, cap=cap.cap, evaluate=False),
        "cap_tokens": solve_trim(tm, lam=tok.lam, cap=tok.cap, evaluate=False),
    }


def _legacy(tm, pol, pts, n, seed, mode):
    pool = S.ScorePool(pts) if mode == "sequence" else None
    return legacy_simulator.simulate_chunk(tm, pol, pts, n, np.random.default_rng(seed), pool)


def _same(tm, pol, pts, n, seed, mode):
    old = _legacy(tm, pol, pts, n, seed, mode)
    new = S.simulate(tm, pol, pts, n, seed, mode=mode)
    for name, a, b in zip(("correct", "strong_tokens", "regenerations", "steps"), old[:4],
                          (new.correct, new.strong_tokens, new.regenerations, new.steps)):
        assert np.array_equal(a, b), (pol.name, mode, name)
    if mode == "sequence":  # the borrowed-bin share is counted over the same draws
        summ = S.simulate_summary(tm, pol, pts, n, seed, mode=mode)
        assert summ["fallback"] == old[5] / max(old[4], 1)


@pytest.mark.parametrize("mode", S.MODES)
@pytest.mark.parametrize("kind", ["weak", "strong", "threshold", "pomdp", "cap_regen", "cap_tokens"])
def test_simulate_is_bit_identical_to_the_loop_it_replaced(tm, pts, policies, kind, mode):
    _same(tm, policies[kind], pts, 4000, 11, mode)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300), k=st.floats(0, 1),
       mode=st.sampled_from(S.MODES))
def test_bit_identical_for_any_seed_and_size(tm, pts, seed, n, k, mode):
    _same(tm, load_policy(f"threshold:{k}"), pts, n, seed, mode)
