"""A child the test holds on a FIFO, for the fake-clock supervisor tests: it does nothing by itself.

Usage: held_child.py CONTROL_FIFO SIGNALS_FILE [--ignore-term]
It installs its SIGTERM handler, then opens CONTROL_FIFO for reading; the test's non-blocking open for
writing succeeds only after that, which is the barrier "the child is up and handles SIGTERM". The test
then writes an exit code and the child exits with it. SIGTERM is appended to SIGNALS_FILE as
"PID TERM"; without --ignore-term the child then exits 0 (a worker draining), with it the child stays.
Heartbeats are written by the test itself, stamped with the fake clock, so liveness is in its hands.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def main() -> int:
    fifo, signals_file = sys.argv[1], sys.argv[2]
    ignore_term = "--ignore-term" in sys.argv[3:]

    def on_term(_signum: int, _frame: FrameType | None) -> None:
        with open(signals_file, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} TERM\n")
        if not ignore_term:
            os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    with open(fifo, encoding="utf-8") as control:
        line = control.readline()
    return int(line) if line.strip() else 1


if __name__ == "__main__":
    raise SystemExit(main())
