"""One account, one trader: real worker processes on one emulator account, and the capital check."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from test_worker_crash import worker_cmd, worker_env
from worker_support import Model, all_orders, broker_for

from cappuccino_daemon.accountlock import ENV_FD, AccountLock, LockHolder
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.errors import EX_CONFIG


def _forever(cmd: list[str]) -> list[str]:
    """The worker command without --max-cycles: it keeps the account until stopped."""
    i = cmd.index("--max-cycles")
    return cmd[:i] + cmd[i + 2 :]


def test_a_second_worker_on_the_same_account_is_refused_naming_the_first(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    locks = tmp_path / "locks"
    env = worker_env(CAPPUCCINO_PATHS__LOCKS=str(locks))
    first_state, second_state = tmp_path / "a", tmp_path / "b"
    first_state.mkdir()
    second_state.mkdir()
    first = subprocess.Popen(
        _forever(worker_cmd(tiny_model, emulator, first_state)),
        env=env,
        cwd=first_state,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120  # a generous bound on torch start-up, not a timing assertion
        while not (first_state / "account.json").exists():  # written once the lock is held
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            assert time.monotonic() < deadline, "the first worker never took the account"
            time.sleep(0.05)
        second = subprocess.run(
            worker_cmd(tiny_model, emulator, second_state),
            env=env,
            cwd=second_state,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert second.returncode == EX_CONFIG, second.stderr[-2000:]
        account_id = broker_for(emulator).get_account().account_id
        assert f"Broker account {account_id} is already traded" in second.stderr
        assert f"the worker pid {first.pid}" in second.stderr and str(first_state) in second.stderr
        assert not (second_state / "j.sqlite").exists()  # refused before its journal or any order
        assert first.poll() is None  # the first trader is untouched
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)


def test_a_worker_adopts_the_lock_its_supervisor_hands_down(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    """The test plays the supervisor: it holds the account's lock and passes the descriptor on."""
    emulator.advance(10.0)  # past a bar close: the worker trades one cycle and exits 0
    locks = tmp_path / "locks"
    account_id = broker_for(emulator).get_account().account_id
    held = AccountLock(account_id, locks)
    held.acquire(LockHolder.me("supervisor", account_id, None, tmp_path))
    assert held.fd is not None
    try:
        done = subprocess.run(
            worker_cmd(tiny_model, emulator, tmp_path),
            env=worker_env(CAPPUCCINO_PATHS__LOCKS=str(locks), **{ENV_FD: str(held.fd)}),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            pass_fds=(held.fd,),
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert '"from_supervisor": true' in done.stderr or "from_supervisor=True" in done.stderr
        assert all_orders(emulator)  # it traded under the handed-down lock
        refused = subprocess.run(  # the same worker without the descriptor is a rival
            worker_cmd(tiny_model, emulator, tmp_path),
            env=worker_env(CAPPUCCINO_PATHS__LOCKS=str(locks)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == EX_CONFIG and f"the supervisor pid {os.getpid()}" in refused.stderr
    finally:
        held.release()


def test_a_capital_above_the_account_cash_is_refused_before_trading(
    tmp_path: Path, tiny_model: Model, emulator: EmulatorThread
) -> None:
    emulator.advance(10.0)
    cash = broker_for(emulator).get_account().cash
    done = subprocess.run(
        worker_cmd(tiny_model, emulator, tmp_path),
        env=worker_env(
            CAPPUCCINO_PATHS__LOCKS=str(tmp_path / "locks"), CAPPUCCINO_MODEL__CAPITAL=str(cash + 250.0)
        ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == EX_CONFIG, done.stderr[-2000:]
    assert "250.00 USD short" in done.stderr
    assert all_orders(emulator) == []
