"""The lean supervisor process: what ``cappuccino-paper run`` execs into once the settings are loaded.

It imports the standard library, structlog and the supervisor package only: no pydantic (the settings
were read before the exec), no ML stack, and not ``rich``, structlog's optional pretty-traceback helper
(6 MiB and 90 modules for tracebacks the supervisor's JSON log does not use). Usage is internal:
``python -m cappuccino_daemon.supervisor.main --plan-fd N``.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _skip_optional_imports() -> None:
    """structlog imports rich when it can; a ``None`` entry makes that import fail, as if not installed."""
    for name in ("rich", "better_exceptions"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    _skip_optional_imports()
    import argparse

    from cappuccino_daemon.errors import EX_CONFIG, ConfigError
    from cappuccino_daemon.logsetup import configure_logging, redact_text
    from cappuccino_daemon.supervisor.handoff import PLAN_FD_FLAG, read_plan
    from cappuccino_daemon.supervisor.lock import InstanceLock
    from cappuccino_daemon.supervisor.loop import Supervisor

    parser = argparse.ArgumentParser(prog="cappuccino-paper run (lean supervisor)")
    parser.add_argument(PLAN_FD_FLAG, dest="plan_fd", type=int, required=True)
    args = parser.parse_args(argv)
    config, log = read_plan(args.plan_fd)
    configure_logging(level=log.level, json=log.json, log_file=None if log.file is None else Path(log.file))
    try:
        with InstanceLock(config.state_dir):
            return Supervisor(config).run()
    except ConfigError as exc:
        print(f"cappuccino-paper run: {redact_text(str(exc))}", file=sys.stderr)
        return EX_CONFIG


if __name__ == "__main__":
    raise SystemExit(main())
