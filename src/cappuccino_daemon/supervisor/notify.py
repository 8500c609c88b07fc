"""sd_notify without libsystemd: one datagram per message to ``$NOTIFY_SOCKET`` (protocol is stable).

Not running under systemd is not an error: every call is a silent no-op when the variable is unset.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)

NOTIFY_ENV_VARS = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def socket_address(value: str | None) -> str | None:
    """The AF_UNIX address for a ``$NOTIFY_SOCKET`` value; '@' means the Linux abstract namespace."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None  # vsock:CID:PORT and friends: only needed inside VMs, not supported here


def sd_notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``message`` (newline-separated KEY=VALUE lines); False when not under systemd or on error."""
    env = os.environ if environ is None else environ
    address = socket_address(env.get("NOTIFY_SOCKET"))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        # systemd restarting or the socket gone: losing one notification must never kill the supervisor.
        log.warning("sd_notify_failed", error=str(exc), message=message.split("\n", 1)[0])
        return False
    return True


def watchdog_interval_s(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half the timeout), or None when the watchdog is off for us."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC", "")
    watchdog_pid = env.get("WATCHDOG_PID", "")
    if not usec:
        return None
    if watchdog_pid and watchdog_pid.strip() != str(os.getpid() if pid is None else pid):
        return None  # the variables were meant for another process (inherited by mistake)
    try:
        value = int(usec)
    except ValueError:
        return None
    if value <= 0:
        return None
    return value / 1e6 / 2.0


class Notifier:
    """The supervisor's view of systemd: READY once, STATUS on change, WATCHDOG rate-limited, STOPPING."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._env: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self.enabled = socket_address(self._env.get("NOTIFY_SOCKET")) is not None
        interval = watchdog_interval_s(self._env)
        # Without a systemd watchdog we still ping (harmless) but rarely.
        self.watchdog_every_s = interval if interval is not None else 30.0
        self.watchdog_enabled = interval is not None
        self.ready_sent = False
        self._last_status: str | None = None
        self._last_watchdog: float | None = None
        self._last_extend: float | None = None

    def send(self, message: str) -> bool:
        if not self.enabled:
            return False
        return sd_notify(message, self._env)

    def ready(self, status: str | None = None) -> None:
        if self.ready_sent:
            return
        self.ready_sent = True
        lines = ["READY=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
        if status:
            self._last_status = _one_line(status)
        self.send("\n".join(lines))
        log.info("sd_ready", notify=self.enabled)

    def status(self, text: str) -> None:
        line = _one_line(text)
        if line != self._last_status:
            self._last_status = line
            self.send(f"STATUS={line}")

    def watchdog(self, now_mono: float) -> None:
        """Ping if half the watchdog period has passed since the last ping."""
        if self._last_watchdog is not None and now_mono - self._last_watchdog < self.watchdog_every_s:
            return
        self._last_watchdog = now_mono
        self.send("WATCHDOG=1")

    def extend_timeout(self, now_mono: float, seconds: float, every_s: float = 10.0) -> None:
        """Stretch systemd's start timeout while we are alive but not READY yet (model load, backoff)."""
        if self._last_extend is not None and now_mono - self._last_extend < every_s:
            return
        self._last_extend = now_mono
        self.send(f"EXTEND_TIMEOUT_USEC={int(seconds * 1e6)}")

    def stopping(self, status: str | None = None) -> None:
        lines = ["STOPPING=1"] + ([f"STATUS={_one_line(status)}"] if status else [])
        self.send("\n".join(lines))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:400]
