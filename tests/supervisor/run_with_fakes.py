"""Test-only entry point: the real ``run`` (settings, plan, exec into the lean supervisor) with scripted
fake children injected through ``ChildCommands``, as the production code allows; the user's TOML has no
test hooks. Usage: ``python run_with_fakes.py CONFIG FAKES_JSON`` (written by ``Harness.write_config``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from supervisor_harness import fake_command  # this folder is sys.path[0] when run as a script

from cappuccino_daemon.errors import EX_CONFIG, ConfigError
from cappuccino_daemon.supervisor.commands import launch
from cappuccino_daemon.supervisor.plans import ChildCommands, PlanValues


def commands_from(fakes: dict[str, Any]) -> ChildCommands:
    events = Path(fakes["events"])

    def worker(v: PlanValues) -> list[str]:
        follow = ["--exchange-ready-file", str(v.ready_file)] if fakes["worker_follows_exchange"] else []
        heartbeat = ["--heartbeat-file", str(v.heartbeat_file), "--config", str(v.config_file)]
        return fake_command(events, "worker", fakes["worker"], *heartbeat, *follow)

    def validate(_v: PlanValues) -> list[str]:
        return fake_command(events, "validate", fakes["validate"])

    def emulator(v: PlanValues) -> list[str]:
        return fake_command(events, "emulator", fakes["emulator"] or [], "--ready-file", str(v.ready_file))

    return ChildCommands(worker=worker, emulator=emulator, validate=validate)


def main(argv: list[str]) -> int:
    config, fakes = Path(argv[0]), json.loads(Path(argv[1]).read_text())
    try:
        launch(config, commands_from(fakes))
    except ConfigError as exc:
        print(f"cappuccino-paper run: {exc}", file=sys.stderr)
        return EX_CONFIG


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
