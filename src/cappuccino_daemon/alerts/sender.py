"""A queue and one thread between the daemon and apprise: ``post`` never blocks, never raises.

A slow or failing notifier costs the thread its time, not the trader: each send has a timeout,
a full queue drops (and counts) instead of waiting, a failed send is logged without its URL and the
next alert is tried as usual. Rate limits, both on the thread's clock (a fake one in tests): the
same alert (kind and key) again within ``repeat_after_s`` is dropped, and at most ``max_per_minute``
are sent; what the limits dropped is counted into the next message that goes out.
apprise is imported in the thread, on the first send, so a daemon without URLs never loads it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

from cappuccino_daemon.alerts.events import Alert
from cappuccino_daemon.alerts.urls import describe
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)

Deliver = Callable[[Sequence[str], Alert, float], bool]


def deliver_with_apprise(urls: Sequence[str], alert: Alert, timeout_s: float) -> bool:
    import apprise

    logging.getLogger("apprise").setLevel(logging.CRITICAL)  # it may print a URL; ours never does
    client = apprise.Apprise()
    for url in urls:
        client.add(url)
    return bool(
        client.notify(body=alert.body, title=alert.title, notify_type=alert.severity, timeout=timeout_s)
    )


class AlertSender:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        timeout_s: float = 10.0,
        max_per_minute: int = 6,
        repeat_after_s: float = 3600.0,
        queue_size: int = 100,
        clock: Callable[[], float] = time.monotonic,
        deliver: Deliver = deliver_with_apprise,
    ) -> None:
        self.urls = list(urls)
        self.timeout_s, self.max_per_minute, self.repeat_after_s = timeout_s, max_per_minute, repeat_after_s
        self.clock, self.deliver = clock, deliver
        self._queue: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self._sent_at: deque[float] = deque()
        self._last: dict[tuple[str, str], float] = {}
        self.sent = self.failed = self.dropped = 0
        self._held_back = 0  # dropped by a limit since the last message that went out
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.urls)

    def start(self) -> AlertSender:
        if self.enabled and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
            self._thread.start()
            log.info("alerts_enabled", to=describe(self.urls))
        return self

    def post(self, alert: Alert) -> None:
        if not self.enabled:
            return
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            log.warning("alert_dropped", kind=alert.kind, reason="queue full (the notifier is slow or down)")

    def close(self, timeout_s: float = 2.0) -> None:
        """Let queued alerts go for up to ``timeout_s`` in all, then stop (the thread is a daemon either
        way, so a notifier still hanging then never holds the process's exit)."""
        if self._thread is None:
            return
        deadline = time.monotonic() + timeout_s
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout_s)
        self._thread.join(max(0.0, deadline - time.monotonic()))
        self._thread = None

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            if self._allowed(alert):
                self._send(alert)

    def _allowed(self, alert: Alert) -> bool:
        now = self.clock()
        last = self._last.get((alert.kind, alert.key))
        while self._sent_at and now - self._sent_at[0] >= 60.0:
            self._sent_at.popleft()
        if last is not None and now - last < self.repeat_after_s:
            reason = f"repeat within {self.repeat_after_s:g} s"
        elif len(self._sent_at) >= self.max_per_minute:
            reason = f"more than {self.max_per_minute} a minute"
        else:
            self._last[(alert.kind, alert.key)] = now
            self._sent_at.append(now)
            return True
        self.dropped += 1
        self._held_back += 1
        log.info("alert_rate_limited", kind=alert.kind, reason=reason)
        return False

    def _send(self, alert: Alert) -> None:
        if self._held_back:
            note = f"\n({self._held_back} more alert(s) dropped by the rate limit; see the log)"
            alert = Alert(alert.kind, alert.title, alert.body + note, alert.key)
            self._held_back = 0
        error = "the notifier refused or timed out"
        try:
            ok = self.deliver(self.urls, alert, self.timeout_s)
        except Exception as exc:  # whatever a notifier raises, trading does not hear of it
            ok, error = False, type(exc).__name__
        if ok:
            self.sent += 1
            log.info("alert_sent", kind=alert.kind, title=alert.title)
        else:
            self.failed += 1
            log.warning("alert_failed", kind=alert.kind, to=describe(self.urls), error=error)


def sender_for(settings: Any, environ: dict[str, str] | None = None) -> AlertSender:
    """The daemon's sender from ``[notify]`` and the URLs of the environment or credential."""
    from cappuccino_daemon.alerts.urls import notify_urls

    cfg = settings.notify
    urls = notify_urls(environ) if cfg.enabled else []
    return AlertSender(
        urls, timeout_s=cfg.timeout_s, max_per_minute=cfg.max_per_minute, repeat_after_s=cfg.repeat_after_s
    )
