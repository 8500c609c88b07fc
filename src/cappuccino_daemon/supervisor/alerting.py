"""Which of the supervisor's moments a person hears about (alerts/): a worker restarting again and again,
a child given up (exit 78), and a broker unreachable for longer than ``[notify]`` allows. Each is sent
once per streak; a healthy run ends the streak."""

from __future__ import annotations

from collections.abc import Mapping

from cappuccino_daemon.alerts.events import Alert
from cappuccino_daemon.alerts.sender import AlertSender
from cappuccino_daemon.alerts.urls import notify_urls
from cappuccino_daemon.errors import EX_TEMPFAIL
from cappuccino_daemon.supervisor.runtime import AlertPlan


class SupervisorAlerts:
    def __init__(
        self, plan: AlertPlan, sender: AlertSender | None = None, environ: Mapping[str, str] | None = None
    ):
        self.plan = plan
        urls = notify_urls(environ) if plan.enabled and sender is None else []
        self.sender = sender or AlertSender(
            urls,
            timeout_s=plan.timeout_s,
            max_per_minute=plan.max_per_minute,
            repeat_after_s=plan.repeat_after_s,
        )
        self._restart_sent: set[str] = set()
        self._unreachable_since: dict[str, float] = {}
        self._unreachable_sent: set[str] = set()

    def start(self) -> None:
        self.sender.start()

    def close(self) -> None:
        self.sender.close(timeout_s=self.plan.timeout_s)

    def restart_scheduled(
        self, child: str, failures: int, exit_code: int | None, detail: str, now: float
    ) -> None:
        if failures >= self.plan.restart_alert_after and child not in self._restart_sent:
            self._restart_sent.add(child)
            self.sender.post(
                Alert(
                    "worker_restarting",
                    f"cappuccino-paper: {child} restarting repeatedly",
                    f"{child} failed {failures} times in a row (last: {detail}); the supervisor keeps "
                    "restarting it with backoff. `journalctl -u cappuccino-paper` shows why.",
                    key=child,
                )
            )
        if exit_code != EX_TEMPFAIL:
            self._unreachable_since.pop(child, None)
            return
        since = self._unreachable_since.setdefault(child, now)
        if now - since >= self.plan.broker_unreachable_after_s and child not in self._unreachable_sent:
            self._unreachable_sent.add(child)
            self.sender.post(
                Alert(
                    "broker_unreachable",
                    "cappuccino-paper: broker unreachable",
                    f"{child} has found the broker unreachable for {now - since:.0f} s (exit 75, restarted "
                    "with backoff); nothing trades meanwhile. Check the network and status.alpaca.markets.",
                    key=child,
                )
            )

    def healthy(self, child: str) -> None:
        self._restart_sent.discard(child)
        self._unreachable_sent.discard(child)
        self._unreachable_since.pop(child, None)

    def given_up(self, child: str, message: str) -> None:
        self.sender.post(
            Alert(
                "worker_given_up",
                f"cappuccino-paper: {child} given up, the daemon stopped",
                f"{message} (exit 78: a configuration or model problem; nothing trades until it is fixed "
                "and the service restarted)",
                key=child,
            )
        )

    def refused_reload(self, message: str) -> None:
        self.sender.post(
            Alert(
                "reload_refused",
                "cappuccino-paper: reload refused",
                f"{message} The worker keeps trading with the configuration it has.",
                key="reload",
            )
        )
