"""Top-level CLI error handling: a clear paragraph and a meaningful exit code, never a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from cappuccino_daemon.errors import EX_TEMPFAIL


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_worker_without_a_reachable_broker_exits_75_with_the_fix(shared_dir: Path, tmp_path: Path) -> None:
    """No emulator listening: exit 75 (temporary failure, the supervisor retries) and say how to start one."""
    model = shared_dir / "fixtures" / "train_results" / "cwd_tests" / "trial_12_1h"
    url = f"http://127.0.0.1:{_unused_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "worker", "--model-dir", str(model), "--broker-url", url,
         "--state-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == EX_TEMPFAIL, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert "broker is not reachable" in proc.stderr and "cappuccino-paper emulator" in proc.stderr
