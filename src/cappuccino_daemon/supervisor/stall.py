"""A stalled worker (alive, beating, but resolving no bars) is reported, never restarted.

Restarting cannot fix what stalls a worker (stale data, a skewed clock, reads the broker refuses): a new
worker meets the same refusals, so a restart would only add a loop. The supervisor keeps it running, logs
when its heartbeat turns ``stalled`` and back, and puts the stall in its STATUS= line; the worker itself
logs the cause once per bar.
"""

from __future__ import annotations

from cappuccino_daemon.heartbeat import Heartbeat, Progress
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)


def note_progress(child: str, previous: Heartbeat | None, current: Heartbeat) -> None:
    """Log the turns of ``current.progress`` against the previous heartbeat (not every beat)."""
    before = previous.progress if previous is not None else Progress.OK
    if current.progress is before:
        return
    last = current.last_progress_at.isoformat() if current.last_progress_at else None
    if current.progress is Progress.STALLED:
        log.warning(
            "child_stalled",
            child=child,
            pid=current.pid,
            cause=current.stall_cause,
            last_progress_at=last,
            action="kept running (alive; a restart would meet the same refusals)",
        )
    else:
        log.info("child_progress_resumed", child=child, pid=current.pid, last_progress_at=last)


def stall_text(heartbeat: Heartbeat | None) -> str | None:
    """The STATUS= fragment for a stalled worker, None while it makes progress."""
    if heartbeat is None or heartbeat.progress is not Progress.STALLED:
        return None
    since = heartbeat.last_progress_at.isoformat() if heartbeat.last_progress_at else "start"
    return f"STALLED since {since}: {heartbeat.stall_cause}"
