"""Progress apart from liveness (worker/progress.py) on plain numbers, and the heartbeat's new fields."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cappuccino_daemon.heartbeat import Heartbeat, Progress, read_heartbeat, write_heartbeat
from cappuccino_daemon.worker.progress import NO_CAUSE, ProgressTracker

HOUR = 3600.0
T = datetime(2026, 1, 1, tzinfo=UTC)


def test_ok_until_two_bar_intervals_without_a_resolved_bar_then_stalled_with_the_cause() -> None:
    tracker = ProgressTracker(started_mono=100.0)
    tracker.refused("local clock is +120.0s off the broker's")
    assert tracker.assess(100.0 + 2 * HOUR, HOUR).state is Progress.OK  # exactly two intervals: not yet
    report = tracker.assess(100.0 + 2 * HOUR + 1, HOUR)
    assert report.state is Progress.STALLED
    assert report.cause == "local clock is +120.0s off the broker's"
    assert report.last_progress_at is None and report.silent_s == 2 * HOUR + 1


def test_a_resolved_bar_restarts_the_count_and_clears_the_cause() -> None:
    tracker = ProgressTracker(started_mono=0.0)
    tracker.refused("stale")
    tracker.progressed(5 * HOUR, T)
    report = tracker.assess(6 * HOUR, HOUR)
    assert (report.state, report.cause, report.last_progress_at) == (Progress.OK, "", T)
    assert tracker.assess(7 * HOUR + 1, HOUR).state is Progress.STALLED
    assert tracker.assess(7 * HOUR + 1, HOUR).cause == NO_CAUSE  # nothing refused since: says so


def test_the_interval_is_in_wall_seconds_so_an_accelerated_clock_stalls_sooner() -> None:
    tracker = ProgressTracker(started_mono=0.0)
    assert tracker.assess(3.0, HOUR).state is Progress.OK
    assert tracker.assess(3.0, HOUR / 3600).state is Progress.STALLED  # 1 h bars passing in 1 s


def test_a_stall_is_logged_once_per_bar_interval_and_its_end_is_reported() -> None:
    tracker = ProgressTracker(started_mono=0.0)
    polls = [i * 600.0 for i in range(0, 31)]  # a poll every 10 min for 5 h
    logged = [t for t in polls if tracker.should_log(t, HOUR)]
    assert logged == [7800.0, 11400.0, 15000.0]  # first poll past 2 h, then one per hour
    assert tracker.progressed(18000.0, T) is True  # a logged stall ended
    assert tracker.progressed(18600.0, T) is False  # no stall in between
    assert not tracker.should_log(18600.0 + 2 * HOUR, HOUR)  # ok again: nothing to log


def test_heartbeat_round_trips_progress_fields(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    hb = Heartbeat(
        time=T, pid=7, phase="WAITING", cycles=0, progress=Progress.STALLED,
        last_progress_at=T - timedelta(hours=3), stall_cause="broker refused a request: 422",
    )  # fmt: skip
    write_heartbeat(path, hb)
    raw = json.loads(path.read_text())
    assert raw["progress"] == "stalled" and raw["last_progress_at"] == (T - timedelta(hours=3)).isoformat()
    assert read_heartbeat(path) == hb


def test_an_old_heartbeat_without_progress_fields_still_loads_as_ok(tmp_path: Path) -> None:
    path = tmp_path / "heartbeat.json"
    old = {"time": T.isoformat(), "pid": 7, "phase": "TRADING", "cycles": 3, "last_bar": None, "message": ""}
    path.write_text(json.dumps(old))
    hb = read_heartbeat(path)
    assert hb is not None and hb.cycles == 3
    assert (hb.progress, hb.last_progress_at, hb.stall_cause) == (Progress.OK, None, "")
