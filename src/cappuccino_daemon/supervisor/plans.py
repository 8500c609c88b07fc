"""Settings → what the supervisor runs (emulator, worker, optional validation) and how it watches them.

Children get the configuration FILE and the environment, never re-serialised settings: the worker is
``cappuccino-paper worker --config FILE`` and the embedded emulator ``cappuccino-paper emulator --config
FILE``, so both read the same file with the same defaults as ``validate``. Only what the supervisor
itself watches or decides travels as ``CAPPUCCINO_<SECTION>__<KEY>`` overrides in the child's
environment: the worker's heartbeat file, the emulator's ready file (which the worker also waits for)
and, for the embedded exchange, the broker URL it listens on. Tests swap the child commands through
``ChildCommands`` (a constructor parameter), never through the user's TOML.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cappuccino_daemon.config import DaemonSettings, env_name
from cappuccino_daemon.layout import StateLayout
from cappuccino_daemon.supervisor.backoff import BackoffPolicy
from cappuccino_daemon.supervisor.runtime import EMULATOR, WORKER, AlertPlan, ChildPlan, SupervisorConfig

DEFAULT_VALIDATE_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class PlanValues:
    """What a child command may need: the same values the default commands and environment use."""

    python: str
    config_file: Path
    heartbeat_file: Path
    ready_file: Path
    state_dir: Path
    broker_url: str


ArgvFactory = Callable[[PlanValues], list[str]]


def worker_argv(values: PlanValues) -> list[str]:
    return [values.python, "-m", "cappuccino_daemon", "worker", "--config", str(values.config_file)]


def emulator_argv(values: PlanValues) -> list[str]:
    return [values.python, "-m", "cappuccino_daemon", "emulator", "--config", str(values.config_file)]


@dataclass(frozen=True)
class ChildCommands:
    """The child command lines. Production uses the defaults; tests inject scripted fakes here.

    ``validate`` is an extra pre-start check (none by default: the worker checks the model itself
    before any broker request, so torch is imported once, before the first decision).
    """

    worker: ArgvFactory = worker_argv
    emulator: ArgvFactory = emulator_argv
    validate: ArgvFactory | None = None
    validate_timeout_s: float = DEFAULT_VALIDATE_TIMEOUT_S


def plan_values(settings: DaemonSettings, config_file: Path) -> PlanValues:
    emu, state_dir = settings.emulator, settings.paths.state
    layout = StateLayout(state_dir)
    embedded = settings.broker.kind == "emulator"
    return PlanValues(
        python=sys.executable,
        config_file=config_file.resolve(),
        heartbeat_file=layout.heartbeat,
        ready_file=layout.emulator_ready,
        state_dir=state_dir,
        broker_url=f"http://{emu.host}:{emu.port}" if embedded else (settings.broker.url or ""),
    )


def child_plans(
    settings: DaemonSettings, values: PlanValues, commands: ChildCommands
) -> tuple[ChildPlan, ChildPlan | None]:
    """The worker's and (with ``[broker] kind = "emulator"``) the embedded emulator's plans."""
    worker_env = {env_name("worker", "heartbeat_file"): str(values.heartbeat_file)}
    worker = ChildPlan(WORKER, commands.worker(values), heartbeat_file=values.heartbeat_file, env=worker_env)
    if settings.broker.kind != "emulator":
        return worker, None
    # Started alongside the emulator: it loads and checks the model while the exchange starts.
    worker_env[env_name("worker", "exchange_ready_file")] = str(values.ready_file)
    worker_env[env_name("broker", "url")] = values.broker_url
    emulator = ChildPlan(
        name=EMULATOR,
        argv=commands.emulator(values),
        ready_file=values.ready_file,
        ready_timeout_s=settings.supervisor.emulator_ready_timeout_s,
        env={env_name("emulator", "ready_file"): str(values.ready_file)},
    )
    return worker, emulator


def build_config(
    settings: DaemonSettings,
    config_file: Path,
    tick_s: float | None = None,
    commands: ChildCommands | None = None,
) -> SupervisorConfig:
    """The supervisor's plan for these settings; ``config_file`` is what the children read."""
    commands = commands or ChildCommands()
    sup = settings.supervisor
    values = plan_values(settings, config_file)
    worker, emulator = child_plans(settings, values, commands)
    # The settings model already refused base > max (so `validate` says what `run` says), and an
    # embedded emulator on port 0 (the worker must be told the port in advance).
    policy = BackoffPolicy(sup.backoff_base_s, sup.backoff_max_s, sup.healthy_after_s)
    return SupervisorConfig(
        state_dir=settings.paths.state,
        worker=worker,
        emulator=emulator,
        validate_argv=None if commands.validate is None else commands.validate(values),
        validate_timeout_s=commands.validate_timeout_s,
        policy=policy,
        heartbeat_timeout_s=sup.heartbeat_timeout_s,
        stop_timeout_s=sup.stop_timeout_s,
        # Heartbeats are polled a few times per timeout; never slower than twice a second.
        tick_s=tick_s if tick_s is not None else max(0.02, min(0.5, sup.heartbeat_timeout_s / 10)),
        config_file=settings.source_file,
        alerts=AlertPlan(
            enabled=settings.notify.enabled,
            timeout_s=settings.notify.timeout_s,
            max_per_minute=settings.notify.max_per_minute,
            repeat_after_s=settings.notify.repeat_after_s,
            restart_alert_after=settings.notify.restart_alert_after,
            broker_unreachable_after_s=settings.notify.broker_unreachable_after_s,
        ),
    )
