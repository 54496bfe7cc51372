"""Shared fixtures: the read-only ``shared/`` folder beside the checkout (present in CI), the shipped
routing spec and the labelled PRM points the simulator draws from."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TRIMPOMDP_SHARED", ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED}")
    return SHARED


@pytest.fixture(scope="session")
def pomdp_dir(shared) -> Path:
    return shared / "pomdp"


@pytest.fixture(scope="session")
def data_dir(shared) -> Path:
    return shared / "data"



@pytest.fixture(scope="module")
def tm():
    """The shipped TRIM routing spec (one per test module: tests derive variants, never mutate it)."""
    from trimpomdp.routing.spec import TrimModel

    return TrimModel.load(ROOT / "data" / "trim_math_plain.json")


@pytest.fixture(scope="module")
def pts(data_dir):
    """Labelled PRM points per hidden state (Qwen2.5-Math-PRM-7B on ProcessBench)."""
    from trimpomdp.routing.spec import load_observation_points

    return load_observation_points(data_dir / "prm_obs_processbench_math.npz")
