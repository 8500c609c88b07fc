"""The supervisor's hold on the one-trader-per-account lock, kept across worker restarts.

The supervisor never talks to the broker, so it learns the account id from the record its worker wrote
(``<state>/account.json``). Before each worker start it takes that account's lock (a second daemon on the
account is refused there, before its worker exists) and hands the descriptor to the worker, which adopts
it. On the very first start there is no record yet: the worker takes the lock itself, and the supervisor
holds it from the first restart on, so a rival cannot slip in while the worker is in backoff.

After the supervisor itself was killed, the lock can still be held for a moment by our previous life: the
orphan worker inherited the descriptor and is finishing its exit (its SIGTERM came from PDEATHSIG; a
multi-threaded process shows as a zombie before its last thread closes its files). A chaos soak found
that race ending the daemon with exit 78. So a holder that names our own state directory (no other
supervisor can: ``supervisor.lock`` is ours) is waited for, up to ``PREVIOUS_LIFE_GRACE_S`` or the stop
timeout when longer, by retrying the start (``AccountLockPending``); anyone else is refused at once.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cappuccino_daemon.accountlock import AccountLock, LockHolder, read_account_record, read_holder
from cappuccino_daemon.errors import ConfigError

PREVIOUS_LIFE_GRACE_S = 10.0


class AccountLockPending(Exception):
    """Our previous life still holds the account lock while it exits: try the start again shortly."""

    def __init__(self, lock_file: Path, first: bool) -> None:
        super().__init__(str(lock_file))
        self.lock_file, self.first = lock_file, first


class AccountHold:
    def __init__(
        self,
        state_dir: Path,
        config_file: Path | None,
        monotonic: Callable[[], float],
        grace_s: float = PREVIOUS_LIFE_GRACE_S,
    ) -> None:
        self.state_dir = state_dir
        self.config_file = config_file
        self.grace_s = grace_s
        self._monotonic = monotonic
        self._lock: AccountLock | None = None
        self._pending_since: float | None = None

    def before_worker_start(self) -> int | None:
        """The lock descriptor to pass to the worker, None before the first record; ConfigError when
        another trader holds the account; AccountLockPending while our previous life lets go of it."""
        record = read_account_record(self.state_dir)
        if record is None:
            return None
        account_id, path = record
        held = self._lock
        if held is not None and held.account_id == account_id and held.path == path:
            return held.fd
        self.release()  # the worker moved to another account (config changed): let the old one go
        lock = AccountLock.at(path, account_id)
        try:
            lock.acquire(LockHolder.me("supervisor", account_id, self.config_file, self.state_dir))
        except ConfigError:
            first = self._pending_since is None
            if self._previous_life_leaving(path):
                raise AccountLockPending(path, first) from None
            raise
        self._lock, self._pending_since = lock, None
        return lock.fd

    def _previous_life_leaving(self, path: Path) -> bool:
        holder = read_holder(path)
        if holder is None or not holder.state_dir:
            return False
        if Path(holder.state_dir).resolve() != Path(self.state_dir).resolve():
            return False
        now = self._monotonic()
        if self._pending_since is None:
            self._pending_since = now
        return now - self._pending_since < self.grace_s

    @property
    def pending_for_s(self) -> float | None:
        """How long the start has waited for our previous life's hold (None when not waiting)."""
        return None if self._pending_since is None else self._monotonic() - self._pending_since

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
