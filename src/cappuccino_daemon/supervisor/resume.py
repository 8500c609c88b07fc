"""What a new supervisor life takes over from the previous one (after a stop, a crash or a reboot).

Counters and the failure streak carry on; per-life states (``given_up``, ``running``) do not; a child the
previous life left running is stopped before anything new starts; a pending backoff is honoured.
"""

from __future__ import annotations

import math
import os
import signal
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.procinfo import pid_alive, pid_cmdline
from cappuccino_daemon.states import ChildState, SupervisorStatus
from cappuccino_daemon.supervisor.backoff import BackoffPolicy
from cappuccino_daemon.supervisor.child import request_stop, signal_group
from cappuccino_daemon.supervisor.runtime import ChildRuntime
from cappuccino_daemon.supervisor.state_store import SupervisorState

log = get_logger(__name__)


def begin_life(state: SupervisorState, children: Sequence[ChildRuntime]) -> None:
    """Report an unclean previous life and reset the child states that described it."""
    previous_status, previous_pid = state.status, state.supervisor_pid
    unclean = (SupervisorStatus.STARTING, SupervisorStatus.RUNNING, SupervisorStatus.STOPPING)
    if previous_status in unclean and previous_pid not in (None, os.getpid()):
        log.warning(
            "previous_supervisor_unclean",
            pid=previous_pid,
            status=previous_status,
            hint="it was killed or crashed; its children got SIGTERM (PDEATHSIG) or are stopped below",
        )
    for child in children:
        # "given_up" (a child exited 78) in particular must not outlive its life: the operator fixed the
        # config and restarted us, so the child runs again.
        if child.record.state == ChildState.GIVEN_UP:
            log.info("given_up_cleared", child=child.plan.name, hint="new supervisor life: starting it")
        child.record.move(ChildState.STOPPED)


def reap_orphans(
    children: Sequence[ChildRuntime],
    stop_timeout_s: float,
    wait: Callable[[float], None],
    monotonic: Callable[[], float],
) -> None:
    """A child of a previous supervisor life that is still running must not trade beside a new one."""
    for child in children:
        pid = child.record.pid
        if not pid or pid == os.getpid() or not pid_alive(pid):
            continue
        cmdline = pid_cmdline(pid)
        if cmdline != child.plan.argv:
            continue  # pid reused by something else: leave it alone
        log.warning("orphan_found", child=child.plan.name, pid=pid, action="stopping it")
        request_stop(pid)
        deadline = monotonic() + stop_timeout_s
        while pid_alive(pid) and monotonic() < deadline:
            wait(0.05)
        if pid_alive(pid):
            signal_group(pid, signal.SIGKILL)
        log.info("orphan_stopped", child=child.plan.name, pid=pid)
        child.record.pid = None


def resume_backoff(
    children: Sequence[ChildRuntime], now_wall: datetime, now: float, policy: BackoffPolicy
) -> None:
    """After a supervisor restart, honour the backoff the previous life had chosen, within today's limits.

    The state file is trusted for counters only: a resumed wait is never longer than the configured
    ``backoff_max_s`` from now, and a saved delay outside ``[backoff_base_s, backoff_max_s]`` (a damaged
    file, or settings changed since) is logged and replaced by what the policy gives for the streak.
    """
    for child in children:
        rec = child.record
        child.next_start = now
        if not rec.next_start_at or rec.consecutive_failures <= 0:
            continue
        saved = rec.backoff_s
        if not (math.isfinite(saved) and policy.base_s <= saved <= policy.max_s):
            rec.backoff_s = policy.delay(rec.consecutive_failures)
            log.warning(
                "saved_backoff_replaced",
                child=rec.name,
                saved_backoff_s=repr(saved),
                allowed=[policy.base_s, policy.max_s],
                backoff_s=rec.backoff_s,
                hint="the state file was damaged or [supervisor] backoff settings changed",
            )
        wait = (datetime.fromisoformat(rec.next_start_at) - now_wall).total_seconds()
        wait = max(0.0, min(wait, rec.backoff_s, policy.max_s))
        child.next_start = now + wait
        rec.next_start_at = (now_wall + timedelta(seconds=wait)).isoformat()
        rec.move(ChildState.BACKOFF)
        log.info(
            "backoff_resumed",
            child=rec.name,
            consecutive_failures=rec.consecutive_failures,
            restarts=rec.restarts,
            wait_s=round(wait, 3),
        )
