"""One account, one trader per host: an ``flock`` keyed on the broker's account id.

The per-state-directory lock (``supervisor/lock.py``) stops two supervisors sharing a folder; it cannot
stop two configs with different state directories, or a standalone ``worker``, trading one account.
This lock can: its file is named after the account id the broker reports, in one folder per host user,
and whoever trades takes it (the worker once it knows the account; the supervisor, from the id its last
worker recorded, before it starts the next one, and hands it to the worker as an inherited descriptor).
The kernel drops an ``flock`` when its holder dies (even ``kill -9``), so there is no stale-lock cleanup.
The file holds the holder's pid, role, config file and state directory for the refusal message.

Folder, first that applies: ``[paths] locks``; systemd's ``$RUNTIME_DIRECTORY`` (the units set
``RuntimeDirectory=cappuccino-paper``); ``/run/cappuccino-paper`` when it exists and is writable (so a
worker started by hand on a host with the units joins their locks); else ``/tmp/cappuccino-paper-<uid>``.
Not ``$XDG_RUNTIME_DIR``: it differs between a login shell, cron and a service, and is deleted at logout,
and a lock only works when every trader of the account looks in the same folder.

Standard library only: the lean supervisor imports it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from cappuccino_daemon.errors import ConfigError

ENV_FD = "CAPPUCCINO_ACCOUNT_LOCK_FD"  # a lock inherited from the supervisor (its descriptor number)
ACCOUNT_RECORD = "account.json"  # <state>/account.json: the account id and lock file the worker used
HOST_DIR = Path("/run/cappuccino-paper")
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class LockHolder:
    pid: int
    role: str  # "supervisor" | "worker"
    config: str | None
    state_dir: str | None
    account_id: str
    since: str

    @classmethod
    def me(cls, role: str, account_id: str, config: Path | None, state_dir: Path | None) -> LockHolder:
        return cls(
            pid=os.getpid(),
            role=role,
            config=str(config) if config else None,
            state_dir=str(state_dir) if state_dir else None,
            account_id=account_id,
            since=datetime.now(UTC).isoformat(timespec="seconds"),
        )

    def describe(self) -> str:
        return (
            f"the {self.role} pid {self.pid} (config {self.config or 'none'}, state directory "
            f"{self.state_dir or 'none'}, since {self.since})"
        )


def default_lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The host-wide lock folder (see the module doc for the order)."""
    env = os.environ if environ is None else environ
    runtime = env.get("RUNTIME_DIRECTORY", "")
    if runtime:
        return Path(runtime.split(":")[0])
    if HOST_DIR.is_dir() and os.access(HOST_DIR, os.W_OK | os.X_OK):
        return HOST_DIR
    return Path(tempfile.gettempdir()) / f"cappuccino-paper-{os.getuid()}"


def lock_file(account_id: str, lock_dir: Path) -> Path:
    """``account-<id>.lock``; an id that is not a plain token is hashed (it becomes a file name)."""
    safe = account_id if _SAFE_ID.match(account_id) else hashlib.sha256(account_id.encode()).hexdigest()[:32]
    return lock_dir / f"account-{safe}.lock"


def _private_dir(folder: Path) -> None:
    """Create ``folder`` 0700; in a shared /tmp refuse one that is a symlink or someone else's."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.lstat(folder)
    except OSError as exc:
        raise ConfigError(
            f"Cannot create the account lock folder {folder} ({exc.strerror or exc}). Make it writable by "
            "this user, or set [paths] locks (CAPPUCCINO_PATHS__LOCKS) to a writable folder that every "
            "daemon and worker of this host uses."
        ) from None
    shared_tmp = folder.parent == Path(tempfile.gettempdir())
    if shared_tmp and (not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid()):
        raise ConfigError(
            f"The account lock folder {folder} is not a directory owned by this user (uid {os.getuid()}); "
            "someone else made it. Remove it, or set [paths] locks (CAPPUCCINO_PATHS__LOCKS) to a folder "
            "of your own."
        )


def read_holder(path: Path) -> LockHolder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(**data)
    except (OSError, ValueError, TypeError):
        return None


def inherited_fd(environ: Mapping[str, str] | None = None) -> int | None:
    """The descriptor of a lock the supervisor passed down, if any."""
    env = os.environ if environ is None else environ
    text = env.get(ENV_FD, "")
    return int(text) if text.isdigit() else None


class AccountLock:
    """The lock of one account; ``acquire`` takes it or raises ConfigError naming the holder."""

    def __init__(self, account_id: str, lock_dir: Path | None = None) -> None:
        self.account_id = account_id
        self.path = lock_file(account_id, lock_dir or default_lock_dir())
        self._fd: int | None = None
        self._owned = False  # False for a descriptor inherited from our supervisor: it releases it

    @classmethod
    def at(cls, path: Path, account_id: str) -> AccountLock:
        """The lock at a known file (the supervisor reads it from its worker's account record)."""
        lock = cls(account_id, path.parent)
        lock.path = path
        return lock

    @property
    def fd(self) -> int | None:
        return self._fd

    def adopt(self, fd: int | None) -> bool:
        """Use an inherited descriptor when it is this account's lock file (our supervisor holds it)."""
        if fd is None:
            return False
        try:
            mine, theirs = os.fstat(fd), os.stat(self.path)
        except OSError:
            return False
        if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
            return False
        self._fd, self._owned = fd, False
        return True

    def acquire(self, holder: LockHolder) -> None:
        _private_dir(self.path.parent)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"Cannot open the account lock {self.path} ({exc.strerror or exc}). Make its folder writable "
                "by this user, or set [paths] locks (CAPPUCCINO_PATHS__LOCKS)."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(self._refusal(holder)) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(asdict(holder)).encode("utf-8") + b"\n", 0)
        self._fd, self._owned = fd, True

    def _refusal(self, me: LockHolder) -> str:
        other = read_holder(self.path)
        who = other.describe() if other else "another process (its details are unreadable)"
        stop = f"`kill {other.pid}` or `systemctl stop` its unit" if other else "stop it"
        return (
            f"Broker account {self.account_id} is already traded from this host by {who} (lock file "
            f"{self.path}); two traders on one account would each think they own its positions. This "
            f"{me.role} (config {me.config or 'none'}, state directory {me.state_dir or 'none'}) does not "
            f"start. Stop the other first ({stop}), or give this config its own paper account (its own "
            "Alpaca keys, or an emulator with its own state file)."
        )

    def release(self) -> None:
        if self._fd is None:
            return
        if self._owned:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing our description drops the flock
        self._fd = None

    def __enter__(self) -> AccountLock:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def write_account_record(state_dir: Path, account_id: str, path: Path) -> None:
    """Tell the supervisor which account lock to take before it starts the next worker."""
    from cappuccino_daemon.atomic import atomic_write_json

    atomic_write_json(Path(state_dir) / ACCOUNT_RECORD, {"account_id": account_id, "lock_file": str(path)})


def read_account_record(state_dir: Path) -> tuple[str, Path] | None:
    try:
        data = json.loads((Path(state_dir) / ACCOUNT_RECORD).read_text(encoding="utf-8"))
        return str(data["account_id"]), Path(data["lock_file"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
