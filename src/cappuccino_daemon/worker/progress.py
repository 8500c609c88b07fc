"""Progress, apart from liveness: has the worker resolved a bar lately, or only polled?

The heartbeat proves the process polls; it is written also while every bar is refused (stale data,
clock skew, refused reads), so it cannot tell a trading worker from one that has not traded for hours.
A bar counts as progress when it is decided, skipped with a journaled reason, or found already decided
(nothing left to do for the bar the broker's clock says is due). With no progress for ``STALL_BARS``
bar intervals the worker is ``stalled``, and the last refusal is its cause.

Pure: the caller passes the injected clock's readings and the bar interval in wall seconds (the
broker's bar length divided by how fast its clock runs), so tests drive it with plain numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cappuccino_daemon.heartbeat import Progress

STALL_BARS = 2  # bar intervals without a resolved bar before the worker is called stalled
NO_CAUSE = "no bar decided or skipped (no refusal seen; the worker may be waiting for a bar)"


@dataclass(frozen=True)
class ProgressReport:
    state: Progress
    last_progress_at: datetime | None  # wall time of the last resolved bar, None: none since start
    silent_s: float  # wall seconds since the last resolved bar (or since start)
    cause: str  # why bars are not resolved; "" while ok


class ProgressTracker:
    """The last resolved bar's time, the latest refusal, and when a stall was last logged."""

    def __init__(self, started_mono: float) -> None:
        self._since_mono = started_mono
        self._last_at: datetime | None = None
        self._cause = ""
        self._logged_mono: float | None = None  # last stall log, None: this stall not logged yet

    def progressed(self, mono: float, at: datetime) -> bool:
        """A bar was resolved; True when this ends a stall that was logged (worth saying it resumed)."""
        was_logged = self._logged_mono is not None
        self._since_mono, self._last_at, self._cause, self._logged_mono = mono, at, "", None
        return was_logged

    def refused(self, cause: str) -> None:
        """A poll resolved no bar; ``cause`` is what stood in the way (kept as the stall's cause)."""
        self._cause = cause

    def assess(self, mono: float, interval_s: float) -> ProgressReport:
        silent = max(0.0, mono - self._since_mono)
        if silent <= STALL_BARS * interval_s:
            return ProgressReport(Progress.OK, self._last_at, silent, "")
        return ProgressReport(Progress.STALLED, self._last_at, silent, self._cause or NO_CAUSE)

    def should_log(self, mono: float, interval_s: float) -> bool:
        """While stalled: True once per bar interval (the first poll found stalled, then every bar)."""
        if self.assess(mono, interval_s).state is not Progress.STALLED:
            return False
        if self._logged_mono is not None and mono - self._logged_mono < interval_s:
            return False
        self._logged_mono = mono
        return True
