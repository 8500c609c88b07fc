"""The heartbeat file: the worker's proof of life, read by the supervisor and ``status``.

It is the only contract between the two processes besides exit codes, so it lives here, below both.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cappuccino_daemon.atomic import atomic_write_json


class Progress(StrEnum):
    """Whether bars get resolved (decided or skipped with a reason), apart from the process being alive."""

    OK = "ok"
    STALLED = "stalled"  # alive and polling, but no bar resolved for two bar intervals


@dataclass(frozen=True)
class Heartbeat:
    time: datetime  # when the worker wrote it (UTC)
    pid: int
    phase: str  # STARTING | RECONCILING | TRADING | WAITING | STOPPING
    cycles: int  # completed trading cycles since the worker started
    last_bar: datetime | None = None  # open time of the newest completed bar acted on
    equity: float | None = None  # virtual sub-account equity (USD)
    positions: dict[str, float] = field(default_factory=dict)
    lag_s: float | None = None  # bar close to orders sent, last cycle
    message: str = ""
    # Progress, apart from liveness (worker/progress.py); files written before these fields read as "ok".
    progress: Progress = Progress.OK
    last_progress_at: datetime | None = None  # when the last bar was decided or skipped (UTC)
    stall_cause: str = ""  # while stalled: what keeps bars from being resolved (the last refusal)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = self.time.isoformat()
        data["last_bar"] = self.last_bar.isoformat() if self.last_bar else None
        data["progress"] = str(self.progress)
        data["last_progress_at"] = self.last_progress_at.isoformat() if self.last_progress_at else None
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Heartbeat:
        last_bar, progress_at = data.get("last_bar"), data.get("last_progress_at")
        return cls(
            time=datetime.fromisoformat(data["time"]),
            pid=int(data["pid"]),
            phase=str(data["phase"]),
            cycles=int(data.get("cycles", 0)),
            last_bar=datetime.fromisoformat(last_bar) if last_bar else None,
            equity=None if data.get("equity") is None else float(data["equity"]),
            positions={str(k): float(v) for k, v in (data.get("positions") or {}).items()},
            lag_s=None if data.get("lag_s") is None else float(data["lag_s"]),
            message=str(data.get("message", "")),
            progress=Progress(data.get("progress") or Progress.OK),
            last_progress_at=datetime.fromisoformat(progress_at) if progress_at else None,
            stall_cause=str(data.get("stall_cause") or ""),
        )


def write_heartbeat(path: Path, heartbeat: Heartbeat) -> None:
    atomic_write_json(path, heartbeat.to_json())


def read_heartbeat(path: Path) -> Heartbeat | None:
    """The last heartbeat, or None when there is none yet or it cannot be parsed (never raises)."""
    try:
        return Heartbeat.from_json(json.loads(Path(path).read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def heartbeat_age_s(path: Path, now_epoch: float) -> float | None:
    """Seconds since the file was last replaced (mtime), independent of the worker's own clock."""
    try:
        return now_epoch - os.stat(path).st_mtime
    except OSError:
        return None
