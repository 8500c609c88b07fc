"""The ``emulator`` command as a real subprocess: ready file, clean SIGTERM, state surviving kill -9."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from cappuccino_daemon.emulator.options import EmulatorOptions
from cappuccino_daemon.emulator.store import StateStore
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.errors import ConfigError


@contextmanager
def emulator_process(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    ready = tmp_path / f"ready-{time.monotonic_ns()}"
    env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cappuccino_daemon",
            "emulator",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.stdout and proc.poll() is not None else ""
                raise AssertionError(f"emulator did not become ready (rc={proc.poll()}): {out}")
            time.sleep(0.05)
        yield proc, ready.read_text().strip()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        if proc.stdout:
            proc.stdout.close()


def test_state_survives_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "emulator.sqlite"
    args = ("--synthetic", "9", "--start", "2024-02-01T00:00:00Z", "--speed", "0", "--state", str(state))
    with emulator_process(tmp_path, *args) as (proc, url):
        client = TradingClient("k", "s", paper=True, url_override=url)
        client.submit_order(
            MarketOrderRequest(
                symbol="ETH/USD",
                qty=0.25,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.GTC,
                client_order_id="keep-1",
            )
        )
        requests.post(f"{url}/admin/clock/advance", json={"seconds": 7200}, timeout=10)
        resting = client.submit_order(
            LimitOrderRequest(
                symbol="BTC/USD", qty=0.2, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=100
            )
        )
        before = requests.get(f"{url}/admin/state", timeout=10).json()
        position = client.get_open_position("ETHUSD")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        assert proc.returncode == -signal.SIGKILL
    with emulator_process(tmp_path, *args) as (proc, url):
        after = requests.get(f"{url}/admin/state", timeout=10).json()
        client = TradingClient("k", "s", paper=True, url_override=url)
        assert after["resumed"] is True
        assert after["now"] == "2024-02-01T02:00:00+00:00"  # the clock resumes, --start is ignored
        assert (after["cash"], after["positions"], after["orders"]) == (
            before["cash"],
            before["positions"],
            before["orders"],
        )
        assert client.get_open_position("ETHUSD").qty == position.qty
        assert client.get_order_by_client_id("keep-1").status.value == "filled"
        assert client.get_order_by_id(resting.id).status.value == "new"
        assert float(client.get_account().buying_power) == pytest.approx(float(before["cash"]) - 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0  # a clean stop
    with sqlite3.connect(state) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM orders").fetchone()[0] == 2


def test_ready_file_is_touched_while_serving(tmp_path: Path) -> None:
    # The supervisor's liveness check for the embedded exchange: a frozen emulator stops touching it.
    with emulator_process(tmp_path, "--speed", "0") as (proc, _url):
        ready = next(tmp_path.glob("ready-*"))
        first = ready.stat().st_mtime_ns
        deadline = time.monotonic() + 5
        while ready.stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ready.stat().st_mtime_ns > first
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(0.1)
        frozen = ready.stat().st_mtime_ns
        time.sleep(1.5)
        assert ready.stat().st_mtime_ns == frozen
        os.kill(proc.pid, signal.SIGCONT)


def test_clock_never_goes_back_for_a_client_after_kill_9(tmp_path: Path) -> None:
    # At speed 3600 one wall second is a simulated hour: the clock saved up to ~1 s before the kill
    # trailed what the client had been shown, so a bar it saw closed would reopen after the restart.
    state = tmp_path / "emulator.sqlite"
    args = ("--synthetic", "3", "--start", "2024-03-01T00:00:00Z", "--speed", "3600", "--state", str(state))
    with emulator_process(tmp_path, *args) as (proc, url):
        time.sleep(1.5)
        seen = datetime.fromisoformat(requests.get(f"{url}/admin/state", timeout=10).json()["now"])
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    with emulator_process(tmp_path, *args) as (proc, url):
        resumed = datetime.fromisoformat(requests.get(f"{url}/admin/state", timeout=10).json()["now"])
        assert resumed >= seen
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        store = StateStore(state)
        stopped_at, clean = datetime.fromisoformat(store.get("clock")), store.get("clean_stop")
        store.close()
        assert clean is True
    with emulator_process(tmp_path, *args) as (proc, url):
        again = datetime.fromisoformat(requests.get(f"{url}/admin/state", timeout=10).json()["now"])
        assert timedelta(0) <= again - stopped_at < timedelta(seconds=3600)  # clean stop: no margin added


def test_state_refuses_another_market(tmp_path: Path) -> None:
    state = tmp_path / "s.sqlite"
    with EmulatorThread(synthetic_seed=1, state_file=state) as emu:
        emu.advance(60)
    with pytest.raises(ConfigError, match="was written for market"):
        EmulatorThread(synthetic_seed=2, state_file=state).start()
    (tmp_path / "junk.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database"):
        StateStore(tmp_path / "junk.sqlite")


def test_bad_cli_input_exits_78(tmp_path: Path) -> None:
    for args in (["--fault", "orders:teapot:1"], ["--bars-dir", str(tmp_path / "missing")]):
        result = subprocess.run(
            [sys.executable, "-m", "cappuccino_daemon", "emulator", "--port", "0", *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 78, result.stderr
        assert "emulator" in result.stderr


def test_options_default_to_loopback() -> None:
    options = EmulatorOptions()
    assert options.host == "127.0.0.1" and options.faults == [] and options.require_keys is None
    assert datetime.now(UTC).year >= 2024
