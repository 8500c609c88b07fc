"""SIGKILL the worker process before, during and after a submit; the restart sends nothing twice and
loses nothing. Real subprocesses, a real emulator on loopback, the real journal."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from worker_support import TICKERS, Model, all_orders, broker_for

from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.worker.build import WorkerOptions, build_loop


def worker_cmd(model: Model, emu: EmulatorThread, tmp: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "cappuccino_daemon",
        "worker",
        "--model-dir",
        str(model.dir),
        "--tickers",
        *TICKERS,
        "--broker-url",
        emu.base_url,
        "--state-dir",
        str(tmp),
        "--journal",
        str(tmp / "j.sqlite"),
        "--max-cycles",
        "1",
        "--poll-interval",
        "0.2",
        "--fill-timeout",
        "5",
        "--grace",
        "5",
        *extra,
    ]


def worker_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALPACA_", "CAPPUCCINO_")) and k != "CREDENTIALS_DIRECTORY"
    }
    env["NO_PROXY"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def run_worker(
    model: Model, emu: EmulatorThread, tmp: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        worker_cmd(model, emu, tmp), env=env, cwd=tmp, capture_output=True, text=True, timeout=90
    )


def assert_exactly_once(emu: EmulatorThread, tmp: Path) -> None:
    orders = all_orders(emu)
    coids = [o["client_order_id"] for o in orders]
    assert coids, "the scenario must have sent at least one order"
    assert len(coids) == len(set(coids)), f"duplicate orders: {coids}"
    with Journal(tmp / "j.sqlite") as journal:
        intents = {i.client_order_id: i for i in journal.intents()}
        assert set(coids) <= set(intents), "an order at the broker is missing from the journal"
        for intent in intents.values():
            assert intent.status in ("filled", "rejected"), (intent.client_order_id, intent.status)
            if intent.status == "filled":
                assert intent.client_order_id in coids and intent.applied
        assert [c.status for c in journal.cycles()] == ["done"]
        assert len(journal.fills()) == sum(1 for o in orders if o["status"] == "filled")


@pytest.fixture
def emu_at_bar(emulator: EmulatorThread) -> EmulatorThread:
    emulator.advance(timedelta(seconds=10).total_seconds())
    return emulator


def restart_in_process(model: Model, emu: EmulatorThread, tmp: Path) -> None:
    """The restarted worker, run in-process (same code path as the CLI, minus the slow torch start)."""
    opts = WorkerOptions(
        model_dir=model.dir,
        tickers=TICKERS,
        state_dir=tmp,
        journal_file=tmp / "j.sqlite",
        max_clock_skew_s=None,
        poll_interval_s=0.1,
        fill_timeout_s=5.0,
    )
    loop = build_loop(opts, model.spec, model.policy, broker_for(emu))
    try:
        assert loop.step().kind == "traded"
    finally:
        loop.cycle.journal.close()


@pytest.mark.parametrize("point", ["cycle_journaled", "before_submit", "after_submit", "after_journal"])
def test_sigkill_at_point_then_restart(
    point: str, tmp_path: Path, tiny_model: Model, emu_at_bar: EmulatorThread
) -> None:
    crashed = run_worker(tiny_model, emu_at_bar, tmp_path, worker_env(CAPPUCCINO_TEST_CRASH_AT=point))
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    with Journal(tmp_path / "j.sqlite") as journal:
        assert [c.status for c in journal.cycles()] == ["executing"]  # it died mid-cycle
    restart_in_process(tiny_model, emu_at_bar, tmp_path)
    assert_exactly_once(emu_at_bar, tmp_path)


def test_sigkill_during_submit(tmp_path: Path, tiny_model: Model, emu_at_bar: EmulatorThread) -> None:
    """The POST is on the wire (the emulator holds it for 1.5 s) when the worker dies."""
    emu_at_bar.set_faults("orders_submit:latency=1.5:1:1")
    proc = subprocess.Popen(
        worker_cmd(tiny_model, emu_at_bar, tmp_path),
        env=worker_env(),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if (tmp_path / "j.sqlite").exists():
                db = sqlite3.connect(tmp_path / "j.sqlite", timeout=5)
                try:
                    sent = db.execute("SELECT COUNT(*) FROM intents WHERE attempts > 0").fetchone()[0]
                except sqlite3.OperationalError:
                    sent = 0
                db.close()
                if sent:
                    break
            assert proc.poll() is None, "worker ended before it submitted"
            time.sleep(0.05)
        time.sleep(0.3)  # inside the 1.5 s the emulator sits on the request
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = run_worker(tiny_model, emu_at_bar, tmp_path, worker_env())
    assert done.returncode == 0, done.stderr[-3000:]
    time.sleep(1.5)  # let the held request land (it must be refused as a duplicate or be the one order)
    assert_exactly_once(emu_at_bar, tmp_path)


def test_bad_credentials_exit_78(tmp_path: Path, tiny_model: Model) -> None:
    with EmulatorThread(synthetic_seed=3, require_keys=("PKGOODKEY00000000000", "good-secret")) as emu:
        result = subprocess.run(
            worker_cmd(tiny_model, emu, tmp_path),
            env=worker_env(ALPACA_API_KEY="PKWRONGKEY0000000000", ALPACA_API_SECRET="wrong-secret"),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 78, result.stderr[-2000:]
    assert "ALPACA_API_KEY" in result.stderr and "wrong-secret" not in result.stderr


def test_missing_credentials_for_alpaca_paper_exit_78(tmp_path: Path, tiny_model: Model) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cappuccino_daemon",
            "worker",
            "--model-dir",
            str(tiny_model.dir),
            "--tickers",
            *TICKERS,
            "--broker",
            "alpaca-paper",
            "--state-dir",
            str(tmp_path),
        ],
        env=worker_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    assert "No Alpaca credentials" in result.stderr
