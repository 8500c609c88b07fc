"""The supervisor's alerts, received over HTTP through apprise: a worker restarting again and again, a
broker unreachable for longer than allowed, a child given up. The loop runs on a stepped fake clock."""

from __future__ import annotations

from pathlib import Path

from stepped_loop import HeldChild, SteppedLoop, kill_children, make_config

from cappuccino_daemon.alerts.sender import AlertSender
from cappuccino_daemon.alerts.testing import Receiver
from cappuccino_daemon.supervisor.alerting import SupervisorAlerts
from cappuccino_daemon.supervisor.runtime import AlertPlan


def _crash(loop: SteppedLoop, worker: HeldChild, code: int) -> None:
    pid = loop.record().pid
    assert pid is not None
    worker.exit(pid, code)
    loop.step()
    loop.run_until(lambda: loop.record().state == "starting")


def test_restarting_unreachable_and_given_up_each_reach_a_person_once(tmp_path: Path) -> None:
    receiver = Receiver()
    worker = HeldChild(tmp_path)
    loop = SteppedLoop(make_config(tmp_path, worker.plan))
    plan = AlertPlan(restart_alert_after=3, broker_unreachable_after_s=100.0, repeat_after_s=0.0)
    sender = AlertSender([receiver.url()], timeout_s=5, max_per_minute=100, repeat_after_s=0.0)
    loop.supervisor.alerts = SupervisorAlerts(plan, sender=sender)
    try:
        loop.start()
        for _ in range(2):
            _crash(loop, worker, 3)
        assert receiver.messages == []  # two failures: not yet "repeatedly"
        _crash(loop, worker, 3)
        (restarting,) = receiver.wait_for(1)
        assert "worker restarting repeatedly" in restarting["title"]
        assert "failed 3 times in a row" in restarting["message"] and restarting["type"] == "warning"
        for _ in range(4):  # exit 75 (broker unreachable) for 5 + 10 + 20 + 40 s of backoff and more
            _crash(loop, worker, 75)
        titles = [m["title"] for m in receiver.wait_for(2)]
        assert titles.count("cappuccino-paper: broker unreachable") == 1
        assert sum("restarting" in t for t in titles) == 1  # once per streak
        pid = loop.record().pid
        assert pid is not None
        worker.exit(pid, 78)
        loop.step()
        assert loop.exit_code == 78 or loop.supervisor._exit_code == 78
        messages = receiver.wait_for(3)
        assert "given up" in messages[-1]["title"] and messages[-1]["type"] == "failure"
        assert "exit 78" in messages[-1]["message"]
    finally:
        kill_children(loop)
        loop.close()
        worker.close()
        receiver.close()
