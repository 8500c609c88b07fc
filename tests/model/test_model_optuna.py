"""Optuna DB listing, trial-metadata round trip and the CLI over real subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.model.loader import load_model_spec
from cappuccino_daemon.model.optuna_db import best_trials, find_trials, open_db
from cappuccino_daemon.model.trial_metadata import write_trial_metadata
from cappuccino_daemon.model.trial_pickle import read_best_trial


@pytest.fixture()
def db(fixtures_dir: Path) -> Path:
    return fixtures_dir / "databases" / "optuna_cappuccino.db"


def _copy_actor(fixtures_dir: Path, name: str, tmp_path: Path) -> Path:
    d = tmp_path / name
    d.mkdir()
    shutil.copy(fixtures_dir / "train_results" / "cwd_tests" / name / "actor.pth", d / "actor.pth")
    return d


def test_model_db_best_trials_decoded(db: Path) -> None:
    with open_db(db) as conn:
        rows = best_trials(conn, top=3)
    v2 = [r for r in rows if r.study == "cappuccino_alpaca_v2"]
    assert v2[0].number == 12 and v2[0].trial_id == 74
    assert v2[0].params["batch_size"] == 1536 and v2[0].params["use_lr_schedule"] is False
    assert v2[0].params["net_dimension"] == 256 and isinstance(v2[0].params["net_dimension"], int)
    three = [r for r in rows if r.study.startswith("cappuccino_3workers")]
    assert three[0].number == 46 and three[0].trial_id == 47
    assert all(r.state == "COMPLETE" for r in rows)
    assert [r.value for r in three] == sorted((r.value for r in three), reverse=True)


def test_model_db_refusals(tmp_path: Path, db: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"), open_db(tmp_path / "x.db"):
        pass
    (tmp_path / "junk.db").write_text("hello")
    with pytest.raises(ConfigError, match="not an SQLite database"), open_db(tmp_path / "junk.db"):
        pass
    import sqlite3

    sqlite3.connect(tmp_path / "other.db").execute("CREATE TABLE t (a)").connection.commit()
    with pytest.raises(ConfigError, match="not an Optuna storage"), open_db(tmp_path / "other.db"):
        pass
    with open_db(db) as conn, pytest.raises(ConfigError, match="cappuccino_alpaca_v2"):
        best_trials(conn, study="nope")


def test_model_ambiguous_trial_id_lists_all(db: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    with open_db(db) as conn:
        matches = find_trials(conn, 12)
    assert {(t.study, t.number, t.trial_id) for t in matches} == {
        ("cappuccino_3workers_20251102_2325", 11, 12),
        ("cappuccino_3workers_20251102_2325", 12, 13),
        ("cappuccino_alpaca_v2", 12, 74),
    }
    d = _copy_actor(fixtures_dir, "trial_12_1h", tmp_path)
    with pytest.raises(ConfigError) as err:
        write_trial_metadata(d, db=db, trial_id=12)
    text = str(err.value)
    assert "ambiguous" in text and "--study" in text
    assert "trial_id 13" in text and "trial_id 74, COMPLETE" in text and "fits actor.pth" in text
    assert not (d / "cappuccino_manifest.json").exists()


def test_model_decoy_trial_refused(db: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    d = _copy_actor(fixtures_dir, "trial_12_1h", tmp_path)
    with pytest.raises(ConfigError, match=r"net_dimension 768 but actor\.pth is 256"):
        write_trial_metadata(d, db=db, study="cappuccino_3workers_20251102_2325", number=12)


def test_model_trial_metadata_round_trip(db: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    d = _copy_actor(fixtures_dir, "trial_12_1h", tmp_path)
    _, manifest = write_trial_metadata(
        d, db=db, trial_id=12, study="cappuccino_alpaca_v2", profile="finrl-crypto"
    )
    assert manifest.source.trial_id == 74 and manifest.actor_sha256
    spec = load_model_spec(d)
    legacy = load_model_spec(fixtures_dir / "train_results" / "cwd_tests" / "trial_12_1h")
    for field in (
        "state_dim",
        "net_dim",
        "action_dim",
        "lookback",
        "tickers",
        "features",
        "timeframe",
        "norms",
    ):
        assert getattr(spec, field) == getattr(legacy, field), field
    assert spec.params == legacy.params
    assert spec.source.origin == "manifest" and (spec.source.study, spec.source.number) == (
        "cappuccino_alpaca_v2",
        12,
    )
    assert spec.profile.name == "finrl-crypto" and spec.profile.initial_capital == 1_000_000
    assert spec.actor_sha256 == legacy.actor_sha256
    # The legacy pickle is a real optuna FrozenTrial and reads back through the restricted unpickler.
    record = read_best_trial(d / "best_trial")
    assert record.trial_id == 74 and record.params == legacy.params
    assert (
        record.user_attrs["name_folder"] == "cwd_tests/trial_12_1h"
        and record.user_attrs["model_name"] == "ppo"
    )


def test_model_trial_metadata_from_best_trial_3358(fixtures_dir: Path, tmp_path: Path) -> None:
    src = fixtures_dir / "train_results" / "cwd_tests" / "trial_3358_1h"
    d = tmp_path / "trial_3358_1h"
    d.mkdir()
    shutil.copy(src / "best_trial", d / "best_trial")
    shutil.copy(src / "actor.pth", d / "actor.pth")
    with pytest.raises(ConfigError, match=r"net_dimension 1280 but actor\.pth is 1984"):
        write_trial_metadata(d, from_best_trial=True)
    write_trial_metadata(d, from_best_trial=True, force=True)
    spec = load_model_spec(d)
    assert spec.net_dim == 1984 and spec.source.trial_id == 3508
    assert any("1280" in w for w in spec.warnings)


def test_model_trial_metadata_without_actor(db: Path, tmp_path: Path) -> None:
    out = tmp_path / "trial_7_1h"
    kwargs = {"db": db, "study": "cappuccino_alpaca_v2", "number": 7, "tickers": ["BTC", "ETH", "LTC"]}
    with pytest.raises(ConfigError, match=r"actor\.pth does not exist.*--force"):
        write_trial_metadata(out, **kwargs)  # type: ignore[arg-type]
    assert not (out / "cappuccino_manifest.json").exists()
    _, manifest = write_trial_metadata(out, force=True, **kwargs)  # type: ignore[arg-type]
    assert manifest.actor_sha256 is None and manifest.architecture.state_dim == 37
    assert any("not pinned" in n for n in manifest.notes)
    assert any("--force" in n and "actor.pth missing" in n for n in manifest.notes)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    return subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_model_cli_inspect_json(fixtures_dir: Path) -> None:
    res = _cli(
        "inspect",
        str(fixtures_dir / "train_results" / "cwd_tests" / "trial_7_1h"),
        "--json",
        "--tickers",
        "BTC,ETH,LTC",
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    for key in (
        "net_dim",
        "state_dim",
        "action_dim",
        "n_hidden_layers",
        "algorithm",
        "n_tickers",
        "tickers",
        "lookback",
        "n_features",
        "features",
        "timeframe",
        "params_source",
        "warnings",
    ):
        assert key in report
    assert (report["net_dim"], report["state_dim"], report["action_dim"], report["lookback"]) == (
        128,
        37,
        3,
        1,
    )
    assert report["tickers"] == ["BTC", "ETH", "LTC"] and report["n_features"] == 11


def test_model_cli_inspect_generate_and_refusal(fixtures_dir: Path, tmp_path: Path) -> None:
    res = _cli(
        "inspect", str(fixtures_dir / "train_results" / "cwd_tests" / "trial_12_1h"), "--generate-command"
    )
    assert res.returncode == 0, res.stderr
    assert (
        "cappuccino-paper worker --model-dir" in res.stdout
        and "--tickers AAVE,AVAX,BTC,ETH,LINK,LTC,UNI" in res.stdout
    )
    assert "[model]" in res.stdout and "lookback" in res.stdout.lower()
    res = _cli("inspect", str(tmp_path))
    assert res.returncode == 78 and "actor.pth" in res.stderr


def test_model_cli_trials_and_validate(fixtures_dir: Path, db: Path) -> None:
    res = _cli("trials", "--db", str(db), "--study", "cappuccino_alpaca_v2", "--top", "2", "--json")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)
    assert [r["trial_id"] for r in rows] == [74, 69]
    assert rows[0]["params"]["batch_size"] == 1536 and rows[0]["folder_exists"] is True
    res = _cli("validate", "--model-dir", str(fixtures_dir / "train_results" / "cwd_tests" / "trial_12_1h"))
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("OK trial_12_1h-") and "256/239/7" in res.stdout


def test_model_trial_metadata_refuses_duplicates_and_unwritable_dirs(
    db: Path, fixtures_dir: Path, tmp_path: Path
) -> None:
    d = _copy_actor(fixtures_dir, "trial_7_1h", tmp_path)
    with pytest.raises(ConfigError, match="names a ticker twice"):
        write_trial_metadata(d, db=db, study="cappuccino_alpaca_v2", number=7, tickers=["BTC", "btc", "LTC"])
    assert not (d / "cappuccino_manifest.json").exists()
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="Cannot write the trial metadata"):
        write_trial_metadata(
            blocker / "t",
            db=db,
            study="cappuccino_alpaca_v2",
            number=7,
            tickers=["BTC", "ETH", "LTC"],
            force=True,  # without actor.pth only --force gets as far as writing
        )
    with pytest.raises(ConfigError, match="is a file"):
        write_trial_metadata(blocker, db=db, study="cappuccino_alpaca_v2", number=7)
    # A refused trial leaves no stray folder behind.
    with pytest.raises(ConfigError):
        write_trial_metadata(tmp_path / "typo", db=db, study="cappuccino_alpaca_v2", number=99999)
    assert not (tmp_path / "typo").exists()


def test_model_cli_trials_top_must_be_positive(db: Path) -> None:
    proc = _cli("trials", "--db", str(db), "--top", "0")
    assert proc.returncode == 2 and "must be >= 1" in proc.stderr
