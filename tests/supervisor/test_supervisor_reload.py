"""``systemctl reload`` (SIGHUP) on the real supervisor loop: a valid edit restarts the worker with it
(same supervisor, no failure, no backoff); a refused one (a section a reload cannot apply, broken TOML,
a model that fails validation) leaves the worker trading and is logged and alerted; fixing the file and
reloading again applies it. The check is the real ``cappuccino-paper validate`` in a subprocess."""

from __future__ import annotations

import dataclasses
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from stepped_loop import BARRIER_S, HeldChild, SteppedLoop, kill_children, make_config

from cappuccino_daemon.alerts.sender import AlertSender
from cappuccino_daemon.alerts.testing import Receiver
from cappuccino_daemon.model.testing import write_trading_stub
from cappuccino_daemon.supervisor.alerting import SupervisorAlerts
from cappuccino_daemon.supervisor.runtime import AlertPlan

TICKERS = ("BTC", "ETH", "LTC")


def _config(path: Path, *models: str, extra: str = "") -> None:
    tables = "".join(f'[[models]]\ndir = "{m}"\ncapital = 500.0\n\n' for m in models)
    path.write_text(tables + '[paths]\nstate = "state"\n' + extra, encoding="utf-8")


def _settle(loop: SteppedLoop) -> None:
    """Step until the reload's check has finished (a real subprocess: polled, never timed)."""
    deadline = time.monotonic() + BARRIER_S * 3
    while loop.supervisor._reload is not None:
        assert time.monotonic() < deadline, "the reload check never finished"
        time.sleep(0.05)
        loop.step()


def _reload(loop: SteppedLoop) -> None:
    loop.supervisor._on_hup(signal.SIGHUP)
    loop.step()
    _settle(loop)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[tuple[SteppedLoop, HeldChild, Path, Receiver]]:
    for name in ("a_1h", "b_1h"):
        write_trading_stub(tmp_path / name, TICKERS)
    config = tmp_path / "daemon.toml"
    _config(config, "a_1h")
    worker = HeldChild(tmp_path)
    loop = SteppedLoop(dataclasses.replace(make_config(tmp_path, worker.plan), config_file=config))
    receiver = Receiver()
    sender = AlertSender([receiver.url()], timeout_s=5, max_per_minute=100, repeat_after_s=0.0)
    loop.supervisor.alerts = SupervisorAlerts(AlertPlan(), sender=sender)
    yield loop, worker, config, receiver
    kill_children(loop)
    loop.close()
    worker.close()
    receiver.close()


def test_a_valid_reload_restarts_the_worker_with_the_new_models(
    rig: tuple[SteppedLoop, HeldChild, Path, Receiver],
) -> None:
    loop, worker, config, _ = rig
    loop.start()
    rec = loop.record()
    first = rec.pid
    assert first is not None and rec.starts == 1
    _config(config, "a_1h", "b_1h")  # a model added
    with structlog.testing.capture_logs() as logs:
        _reload(loop)
        loop.run_until(lambda: rec.state == "starting" and rec.pid != first)
    assert worker.terms() == [first]  # stopped as for a shutdown: at its next safe point
    assert (rec.starts, rec.restarts, rec.consecutive_failures) == (2, 0, 0)
    assert rec.last_exit_reason == "reload" and loop.supervisor._exit_code is None
    assert [e["event"] for e in logs if e["event"].startswith("reload_")] == [
        "reload_start",
        "reload_accepted",
    ]


def test_a_refused_reload_leaves_the_worker_trading_until_the_file_is_fixed(
    rig: tuple[SteppedLoop, HeldChild, Path, Receiver],
) -> None:
    loop, worker, config, receiver = rig
    loop.start()
    rec = loop.record()
    first = rec.pid
    refusals = []
    for broken in (
        lambda: _config(config, "a_1h", extra="[emulator]\nport = 9999\n"),  # not reloadable
        lambda: config.write_text("[[models]\ndir = ", encoding="utf-8"),  # not TOML
        lambda: _config(config, "a_1h", "missing_1h"),  # a model that does not exist
    ):
        broken()
        with structlog.testing.capture_logs() as logs:
            _reload(loop)
            loop.step()
        refusals += [e["error"] for e in logs if e["event"] == "reload_refused"]
        assert rec.pid == first and worker.terms() == [] and rec.state == "starting"
    assert len(refusals) == 3
    assert "[emulator] changed" in refusals[0] and "systemctl restart" in refusals[0]
    assert "cannot be read as TOML" in refusals[1]
    assert "missing_1h" in refusals[2]
    titles = [m["title"] for m in receiver.wait_for(3)]
    assert titles == ["cappuccino-paper: reload refused"] * 3
    _config(config, "b_1h")
    _reload(loop)
    loop.run_until(lambda: rec.state == "starting" and rec.pid != first)
    assert worker.terms() == [first] and rec.consecutive_failures == 0
