"""Supervisor test fixtures (helpers importable by name live in supervisor_harness.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from supervisor_harness import Harness


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """The real supervisor over fake children; torn down with every child it started."""
    h = Harness(tmp_path)
    yield h
    h.close()
