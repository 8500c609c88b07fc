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

from books import assert_books_agree, quiet_snapshot, wait_until_quiet

from cappuccino_daemon.demo.layout import demo_model_ready

RUN_BUDGET_S = 150.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _fill_sides(state_dir: Path) -> dict[str, set[str]]:
    """symbol -> the sides it was filled on, over every journal in the state folder."""
    sides: dict[str, set[str]] = {}
    for journal in (state_dir / "journal").glob("*.sqlite"):
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5) as db:
            for symbol, side in db.execute("SELECT symbol, side FROM fills"):
                sides.setdefault(str(symbol), set()).add(str(side))
    return sides


def _both_ways(sides: dict[str, set[str]]) -> list[str]:
    return sorted(s for s, seen in sides.items() if seen >= {"buy", "sell"})


def test_readme_run_path_trades_the_demo_model_and_stops_cleanly(tmp_path: Path, repo_root: Path) -> None:
    """Fresh copy → demo model → daemon → buys AND sells filled on two or more coins, books agree → SIGINT
    → exit 0.

    The demo is trained for a fixed 3 PPO updates (the update cap, not the clock, ends it: the same actor
    on every machine); the daemon's decisions are the actor's own, nothing is scripted.
    """
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
        shown = json.loads(status.stdout)
        assert shown["running"] is True
        assert shown["model"]["label"] == "demo model, not a strategy"
        assert shown["journal"]["counts"]["fills_by_side"]["sell"] >= 2
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
        [*cli, "demo", "--dir", "demo", "--trials", "1", "--seconds", "60", "--max-updates", "3"],
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
    """Wait for buys and sells filled on two coins, then check journal, books and broker when quiet."""
    deadline = time.monotonic() + RUN_BUDGET_S
    sides: dict[str, set[str]] = {}
    while time.monotonic() < deadline and daemon.poll() is None:
        sides = _fill_sides(state_dir) if (state_dir / "journal").is_dir() else {}
        if len(_both_ways(sides)) >= 2:
            break
        time.sleep(1.0)
    assert daemon.poll() is None, f"daemon exited early:\n{log_path.read_text()[-4000:]}"
    assert len(_both_ways(sides)) >= 2, (
        f"fills within {RUN_BUDGET_S}s were {sides}, not buys and sells on two coins:\n"
        f"{log_path.read_text()[-4000:]}"
    )
    # Not only fills: journal, virtual books and broker agree, read at a quiet instant of the worker.
    (journal_path,) = (state_dir / "journal").glob("*.sqlite")
    url = f"http://127.0.0.1:{port}"
    snapshot = wait_until_quiet(
        lambda: quiet_snapshot(journal_path, url), deadline + 60, lambda: daemon.poll() is None, log_path
    )
    assert_books_agree(*snapshot)
