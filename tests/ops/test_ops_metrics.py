"""The worker's Prometheus endpoint: real loopback HTTP when enabled, nothing bound when disabled."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cappuccino_daemon.config import DaemonSettings, load_settings
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.worker.metrics import WorkerMetrics


def _settings(tmp_path: Path, metrics: str) -> DaemonSettings:
    config = tmp_path / "daemon.toml"
    config.write_text(
        f'[model]\ndir = "m"\n\n[paths]\nstate = "state"\n\n[metrics]\n{metrics}\n', encoding="utf-8"
    )
    return load_settings(config, require_model_dir=False)


def _listening_ports() -> set[int]:
    """TCP ports this process listens on: /proc/net/tcp{,6} LISTEN rows whose inode is one of our fds.

    Counting every socket would be fragile in a full test run (other tests' client sockets close
    whenever the garbage collector gets to them); listening sockets only appear when someone binds.
    """
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as fh:
            for row in fh.read().splitlines()[1:]:
                cols = row.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A = LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def _scrape(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_metrics_served_over_loopback(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "enabled = true\nport = 0")
    state = settings.paths.state
    state.mkdir(parents=True)
    (state / "supervisor.json").write_text(
        json.dumps({"children": {"worker": {"restarts": 3}}}), encoding="utf-8"
    )
    before = _listening_ports()
    metrics = WorkerMetrics.start(settings)
    try:
        assert metrics.enabled and metrics.address is not None
        host, port = metrics.address
        assert _listening_ports() == before | {port}  # exactly one new listener, on the reported port
        assert host == "127.0.0.1" and port > 0
        bar = datetime(2024, 3, 1, 10, tzinfo=UTC)
        metrics.bar_processed(bar)
        metrics.bar_processed()
        metrics.decision_latency(1.5)
        metrics.decision_latency(0.07)
        metrics.order("filled", 2)
        metrics.order("rejected")
        metrics.order("something new")  # bounded labels: counted as "other"
        metrics.equity(1017.5)

        v = _scrape(port)
        assert v["cappuccino_bars_processed_total"] == 2
        metrics.record_cycle(bar, 0.2, 990.0, ["filled", "filled", "rejected"])
        w = _scrape(port)
        assert w["cappuccino_bars_processed_total"] == 3 and w["cappuccino_equity_usd"] == 990.0
        assert w['cappuccino_orders_total{outcome="filled"}'] == 4
        assert w["cappuccino_decision_latency_seconds_count"] == 3
        metrics.equity(1017.5)
        metrics.record_model("alpha-1234abcd", 510.0, ["filled", "rejected"])
        metrics.record_model("beta-5678ef01", 480.5, ["filled", "filled", "surprise"])
        m = _scrape(port)
        assert m['cappuccino_model_equity_usd{model="alpha-1234abcd"}'] == 510.0
        assert m['cappuccino_model_equity_usd{model="beta-5678ef01"}'] == 480.5
        assert m['cappuccino_model_orders_total{model="beta-5678ef01",outcome="filled"}'] == 2
        assert m['cappuccino_model_orders_total{model="beta-5678ef01",outcome="other"}'] == 1
        assert m['cappuccino_model_orders_total{model="alpha-1234abcd",outcome="rejected"}'] == 1
        assert v["cappuccino_last_bar_timestamp_seconds"] == bar.timestamp()
        assert v["cappuccino_decision_latency_seconds_count"] == 2
        assert v["cappuccino_decision_latency_seconds_sum"] == pytest.approx(1.57)
        assert v['cappuccino_decision_latency_seconds_bucket{le="0.1"}'] == 1
        assert v['cappuccino_decision_latency_seconds_bucket{le="2.5"}'] == 2
        assert v['cappuccino_orders_total{outcome="filled"}'] == 2
        assert v['cappuccino_orders_total{outcome="rejected"}'] == 1
        assert v['cappuccino_orders_total{outcome="other"}'] == 1
        assert v['cappuccino_orders_total{outcome="canceled"}'] == 0  # exported before the first one
        assert v["cappuccino_equity_usd"] == 1017.5
        assert v["cappuccino_worker_restarts"] == 3  # read from the supervisor state at scrape time

        (state / "supervisor.json").write_text(json.dumps({"children": {"worker": {"restarts": 4}}}))
        assert _scrape(port)["cappuccino_worker_restarts"] == 4
        metrics.restarts(9)
        assert _scrape(port)["cappuccino_worker_restarts"] == 9
        # loopback only: the port is not reachable on another local address of this host
        with socket.socket() as probe:
            probe.settimeout(1)
            assert probe.connect_ex(("127.0.0.2", port)) != 0
    finally:
        metrics.close()
    with socket.socket() as probe:  # closed means closed
        assert probe.connect_ex(("127.0.0.1", port)) != 0


def test_metrics_disabled_binds_nothing(tmp_path: Path) -> None:
    before = _listening_ports()
    metrics = WorkerMetrics.start(_settings(tmp_path, "enabled = false"))
    assert not metrics.enabled and metrics.address is None
    metrics.bar_processed()
    metrics.decision_latency(1.0)
    metrics.order("filled")
    metrics.equity(1.0)
    metrics.restarts(1)
    metrics.record_cycle(None, 1.0, 1.0, ["filled"])
    assert _listening_ports() == before
    metrics.close()
    assert not WorkerMetrics.start(None).enabled  # a worker started without a config file


def test_metrics_port_in_use_leaves_trading_alone(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        metrics = WorkerMetrics.start(_settings(tmp_path, f"enabled = true\nport = {port}"))
        assert not metrics.enabled and metrics.address is None
        metrics.bar_processed()  # a no-op, not an exception


def test_metrics_refuses_a_public_bind_address(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"metrics\.host"):
        _settings(tmp_path, 'enabled = true\nhost = "0.0.0.0"')
