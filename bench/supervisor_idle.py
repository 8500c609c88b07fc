"""Supervisor footprint while trading: RSS, modules and CPU of the real ``cappuccino-paper run`` process.

A tiny fake worker heartbeats every second (like a worker waiting for the next bar); we sample the
supervisor's own /proc counters (children excluded) over a quiet window, and read the number of modules
the running supervisor imported from its ``supervisor_start`` log line (after ``run`` exec'd into the
lean supervisor). Prints figures, asserts nothing; the goal is RSS <= 35 MiB.
Usage: python bench/supervisor_idle.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

from supervised import start_supervisor, supervisor_event

WORKER = """
import os, sys, time
from datetime import UTC, datetime
from pathlib import Path
from cappuccino_daemon.heartbeat import Heartbeat, write_heartbeat
path = Path(sys.argv[1]); n = 0
while True:
    n += 1
    write_heartbeat(path, Heartbeat(time=datetime.now(UTC), pid=os.getpid(), phase="WAITING", cycles=n))
    time.sleep(1.0)
"""


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        started = time.monotonic()
        proc = start_supervisor(
            tmp,
            WORKER,
            {
                "worker_command": [sys.executable, str(tmp / "worker.py"), "{heartbeat_file}"],
                "heartbeat_timeout_s": 30.0,
            },
        )
        heartbeat = tmp / "state" / "heartbeat.json"
        while not heartbeat.exists():
            time.sleep(0.01)
        to_first_heartbeat = time.monotonic() - started
        time.sleep(2.0)  # let start-up settle
        cpu0, t0 = proc_cpu_s(proc.pid), time.monotonic()
        time.sleep(args.seconds)
        cpu1, t1 = proc_cpu_s(proc.pid), time.monotonic()
        rss = proc_rss_mb(proc.pid)
        start_line = supervisor_event(tmp, "supervisor_start") or {}
        modules = start_line.get("modules", "?")
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    print(f"supervisor start → worker's first heartbeat: {to_first_heartbeat * 1000:.0f} ms")
    print(f"supervisor RSS while idle: {rss:.1f} MiB")
    print(
        f"supervisor CPU while idle: {cpu1 - cpu0:.3f} s over {t1 - t0:.1f} s = "
        f"{100 * (cpu1 - cpu0) / (t1 - t0):.3f} % of one core (resolution 1/CLK_TCK)"
    )
    print(f"modules imported by the running supervisor: {modules}")
    print(f"exit code after SIGTERM: {code}")


if __name__ == "__main__":
    main()
