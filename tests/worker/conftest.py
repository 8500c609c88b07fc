"""Worker test fixtures: the tiny trial_7 fixture model and a real in-process emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from worker_support import START, TICKERS, Model

from cappuccino_daemon.emulator.testing import EmulatorThread


@pytest.fixture(scope="session")
def trial7(shared_dir: Path) -> Model:
    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.loader import load_model_spec

    model_dir = shared_dir / "fixtures" / "train_results" / "cwd_tests" / "trial_7_1h"
    return Model(model_dir, load_model_spec(model_dir, list(TICKERS)), load_policy(model_dir))


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorThread]:
    options: dict[str, Any] = getattr(request, "param", {}) or {}
    with EmulatorThread(synthetic_seed=3, start=START, **options) as emu:
        yield emu
