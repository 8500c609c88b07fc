"""``trials --write-config`` over a real Optuna SQLite study, and ``validate`` over every model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cappuccino_daemon.config import load_settings
from cappuccino_daemon.errors import EX_CONFIG
from cappuccino_daemon.init_project import default_config_text
from cappuccino_daemon.model.manifest import read_manifest
from cappuccino_daemon.model.testing import cappuccino_params, write_tiny_actor, write_trading_stub

TICKERS = ["BTC", "ETH", "LTC"]


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def _study(project: Path) -> Path:
    """A real Optuna study: six COMPLETE trials (values 0..5), one FAIL, one PRUNED, in SQLite."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db = project / "databases" / "optuna_cappuccino.db"
    db.parent.mkdir(parents=True)
    study = optuna.create_study(study_name="tour", storage=f"sqlite:///{db}", direction="maximize")
    params = cappuccino_params(net_dim=8, lookback=1)
    for value in [3.0, 5.0, 1.0, 4.0, 0.0, 2.0]:
        trial = study.ask()
        for name, v in params.items():
            if isinstance(v, int):
                trial.suggest_int(name, v, v)
            else:
                trial.suggest_float(name, float(v), float(v))
        trial.set_user_attr("ticker_list", TICKERS)
        trial.set_user_attr("timeframe", "1h")
        study.tell(trial, value)
    study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)
    study.tell(study.ask(), state=optuna.trial.TrialState.PRUNED)
    return db


def _folder(project: Path, number: int) -> Path:
    return project / "train_results" / "cwd_tests" / f"trial_{number}_1h"


def test_write_config_takes_the_best_trials_that_can_trade(tmp_path: Path) -> None:
    """Ranks by value (1:5.0, 3:4.0, 0:3.0, 5:2.0, 2:1.0, 4:0.0); trial 3 has no folder; FAILs never count."""
    db = _study(tmp_path)
    for number in (
        0,
        1,
        2,
        5,
        6,
    ):  # 6 and 7 are the FAIL and PRUNED trials: a folder does not make them count
        write_tiny_actor(_folder(tmp_path, number), n_tickers=3, lookback=1, net_dim=8, seed=number)
    write_trading_stub(_folder(tmp_path, 0), ("BTC", "ETH", "LTC"))  # already pinned: kept as it is
    stub_manifest = (_folder(tmp_path, 0) / "cappuccino_manifest.json").read_bytes()
    out = tmp_path / "config" / "tournament.toml"

    res = _cli("trials", "--db", str(db), "--top", "3", "--write-config", str(out), "--capital-each", "250")
    assert res.returncode == 0, res.stderr
    raw = tomllib.loads(out.read_text(encoding="utf-8"))
    assert "model" not in raw
    assert [m["name"] for m in raw["models"]] == ["t1", "t0", "t5"]
    assert [m["dir"] for m in raw["models"]] == [f"train_results/cwd_tests/trial_{n}_1h" for n in (1, 0, 5)]
    assert all(m["capital"] == 250.0 for m in raw["models"])
    # Pinned first: the unpinned folders got a manifest from the database; the stub's is untouched.
    for number in (1, 5):
        manifest = read_manifest(_folder(tmp_path, number))
        assert manifest is not None and manifest.tickers == TICKERS and manifest.actor_sha256
        assert manifest.source.study == "tour" and manifest.source.number == number
    assert (_folder(tmp_path, 0) / "cappuccino_manifest.json").read_bytes() == stub_manifest
    assert not (_folder(tmp_path, 2) / "cappuccino_manifest.json").exists()  # not among the top 3
    # The rest of the file is the packaged default: every other table and comment as shipped.
    default = tomllib.loads(default_config_text().decode())
    assert {k: v for k, v in raw.items() if k != "models"} == {
        k: v for k, v in default.items() if k != "model"
    }
    # Our own loader accepts it, and validate checks all three models.
    settings = load_settings(out)
    assert [e.name for e in settings.models_list] == ["t1", "t0", "t5"]
    assert settings.models_list[0].dir == _folder(tmp_path, 1).resolve()
    res = _cli("validate", "--config", str(out))
    assert res.returncode == 0, res.stderr
    assert [line.split(":")[0] for line in res.stdout.splitlines()] == ["OK t1", "OK t0", "OK t5"]
    assert "capital 250" in res.stdout


