"""Shared fixtures: where ../shared is, and a skip with a reason where it is not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("CAPPUCCINO_SHARED_DIR", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ../shared folder (fixtures, OHLCV, docs); skips when absent (a user's clone)."""
    if not (SHARED_DIR / "fixtures").is_dir():
        pytest.skip(f"../shared not present at {SHARED_DIR}: golden fixtures unavailable on this machine")
    return SHARED_DIR


@pytest.fixture(scope="session")
def fixtures_dir(shared_dir: Path) -> Path:
    return shared_dir / "fixtures"


@pytest.fixture(scope="session")
def ohlcv_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "ohlcv"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT
