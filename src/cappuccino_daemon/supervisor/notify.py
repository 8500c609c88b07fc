"""sd_notify without libsystemd: one datagram per message to ``$NOTIFY_SOCKET`` (protocol is stable).

Not running under systemd is not an error: every call is a silent no-op when the variable is unset.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Mapping

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


def monotonic_usec() -> int:
    """systemd's own clock (CLOCK_MONOTONIC) in µs, what ``MONOTONIC_USEC=`` must carry."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    """The supervisor's view of systemd: READY once, STATUS on change, WATCHDOG rate-limited, STOPPING,
    and RELOADING=1 ... READY=1 around a reload (SIGHUP).

    ``clock_usec`` is systemd's clock for ``MONOTONIC_USEC=``, not the supervisor's (possibly fake) clock:
    systemd compares it with the time it sent SIGHUP; tests pass a fixed one to check the message."""

    def __init__(
        self, environ: Mapping[str, str] | None = None, clock_usec: Callable[[], int] = monotonic_usec
    ) -> None:
        self._env: Mapping[str, str] = dict(os.environ if environ is None else environ)
        self._clock_usec = clock_usec
        self.reloading_sent = False
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
        self._send_with_status(["READY=1"], status)
        log.info("sd_ready", notify=self.enabled)

    def reloading(self, status: str | None = None) -> bool:
        """A reload check starts: ``RELOADING=1`` with ``MONOTONIC_USEC=`` (which ``Type=notify-reload``,
        systemd >= 253, needs to tie the message to its SIGHUP; older systemd ignores the field).

        Only after READY: while the unit is still starting systemd ignores RELOADING=1, and the READY=1
        that ends a reload would then end the start before the worker's first heartbeat."""
        if not self.ready_sent or self.reloading_sent:
            return False
        self.reloading_sent = True
        self._send_with_status(["RELOADING=1", f"MONOTONIC_USEC={self._clock_usec()}"], status)
        return True

    def reloaded(self, status: str | None = None) -> None:
        """The reload check is over (applied or refused): ``READY=1`` again, or systemd keeps the unit
        "reloading" until its timeout and fails the ``systemctl reload`` job. ``ready`` is once-only."""
        if not self.reloading_sent:
            return
        self.reloading_sent = False
        self._send_with_status(["READY=1"], status)

    def _send_with_status(self, lines: list[str], status: str | None) -> None:
        """One datagram: ``lines`` and, when given, the new STATUS (remembered, so ``status`` does not
        send it again)."""
        if status:
            self._last_status = _one_line(status)
            lines = [*lines, f"STATUS={self._last_status}"]
        self.send("\n".join(lines))

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
