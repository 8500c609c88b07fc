"""Before the first order: this worker is the account's only trader, and the models' capital fits it.

The lock (``accountlock.py``) is held for the life of the process (the kernel drops it at exit); under
``run`` the supervisor may already hold it and hand it down, and this worker then adopts it. The account
id goes to ``<state>/account.json`` so the supervisor can take the lock before it starts the next worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cappuccino_daemon.accountlock import AccountLock, LockHolder, inherited_fd, write_account_record
from cappuccino_daemon.broker.ports import BrokerAccount
from cappuccino_daemon.config import ModelEntry, check_capital_fits
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)
_HELD: list[AccountLock] = []  # process lifetime: released when the worker exits


def guard_account(
    account: BrokerAccount,
    *,
    models: Sequence[ModelEntry],
    state_dir: Path,
    config_file: Path | None = None,
    lock_dir: Path | None = None,
) -> AccountLock | None:
    """Take (or adopt) the account's lock, then check the capitals; either refusal is a ConfigError."""
    lock: AccountLock | None = None
    if not account.account_id:
        log.warning("account_lock_skipped", reason="the broker reported no account id")
    else:
        lock = next((held for held in _HELD if held.account_id == account.account_id), None)
        adopted = False
        if lock is None:  # not already ours in this process
            lock = AccountLock(account.account_id, lock_dir)
            adopted = lock.adopt(inherited_fd())
            if not adopted:
                lock.acquire(LockHolder.me("worker", account.account_id, config_file, state_dir))
            _HELD.append(lock)
        write_account_record(state_dir, account.account_id, lock.path)
        log.info(
            "account_locked", account_id=account.account_id, lock=str(lock.path), from_supervisor=adopted
        )
    check_capital_fits(models, account.cash, config_file)
    return lock
