"""Model intake: FinRL_Crypto ``ticker_list``, inspect of unknown tickers, trial-metadata refusals.

Folders are built in tmp_path the way the training code builds them: a legacy PPO ``actor.pth``
state_dict and a ``best_trial`` pickled from a real in-memory Optuna study (model/testing.py).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from cappuccino_daemon.cli import main
from cappuccino_daemon.errors import EX_CONFIG, ConfigError
from cappuccino_daemon.model.checkpoint import read_checkpoint
from cappuccino_daemon.model.loader import load_model_spec
from cappuccino_daemon.model.manifest import MANIFEST_FILE, read_manifest
from cappuccino_daemon.model.spec import DEFAULT_TRAINING_TICKERS
from cappuccino_daemon.model.testing import (
    cappuccino_params,
    finrl_crypto_params,
    write_best_trial,
    write_tiny_actor,
)
from cappuccino_daemon.model.trial_metadata import write_trial_metadata

FINRL_TICKERS = ["LTCUSDT", "BTCUSDT", "ETHUSDT"]  # stored (training) order, deliberately not sorted


def _finrl_folder(tmp_path: Path, ticker_list: list[str] | None = FINRL_TICKERS, n: int = 3) -> Path:
    d = tmp_path / "trial_5_1h"
    write_tiny_actor(d, n)
    write_best_trial(d, finrl_crypto_params(8, 1), ticker_list=ticker_list)
    return d


def _legacy5(tmp_path: Path) -> Path:
    """A 5-ticker Cappuccino-style folder: best_trial without any ticker record, no manifest."""
    d = tmp_path / "trial_9_1h"
    write_tiny_actor(d, 5, lookback=2)
    write_best_trial(d, cappuccino_params(8, 2))
    return d


def _no_ticker_assumption(warnings: tuple[str, ...] | list[str]) -> bool:
    return not any("tickers" in w and "assuming" in w for w in warnings)


def test_ticker_list_is_normalised_in_stored_order(tmp_path: Path) -> None:
    spec = load_model_spec(_finrl_folder(tmp_path))
    assert spec.tickers == ("LTC", "BTC", "ETH")  # BTCUSDT -> BTC, training order kept (not sorted)
    assert spec.source.origin == "best_trial" and spec.profile.name == "finrl-crypto"
    assert spec.norms.cash == 2.0**-12 and spec.norms.action == 10000.0
    assert _no_ticker_assumption(spec.warnings)


def test_ticker_list_requests_are_reordered_or_refused(tmp_path: Path) -> None:
    d = _finrl_folder(tmp_path)
    spec = load_model_spec(d, ["BTC", "ETH", "LTC"])
    assert spec.tickers == ("LTC", "BTC", "ETH")
    assert any("reordered to the model's state order LTC, BTC, ETH" in w for w in spec.warnings)
    with pytest.raises(ConfigError, match="trained on LTC, BTC, ETH"):
        load_model_spec(d, ["BTC", "ETH", "SOL"])


def test_ticker_list_wins_over_the_seven_ticker_default(tmp_path: Path) -> None:
    recorded = ["SOLUSDT", "DOGEUSDT", "BTCUSDT", "ETHUSDT", "XRPUSDT", "ADAUSDT", "DOTUSDT"]
    d = _finrl_folder(tmp_path, recorded, n=7)
    spec = load_model_spec(d)
    assert spec.tickers == ("SOL", "DOGE", "BTC", "ETH", "XRP", "ADA", "DOT")
    assert spec.tickers != DEFAULT_TRAINING_TICKERS and _no_ticker_assumption(spec.warnings)


def test_manifest_wins_over_ticker_list(tmp_path: Path) -> None:
    d = _finrl_folder(tmp_path)
    _, manifest = write_trial_metadata(d, from_best_trial=True, tickers=["SOL", "ADA", "XRP"], force=True)
    assert manifest.tickers == ["SOL", "ADA", "XRP"]
    assert any("--force" in n and "ticker_list" in n for n in manifest.notes)
    spec = load_model_spec(d)
    assert spec.source.origin == "manifest" and spec.tickers == ("SOL", "ADA", "XRP")


def test_ticker_list_of_the_wrong_length_names_both_numbers(tmp_path: Path) -> None:
    d = _finrl_folder(tmp_path, FINRL_TICKERS, n=5)
    with pytest.raises(ConfigError) as err:
        load_model_spec(d)
    text = str(err.value)
    assert "names 3 tickers" in text and "5 actions" in text and "T1,T2,T3,T4,T5" in text
    with pytest.raises(ConfigError, match="names 3 tickers"):
        write_trial_metadata(d, from_best_trial=True)
    assert not (d / MANIFEST_FILE).exists()
    five = ["BTC", "ETH", "LTC", "SOL", "ADA"]
    _, manifest = write_trial_metadata(d, from_best_trial=True, tickers=five, force=True)
    assert any(n.startswith("--force: ignored the trial's user_attrs.ticker_list") for n in manifest.notes)
    assert load_model_spec(d).tickers == tuple(five)  # the manifest wins over the mismatched record


def test_malformed_ticker_list_is_refused(tmp_path: Path) -> None:
    d = _finrl_folder(tmp_path, None)
    write_best_trial(d, finrl_crypto_params(8, 1), ticker_list=["BTCUSDT", "BTC/USD", "ETHUSDT"])
    with pytest.raises(ConfigError, match="names a ticker twice"):
        load_model_spec(d)


def test_trial_metadata_pins_ticker_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _finrl_folder(tmp_path)
    argv = ["trial-metadata", "--from-best-trial", "--output-dir", str(d)]
    assert main([*argv, "--tickers", "BTC,ETH,SOL"]) == EX_CONFIG  # disagrees with the record
    assert "disagrees with the trial's user_attrs.ticker_list" in capsys.readouterr().err
    assert main([*argv, "--tickers", "ETH,BTC,LTC"]) == 0  # same set: put into the training order
    manifest = read_manifest(d)
    assert manifest is not None and manifest.tickers == ["LTC", "BTC", "ETH"]
    (d / MANIFEST_FILE).unlink()
    assert main(argv) == 0
    manifest = read_manifest(d)
    assert manifest is not None and manifest.tickers == ["LTC", "BTC", "ETH"]
    assert manifest.actor_sha256 == read_checkpoint(d).sha256
    assert manifest.env_profile.name == "finrl-crypto"


def test_public_checkpoint_with_finrl_crypto_best_trial(
    fixtures_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trial_7_1h's real weights, with the best_trial FinRL_Crypto's optimiser would have written."""
    monkeypatch.chdir(tmp_path)  # validate must not pick up the repo's config/daemon.toml
    d = tmp_path / "trial_7_1h"
    d.mkdir()
    shutil.copy(fixtures_dir / "train_results" / "cwd_tests" / "trial_7_1h" / "actor.pth", d / "actor.pth")
    info = read_checkpoint(d)
    arrays = {  # FinRL_Crypto's optimiser also stores the training arrays in user_attrs
        "price_array": np.linspace(1.0, 2.0, 30).reshape(10, 3),
        "technical_indicator_list": ["open", "high", "low", "close", "volume", "macd"],
    }
    bt = finrl_crypto_params(info.net_dim, 1)
    write_best_trial(d, bt, ticker_list=["BTCUSDT", "ETHUSDT", "LTCUSDT"], extra_attrs=arrays)
    spec = load_model_spec(d)  # used to be refused: "no manifest saying which ones"
    assert spec.tickers == ("BTC", "ETH", "LTC") and spec.lookback == 1 and spec.net_dim == info.net_dim
    assert main(["validate", "--model-dir", str(d)]) == 0
    _, manifest = write_trial_metadata(d, from_best_trial=True)
    assert manifest.tickers == ["BTC", "ETH", "LTC"] and manifest.actor_sha256 == info.sha256
    assert "price_array" not in manifest.user_attrs and manifest.user_attrs["ticker_list"][0] == "BTCUSDT"


