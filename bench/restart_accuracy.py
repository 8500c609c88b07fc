"""Restart-delay accuracy: chosen backoff vs the gap the crashing worker actually saw.

The worker exits 3 at once; the gap is measured from the worker's exit record to the next start record
(both CLOCK_MONOTONIC, written by the worker), so it includes our scheduling and the child's exec and
interpreter start. Prints figures, asserts nothing. Usage: python bench/restart_accuracy.py [--crashes 8]
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

from supervised import start_supervisor

WORKER = """
import json, os, sys, time
with open(sys.argv[1], "a") as fh:
    fh.write(json.dumps({"event": "start", "mono": time.monotonic()}) + "\\n")
    fh.write(json.dumps({"event": "exit", "mono": time.monotonic()}) + "\\n")
sys.exit(3)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crashes", type=int, default=8)
    parser.add_argument("--base", type=float, default=0.1)
    parser.add_argument("--max", type=float, default=1.6)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        events = tmp / "events.jsonl"
        proc = start_supervisor(
            tmp,
            WORKER,
            {
                "worker_command": [sys.executable, str(tmp / "worker.py"), str(events)],
                "backoff_base_s": args.base,
                "backoff_max_s": args.max,
                "healthy_after_s": 60.0,
            },
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if events.exists() and events.read_text().count('"start"') > args.crashes:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        rows = [json.loads(line) for line in events.read_text().splitlines()]
    starts = [r["mono"] for r in rows if r["event"] == "start"]
    exits = [r["mono"] for r in rows if r["event"] == "exit"]
    print(f"{'failure':>7} {'chosen s':>9} {'actual s':>9} {'late ms':>8}")
    lateness = []
    for n, (exited, started) in enumerate(zip(exits, starts[1:], strict=False), start=1):
        chosen = min(args.max, args.base * 2 ** (n - 1))
        actual = started - exited
        lateness.append((actual - chosen) * 1000)
        print(f"{n:>7} {chosen:>9.3f} {actual:>9.3f} {lateness[-1]:>8.1f}")
    if lateness:
        print(
            f"lateness ms: min {min(lateness):.1f}, median {statistics.median(lateness):.1f}, "
            f"max {max(lateness):.1f} (includes python start-up of the child)"
        )


if __name__ == "__main__":
    main()
