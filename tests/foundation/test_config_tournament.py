"""``[[models]]``: a tournament's models in config/daemon.toml, each problem one paragraph and exit 78."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cappuccino_daemon.config import ModelEntry, apply_overrides, check_capital_fits, load_settings
from cappuccino_daemon.errors import EX_CONFIG, ConfigError


def _project(tmp_path: Path, body: str, models: tuple[str, ...] = ("trial_1_1h", "trial_2_1h")) -> Path:
    for name in models:
        (tmp_path / "train_results" / name).mkdir(parents=True, exist_ok=True)
    (tmp_path / "config").mkdir(exist_ok=True)
    path = tmp_path / "config" / "daemon.toml"
    path.write_text(body, encoding="utf-8")
    return path


TWO = """
[[models]]
dir = "train_results/trial_1_1h"
capital = 1000.0

[[models]]
name = "second"
dir = "train_results/trial_2_1h"
capital = 2500
tickers = ["BTC", "ETH"]
profile = "finrl-crypto"
"""


def test_models_tables_load_in_file_order_with_default_names(tmp_path: Path) -> None:
    settings = load_settings(_project(tmp_path, TWO))
    first, second = settings.models_list
    assert settings.model is None
    assert first == ModelEntry("trial_1_1h", (tmp_path / "train_results" / "trial_1_1h").resolve(), 1000.0)
    assert second.name == "second" and second.capital == 2500.0
    assert second.tickers == ("BTC", "ETH") and second.profile == "finrl-crypto"
    assert second.dir == (tmp_path / "train_results" / "trial_2_1h").resolve()


def test_a_single_model_table_is_a_tournament_of_one(tmp_path: Path) -> None:
    settings = load_settings(_project(tmp_path, '[model]\ndir = "train_results/trial_1_1h"\n'))
    (only,) = settings.models_list
    assert only.name == "trial_1_1h" and only.capital is None and only.profile is None
    assert settings.only_model() == only
    assert settings.model is not None and settings.model.dir == only.dir


def test_default_name_is_the_folder_name_as_written_not_the_symlink_target(tmp_path: Path) -> None:
    """demo/best_model points at a trial folder; the name stays best_model when the target moves."""
    path = _project(tmp_path, '[[models]]\ndir = "demo/best_model"\ncapital = 10\n')
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "best_model").symlink_to(tmp_path / "train_results" / "trial_1_1h")
    (entry,) = load_settings(path).models_list
    assert entry.name == "best_model"
    assert entry.dir == (tmp_path / "train_results" / "trial_1_1h").resolve()


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        (
            '[model]\ndir = "train_results/trial_1_1h"\n' + TWO,
            ["both [model] and [[models]]", "delete [model]"],
        ),
        ("[worker]\npoll_interval_s = 3\n", ["missing required key 'model'", "[[models]]"]),
        (
            TWO.replace('name = "second"', 'name = "TRIAL_1_1h"'),
            ["two [[models]] are named 'TRIAL_1_1h'", "unique", "train_results/trial_1_1h"],
        ),
        (TWO.replace("capital = 2500", "capital = 0"), ["models[2].capital", "greater than 0"]),
        (TWO.replace("capital = 2500", "capital = -5"), ["models[2].capital", "greater than 0"]),
        (TWO.replace("capital = 2500", "capital = inf"), ["models[2].capital", "finite"]),
        (TWO.replace("capital = 2500\n", ""), ["missing required key 'models[2].capital"]),
        (
            TWO.replace('name = "second"', 'name = "a/b"'),
            ["the model name 'a/b'", "cannot be used", "name ="],
        ),
        (TWO.replace('profile = "finrl-crypto"', 'profile = "mine"'), ["models[2].profile", "finrl-crypto"]),
        (TWO.replace('profile = "finrl-crypto"', "colour = 1"), ["unknown key 'models[2].colour"]),
        (
            TWO.replace("trial_2_1h", "trial_9_1h"),
            ["[[models]] 'second'", "train_results/trial_9_1h", "does not exist"],
        ),
        ("[[models]]\n", ["models[1].dir", "models[1].capital"]),
    ],
)
def test_every_tournament_problem_is_one_paragraph(tmp_path: Path, body: str, needles: list[str]) -> None:
    path = _project(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)
    assert "\n" not in text
    for needle in needles:
        assert needle in text, (needle, text)


def test_capital_sum_against_the_account_cash_names_the_shortfall(tmp_path: Path) -> None:
    settings = load_settings(_project(tmp_path, TWO))
    check_capital_fits(settings.models_list, 3500.0)  # exactly the cash: fits
    with pytest.raises(ConfigError) as info:
        check_capital_fits(settings.models_list, 3000.0, settings.source_file)
    text = str(info.value)
    assert "3,500.00 USD" in text and "3,000.00 USD" in text and "500.00 USD short" in text
    assert "trial_1_1h 1,000.00" in text and "second 2,500.00" in text
    assert str(settings.source_file) in text


def test_a_model_table_without_capital_keeps_its_profile_capital_and_is_not_counted(tmp_path: Path) -> None:
    settings = load_settings(_project(tmp_path, '[model]\ndir = "train_results/trial_1_1h"\n'))
    check_capital_fits(settings.models_list, 0.0)  # nothing counted: today's single-model behaviour


def test_one_model_commands_refuse_a_tournament_and_model_dir_picks_one(tmp_path: Path) -> None:
    settings = load_settings(_project(tmp_path, TWO))
    with pytest.raises(ConfigError, match="names 2 models"):
        settings.only_model()
    pick = tmp_path / "train_results" / "trial_2_1h"
    one = apply_overrides(settings, {("model", "dir"): ("--model-dir", pick)})
    assert one.models is None and one.only_model().dir == pick
    with pytest.raises(ConfigError, match="--tickers cannot apply to a \\[\\[models\\]\\] tournament"):
        apply_overrides(settings, {("model", "tickers"): ("--tickers", ["BTC"])})


def test_models_from_the_environment_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _project(tmp_path, "[worker]\npoll_interval_s = 3\n")
    monkeypatch.setenv("CAPPUCCINO_MODELS", '[{"dir": "train_results/trial_1_1h", "capital": 5}]')
    (entry,) = load_settings(path).models_list
    assert entry.capital == 5.0 and entry.name == "trial_1_1h"


def test_validate_cli_exits_78_on_a_tournament_problem(tmp_path: Path) -> None:
    path = _project(tmp_path, '[model]\ndir = "train_results/trial_1_1h"\n' + TWO)
    proc = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "validate", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "both [model] and [[models]]" in proc.stderr


def test_the_worker_checks_every_model_of_a_tournament_before_trading(tmp_path: Path) -> None:
    path = _project(tmp_path, TWO)  # model folders without actor.pth
    proc = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "worker", "--config", str(path), "--max-cycles", "1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == EX_CONFIG, proc.stderr
    assert "trial_1_1h" in proc.stderr and "actor.pth" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_config_profile_names_are_the_models_profiles() -> None:
    """config.py sits below model/ and repeats the names; this keeps the two lists equal."""
    from typing import get_args

    from cappuccino_daemon.config import ProfileName
    from cappuccino_daemon.model.profiles import PROFILE_NAMES

    assert set(get_args(ProfileName)) == set(PROFILE_NAMES)
