"""The README's tournament path, headless: the demo's three trials, `trials --write-config`, `run`,
three models trading one emulator account, then `status`, Ctrl-C.

Each model must fill orders with its own prefix and journal, and at a quiet instant the broker's
positions must be the sum of the models' books (up to the coin fee of the newest bar and rounding).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from books import assert_tournament_books_agree, quiet_tournament_snapshot, wait_until_quiet
from test_run_demo_e2e import RUN_BUDGET_S, _free_port


def _fills(journal: Path) -> int:
    with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
        return int(db.execute("SELECT count(*) FROM fills").fetchone()[0])


def test_readme_tournament_path_trades_three_demo_trials_on_one_account(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "CAPPUCCINO_EMULATOR__PORT": str(port),
        "CAPPUCCINO_EMULATOR__SPEED": "1800",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("NOTIFY_SOCKET", None)
    cli = [sys.executable, "-m", "cappuccino_daemon"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*cli, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240
        )
        assert done.returncode == 0, (args, done.stderr[-3000:])
        return done

    run("demo", "--dir", "demo", "--trials", "3", "--seconds", "60", "--max-updates", "3")
    (tmp_path / "config").mkdir()
    db = "demo/databases/optuna_cappuccino.db"
    written = run("trials", "--db", db, "--top", "3", "--write-config", "config/tournament.toml",
                  "--capital-each", "1000")  # fmt: skip
    assert "3 models" in written.stdout
    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [*cli, "run", "--config", "config/tournament.toml"], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    journals = tmp_path / "state" / "journal"
    try:
        deadline = time.monotonic() + RUN_BUDGET_S
        while time.monotonic() < deadline and daemon.poll() is None:
            paths = sorted(journals.glob("*.sqlite")) if journals.is_dir() else []
            if len(paths) == 3 and all(_fills(p) > 0 for p in paths):
                break
            time.sleep(1.0)
        assert daemon.poll() is None, log_path.read_text()[-4000:]
        paths = sorted(journals.glob("*.sqlite"))
        assert len(paths) == 3 and all(_fills(p) > 0 for p in paths), log_path.read_text()[-4000:]
        url = f"http://127.0.0.1:{port}"
        snapshot = wait_until_quiet(
            lambda: quiet_tournament_snapshot(paths, url),
            deadline + 60,
            lambda: daemon.poll() is None,
            log_path,
        )
        assert_tournament_books_agree(*snapshot)
        shown = json.loads(run("status", "--config", "config/tournament.toml", "--json").stdout)
        assert shown["running"] is True
        assert sorted(m["name"] for m in shown["models"]) == ["t0", "t1", "t2"]
        assert all(m["fills"] > 0 and m["equity"] is not None for m in shown["models"])
        board = json.loads(run("leaderboard", "--config", "config/tournament.toml", "--json").stdout)
        assert sorted(r["name"] for r in board) == ["t0", "t1", "t2"]
        returns = [r["return"] for r in board]
        assert returns == sorted(returns, reverse=True)  # best first
        by_name = {m["name"]: m for m in shown["models"]}
        for r in board:  # the same books as status reads them, and every field of the issue
            assert r["problem"] is None and r["trades"] >= by_name[r["name"]]["fills"] > 0
            assert r["objective"] is not None and r["fees_usd"] > 0 and r["max_drawdown"] <= 0
            assert r["sim_equity"] is not None and r["gap_usd"] == pytest.approx(
                r["equity"] - r["sim_equity"]
            )
            assert r["buy_and_hold_return"] is not None and r["vs_buy_and_hold"] is not None
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGINT)
        try:
            code = daemon.wait(timeout=90)
        except subprocess.TimeoutExpired:
            daemon.kill()
            raise
    assert code == 0, log_path.read_text()[-4000:]