def test_inspect_describes_unknown_tickers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = _legacy5(tmp_path)
    assert main(["inspect", str(d), "--json", "--generate-command"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tickers"] is None and report["n_tickers"] == 5 and report["action_dim"] == 5
    assert (report["state_dim"], report["net_dim"], report["lookback"]) == (1 + 5 + 5 * 11 * 2, 8, 2)
    assert report["n_features"] == 11 and report["norms"]["cash"] == 2.0**-12
    assert report["env_profile"]["name"] == "cappuccino-nov2025" and report["worker_command"] is None
    pin = f"cappuccino-paper trial-metadata --from-best-trial --output-dir {d} --tickers T1,T2,T3,T4,T5"
    assert any("tickers unknown" in w and pin in w for w in report["warnings"])
    assert main(["inspect", str(d)]) == 0
    text = capsys.readouterr().out
    assert "UNKNOWN (5 positions" in text and "state_dim 116" in text and pin in text


def test_serving_paths_keep_refusing_unknown_tickers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # validate must not pick up the repo's config/daemon.toml
    d = _legacy5(tmp_path)
    with pytest.raises(ConfigError, match="trades 5 tickers"):
        load_model_spec(d)  # what the worker calls
    assert main(["validate", "--model-dir", str(d)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "--tickers T1,T2,T3,T4,T5" in err and "BTC,ETH,LTC" not in err
    bars = tmp_path / "bars"
    bars.mkdir()
    assert main(["replay", "--model-dir", str(d), "--bars-dir", str(bars), "--out", "x.jsonl"]) == EX_CONFIG
    assert "trades 5 tickers" in capsys.readouterr().err
    assert main(["trial-metadata", "--from-best-trial", "--output-dir", str(d)]) == EX_CONFIG
    err = capsys.readouterr().err
    assert "--tickers T1,T2,T3,T4,T5" in err and "BTC,ETH,LTC" not in err
    assert (
        main(["trial-metadata", "--from-best-trial", "--output-dir", str(d), "--tickers", "A,B,C,D,E"]) == 0
    )
    assert load_model_spec(d).tickers == ("A", "B", "C", "D", "E")


def test_trial_metadata_refuses_folder_without_actor(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = tmp_path / "trial_4_1h"
    write_best_trial(d, cappuccino_params(8, 1))
    argv = ["trial-metadata", "--from-best-trial", "--output-dir", str(d)]
    assert main(argv) == EX_CONFIG
    err = capsys.readouterr().err
    assert "actor.pth does not exist" in err and "--force" in err and err.count("\n") == 1
    assert not (d / MANIFEST_FILE).exists()
    assert main([*argv, "--force"]) == 0
    manifest = json.loads((d / MANIFEST_FILE).read_text())
    assert manifest["actor_sha256"] is None
    assert any(n.startswith("--force: written although actor.pth missing") for n in manifest["notes"])


def test_trial_metadata_refuses_a_non_ppo_actor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "trial_4_1h"
    d.mkdir()
    torch.save(
        {"net_state.0.weight": torch.zeros(8, 37), "net_a_avg.0.weight": torch.zeros(3, 8)}, d / "actor.pth"
    )
    write_best_trial(d, finrl_crypto_params(8, 1), ticker_list=FINRL_TICKERS)
    argv = ["trial-metadata", "--from-best-trial", "--output-dir", str(d)]
    assert main(argv) == EX_CONFIG
    err = capsys.readouterr().err
    assert "SAC" in err and "Refusing to write cappuccino_manifest.json" in err
    assert not (d / MANIFEST_FILE).exists()
    assert main([*argv, "--force"]) == 0
    manifest = json.loads((d / MANIFEST_FILE).read_text())
    assert manifest["tickers"] == ["LTC", "BTC", "ETH"]
    assert any("not a usable PPO actor" in n for n in manifest["notes"])


def test_model_path_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # validate must not pick up the repo's config/daemon.toml
    d = _finrl_folder(tmp_path)
    for cmd in (["inspect", str(d / "actor.pth")], ["validate", "--model-dir", str(d / "best_trial")]):
        assert main(cmd) == EX_CONFIG
        err = capsys.readouterr().err
        assert "does not exist" not in err and f"--model-dir {d}" in err, err
    assert main(["inspect", str(d / "actor.pth")]) == EX_CONFIG
    assert "is a checkpoint file, not the trial folder" in capsys.readouterr().err


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_ticker_list_cannot_smuggle_code(tmp_path: Path) -> None:
    """A FrozenTrial whose ticker_list holds a callable is refused by the restricted unpickler."""
    d = _finrl_folder(tmp_path)
    marker = tmp_path / "pwned"
    trial = optuna.trial.FrozenTrial(
        number=0, state=optuna.trial.TrialState.COMPLETE, value=1.0, datetime_start=None,
        datetime_complete=None, params={}, distributions={}, user_attrs={"ticker_list": [_Boom(marker)]},
        system_attrs={}, intermediate_values={}, trial_id=0,
    )  # fmt: skip
    (d / "best_trial").write_bytes(pickle.dumps(trial))
    with pytest.raises(ConfigError, match="refused global"):
        load_model_spec(d)
    assert not marker.exists()
