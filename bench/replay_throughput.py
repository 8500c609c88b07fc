"""Replay throughput: ``cappuccino-paper replay`` of the 1984-wide actor over the public year, start-up
included, against the bare actor forwards alone over the same states (prints figures, asserts nothing).

The replay runs as the user runs it, a fresh ``python -m cappuccino_daemon replay`` process (imports,
checkpoint, CSVs, indicators, 5,446 decisions, JSONL written), timed from spawn to exit. The bare figure
is the actor's ``nn.Module`` forward on each of the states that replay wrote (read back from its JSONL,
converted to tensors beforehand), one state per call as replay and the worker feed it, under
``torch.inference_mode``: nothing but the network. Replay and bare alternate for ``--rounds`` rounds
and the fastest of each is kept (the machine is shared; the minimum is the figure least disturbed by
other jobs). The ratio is replay ÷ bare; the goal is ≤ 1.5x.

Needs ``../shared`` (the trial_3358_1h checkpoint and the OHLCV CSVs); skips with a message without it.
About 1-2 minutes per round on the 2-core machine:

    .venv/bin/python bench/replay_throughput.py [--rounds 2] [--model-dir DIR] [--bars-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_MODEL = SHARED / "fixtures/train_results/cwd_tests/trial_3358_1h"
DEFAULT_BARS = SHARED / "data/ohlcv"


def time_replay(model_dir: Path, bars_dir: Path, out: Path) -> float:
    argv = [sys.executable, "-m", "cappuccino_daemon", "replay", "--model-dir", str(model_dir)]
    argv += ["--bars-dir", str(bars_dir), "--out", str(out), "--log-level", "ERROR"]
    started = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def read_states(out: Path) -> np.ndarray:
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    return np.asarray([r["state"] for r in rows if r["type"] == "decision"], dtype=np.float32)


def time_bare(model_dir: Path, states: np.ndarray) -> float:
    import torch

    from cappuccino_daemon.model.actor import load_policy

    module = load_policy(model_dir)._module
    tensors = [torch.from_numpy(s).unsqueeze(0) for s in states]
    with torch.inference_mode():
        module(tensors[0])  # first call allocates; not part of either figure's steady state
        started = time.perf_counter()
        for t in tensors:
            module(t)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--bars-dir", type=Path, default=DEFAULT_BARS)
    args = parser.parse_args()
    if not (args.model_dir / "actor.pth").is_file() or not args.bars_dir.is_dir():
        print(f"skipped: needs {args.model_dir}/actor.pth and {args.bars_dir} (../shared is absent)")
        return 0
    replays, bares = [], []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "replay.jsonl"
        for i in range(args.rounds):
            replays.append(time_replay(args.model_dir, args.bars_dir, out))
            states = read_states(out)
            bares.append(time_bare(args.model_dir, states))
            print(
                f"round {i + 1}: replay {replays[-1]:6.2f} s   bare forwards {bares[-1]:6.2f} s", flush=True
            )
    replay_s, bare_s = min(replays), min(bares)
    print(f"decisions                        : {len(states)}")
    print(f"replay, start-up included        : {replay_s:6.2f} s ({len(states) / replay_s:,.0f} decisions/s)")
    print(f"bare actor forwards, same states : {bare_s:6.2f} s ({len(states) / bare_s:,.0f} forwards/s)")
    print(f"ratio replay / bare              : {replay_s / bare_s:5.2f}x (goal <= 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
