"""Worker test fixtures: a tiny hand-weighted model (no ../shared needed) and a real in-process emulator."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from stub_model import write_stub_model
from worker_support import START, TICKERS, Model

from cappuccino_daemon.emulator.testing import EmulatorThread


def _load(model_dir: Path) -> Model:
    from cappuccino_daemon.model.actor import load_policy
    from cappuccino_daemon.model.loader import load_model_spec

    return Model(model_dir, load_model_spec(model_dir, list(TICKERS)), load_policy(model_dir))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Model:
    """A legacy-format trial folder built here (stub_model.py): buys what it lacks, sells what it holds."""
    return _load(write_stub_model(tmp_path_factory.mktemp("models") / "trial_7_1h", TICKERS))


@pytest.fixture(scope="session")
def trial7(shared_dir: Path) -> Model:
    """The real trained trial_7 fixture from ../shared (skips where it is absent)."""
    return _load(shared_dir / "fixtures" / "train_results" / "cwd_tests" / "trial_7_1h")


@pytest.fixture
def emulator(request: pytest.FixtureRequest) -> Iterator[EmulatorThread]:
    options: dict[str, Any] = getattr(request, "param", {}) or {}
    with EmulatorThread(synthetic_seed=3, start=START, **options) as emu:
        yield emu
