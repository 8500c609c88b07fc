"""Is a pid from a state file still running, and is it still ours? Read-only: signal 0 and ``/proc``.

One liveness rule for the whole package: ``pid_alive`` is true while the process exists and is not a
zombie (an orphan's zombie may never be reaped, and it trades nothing). Liveness says nothing about
identity, because a pid written before a reboot may now belong to an unrelated process; identity is a
separate question, asked with the strength each caller needs:

- the supervisor, before it signals an orphan of its previous life, requires ``pid_cmdline(pid)`` to
  equal the command it spawned (it must never kill a stranger);
- ``status`` only reports, so ``runs_cappuccino`` (alive and the command line mentions ``cappuccino``)
  is enough to say "running" rather than "a reused pid".

Decision: the "cappuccino" test lives in ``runs_cappuccino``, not in ``pid_alive``: the supervisor's
test doubles are plain Python scripts that are alive without that word, and its exact argv check is
stronger anyway. Without ``/proc`` (macOS) existence is all we can tell, and it is what we report.
Standard library only: the lean supervisor imports this module.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

PROC = Path("/proc")


def pid_alive(pid: int | None) -> bool:
    """True while ``pid`` exists and is neither a zombie nor dead (signal 0 plus ``/proc/<pid>/stat``)."""
    if pid is None or pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return not PROC.is_dir()  # gone since the signal, or no /proc at all (then: it existed)
    except OSError:
        return True  # e.g. /proc mounted hidepid: the signal said it exists
    return stat.rsplit(")", 1)[-1].split()[:1] not in (["Z"], ["X"])


def pid_cmdline(pid: int) -> list[str]:
    """The command line of ``pid`` from ``/proc`` ([] if unknown)."""
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def runs_cappuccino(pid: int | None) -> bool:
    """Alive and (where ``/proc`` tells) running ``cappuccino-paper`` or ``python -m cappuccino_daemon``."""
    if not pid_alive(pid):
        return False
    assert pid is not None
    if not PROC.is_dir():
        return True
    return any("cappuccino" in part for part in pid_cmdline(pid))


def process_started_at(pid: int | None) -> datetime | None:
    """Start time of a live process from ``/proc`` (Linux); None elsewhere or when unknown."""
    if pid is None or pid <= 0:
        return None
    try:
        stat = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
        ticks = int(stat.rsplit(")", 1)[-1].split()[19])  # field 22: starttime, after "pid (comm)"
        btime = next(
            int(line.split()[1])
            for line in (PROC / "stat").read_text(encoding="utf-8").splitlines()
            if line.startswith("btime ")
        )
        hz = os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
    return datetime.fromtimestamp(btime, UTC) + timedelta(seconds=ticks / hz)
