"""The supervisor loop: start the emulator (if embedded) and the worker together, watch, restart, stop.

An explicit ``validate_command`` runs first; by default the worker checks the model (exit 78 if unusable).

Signal handlers only set flags; every action happens in ``_tick`` at a safe point. Exit codes:
0 after SIGTERM/SIGINT or a deliberate worker stop (worker exit 0), 78 when validation fails or a child
exits 78 ("do not restart": systemd's ``RestartPreventExitStatus=78`` then leaves the unit failed).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from cappuccino_daemon.accountlock import ENV_FD as ACCOUNT_LOCK_FD
from cappuccino_daemon.clock import Clock, SystemClock
from cappuccino_daemon.errors import EX_CONFIG, ConfigError
from cappuccino_daemon.heartbeat import read_heartbeat
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.states import ChildState, ExitReason, SupervisorStatus
from cappuccino_daemon.supervisor import reporting, resume, stall
from cappuccino_daemon.supervisor.accounthold import PREVIOUS_LIFE_GRACE_S, AccountHold, AccountLockPending
from cappuccino_daemon.supervisor.alerting import SupervisorAlerts
from cappuccino_daemon.supervisor.child import (
    ExitInfo,
    clean_env,
    request_stop,
    signal_group,
    spawn,
    stop_child,
)
from cappuccino_daemon.supervisor.notify import Notifier
from cappuccino_daemon.supervisor.reload import Reload, ReloadOutcome, read_sections
from cappuccino_daemon.supervisor.runtime import (
    EMULATOR,
    WORKER,
    ChildPlan,
    ChildRuntime,
    SupervisorConfig,
)
from cappuccino_daemon.supervisor.state_store import StateStore, SupervisorState
from cappuccino_daemon.supervisor.validation import run_validation
from cappuccino_daemon.supervisor.waker import Waker

__all__ = ["EMULATOR", "WORKER", "ChildPlan", "Supervisor", "SupervisorConfig"]

log = get_logger(__name__)

SAVE_EVERY_S = 30.0
# The real emulator touches its ready file every second; this much silence means it is not serving.
EXCHANGE_SILENCE_S = 5.0
ACCOUNT_RETRY_S = 0.25  # how soon a start waiting for our previous life's account lock is retried


class Supervisor:
    def __init__(
        self,
        config: SupervisorConfig,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        install_signals: bool = True,
        wait: Callable[[float], None] | None = None,
    ) -> None:
        """``wait`` blocks between ticks (default: the signal-aware waker); tests pass one that steps a
        fake clock, so backoff and hang sequences are checked tick by tick without wall-clock windows."""
        self.cfg = config
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.store = StateStore(config.state_dir)
        self.state = SupervisorState()
        self._install_signals = install_signals
        self._waker = Waker()
        self._wait = wait or self._waker.wait
        self._stop_signal: int | None = None
        self._hup = False
        self._exit_code: int | None = None
        self._dirty = True
        self._last_save = 0.0
        self._children: list[ChildRuntime] = []
        self.alerts = SupervisorAlerts(config.alerts)
        self._reload: Reload | None = None
        self._baseline: dict[str, Any] = {}  # the config's sections as the running worker read them
        self._account = AccountHold(
            config.state_dir,
            config.config_file,
            self.clock.monotonic,
            grace_s=max(PREVIOUS_LIFE_GRACE_S, config.stop_timeout_s),
        )

    # ----------------------------------------------------------------- public
    def request_stop(self, signum: int = signal.SIGTERM) -> None:
        """What the SIGTERM/SIGINT handler calls: a flag, acted on at the next safe point."""
        self._stop_signal = signum

    def run(self) -> int:
        if self._install_signals:
            self._waker.install(self.request_stop, self._on_hup)
        self.alerts.start()
        try:
            return self._run()
        finally:
            if self._reload is not None:
                self._reload.cancel()
            self.alerts.close()  # the last alert (a give-up, say) goes out before we exit
            self._waker.close()

    # ------------------------------------------------------------- lifecycle
    def _run(self) -> int:
        now = self.clock.now()
        self.state = self.store.load(now)
        plans = [p for p in (self.cfg.emulator, self.cfg.worker) if p is not None]
        self._children = [ChildRuntime(p, self.state.child(p.name)) for p in plans]
        resume.begin_life(self.state, self._children)  # before our own status overwrites the old one
        # A new life starts at STARTING whatever the previous one left in the file.
        self.state.status = SupervisorStatus.STARTING
        self.state.message = "starting; the worker checks the model first"
        self.state.supervisor_pid = os.getpid()
        self.state.supervisor_started_at = now.isoformat()
        self.state.ready_at = None
        for stale in set(self.state.children) - {p.name for p in plans}:
            del self.state.children[stale]  # e.g. the emulator after switching to alpaca-paper
        resume.reap_orphans(self._children, self.cfg.stop_timeout_s, self._wait, self.clock.monotonic)
        self._save(force=True)
        log.info(
            "supervisor_start",
            pid=os.getpid(),
            state_file=str(self.store.path),
            children=[p.name for p in plans],
            backoff=self.cfg.policy.schedule(7),
            healthy_after_s=self.cfg.policy.healthy_after_s,
            heartbeat_timeout_s=self.cfg.heartbeat_timeout_s,
            watchdog=self.notifier.watchdog_enabled,
            modules=len(sys.modules),  # the footprint: bench/supervisor_idle.py reports it
        )
        code = self._validate()
        if code is not None:
            return self._shutdown(code)
        if self.cfg.config_file is not None:
            with contextlib.suppress(OSError, ValueError):
                self._baseline = read_sections(self.cfg.config_file)
        resume.resume_backoff(self._children, self.clock.now(), self.clock.monotonic(), self.cfg.policy)
        self.state.move(SupervisorStatus.RUNNING)
        self.state.message = ""
        while self._exit_code is None and self._stop_signal is None:
            self._tick()
            if self._exit_code is None and self._stop_signal is None:
                self._wait(self._next_wait())
        if self._exit_code is None:
            assert self._stop_signal is not None
            log.info("stop_requested", signal=signal.Signals(self._stop_signal).name)
            return self._shutdown(0)
        return self._shutdown(self._exit_code)

    def _next_wait(self) -> float:
        """One tick, or less when a restart is due sooner (keeps backoff delays accurate)."""
        now, wait = self.clock.monotonic(), self.cfg.tick_s
        for child in self._children:
            if child.proc is None and child.record.state != ChildState.GIVEN_UP and child.next_start > now:
                wait = min(wait, child.next_start - now)
        return wait

    def _on_hup(self, _signum: int) -> None:
        self._hup = True

    def _validate(self) -> int | None:
        """Run the validate command; None when fine, 78 when not, 0 when asked to stop meanwhile."""
        argv = self.cfg.validate_argv
        if not argv:
            return None
        outcome = run_validation(
            argv,
            timeout_s=self.cfg.validate_timeout_s,
            poll_s=self.cfg.tick_s,
            stop_timeout_s=self.cfg.stop_timeout_s,
            notifier=self.notifier,
            clock=self.clock,
            wait=self._wait,
            stop_requested=lambda: self._stop_signal is not None,
        )
        if outcome.ok:
            return None
        if outcome.interrupted:
            return 0
        return self._validation_failed(outcome.error, outcome.exit_code)

    def _validation_failed(self, error: str, exit_code: int | None) -> int:
        paragraph = " ".join(error.split())
        log.error(
            "validation_failed",
            exit_code=exit_code,
            error=paragraph,
            fix="fix the file named above, check it with `cappuccino-paper validate --config FILE`, restart",
        )
        self.state.move(SupervisorStatus.GIVEN_UP)
        self.state.message = paragraph[:500]
        self.alerts.given_up("model validation", self.state.message)
        return EX_CONFIG

    def _shutdown(self, code: int) -> int:
        """Stop children in order (worker first), record why, and return the process exit code."""
        given_up = code == EX_CONFIG
        if not given_up:
            self.state.move(SupervisorStatus.STOPPING)
        self.notifier.stopping(self._status_text(SupervisorStatus.STOPPING))
        for child in reversed(self._children):
            if child.proc is None:
                if child.record.state != ChildState.GIVEN_UP:
                    child.record.move(ChildState.STOPPED)
                continue
            if child.record.state != ChildState.STOPPING:
                child.record.move(ChildState.STOPPING)
            self._save(force=True)
            pid = child.proc.pid
            info, killed = stop_child(child.proc, self.cfg.stop_timeout_s, self._wait, self.clock.monotonic)
            log.info(
                "child_stopped",
                child=child.plan.name,
                pid=pid,
                code=info.code,
                signal=info.signal,
                killed=killed,
            )
            self._record_exit(child, info, ExitReason.SUPERVISOR_STOP)
            child.record.move(ChildState.STOPPED)
            child.record.pid, child.proc = None, None
        self.state.move(SupervisorStatus.GIVEN_UP if given_up else SupervisorStatus.STOPPED)
        self._account.release()
        self._save(force=True)
        log.info("supervisor_exit", exit_code=code, status=self.state.status, message=self.state.message)
        return code

    # ------------------------------------------------------------------ tick
    def _tick(self) -> None:
        self._reload_step()
        for child in self._children:
            self._supervise(child)
            if self._exit_code is not None:
                return
        self._notify()
        self._save()

    # ---------------------------------------------------------------- reload
    def _reload_step(self) -> None:
        """SIGHUP: check the edited config beside the worker (supervisor/reload.py), then swap it."""
        if self._hup and self._reload is None:
            self._hup = False
            self._begin_reload()
        if self._reload is None:
            return
        outcome = self._reload.poll(self.clock.monotonic())
        if outcome is not None:
            self._finish_reload(self._reload, outcome)

    def _begin_reload(self) -> None:
        worker = self._worker()
        if self.cfg.config_file is None or worker is None:
            log.warning("reload_ignored", reason="started without a config file: nothing to re-read")
            return
        self.notifier.reloading("reloading: checking the edited configuration beside the running worker")
        log.info("reload_start", config_file=str(self.cfg.config_file))
        self._reload = Reload(
            self.cfg.config_file, self._baseline, dict(worker.plan.env), self.cfg.validate_timeout_s
        )
        early = self._reload.start(self.clock.monotonic())
        if early is not None:
            self._finish_reload(self._reload, early)

    def _finish_reload(self, reload: Reload, outcome: ReloadOutcome) -> None:
        self._reload = None
        self.notifier.reloaded(self._status_text(self.state.status))
        if not outcome.ok:
            log.error(
                "reload_refused",
                error=outcome.message,
                worker="keeps trading with the old configuration; fix or revert the file, since a worker "
                "restart for any other reason (a crash, systemctl restart) reads it as it is",
            )
            self.alerts.refused_reload(outcome.message)
            return
        self._baseline = reload.sections or self._baseline
        worker = self._worker()
        log.info("reload_accepted", check=outcome.message, worker="restarts at its next safe point")
        if worker is not None and worker.proc is not None and worker.stop_deadline is None:
            self._begin_stop(worker, ExitReason.RELOAD, self.clock.monotonic())

    def _worker(self) -> ChildRuntime | None:
        return next((c for c in self._children if c.plan.name == WORKER), None)

    def _supervise(self, child: ChildRuntime) -> None:
        now = self.clock.monotonic()
        if child.proc is not None:
            returncode = child.proc.poll()
            if returncode is None:
                if child.stop_deadline is not None:
                    if now >= child.stop_deadline and not child.killed:
                        child.killed = True
                        signal_group(child.proc.pid, signal.SIGKILL)
                        log.warning("child_sigkill", child=child.plan.name, pid=child.proc.pid)
                    return
                self._check_health(child, now)
                return
            self._on_exit(child, ExitInfo.from_returncode(returncode), now)
            if self._exit_code is not None:
                return
        if child.record.state == ChildState.GIVEN_UP or now < child.next_start:
            return
        if child.plan.name == WORKER and not self._emulator_up():
            return
        self._start(child, now)

    def _emulator_up(self) -> bool:
        """The worker starts once the emulator runs, not once it serves: the worker loads its model
        meanwhile and waits for the ready file itself (``--exchange-ready-file``), so the two start-ups
        overlap. An emulator in backoff or being stopped holds the worker back."""
        emulator = next((c for c in self._children if c.plan.name == EMULATOR), None)
        return emulator is None or (emulator.running and emulator.stop_deadline is None)

    def _exchange_serving(self, now: float) -> bool:
        """False while the embedded emulator is frozen, restarting or not ready: a worker waiting on it
        is not hung. Without an embedded emulator there is nothing to blame (True)."""
        emulator = next((c for c in self._children if c.plan.name == EMULATOR), None)
        if emulator is None:
            return True
        silence = min(EXCHANGE_SILENCE_S, self.cfg.heartbeat_timeout_s / 2)
        return (
            emulator.running
            and emulator.healthy_since is not None
            and emulator.stop_deadline is None
            and now - emulator.last_progress <= silence
        )

    def _start(self, child: ChildRuntime, now: float) -> None:
        rec = child.record
        for stale in (child.plan.heartbeat_file, child.plan.ready_file):
            if stale is not None:
                with contextlib.suppress(OSError):
                    stale.unlink()
        env, fds = dict(child.plan.env), tuple[int, ...]()
        if child.plan.name == WORKER:
            try:
                fd = self._account.before_worker_start()
            except AccountLockPending as exc:
                self._account_pending(child, now, exc)
                return
            except ConfigError as exc:
                self._account_refused(child, str(exc))
                return
            env, fds = (env, ()) if fd is None else ({**env, ACCOUNT_LOCK_FD: str(fd)}, (fd,))
        try:
            proc = spawn(child.plan.argv, clean_env(extra=env), pass_fds=fds)
        except OSError as exc:
            log.error("spawn_failed", child=child.plan.name, command=child.plan.argv, error=str(exc))
            rec.last_exit_reason, rec.last_exit_detail = ExitReason.SPAWN_FAILED, str(exc)
            rec.last_exit_code, rec.last_exit_signal = None, None
            self._schedule_restart(child, now)
            return
        is_restart = rec.consecutive_failures > 0
        rec.starts += 1
        rec.restarts += 1 if is_restart else 0
        rec.pid = proc.pid
        rec.move(ChildState.STARTING)
        rec.started_at = self.clock.now().isoformat()
        rec.next_start_at, rec.backoff_s = None, 0.0
        child.proc, child.spawned_at, child.last_progress = proc, now, now
        child.healthy_since = child.stop_deadline = child.stop_reason = None
        child.killed, child.last_hb_time, child.heartbeat = False, None, None
        child.excused_at = None
        child.last_ready_mtime = None
        self._dirty = True
        self._save(force=True)  # the pid must be on disk before anything else can go wrong
        log.info(
            "child_spawn",
            child=child.plan.name,
            pid=proc.pid,
            restart=is_restart,
            restarts=rec.restarts,
            consecutive_failures=rec.consecutive_failures,
            command=child.plan.argv,
        )

    def _check_health(self, child: ChildRuntime, now: float) -> None:
        """One running child's tick: progress (heartbeat or ready file), hang, readiness, backoff reset."""
        if child.plan.heartbeat_file is not None:
            healthy = self._watch_heartbeat(child, child.plan.heartbeat_file, now)
        elif child.plan.ready_file is not None:
            healthy = self._watch_ready_file(child, child.plan.ready_file, now)
        else:
            if child.healthy_since is None:
                self._mark_healthy(child, now)
            healthy = True
        if not healthy:
            return
        if child.plan.name == WORKER and child.healthy_since is not None:
            self.notifier.ready(self._status_text(SupervisorStatus.RUNNING))
            if self.state.ready_at is None:
                self.state.ready_at = self.clock.now().isoformat()
        if child.record.consecutive_failures > 0 and self.cfg.policy.is_healthy_run(
            self._healthy_for(child, now)
        ):
            self._reset_backoff(child, now)

    def _mark_healthy(self, child: ChildRuntime, now: float) -> None:
        child.healthy_since = now
        child.record.move(ChildState.RUNNING)
        self._dirty = True

    def _watch_heartbeat(self, child: ChildRuntime, path: Path, now: float) -> bool:
        """A new heartbeat is progress (the first one makes the child RUNNING); False once it is hung."""
        hb = read_heartbeat(path)
        if hb is not None and hb.time != child.last_hb_time:
            stall.note_progress(child.plan.name, child.heartbeat, hb)  # reported, never restarted
            child.last_hb_time, child.heartbeat, child.last_progress = hb.time, hb, now
            child.record.last_heartbeat_at = hb.time.isoformat()
            if child.healthy_since is None:
                self._mark_healthy(child, now)
                log.info("child_first_heartbeat", child=child.plan.name, pid=hb.pid, phase=hb.phase)
        if child.plan.name == WORKER and not self._exchange_serving(now):
            child.excused_at = now  # the exchange's fault: its hang clock waits for the exchange
        return not self._hung(child, now, "heartbeat not advancing")

    def _watch_ready_file(self, child: ChildRuntime, path: Path, now: float) -> bool:
        """The ready file appearing makes the child RUNNING, each touch is progress; False once stopped.

        A serving child keeps touching its ready file; a frozen one (SIGSTOP, wedged event loop) stops,
        and the worker would otherwise be killed as hung for its exchange's sake.
        """
        mtime = _mtime(path)
        if child.healthy_since is not None:
            if mtime is not None and mtime != child.last_ready_mtime:
                child.last_ready_mtime, child.last_progress = mtime, now
            return not self._hung(child, now, "ready file not touched")
        if mtime is not None:
            self._mark_healthy(child, now)
            child.last_ready_mtime, child.last_progress = mtime, now
            log.info("child_ready", child=child.plan.name, pid=child.proc.pid if child.proc else None)
        elif now - child.spawned_at > child.plan.ready_timeout_s:
            log.error("child_not_ready", child=child.plan.name, waited_s=round(now - child.spawned_at, 3))
            self._begin_stop(child, ExitReason.NOT_READY, now)
            return False
        return True

    def _hung(self, child: ChildRuntime, now: float, why: str) -> bool:
        """Begin stopping ``child`` when it has shown no progress for ``heartbeat_timeout_s``."""
        silent_for = child.silent_for(now)
        if silent_for <= self.cfg.heartbeat_timeout_s:
            return False
        child.record.hang_kills += 1
        log.error(
            "child_hung",
            child=child.plan.name,
            pid=child.proc.pid if child.proc else None,
            why=why,
            heartbeat_silent_s=round(silent_for, 3),
            limit_s=self.cfg.heartbeat_timeout_s,
            action="SIGTERM, then SIGKILL after stop_timeout_s",
        )
        self._begin_stop(child, ExitReason.HUNG, now)
        return True

    def _healthy_for(self, child: ChildRuntime, now: float) -> float | None:
        return None if child.healthy_since is None else now - child.healthy_since

    def _reset_backoff(self, child: ChildRuntime, now: float) -> None:
        log.info(
            "backoff_reset",
            child=child.plan.name,
            healthy_for_s=round(now - (child.healthy_since or now), 3),
            previous_failures=child.record.consecutive_failures,
            next_delay_s=self.cfg.policy.base_s,
        )
        child.record.consecutive_failures = 0
        self.alerts.healthy(child.plan.name)
        self._dirty = True

    def _begin_stop(self, child: ChildRuntime, reason: ExitReason, now: float) -> None:
        assert child.proc is not None
        child.stop_reason, child.stop_deadline = reason, now + self.cfg.stop_timeout_s
        child.record.move(ChildState.STOPPING)
        request_stop(child.proc.pid)
        self._dirty = True

    def _on_exit(self, child: ChildRuntime, info: ExitInfo, now: float) -> None:
        rec = child.record
        ran_s = now - child.spawned_at
        if rec.consecutive_failures > 0 and self.cfg.policy.is_healthy_run(self._healthy_for(child, now)):
            self._reset_backoff(child, now)
        reason = child.stop_reason or self._classify(child, info)
        pid = child.proc.pid if child.proc else None
        child.proc, rec.pid = None, None
        self._record_exit(child, info, reason)
        log.warning(
            "child_exit",
            child=child.plan.name,
            pid=pid,
            code=info.code,
            signal=info.signal,
            reason=reason,
            ran_s=round(ran_s, 3),
        )
        if reason is ExitReason.RELOAD:  # stopped by us to start with the reloaded configuration
            rec.move(ChildState.STOPPED)
            child.next_start = now
            self.state.message = "reloaded: the worker restarts with the new configuration"
            return
        if reason.after is ChildState.STOPPED:  # the worker exited 0
            rec.move(ChildState.STOPPED)
            self.state.message = f"{child.plan.name} stopped deliberately (exit 0); supervisor stops too"
            self._exit_code = 0
            return
        if reason.after is ChildState.GIVEN_UP:  # exit 78
            rec.move(ChildState.GIVEN_UP)
            self.state.message = (
                f"{child.plan.name} exited 78 (configuration or model problem): not restarting; see its log "
                "line above for the fix, then `systemctl restart cappuccino-paper`"
            )
            log.error(
                "child_given_up", child=child.plan.name, exit_code=info.code, message=self.state.message
            )
            self.alerts.given_up(child.plan.name, self.state.message)
            self._exit_code = EX_CONFIG
            return
        self._schedule_restart(child, now)

    def _account_pending(self, child: ChildRuntime, now: float, pending: AccountLockPending) -> None:
        """Our previous life's worker still holds the account while it exits: retry, charge no failure."""
        if pending.first:
            log.warning(
                "account_lock_pending",
                child=child.plan.name,
                lock_file=str(pending.lock_file),
                grace_s=self._account.grace_s,
                hint="the previous supervisor's worker is still exiting; starting ours once it is gone",
            )
        child.next_start = now + ACCOUNT_RETRY_S

    def _account_refused(self, child: ChildRuntime, error: str) -> None:
        """Another daemon or worker trades this account: give up before starting ours (exit 78)."""
        paragraph = " ".join(error.split())
        child.record.move(ChildState.GIVEN_UP)
        self.state.message = paragraph[:500]
        log.error("account_lock_refused", child=child.plan.name, error=paragraph)
        self.alerts.given_up(child.plan.name, self.state.message)
        self._exit_code = EX_CONFIG

    def _classify(self, child: ChildRuntime, info: ExitInfo) -> ExitReason:
        if info.code == 0 and child.plan.name == WORKER:
            return ExitReason.DELIBERATE_STOP
        if info.code == EX_CONFIG:
            return ExitReason.DO_NOT_RESTART
        return ExitReason.CRASHED if info.signal is None else ExitReason.KILLED

    def _record_exit(self, child: ChildRuntime, info: ExitInfo, reason: ExitReason) -> None:
        rec = child.record
        rec.last_exit_code, rec.last_exit_signal, rec.last_exit_reason = info.code, info.signal, reason
        rec.last_exit_detail = info.describe()
        rec.last_exit_at = self.clock.now().isoformat()
        self._dirty = True

    def _schedule_restart(self, child: ChildRuntime, now: float) -> None:
        rec = child.record
        rec.consecutive_failures += 1
        delay = self.cfg.policy.delay(rec.consecutive_failures)
        rec.backoff_s = delay
        rec.move(ChildState.BACKOFF)
        rec.next_start_at = (self.clock.now() + timedelta(seconds=delay)).isoformat()
        child.next_start = now + delay
        self._dirty = True
        self._save(force=True)
        self.alerts.restart_scheduled(
            child.plan.name, rec.consecutive_failures, rec.last_exit_code, rec.last_exit_detail or "", now
        )
        log.warning(
            "backoff_chosen",
            child=child.plan.name,
            consecutive_failures=rec.consecutive_failures,
            delay_s=delay,
            next_start_at=rec.next_start_at,
        )

    # ------------------------------------------------------ systemd + state
    def _notify(self) -> None:
        reporting.report(
            self.notifier, self.state, self._children, self.clock.monotonic(), self.cfg.heartbeat_timeout_s
        )

    def _status_text(self, status: str) -> str:
        return reporting.status_text(self.state, self._children, status)

    def _save(self, force: bool = False) -> None:
        now = self.clock.monotonic()
        if not force and not self._dirty and now - self._last_save < SAVE_EVERY_S:
            return
        try:
            self.store.save(self.state, self.clock.now())
        except OSError as exc:
            # A full disk must not kill supervision; the worker fails closed on its own journal writes.
            log.error("state_write_failed", path=str(self.store.path), error=str(exc))
            return
        self._dirty, self._last_save = False, now


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None
