"""What the supervisor tells systemd each tick: the STATUS= line, EXTEND_TIMEOUT and WATCHDOG=1.

Pure functions of the children's runtime state plus one ``report`` call, so the loop only decides
*when* to report and this module decides *what*.
"""

from __future__ import annotations

from collections.abc import Sequence

from cappuccino_daemon.supervisor.notify import Notifier
from cappuccino_daemon.supervisor.runtime import WORKER, ChildRuntime
from cappuccino_daemon.supervisor.stall import stall_text
from cappuccino_daemon.supervisor.state_store import SupervisorState

START_EXTEND_S = 30.0  # EXTEND_TIMEOUT_USEC granted per report while not READY yet


def find_worker(children: Sequence[ChildRuntime]) -> ChildRuntime | None:
    return next((c for c in children if c.plan.name == WORKER), None)


def loop_healthy(children: Sequence[ChildRuntime], now: float, heartbeat_timeout_s: float) -> bool:
    """Worth a WATCHDOG=1: no child is running with a stale heartbeat or being killed.

    A stalled worker (fresh heartbeat, no bars resolved) still counts as healthy here: withholding the
    ping would make systemd restart the whole unit, and a restart cannot clear what stalls it."""
    for child in children:
        if child.stop_deadline is not None:
            return False
        stale = child.silent_for(now) > heartbeat_timeout_s
        if child.running and child.plan.heartbeat_file is not None and stale:
            return False
    return True


def status_text(state: SupervisorState, children: Sequence[ChildRuntime], status: str) -> str:
    """The one-line STATUS= text: worker state and pid, restarts, backoff, last bar, equity, message."""
    worker = find_worker(children)
    if worker is None:
        return status
    rec = worker.record
    parts = [f"worker {rec.state}"]
    if worker.proc is not None:
        parts[0] += f" (pid {worker.proc.pid})"
    hb = worker.heartbeat
    if hb is not None and worker.proc is not None:
        parts[0] += f" {hb.phase}"
    parts.append(f"restarts {rec.restarts}")
    if rec.state == "backoff":
        parts.append(f"backoff {rec.backoff_s:g}s (failures {rec.consecutive_failures})")
    if hb is not None:
        parts.append(f"last bar {hb.last_bar.isoformat() if hb.last_bar else '-'}")
        parts.append(f"equity {hb.equity:.2f}" if hb.equity is not None else "equity -")
        stalled = stall_text(hb) if worker.proc is not None else None
        if stalled:
            parts.append(stalled)
    if state.message:
        parts.append(state.message)
    return "; ".join(parts)


def report(
    notifier: Notifier,
    state: SupervisorState,
    children: Sequence[ChildRuntime],
    now: float,
    heartbeat_timeout_s: float,
) -> None:
    """One tick's messages: STATUS= (deduplicated), EXTEND_TIMEOUT until READY, WATCHDOG=1 if healthy."""
    notifier.status(status_text(state, children, state.status))
    if not notifier.ready_sent:
        notifier.extend_timeout(now, START_EXTEND_S)
    if loop_healthy(children, now, heartbeat_timeout_s):
        notifier.watchdog(now)
