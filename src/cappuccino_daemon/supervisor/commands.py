"""CLI: ``run`` (the systemd main process) and ``install-unit``. Nothing heavy is imported here."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from cappuccino_daemon.supervisor.plans import ChildCommands


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run",
        help="run the supervisor: validate, then start and watch the worker (what systemd runs)",
        description="Validate config and model, start the embedded emulator (broker.kind = emulator) and the "
        "worker, restart them with backoff, report to systemd. Exit 0 on SIGTERM or a deliberate worker "
        "stop, 78 on a configuration/model problem (not restarted by systemd).",
    )
    run.add_argument("--config", type=Path, default=Path("config/daemon.toml"), help="daemon TOML file")
    run.set_defaults(handler=_run_supervisor)

    unit = sub.add_parser(
        "install-unit",
        help="write the systemd units for this checkout (or print them)",
        description="Render cappuccino-paper.service and cappuccino-paper@.service with this checkout's "
        "location, Python interpreter and service user, and write them to the unit directory.",
    )
    unit.add_argument("--user", default=None, help="service user (default: $SUDO_USER or the current user)")
    unit.add_argument("--group", default=None, help="service group (default: the user's primary group)")
    unit.add_argument(
        "--prefix", type=Path, default=None, help="checkout holding config/daemon.toml (default: current dir)"
    )
    unit.add_argument(
        "--python", type=Path, default=None, help="interpreter with cappuccino_daemon (default: this one)"
    )
    unit.add_argument("--unit-dir", type=Path, default=Path("/etc/systemd/system"), help="where to write")
    unit.add_argument(
        "--credentials-dir", type=Path, default=Path("/etc/cappuccino-paper"), help="LoadCredential= source"
    )
    unit.add_argument(
        "--no-credentials", action="store_true", help="comment out LoadCredential= (emulator-only installs)"
    )
    unit.add_argument("--print", action="store_true", help="print the unit instead of writing files")
    unit.add_argument("--template", action="store_true", help="with --print: the @-template unit")
    unit.set_defaults(handler=_run_install_unit)


def _run_supervisor(args: argparse.Namespace) -> int:
    launch(args.config)


def launch(config_file: Path, commands: ChildCommands | None = None) -> NoReturn:
    """Load the settings, build the plan and exec the lean supervisor (``commands``: test injection)."""
    from cappuccino_daemon.config import load_settings
    from cappuccino_daemon.supervisor.handoff import LogPlan, exec_lean
    from cappuccino_daemon.supervisor.plans import build_config

    settings = load_settings(config_file)
    log_file = settings.paths.logs / "supervisor.log" if settings.logging.file else None
    config = build_config(settings, config_file, commands=commands)
    log = LogPlan(
        settings.logging.level, settings.logging.json_output, None if log_file is None else str(log_file)
    )
    exec_lean(config, log)  # same pid, without pydantic: see supervisor/handoff.py


def _run_install_unit(args: argparse.Namespace) -> int:
    import contextlib
    import getpass
    import os
    import subprocess
    import sys

    from cappuccino_daemon.errors import ConfigError
    from cappuccino_daemon.supervisor.units import TEMPLATE_NAME, UNIT_NAME, UnitParams, render

    prefix = (args.prefix or Path.cwd()).resolve()
    python = Path(args.python or sys.executable).absolute()
    user = args.user or os.environ.get("SUDO_USER") or getpass.getuser()
    if not (prefix / "config").is_dir():
        raise ConfigError(
            f"install-unit: {prefix} has no config/ folder, so it is not a cappuccino-paper checkout. Run "
            "the command from the checkout or pass --prefix /path/to/checkout."
        )
    params = UnitParams(
        prefix=prefix,
        python=python,
        user=user,
        group=args.group,
        credentials_dir=args.credentials_dir,
        credentials=not args.no_credentials,
    )
    if args.print:
        sys.stdout.write(render(params, template=args.template))
        return 0
    written = []
    for name, text in ((UNIT_NAME, render(params)), (TEMPLATE_NAME, render(params, template=True))):
        target = args.unit_dir / name
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
        except PermissionError:
            raise ConfigError(
                f"install-unit: cannot write {target} (permission denied). Run it with sudo, e.g. `sudo "
                f"{python} -m cappuccino_daemon install-unit --user {user} --prefix {prefix}`, or pass "
                "--print and copy the output yourself."
            ) from None
        written.append(str(target))
    print("wrote " + ", ".join(written))
    if args.unit_dir == Path("/etc/systemd/system"):
        with contextlib.suppress(OSError):
            subprocess.run(["systemctl", "daemon-reload"], check=False)
    print("next: sudo systemctl enable --now cappuccino-paper && journalctl -fu cappuccino-paper")
    return 0