def test_write_config_default_capital_fewer_trials_and_no_overwrite(tmp_path: Path) -> None:
    db = _study(tmp_path)
    write_tiny_actor(_folder(tmp_path, 2), n_tickers=3, lookback=1, net_dim=8)
    out = tmp_path / "t.toml"
    res = _cli("trials", "--db", str(db), "--study", "tour", "--top", "4", "--write-config", str(out))
    assert res.returncode == 0, res.stderr
    assert "1 models (asked for 4" in res.stdout
    (entry,) = tomllib.loads(out.read_text())["models"]
    manifest = read_manifest(_folder(tmp_path, 2))
    assert manifest is not None and entry["capital"] == manifest.env_profile.initial_capital
    before = out.read_bytes()
    res = _cli("trials", "--db", str(db), "--top", "1", "--write-config", str(out))
    assert res.returncode == EX_CONFIG and "already exists" in res.stderr and "--force" in res.stderr
    assert out.read_bytes() == before


def test_write_config_refusals_are_one_paragraph(tmp_path: Path) -> None:
    db = _study(tmp_path)
    out = tmp_path / "t.toml"
    res = _cli("trials", "--db", str(db), "--top", "2", "--write-config", str(out))
    assert res.returncode == EX_CONFIG and "can trade" in res.stderr and "--results-dir" in res.stderr
    assert not out.exists()
    res = _cli("trials", "--db", str(db), "--write-config", str(out), "--capital-each", "-3")
    assert res.returncode == 2 and "positive" in res.stderr
    res = _cli("trials", "--db", str(db), "--capital-each", "3")
    assert res.returncode == 2 and "need --write-config" in res.stderr


def test_validate_reports_every_broken_model_before_anything_trades(tmp_path: Path) -> None:
    good = write_trading_stub(tmp_path / "m" / "good", ("BTC", "ETH"))
    (tmp_path / "m" / "empty").mkdir()
    torn = write_trading_stub(tmp_path / "m" / "torn", ("BTC", "ETH"))
    (torn / "actor.pth").write_bytes((torn / "actor.pth").read_bytes()[:100])
    cfg = tmp_path / "daemon.toml"
    cfg.write_text(
        "".join(
            f'[[models]]\ndir = "m/{d.name}"\ncapital = 100\n' for d in (good, tmp_path / "m" / "empty", torn)
        )
    )
    res = _cli("validate", "--config", str(cfg))
    assert res.returncode == EX_CONFIG, res.stdout
    assert "2 of 3 models failed" in res.stderr
    assert "Model 'empty'" in res.stderr and "Model 'torn'" in res.stderr and "'good'" not in res.stderr
    assert "OK" not in res.stdout


def test_write_config_over_the_fixture_study(fixtures_dir: Path, tmp_path: Path) -> None:
    """The shared fixture DB: trial 12 pins from the DB; trial 7 records no tickers and is skipped, named."""
    db = tmp_path / "databases" / "optuna_cappuccino.db"
    db.parent.mkdir()
    shutil.copy(fixtures_dir / "databases" / "optuna_cappuccino.db", db)
    for name in ("trial_12_1h", "trial_7_1h"):
        src = fixtures_dir / "train_results" / "cwd_tests" / name
        (tmp_path / "train_results" / "cwd_tests" / name).mkdir(parents=True)
        shutil.copy(src / "actor.pth", tmp_path / "train_results" / "cwd_tests" / name / "actor.pth")
    out = tmp_path / "config" / "daemon.toml"
    res = _cli("trials", "--db", str(db), "--top", "2", "--write-config", str(out))
    assert res.returncode == EX_CONFIG and "--study" in res.stderr and "cappuccino_alpaca_v2" in res.stderr
    res = _cli(
        "trials", "--db", str(db), "--study", "cappuccino_alpaca_v2", "--top", "2", "--write-config", str(out)
    )
    assert res.returncode == 0, res.stderr
    assert "skipped trial 7" in res.stderr and "--number 7" in res.stderr
    (entry,) = tomllib.loads(out.read_text())["models"]
    assert entry["name"] == "t12" and entry["dir"] == "train_results/cwd_tests/trial_12_1h"
    manifest = json.loads((tmp_path / entry["dir"] / "cappuccino_manifest.json").read_text())
    assert manifest["source"]["trial_id"] == 74


@pytest.fixture()
def fixtures_dir(fixtures_dir: Path) -> Path:
    if not (fixtures_dir / "databases" / "optuna_cappuccino.db").is_file():
        pytest.skip(f"the shared fixture DB is absent ({fixtures_dir}); it comes with ../shared")
    return fixtures_dir
