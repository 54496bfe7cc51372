"""Shared fixtures: the read-only ``shared/`` folder beside the checkout (present in CI)."""
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

