"""What the supervisor runs and its per-child bookkeeping: plans, the loop's settings, runtime state.

Kept apart from the loop so the command builder (``plans.py``) and the status reporting
(``reporting.py``) share these types without importing the loop itself.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cappuccino_daemon.heartbeat import Heartbeat
from cappuccino_daemon.states import ExitReason
from cappuccino_daemon.supervisor.backoff import BackoffPolicy
from cappuccino_daemon.supervisor.state_store import ChildRecord

WORKER = "worker"
EMULATOR = "emulator"


@dataclass(frozen=True)
class ChildPlan:
    """What to run and how to tell it is alive: a heartbeat file (worker) or a ready file (emulator).

    A ready file is written once the child serves; the child then keeps touching it (mtime) while its
    event loop runs, so a frozen child is noticed like a worker with a stale heartbeat.
    """

    name: str
    argv: list[str]
    heartbeat_file: Path | None = None
    ready_file: Path | None = None
    ready_timeout_s: float = 60.0
    env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertPlan:
    """``[notify]`` for the supervisor's own alerts (the URLs come from its environment)."""

    enabled: bool = True
    timeout_s: float = 10.0
    max_per_minute: int = 6
    repeat_after_s: float = 3600.0
    restart_alert_after: int = 3  # the worker's restarts in a row before "restarting repeatedly"
    broker_unreachable_after_s: float = 600.0  # exits 75 in a row for this long: "broker unreachable"


@dataclass(frozen=True)
class SupervisorConfig:
    state_dir: Path
    worker: ChildPlan
    emulator: ChildPlan | None = None
    validate_argv: list[str] | None = None
    validate_timeout_s: float = 600.0
    policy: BackoffPolicy = field(default_factory=BackoffPolicy)
    heartbeat_timeout_s: float = 300.0
    stop_timeout_s: float = 30.0
    tick_s: float = 0.5
    config_file: Path | None = None  # named in the account lock (one trader per account)
    alerts: AlertPlan = field(default_factory=AlertPlan)


class ChildRuntime:
    """Runtime bookkeeping of one child; the persistent part lives in ``record``."""

    def __init__(self, plan: ChildPlan, record: ChildRecord) -> None:
        self.plan = plan
        self.record = record
        self.proc: subprocess.Popen[bytes] | None = None
        self.spawned_at = 0.0
        self.next_start = 0.0
        self.healthy_since: float | None = None
        self.last_progress = 0.0
        self.last_hb_time: datetime | None = None
        self.last_ready_mtime: float | None = None
        self.heartbeat: Heartbeat | None = None
        self.stop_reason: ExitReason | None = None
        self.stop_deadline: float | None = None
        self.killed = False
        self.excused_at: float | None = None  # last tick its silence was explained by a frozen exchange

    def silent_for(self, now: float) -> float:
        """Seconds without progress, not counting time its exchange was frozen or restarting."""
        mark = self.last_progress if self.excused_at is None else max(self.last_progress, self.excused_at)
        return now - mark

    @property
    def running(self) -> bool:
        return self.proc is not None
