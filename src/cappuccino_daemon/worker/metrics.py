"""Prometheus metrics of the worker, served on loopback only; a cheap no-op unless ``[metrics] enabled``.

The worker owns the endpoint (it is the process that knows bars, orders and equity). Counters restart
from zero with each worker process, which Prometheus' ``rate()``/``increase()`` handle. The restart
count is read from the supervisor's state file at scrape time, so the worker needs no code for it.
A port that cannot be bound is logged and metrics stay off: monitoring never stops trading.

Metrics: ``cappuccino_bars_processed_total``, ``cappuccino_decision_latency_seconds`` (histogram of bar
close to the last order sent, in wall seconds, observed only for bars that sent an order),
``cappuccino_orders_total{outcome}``, ``cappuccino_worker_restarts``, ``cappuccino_equity_usd``,
``cappuccino_last_bar_timestamp_seconds``; per model of a tournament (``model`` = its model id; a
single model has one series): ``cappuccino_model_equity_usd{model}``,
``cappuccino_model_orders_total{model,outcome}``. The account-wide series above keep their names and
labels (dashboards built on them go on working); ``cappuccino_equity_usd`` is the models' sum.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cappuccino_daemon.config import DaemonSettings
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.layout import StateLayout
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.states import IntentStatus

if TYPE_CHECKING:
    from cappuccino_daemon.worker.parity import ParityResult

log = get_logger(__name__)

LOOPBACK = ("127.0.0.1", "::1", "localhost")
# Every intent status, plus labels dashboards already know (kept so their series do not vanish).
ORDER_OUTCOMES = (*IntentStatus, "partially_filled", "dropped", "other")
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


def supervisor_restarts(state_dir: Path) -> float:
    """The worker's restart count from ``<state>/supervisor.json``; 0 when there is none (standalone)."""
    try:
        data = json.loads(StateLayout(Path(state_dir)).supervisor_state.read_text(encoding="utf-8"))
        return float(data["children"]["worker"]["restarts"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0


class WorkerMetrics:
    """``WorkerMetrics.start(settings)`` once per worker process, then one call per event."""

    def __init__(self) -> None:
        self._m: dict[str, Any] | None = None  # None: disabled, every method returns at once
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._restarts: float | None = None
        self.address: tuple[str, int] | None = None

    @property
    def enabled(self) -> bool:
        return self._m is not None

    @classmethod
    def start(cls, settings: DaemonSettings | None) -> WorkerMetrics:
        metrics = cls()
        if settings is None or not settings.metrics.enabled:
            return metrics
        cfg = settings.metrics
        if cfg.host not in LOOPBACK:
            raise ConfigError(
                f"[metrics] host = {cfg.host!r}: the endpoint has no authentication and binds to loopback "
                "only. "
                'Set host = "127.0.0.1" and scrape through an SSH tunnel or a local Prometheus agent.'
            )
        try:
            metrics._serve(cfg.host, cfg.port, settings.paths.state)
        except OSError as exc:
            log.warning(
                "metrics_unavailable",
                host=cfg.host,
                port=cfg.port,
                error=str(exc),
                action="trading continues without metrics; free the port or change [metrics] port",
            )
            metrics._m = None
        return metrics

    def _serve(self, host: str, port: int, state_dir: Path) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

        registry = CollectorRegistry(auto_describe=True)
        restarts = Gauge(
            "cappuccino_worker_restarts",
            "Worker restarts after a failure (supervisor state).",
            registry=registry,
        )
        restarts.set_function(
            lambda: self._restarts if self._restarts is not None else supervisor_restarts(state_dir)
        )
        orders = Counter(
            "cappuccino_orders", "Order outcomes as journaled by the worker.", ["outcome"], registry=registry
        )
        for outcome in ORDER_OUTCOMES:
            orders.labels(outcome=outcome)  # export zeros, so rate() works from the first scrape
        self._m = {
            "bars": Counter(
                "cappuccino_bars_processed", "Completed bars decided on or skipped.", registry=registry
            ),
            "latency": Histogram(
                "cappuccino_decision_latency_seconds",
                "Bar close to last order sent, wall seconds (bars with orders only).",
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            "orders": orders,
            "equity": Gauge("cappuccino_equity_usd", "Virtual sub-account equity.", registry=registry),
            "last_bar": Gauge(
                "cappuccino_last_bar_timestamp_seconds",
                "Open time of the newest processed bar.",
                registry=registry,
            ),
            "restarts": restarts,
            **_model_metrics(registry),
        }
        self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        self.address = (host, int(self._server.server_address[1]))
        log.info("metrics_serving", url=f"http://{host}:{self.address[1]}/metrics")

    # -- events (all no-ops when disabled) --------------------------------------------------------
    def bar_processed(self, bar_time: datetime | None = None) -> None:
        if self._m is None:
            return
        self._m["bars"].inc()
        if bar_time is not None:
            self._m["last_bar"].set(bar_time.timestamp())

    def decision_latency(self, seconds: float | None) -> None:
        if self._m is None or seconds is None:
            return
        self._m["latency"].observe(max(0.0, float(seconds)))

    def order(self, outcome: str, n: int = 1) -> None:
        if self._m is None or n <= 0:
            return
        label = outcome if outcome in ORDER_OUTCOMES else "other"  # bounded label set
        self._m["orders"].labels(outcome=label).inc(n)

    def equity(self, value: float | None) -> None:
        if self._m is None or value is None:
            return
        self._m["equity"].set(float(value))

    def record_cycle(
        self,
        bar_time: datetime | None,
        lag_wall_s: float | None,
        equity: float | None,
        order_statuses: Iterable[str],
    ) -> None:
        """One processed bar in one call: the bar, its latency (None: nothing sent, not observed), equity,
        and its intents' final statuses."""
        if self._m is None:
            return
        self.bar_processed(bar_time)
        self.decision_latency(lag_wall_s)
        self.equity(equity)
        for status in order_statuses:
            self.order(status)

    def record_model(
        self,
        model: str,
        equity: float | None,
        order_statuses: Iterable[str],
        halted: bool = False,
        parity: ParityResult | None = None,
    ) -> None:
        """One model's processed bar: equity, halt, parity check and its intents' final statuses."""
        if self._m is None:
            return
        self._m["model_halted"].labels(model=model).set(1.0 if halted else 0.0)
        self._m["parity_alarms"].labels(model=model).inc(1 if parity is not None and parity.alarm else 0)
        if parity is not None:
            self._m["parity_diff"].labels(model=model).set(parity.diff)
        if equity is not None:
            self._m["model_equity"].labels(model=model).set(float(equity))
        for status in order_statuses:
            label = status if status in ORDER_OUTCOMES else "other"
            self._m["model_orders"].labels(model=model, outcome=label).inc()

    def restarts(self, n: int) -> None:
        """Override the restart count (by default it is read from the supervisor state at scrape time)."""
        if self._m is None:
            return
        self._restarts = float(n)

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._m = None


def _model_metrics(registry: Any) -> dict[str, Any]:
    """The per-model series (a ``model`` label each): equity, halt, parity and order outcomes."""
    from prometheus_client import Counter, Gauge

    return {
        "model_equity": Gauge(
            "cappuccino_model_equity_usd",
            "Virtual sub-account equity per model.",
            ["model"],
            registry=registry,
        ),
        "model_halted": Gauge(
            "cappuccino_model_halted",
            "1 while a risk limit halts the model (cleared by resume-model).",
            ["model"],
            registry=registry,
        ),
        "parity_alarms": Counter(
            "cappuccino_parity_alarms",
            "Bars whose live action differed from the replay path's by more than 1e-6.",
            ["model"],
            registry=registry,
        ),
        "parity_diff": Gauge(
            "cappuccino_parity_max_abs_diff",
            "Max |live - replay| of the newest checked action.",
            ["model"],
            registry=registry,
        ),
        "model_orders": Counter(
            "cappuccino_model_orders",
            "Order outcomes per model.",
            ["model", "outcome"],
            registry=registry,
        ),
    }
