"""Replay warnings say what is actually used: explicit flags silence the matching "assuming" warning."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from cappuccino_daemon.cli import main
from cappuccino_daemon.model.spec import DEFAULT_TRAINING_TICKERS
from cappuccino_daemon.model.testing import cappuccino_params, write_best_trial, write_tiny_actor


@pytest.fixture
def legacy7(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny Cappuccino-style 7-ticker folder (no manifest) and synthetic hourly bars for its tickers."""
    model = tmp_path / "trial_3_1h"
    write_tiny_actor(model, 7)
    write_best_trial(model, cappuccino_params(8, 1))
    bars = tmp_path / "bars"
    bars.mkdir()
    rng = np.random.default_rng(7)
    times = pd.date_range("2024-01-01", periods=150, freq="h", tz="UTC")
    for k, ticker in enumerate(DEFAULT_TRAINING_TICKERS):
        close = (10.0 + 5 * k) * np.exp(np.cumsum(rng.normal(0, 0.01, len(times))))
        frame = pd.DataFrame(
            {
                "timestamp": times.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "open": close * 0.999,
                "high": close * 1.004,
                "low": close * 0.995,
                "close": close,
                "volume": rng.uniform(10, 100, len(times)),
            }
        )
        frame.to_csv(bars / f"{ticker}-USDT_1h.csv", index=False)
    return model, bars


def _replay(model: Path, bars: Path, out: Path, *extra: str) -> dict[str, Any]:
    argv = ["replay", "--model-dir", str(model), "--bars-dir", str(bars), "--steps", "3", "--out", str(out)]
    assert main([*argv, *extra]) == 0
    return dict(json.loads(out.read_text().splitlines()[-1]))


def test_assumptions_are_warned_when_nothing_is_given(
    legacy7: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = _replay(*legacy7, tmp_path / "r.jsonl")
    assert any("assuming env profile 'cappuccino-nov2025' (capital 1000," in w for w in summary["warnings"])
    assert any("assuming the default alphabetical training tickers" in w for w in summary["warnings"])
    assert "assuming env profile" in capsys.readouterr().err


def test_explicit_profile_and_tickers_silence_their_warnings(
    legacy7: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tickers = ",".join(DEFAULT_TRAINING_TICKERS)
    summary = _replay(*legacy7, tmp_path / "r.jsonl", "--profile", "finrl-crypto", "--tickers", tickers)
    assert summary["profile"]["name"] == "finrl-crypto"
    assert not any("assuming" in w for w in summary["warnings"]), summary["warnings"]
    err = capsys.readouterr().err
    assert "assuming env profile" not in err and "assuming the default" not in err


def test_explicit_capital_is_reported_as_given(legacy7: tuple[Path, Path], tmp_path: Path) -> None:
    summary = _replay(*legacy7, tmp_path / "r.jsonl", "--capital", "5000")
    assert summary["profile"]["initial_capital"] == 5000.0
    profile_warnings = [w for w in summary["warnings"] if "env profile" in w]
    assert profile_warnings and all("capital 5000 as given" in w for w in profile_warnings)
    assert not any("capital 1000" in w for w in summary["warnings"])
