"""A stand-in worker/emulator/validator for the supervisor tests: behaviour scripted per start.

Usage: fake_child.py EVENTS_FILE ROLE [--heartbeat-file F] [--ready-file F] [--exchange-ready-file F]
[--config F] [--script JSON]
The script is a list of dicts, one per start (the last one repeats):
  run_s: seconds before exiting (None: forever), exit: exit code, heartbeat: write heartbeats (and
  touch the ready file),
  hb_every_s: heartbeat period, stdout/stderr: text to print there before exiting,
  term_delay_s: seconds to linger after SIGTERM before exiting 0, ignore_term: never exit on SIGTERM.
With --exchange-ready-file (a worker) heartbeats pause while that file is missing or older than 0.5 s,
like a real worker blocked on a frozen exchange.
Every start, heartbeat count, SIGTERM and exit is appended to EVENTS_FILE as a JSON line; with --config
the start records the model folders that file names, as a real worker would read them at its start.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.heartbeat import Heartbeat, write_heartbeat


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("events", type=Path)
    parser.add_argument("role")
    parser.add_argument("--heartbeat-file", type=Path)
    parser.add_argument("--ready-file", type=Path)
    parser.add_argument("--exchange-ready-file", type=Path)
    parser.add_argument("--config", type=Path)
    parser.add_argument("--script", default="[{}]")
    args = parser.parse_args()
    events: Path = args.events

    def record(event: str, **fields: object) -> None:
        line = {"event": event, "role": args.role, "pid": os.getpid(), "mono": time.monotonic(), **fields}
        with events.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(line) + "\n")

    starts = 0
    if events.exists():
        starts = sum(
            1
            for raw in events.read_text().splitlines()
            if json.loads(raw)["event"] == "start" and json.loads(raw)["role"] == args.role
        )
    script = json.loads(args.script)
    step = script[min(starts, len(script) - 1)]
    record(
        "start",
        n=starts,
        env_notify=os.environ.get("NOTIFY_SOCKET"),
        env_watchdog=os.environ.get("WATCHDOG_USEC"),
        argv=sys.argv[1:],
        models=_models(args.config),
    )
    term: dict[str, float | None] = {"at": None}

    def on_term(signum: int, _frame: object) -> None:
        if term["at"] is None:
            term["at"] = time.monotonic()
            record("sigterm")

    signal.signal(signal.SIGTERM, on_term)
    if args.ready_file:
        args.ready_file.write_text("ready\n")
    if _live(args, step, term, record):
        return 0
    if step.get("stdout"):
        print(step["stdout"])
    if step.get("stderr"):
        print(step["stderr"], file=sys.stderr)
    code = int(step.get("exit", 1))
    record("exit", code=code, why="script")
    return code


def _live(
    args: argparse.Namespace,
    step: dict[str, Any],
    term: dict[str, float | None],
    record: Callable[..., None],
) -> bool:
    """Beat and touch until the script's run time is over (False) or SIGTERM ends it (True)."""
    run_s = step.get("run_s")
    hb_every = float(step.get("hb_every_s", 0.1))
    started = time.monotonic()
    cycles = 0
    last_hb = last_touch = -1e9
    while True:
        now = time.monotonic()
        lingered = now - term["at"] if term["at"] is not None else -1.0
        if not step.get("ignore_term") and lingered >= float(step.get("term_delay_s", 0.0)):
            record("exit", code=0, why="sigterm")
            return True
        if run_s is not None and now - started >= float(run_s):
            return False
        if args.ready_file and step.get("heartbeat", True) and now - last_touch >= hb_every:
            last_touch = now
            os.utime(args.ready_file)  # liveness, as the real emulator does while serving
        if args.heartbeat_file and step.get("heartbeat", True) and now - last_hb >= hb_every:
            if args.exchange_ready_file is not None and not _fresh(args.exchange_ready_file, 0.5):
                time.sleep(0.01)
                continue
            cycles += 1
            last_hb = now
            write_heartbeat(
                args.heartbeat_file,
                Heartbeat(
                    time=datetime.now(UTC),
                    pid=os.getpid(),
                    phase="TRADING",
                    cycles=cycles,
                    equity=1000.0 + cycles,
                ),
            )
        time.sleep(0.01)


def _models(config: Path | None) -> list[str] | None:
    """The model folders' names in the config file the supervisor handed us (None without one)."""
    if config is None:
        return None
    data = tomllib.loads(config.read_text(encoding="utf-8"))
    tables = data.get("models") or ([data["model"]] if "model" in data else [])
    return [Path(t["dir"]).name for t in tables]


def _fresh(path: Path, within_s: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime <= within_s
    except OSError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
