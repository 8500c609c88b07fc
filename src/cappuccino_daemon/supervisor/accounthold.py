"""The supervisor's hold on the one-trader-per-account lock, kept across worker restarts.

The supervisor never talks to the broker, so it learns the account id from the record its worker wrote
(``<state>/account.json``). Before each worker start it takes that account's lock (a second daemon on the
account is refused there, before its worker exists) and hands the descriptor to the worker, which adopts
it. On the very first start there is no record yet: the worker takes the lock itself, and the supervisor
holds it from the first restart on, so a rival cannot slip in while the worker is in backoff.
"""

from __future__ import annotations

from pathlib import Path

from cappuccino_daemon.accountlock import AccountLock, LockHolder, read_account_record


class AccountHold:
    def __init__(self, state_dir: Path, config_file: Path | None) -> None:
        self.state_dir = state_dir
        self.config_file = config_file
        self._lock: AccountLock | None = None

    def before_worker_start(self) -> int | None:
        """The lock descriptor to pass to the worker, None before the first record; ConfigError when
        another trader holds the account."""
        record = read_account_record(self.state_dir)
        if record is None:
            return None
        account_id, path = record
        held = self._lock
        if held is not None and held.account_id == account_id and held.path == path:
            return held.fd
        self.release()  # the worker moved to another account (config changed): let the old one go
        lock = AccountLock.at(path, account_id)
        lock.acquire(LockHolder.me("supervisor", account_id, self.config_file, self.state_dir))
        self._lock = lock
        return lock.fd

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
