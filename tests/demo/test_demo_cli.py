"""``cappuccino-paper demo`` as a user runs it: a real subprocess, real exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import optuna


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_demo_command_writes_a_loadable_model_into_the_default_dir(tmp_path: Path) -> None:
    proc = _cli("demo", "--trials", "1", "--seconds", "30", "--max-updates", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "not a strategy" in proc.stdout
    demo = tmp_path / "demo"  # default --dir is ./demo relative to the working directory
    assert (demo / "best_model" / "actor.pth").is_file()
    assert (demo / "best_model" / "cappuccino_manifest.json").is_file()
    study = optuna.load_study(
        study_name="cappuccino_demo", storage=f"sqlite:///{demo / 'databases/optuna_cappuccino.db'}"
    )
    assert len(study.trials) == 1 and study.trials[0].state == optuna.trial.TrialState.COMPLETE
    assert (
        "demo_trial_done" in proc.stderr and "not a strategy" in proc.stderr
    )  # the log lines carry the label


def test_demo_refuses_a_dir_that_is_a_file_with_exit_78(tmp_path: Path) -> None:
    target = tmp_path / "afile"
    target.write_text("x")
    proc = _cli("demo", "--dir", str(target), cwd=tmp_path)
    assert proc.returncode == 78
    assert "is not a folder" in proc.stderr and "--dir" in proc.stderr


def test_demo_rejects_nonpositive_budget(tmp_path: Path) -> None:
    proc = _cli("demo", "--seconds", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "must be > 0" in proc.stderr


def test_demo_refuses_an_unwritable_dir_before_training(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    proc = _cli("demo", "--dir", str(blocker / "demo"), "--trials", "1", "--seconds", "5", cwd=tmp_path)
    assert proc.returncode == 78, proc.stderr[-2000:]
    assert "cannot create the demo folders" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli("demo", "--dir", str(tmp_path / "d"), "--log-level", "banana", cwd=tmp_path)
    assert proc.returncode == 2 and "'banana' is not a log level" in proc.stderr
    assert not (tmp_path / "d").exists()
