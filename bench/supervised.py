"""Start the real ``cappuccino-paper run`` on a fake worker, for the supervisor benchmarks.

The supervisor's log (JSON lines) goes to ``tmp/supervisor.log``; ``supervisor_event`` reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def start_supervisor(tmp: Path, worker_script: str, supervisor: dict[str, Any]) -> subprocess.Popen[bytes]:
    """Write a config in ``tmp`` whose worker is ``worker_script`` and start the supervisor on it."""
    (tmp / "model").mkdir(exist_ok=True)
    (tmp / "worker.py").write_text(worker_script)
    settings = dict(supervisor)
    (tmp / "daemon.toml").write_text(
        f'[model]\ndir = "{tmp / "model"}"\n[broker]\nkind = "alpaca-paper"\n'
        f'[paths]\nstate = "{tmp / "state"}"\nlogs = "{tmp / "logs"}"\n'
        "[logging]\njson = true\n[supervisor]\n"
        + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items())
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CAPPUCCINO_", "NOTIFY_", "WATCHDOG_"))}
    return subprocess.Popen(
        [sys.executable, "-m", "cappuccino_daemon", "run", "--config", str(tmp / "daemon.toml")],
        stdout=subprocess.DEVNULL,
        stderr=(tmp / "supervisor.log").open("ab"),  # JSON lines; the benches read some events
        env=env,
    )


def supervisor_event(tmp: Path, event: str) -> dict[str, Any] | None:
    """The first log line of ``event`` the supervisor wrote, or None."""
    for line in (tmp / "supervisor.log").read_text(errors="replace").splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == event:
                    return dict(record)
    return None
