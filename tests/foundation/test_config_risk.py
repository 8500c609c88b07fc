"""``[risk]`` and a ``[[models]]`` table's ``risk``: defaults, per-model overrides, refusals (exit 78)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cappuccino_daemon.cli import main
from cappuccino_daemon.config import load_settings
from cappuccino_daemon.errors import EX_CONFIG, ConfigError


def _config(tmp_path: Path, body: str) -> Path:
    for name in ("trial_1_1h", "trial_2_1h"):
        (tmp_path / "train_results" / name).mkdir(parents=True, exist_ok=True)
    path = tmp_path / "daemon.toml"
    path.write_text(body, encoding="utf-8")
    return path


TOURNAMENT = """
[risk]
max_drawdown = 0.2
max_orders_per_bar = 4
min_account_equity = 500.0

[[models]]
dir = "train_results/trial_1_1h"
capital = 1000.0

[[models]]
dir = "train_results/trial_2_1h"
capital = 1000.0
risk = { max_drawdown = 0.1, on_breach = "flatten", max_notional_per_order = 250.0 }
"""


def test_a_models_risk_table_overrides_only_the_keys_it_sets(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, TOURNAMENT))
    first, second = settings.models_list
    assert (first.risk.max_drawdown, first.risk.max_orders_per_bar, first.risk.on_breach) == (0.2, 4, "halt")
    assert first.risk.max_notional_per_order is None
    assert (second.risk.max_drawdown, second.risk.on_breach) == (0.1, "flatten")
    assert (second.risk.max_orders_per_bar, second.risk.max_notional_per_order) == (4, 250.0)
    assert settings.risk.min_account_equity == 500.0


def test_no_risk_table_means_no_limits(tmp_path: Path) -> None:
    settings = load_settings(_config(tmp_path, '[model]\ndir = "train_results/trial_1_1h"\n'))
    limits = settings.models_list[0].risk
    assert limits.model_dump() == {
        "max_drawdown": None,
        "daily_loss": None,
        "max_position_fraction": None,
        "max_orders_per_bar": None,
        "max_notional_per_order": None,
        "on_breach": "halt",
    }


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ("[risk]\nmax_drawdown = 1.5\n", ["risk.max_drawdown", "less than 1"]),
        ("[risk]\ndaily_loss = inf\n", ["risk.daily_loss", "finite"]),
        ('[risk]\non_breach = "panic"\n', ["risk.on_breach", "halt", "flatten"]),
        ("[risk]\nmax_orders_per_bar = -1\n", ["risk.max_orders_per_bar"]),
    ],
)
def test_a_bad_limit_is_one_paragraph_naming_the_key(tmp_path: Path, body: str, words: list[str]) -> None:
    path = _config(tmp_path, '[model]\ndir = "train_results/trial_1_1h"\n' + body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message.strip()
    for word in words:
        assert word in message


def test_the_account_floor_is_not_a_per_model_key(tmp_path: Path) -> None:
    body = TOURNAMENT.replace('on_breach = "flatten"', "min_account_equity = 1.0")
    path = _config(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    assert "min_account_equity" in str(info.value)
    assert main(["validate", "--config", str(path)]) == EX_CONFIG
