"""Cold start: ``cappuccino-paper run`` (embedded emulator) → first decision, against ``import torch``.

The daemon's start-up is dominated by importing the ML stack, so the yardstick is a bare
``python -c "import torch"`` on the same machine. Each run uses a fresh state folder (empty journal,
synthetic market); the first decision is the heartbeat's first counted cycle. Page cache is warmed
once for both. Prints figures; asserts nothing.
Usage: .venv/bin/python bench/cold_start.py [--runs 3] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DEFAULT_MODEL = SHARED / "fixtures" / "train_results" / "cwd_tests" / "trial_12_1h"


def bare_torch_s() -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import torch"], check=True)
    return time.monotonic() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(tmp: Path, model_dir: Path) -> Path:
    config = tmp / "daemon.toml"
    config.write_text(
        f'[model]\ndir = "{model_dir}"\n[worker]\npoll_interval_s = 2.0\nbar_close_grace_s = 1.0\n'
        f'[broker]\nkind = "emulator"\n[emulator]\nspeed = 600.0\nsynthetic_seed = 7\nport = {free_port()}\n'
        f'[paths]\nstate = "{tmp / "state"}"\nlogs = "{tmp / "logs"}"\n[logging]\njson = true\n'
    )
    return config


def first_cycle(heartbeat: Path) -> bool:
    try:
        return int(json.loads(heartbeat.read_text())["cycles"]) >= 1
    except (OSError, ValueError, KeyError):
        return False


def run_to_first_decision(model_dir: Path, timeout_s: float = 120.0) -> float:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        config = write_config(tmp, model_dir)
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("CAPPUCCINO_", "NOTIFY_", "WATCHDOG_"))
        }
        heartbeat = tmp / "state" / "heartbeat.json"
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cappuccino_daemon", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=(tmp / "run.log").open("wb"),
            env=env,
        )
        try:
            while not first_cycle(heartbeat):
                if proc.poll() is not None or time.monotonic() - started > timeout_s:
                    raise SystemExit(f"no decision; see the log:\n{(tmp / 'run.log').read_text()[-3000:]}")
                time.sleep(0.01)
            elapsed = time.monotonic() - started
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
        return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    args = parser.parse_args()
    if not (args.model_dir / "actor.pth").is_file():
        raise SystemExit(f"{args.model_dir} has no actor.pth; pass --model-dir with a trial folder")
    bare_torch_s()  # warm the page cache for both
    run_to_first_decision(args.model_dir)
    torch_s, daemon_s = [], []
    for _ in range(args.runs):  # interleaved, so background load hits both alike
        torch_s.append(bare_torch_s())
        daemon_s.append(run_to_first_decision(args.model_dir))
    bare, cold = statistics.median(torch_s), statistics.median(daemon_s)
    print(f"bare `import torch`: median {bare:.2f} s ({', '.join(f'{t:.2f}' for t in torch_s)})")
    print(f"run → first decision: median {cold:.2f} s ({', '.join(f'{t:.2f}' for t in daemon_s)})")
    print(f"ratio: {cold / bare:.2f}x (goal <= 2x)")


if __name__ == "__main__":
    main()
