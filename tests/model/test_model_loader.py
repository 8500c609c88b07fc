"""load_model_spec: shapes win, params disagreements become warnings, ticker rules, metadata refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.loader import decode_norms, load_model_spec, normalise_ticker
from cappuccino_daemon.model.manifest import MANIFEST_FILE
from cappuccino_daemon.model.spec import DEFAULT_TRAINING_TICKERS, FEATURES_11


def _trial(fixtures_dir: Path, name: str) -> Path:
    return fixtures_dir / "train_results" / "cwd_tests" / name


def _copy(fixtures_dir: Path, name: str, tmp_path: Path, files: tuple[str, ...] = ("actor.pth",)) -> Path:
    dst = tmp_path / name
    dst.mkdir()
    for f in files:
        shutil.copy(_trial(fixtures_dir, name) / f, dst / f)
    return dst


def test_model_spec_3358_mismatch_warning(fixtures_dir: Path) -> None:
    spec = load_model_spec(_trial(fixtures_dir, "trial_3358_1h"))
    assert (spec.net_dim, spec.state_dim, spec.action_dim, spec.lookback) == (1984, 239, 7, 3)
    assert spec.tickers == DEFAULT_TRAINING_TICKERS and spec.features == FEATURES_11
    assert any("net_dimension=1280" in w and "1984" in w for w in spec.warnings)
    assert any("default alphabetical training tickers" in w for w in spec.warnings)
    assert spec.source.origin == "best_trial" and spec.source.trial_id == 3508
    assert spec.timeframe == "1h"


def test_model_spec_norms_from_exponents(fixtures_dir: Path) -> None:
    spec = load_model_spec(_trial(fixtures_dir, "trial_12_1h"))
    assert spec.norms.cash == 2.0**-12 and spec.norms.stocks == 2.0**-8
    assert spec.norms.tech == 2.0**-15 and spec.norms.reward == 2.0**-10 and spec.norms.action == 10000
    assert not any("net_dimension" in w for w in spec.warnings)
    assert spec.model_id.startswith("trial_12_1h-")


def test_model_decode_norms_finrl_values() -> None:
    params = {
        "norm_cash": 2**-12,
        "norm_stocks": 2**-8,
        "norm_tech": 2**-15,
        "norm_reward": 2**-10,
        "norm_action": 10000,
    }
    norms, notes = decode_norms(params, "x")
    assert norms.cash == 2**-12 and norms.tech == 2**-15 and notes == []  # never 2 ** 2**-12
    norms, notes = decode_norms({**params, "norm_cash": -12}, "x")
    assert norms.cash == 2**-12 and notes
    with pytest.raises(ConfigError, match="norm_stocks_exp nor norm_stocks"):
        decode_norms({"norm_cash_exp": -12}, "x")


def test_model_spec_three_tickers_need_request(fixtures_dir: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_model_spec(_trial(fixtures_dir, "trial_7_1h"))
    text = str(err.value)
    assert "3 tickers" in text and "trial-metadata" in text and "--tickers" in text
    spec = load_model_spec(_trial(fixtures_dir, "trial_7_1h"), ["LTC/USD", "btc", "ETHUSD"])
    assert spec.tickers == ("BTC", "ETH", "LTC") and spec.lookback == 1
    with pytest.raises(ConfigError, match="expects 3 tickers"):
        load_model_spec(_trial(fixtures_dir, "trial_7_1h"), ["BTC", "ETH"])


def test_model_spec_requested_tickers_rules(fixtures_dir: Path) -> None:
    d = _trial(fixtures_dir, "trial_12_1h")
    spec = load_model_spec(d, ["BTC", "ETH"])
    assert spec.tickers == DEFAULT_TRAINING_TICKERS
    assert any("model expects 7 tickers; requested 2" in w for w in spec.warnings)
    config_order = ["AAVE", "AVAX", "BTC", "LINK", "ETH", "LTC", "UNI"]
    spec = load_model_spec(d, config_order)
    assert spec.tickers == DEFAULT_TRAINING_TICKERS


def test_model_spec_missing_metadata_command(fixtures_dir: Path, tmp_path: Path) -> None:
    d = _copy(fixtures_dir, "trial_12_1h", tmp_path)
    with pytest.raises(ConfigError) as err:
        load_model_spec(d)
    text = str(err.value)
    assert f"cappuccino-paper trial-metadata --trial-id 12 --output-dir {d}" in text
    assert "best_trial" in text and MANIFEST_FILE in text


def test_model_manifest_sha_mismatch_refused(fixtures_dir: Path, tmp_path: Path) -> None:
    from cappuccino_daemon.model.trial_metadata import write_trial_metadata

    d = _copy(fixtures_dir, "trial_12_1h", tmp_path)
    write_trial_metadata(
        d, db=fixtures_dir / "databases" / "optuna_cappuccino.db", study="cappuccino_alpaca_v2", number=12
    )
    assert load_model_spec(d).source.origin == "manifest"
    # Swap in other weights of the same shape: the pinned sha256 must catch it.
    shutil.copy(_trial(fixtures_dir, "trial_12_1h") / "actor_00000762_00000.213.pth", d / "actor.pth")
    with pytest.raises(ConfigError) as err:
        load_model_spec(d)
    assert "another actor.pth" in str(err.value) and "trial-metadata" in str(err.value)


def test_model_manifest_wrong_tickers_and_bad_json(fixtures_dir: Path, tmp_path: Path) -> None:
    from cappuccino_daemon.model.trial_metadata import write_trial_metadata

    d = _copy(fixtures_dir, "trial_7_1h", tmp_path)
    write_trial_metadata(
        d,
        db=fixtures_dir / "databases" / "optuna_cappuccino.db",
        study="cappuccino_alpaca_v2",
        number=7,
        tickers=["BTC", "ETH", "LTC"],
    )
    spec = load_model_spec(d, ["LTC", "ETH", "BTC"])
    assert spec.tickers == ("BTC", "ETH", "LTC") and any("reordered" in w for w in spec.warnings)
    with pytest.raises(ConfigError, match="trained on BTC, ETH, LTC"):
        load_model_spec(d, ["BTC", "ETH", "SOL"])
    raw = json.loads((d / MANIFEST_FILE).read_text())
    raw["lookback"] = 2
    (d / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match=r"lookback 2 \(checkpoint: 1\)"):
        load_model_spec(d)
    (d / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_model_spec(d)
    raw["format"] = "cappuccino-manifest/99"
    (d / MANIFEST_FILE).write_text(json.dumps(raw))
    with pytest.raises(ConfigError, match="cappuccino-manifest/99"):
        load_model_spec(d)


def test_model_normalise_ticker() -> None:
    assert [normalise_ticker(t) for t in ("btc/usd", "BTCUSD", "BTC-USDT", " eth ")] == [
        "BTC",
        "BTC",
        "BTC",
        "ETH",
    ]


def test_model_manifest_duplicate_tickers_and_bad_numbers_refused(fixtures_dir: Path, tmp_path: Path) -> None:
    from cappuccino_daemon.model.trial_metadata import write_trial_metadata

    d = _copy(fixtures_dir, "trial_7_1h", tmp_path)
    write_trial_metadata(
        d,
        db=fixtures_dir / "databases" / "optuna_cappuccino.db",
        study="cappuccino_alpaca_v2",
        number=7,
        tickers=["BTC", "ETH", "LTC"],
    )
    good = json.loads((d / MANIFEST_FILE).read_text())
    for path, value, message in (
        (("tickers",), ["BTC", "BTC", "LTC"], "name a ticker twice"),
        (("normalisation", "action"), -1000.0, "normalisation.action must be positive"),
        (("normalisation", "cash"), float("nan"), "normalisation.cash must be positive"),
        (("env_profile", "initial_capital"), 0.0, "env_profile.initial_capital must be positive"),
    ):
        raw = json.loads(json.dumps(good))
        target = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        (d / MANIFEST_FILE).write_text(json.dumps(raw))
        with pytest.raises(ConfigError, match=message):
            load_model_spec(d)
