"""Is the pid in a state file still OUR process? Read-only checks, never a signal that does anything.

A pid written before a reboot may now belong to an unrelated process, so on Linux the command line
must mention ``cappuccino`` (``cappuccino-paper ...`` or ``python -m cappuccino_daemon ...``).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROC = Path("/proc")


def pid_alive(pid: int | None, *, proc: Path = PROC) -> bool:
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    cmdline = proc / str(pid) / "cmdline"
    if not proc.is_dir():
        return True  # no /proc (macOS): existence is all we can tell
    try:
        raw = cmdline.read_bytes()
        status = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    if status.rsplit(")", 1)[-1].split()[:1] == ["Z"]:
        return False  # a zombie waiting for its parent: it is gone
    return b"cappuccino" in raw


def process_started_at(pid: int | None, *, proc: Path = PROC) -> datetime | None:
    """Start time of a live process from /proc (Linux); None elsewhere or when unknown."""
    if pid is None or pid <= 0:
        return None
    try:
        stat = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
        ticks = int(stat.rsplit(")", 1)[-1].split()[19])  # field 22: starttime, after "pid (comm)"
        btime = next(
            int(line.split()[1])
            for line in (proc / "stat").read_text(encoding="utf-8").splitlines()
            if line.startswith("btime ")
        )
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return datetime.fromtimestamp(btime, UTC) + timedelta(seconds=ticks / hz)
