"""Settings → the command lines the supervisor runs (validate, emulator, worker).

Kept apart from the loop so the exact argv is testable and documented in one place. The
``[supervisor] *_command`` overrides are for tests and unusual installs; ``{name}`` placeholders in them
are filled from the same values the defaults use.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from cappuccino_daemon.config import DaemonSettings
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.supervisor.backoff import BackoffPolicy
from cappuccino_daemon.supervisor.runtime import EMULATOR, WORKER, ChildPlan, SupervisorConfig

HEARTBEAT_NAME = "heartbeat.json"
EMULATOR_READY_NAME = "emulator.ready"


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def _fill(argv: list[str], values: dict[str, str], setting: str, config_file: Path) -> list[str]:
    """Replace ``{name}`` tokens; other braces (e.g. JSON arguments) pass through untouched."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ConfigError(
                f"{config_file}: [supervisor] {setting} uses the unknown placeholder {{{name}}}. Known: "
                + ", ".join("{" + k + "}" for k in sorted(values))
                + ". Fix or remove the setting (it is an advanced/testing override)."
            )
        return values[name]

    return [_PLACEHOLDER.sub(one, part) for part in argv]


def build_config(
    settings: DaemonSettings, config_file: Path, tick_s: float | None = None
) -> SupervisorConfig:
    """The supervisor's plan for these settings; ``config_file`` is passed on to the children."""
    sup, emu = settings.supervisor, settings.emulator
    state_dir = settings.paths.state
    config_path = config_file.resolve()
    heartbeat = state_dir / HEARTBEAT_NAME
    ready_file = state_dir / EMULATOR_READY_NAME
    embedded = settings.broker.kind == "emulator"
    broker_url = f"http://{emu.host}:{emu.port}"
    values = {
        "python": sys.executable,
        "config": str(config_path),
        "heartbeat_file": str(heartbeat),
        "broker_url": broker_url if embedded else (settings.broker.url or ""),
        "state_dir": str(state_dir),
        "host": emu.host,
        "port": str(emu.port),
        "ready_file": str(ready_file),
    }
    base = [sys.executable, "-m", "cappuccino_daemon"]

    # The worker validates the model itself before any broker request (exit 78 = never trades, no
    # restart), so torch is imported once before the first decision; a separate validation process
    # runs only when one is configured explicitly.
    validate = None
    if sup.validate_command is not None:
        validate = _fill(sup.validate_command, values, "validate_command", config_file)

    worker_argv = [*base, "worker", "--config", str(config_path), "--heartbeat-file", str(heartbeat)]
    if embedded:
        # Started alongside the emulator: it loads and checks the model while the exchange starts.
        exchange_wait = str(2 * sup.emulator_ready_timeout_s)
        worker_argv += ["--broker-url", broker_url, "--exchange-ready-file", str(ready_file)]
        worker_argv += ["--exchange-wait", exchange_wait]
    if sup.worker_command is not None:
        worker_argv = _fill(sup.worker_command, values, "worker_command", config_file)

    emulator_plan: ChildPlan | None = None
    if embedded:
        if emu.port == 0:
            raise ConfigError(
                f"{config_file}: [emulator] port = 0 (any free port) cannot be used under the supervisor, "
                "because the worker must be told the port in advance. Set a fixed port such as 8765."
            )
        emu_argv = [*base, "emulator", "--host", emu.host, "--port", str(emu.port), "--speed", str(emu.speed)]
        if emu.bars_dir is not None:
            emu_argv += ["--bars-dir", str(emu.bars_dir)]
        elif emu.synthetic_seed is not None:
            emu_argv += ["--synthetic", str(emu.synthetic_seed)]
        if emu.start is not None:
            emu_argv += ["--start", emu.start.isoformat()]
        emu_state = settings.emulator.state_file
        if emu_state is not None:
            emu_argv += ["--state", str(emu_state)]
        emu_argv += ["--ready-file", str(ready_file), "--log-level", settings.logging.level]
        if settings.logging.file:
            emu_argv += ["--log-file", str(settings.paths.logs / "emulator.log")]
        if sup.emulator_command is not None:
            emu_argv = _fill(sup.emulator_command, values, "emulator_command", config_file)
        emulator_plan = ChildPlan(
            name=EMULATOR, argv=emu_argv, ready_file=ready_file, ready_timeout_s=sup.emulator_ready_timeout_s
        )

    # The settings model already refused base > max (so `validate` says what `run` says).
    policy = BackoffPolicy(sup.backoff_base_s, sup.backoff_max_s, sup.healthy_after_s)
    return SupervisorConfig(
        state_dir=state_dir,
        worker=ChildPlan(name=WORKER, argv=worker_argv, heartbeat_file=heartbeat),
        emulator=emulator_plan,
        validate_argv=validate,
        validate_timeout_s=sup.validate_timeout_s,
        policy=policy,
        heartbeat_timeout_s=sup.heartbeat_timeout_s,
        stop_timeout_s=sup.stop_timeout_s,
        # Heartbeats are polled a few times per timeout; never slower than twice a second.
        tick_s=tick_s if tick_s is not None else max(0.02, min(0.5, sup.heartbeat_timeout_s / 10)),
    )
