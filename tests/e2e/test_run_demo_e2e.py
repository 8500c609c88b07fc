"""The README's run path, headless: build the demo model, start the daemon, see orders filled, Ctrl-C.

This is what `make run` does on a fresh clone (`cappuccino-paper demo --dir demo` when
`demo/best_model/actor.pth` is missing, then `cappuccino-paper run --config config/daemon.toml`), in a
fresh temporary copy of the shipped config so nothing of the checkout is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from books import assert_books_agree, quiet_snapshot

from cappuccino_daemon.demo.layout import demo_model_ready

RUN_BUDGET_S = 150.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _filled_orders(state_dir: Path) -> int:
    total = 0
    for journal in (state_dir / "journal").glob("*.sqlite"):
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
            total += db.execute("SELECT COUNT(*) FROM fills").fetchone()[0]
    return total


def test_readme_run_path_trades_the_demo_model_and_stops_cleanly(tmp_path: Path, repo_root: Path) -> None:
    """Fresh copy → demo model → daemon → filled orders in the journal → SIGINT → exit 0."""
    (tmp_path / "config").mkdir()
    shutil.copy(repo_root / "config" / "daemon.toml", tmp_path / "config" / "daemon.toml")
    port = _free_port()
    env = {
        **os.environ,
        "CAPPUCCINO_EMULATOR__PORT": str(port),
        "CAPPUCCINO_EMULATOR__SPEED": "1800",  # an hourly bar every 2 s
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("NOTIFY_SOCKET", None)
    cli = [sys.executable, "-m", "cappuccino_daemon"]

    _build_demo_model(cli, tmp_path, env)

    log_path = tmp_path / "daemon.log"
    with log_path.open("w") as log:
        daemon = subprocess.Popen(
            [*cli, "run", "--config", "config/daemon.toml"], cwd=tmp_path, env=env, stdout=log, stderr=log
        )
    state_dir = tmp_path / "state"
    try:
        _trade_until_books_agree(daemon, state_dir, port, log_path)
        status = subprocess.run(
            [*cli, "status", "--config", "config/daemon.toml", "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert status.returncode == 0, status.stderr[-2000:]
        assert json.loads(status.stdout)["running"] is True
    finally:
        if daemon.poll() is None:
            daemon.send_signal(signal.SIGINT)  # what Ctrl-C does in the foreground
        try:
            code = daemon.wait(timeout=90)
        except subprocess.TimeoutExpired:
            daemon.kill()
            raise
    text = log_path.read_text()
    assert code == 0, text[-4000:]
    events = [json.loads(line)["event"] for line in text.splitlines() if line.startswith("{")]
    for expected in ("validate_ok", "child_spawn", "child_first_heartbeat", "supervisor_exit"):
        assert any(expected in event for event in events), (expected, sorted(set(events))[:60])
    assert (state_dir / "supervisor.json").is_file()


def _build_demo_model(cli: list[str], tmp_path: Path, env: dict[str, str]) -> None:
    """`make run`'s first step on a fresh clone: a tiny demo study whose best trial becomes the model."""
    assert not demo_model_ready(tmp_path / "demo")
    demo = subprocess.run(
        [*cli, "demo", "--dir", "demo", "--trials", "1", "--seconds", "8", "--max-updates", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    assert demo_model_ready(tmp_path / "demo")
    manifest = json.loads((tmp_path / "demo" / "best_model" / "cappuccino_manifest.json").read_text())
    assert "not a strategy" in json.dumps(manifest)


def _trade_until_books_agree(
    daemon: subprocess.Popen[bytes], state_dir: Path, port: int, log_path: Path
) -> None:
    """Wait for two filled orders, then check journal, virtual books and broker at a quiet instant."""
    deadline = time.monotonic() + RUN_BUDGET_S
    fills = 0
    while time.monotonic() < deadline and daemon.poll() is None:
        fills = _filled_orders(state_dir) if (state_dir / "journal").is_dir() else 0
        if fills >= 2:
            break
        time.sleep(1.0)
    assert daemon.poll() is None, f"daemon exited early:\n{log_path.read_text()[-4000:]}"
    assert fills >= 2, f"no filled orders within {RUN_BUDGET_S}s:\n{log_path.read_text()[-4000:]}"
    # Not only fills: journal, virtual books and broker agree, read at a quiet instant of the worker.
    (journal_path,) = (state_dir / "journal").glob("*.sqlite")
    snapshot = None
    while snapshot is None and time.monotonic() < deadline + 60 and daemon.poll() is None:
        snapshot = quiet_snapshot(journal_path, f"http://127.0.0.1:{port}")
        time.sleep(0.1)
    assert snapshot is not None, f"the worker was never quiet:\n{log_path.read_text()[-4000:]}"
    assert_books_agree(*snapshot)
