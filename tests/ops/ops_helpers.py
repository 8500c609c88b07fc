"""Ops test helpers: a known journal (real Journal API), supervisor state, heartbeat, live pids."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cappuccino_daemon.heartbeat import Heartbeat, write_heartbeat
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.supervisor.state_store import StateStore, SupervisorState

T0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)
T2 = T0 + timedelta(hours=2)
TICKERS = ("BTC", "ETH")
FEE = 0.001
ACTOR_BYTES = b"not a real actor, only hashed"
CASH_AFTER_T0 = 1000.0 - 2 * 101.0 * (1 + FEE)
CASH_AFTER_T1 = CASH_AFTER_T0 - 5 * 12.0 * (1 + FEE)
EQUITY = CASH_AFTER_T1 + 2 * 110.0 + 5 * 12.0  # valued at T1's close prices
BUY_AND_HOLD = 1000.0 * (110.0 / 100.0 + 12.0 / 10.0) / 2


def model_id_for(model_dir: Path) -> str:
    import hashlib

    return f"{model_dir.name}-{hashlib.sha256(ACTOR_BYTES).hexdigest()[:8]}"


def write_known_journal(path: Path, model_id: str) -> None:
    """Three bars: T0 buys 2 BTC (filled at 101), T1 buys 5 ETH (filled) and a rejected sell, T2 skipped."""
    with Journal(path) as j:
        j.save_normaliser(model_id, TICKERS, [100.0, 10.0], [0.01, 0.1], 1.0, T0)
        plan0 = {"prices": [100.0, 10.0], "orders": [{"index": 0, "side": "buy", "qty": 2.0, "kind": "buy"}]}
        j.begin_cycle(T0, model_id, "sha0", [0.5, -0.2], plan0, (1000.0, [0.0, 0.0], [0.0, 0.0]))
        j.add_intent("c1", T0, "BTC/USD", "buy", Decimal("2"), 100.0)
        j.mark_attempt("c1")
        j.update_intent("c1", "filled", broker_order_id="b1", filled_qty=Decimal("2"), filled_avg_price=101.0)
        j.apply_fill("c1", Decimal("2"), 101.0, (CASH_AFTER_T0, [2.0, 0.0], [0.0, 0.0]))
        j.finish_cycle(T0, "done", 3.5)
        plan1 = {
            "prices": [110.0, 12.0],
            "orders": [
                {"index": 1, "side": "buy", "qty": 5.0, "kind": "buy"},
                {"index": 0, "side": "sell", "qty": 1.0, "kind": "sell"},
            ],
        }
        j.begin_cycle(T1, model_id, "sha1", [0.1, 0.9], plan1, (CASH_AFTER_T0, [2.0, 0.0], [0.0, 0.0]))
        j.add_intent("c2", T1, "ETH/USD", "buy", Decimal("5"), 12.0)
        j.update_intent("c2", "filled", broker_order_id="b2", filled_qty=Decimal("5"), filled_avg_price=12.0)
        j.apply_fill("c2", Decimal("5"), 12.0, (CASH_AFTER_T1, [2.0, 5.0], [0.0, 0.0]))
        j.add_intent("c3", T1, "BTC/USD", "sell", Decimal("1"), 110.0)
        j.update_intent("c3", "rejected", event="submit_rejected")
        j.finish_cycle(T1, "done", 2.0)
        j.skip_cycle(T2, model_id, "gap: ETH bar missing")


@dataclass
class Daemon:
    """A state folder as a running daemon leaves it, plus the TOML that points at it."""

    root: Path
    config: Path
    state: Path
    model_dir: Path
    journal: Path
    supervisor_pid: int | None = None
    worker_pid: int | None = None

    def write_supervisor(
        self, *, restarts: int = 2, backoff_s: float = 10.0, status: str = "running"
    ) -> None:
        state = SupervisorState(status=status, supervisor_pid=self.supervisor_pid)
        state.supervisor_started_at = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
        worker = state.child("worker")
        worker.state, worker.pid, worker.restarts, worker.starts = (
            "running",
            self.worker_pid,
            restarts,
            restarts + 1,
        )
        worker.consecutive_failures, worker.backoff_s = 1, backoff_s
        worker.started_at = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
        StateStore(self.state).save(state, datetime.now(UTC))

    def write_heartbeat(self, pid: int | None = None) -> Path:
        path = self.state / "heartbeat.json"
        write_heartbeat(
            path,
            Heartbeat(
                time=datetime.now(UTC),
                pid=pid or self.worker_pid or 1,
                phase="WAITING",
                cycles=3,
                last_bar=T2,
                equity=EQUITY,
                positions={"BTC": 2.0, "ETH": 5.0},
                lag_s=2.0,
            ),
        )
        return path


def make_daemon(root: Path, *, journal: bool = True, model: bool = True) -> Daemon:
    state = root / "state"
    state.mkdir(parents=True)
    model_dir = root / "models" / "trial_5_1h"
    if model:
        model_dir.mkdir(parents=True)
        (model_dir / "actor.pth").write_bytes(ACTOR_BYTES)
    config = root / "daemon.toml"
    config.write_text(
        '[model]\ndir = "models/trial_5_1h"\n\n[paths]\nstate = "state"\nlogs = "logs"\n\n'
        "[supervisor]\nheartbeat_timeout_s = 120.0\n",
        encoding="utf-8",
    )
    journal_file = state / "journal" / f"{model_id_for(model_dir)}.sqlite"
    if journal:
        write_known_journal(journal_file, model_id_for(model_dir))
    return Daemon(root, config, state, model_dir, journal_file)


@pytest.fixture
def cappuccino_process() -> Iterator[subprocess.Popen[bytes]]:
    """A live process whose command line says cappuccino (what the status pid check looks for)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "cappuccino-ops-test"])
    yield proc
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass", "cappuccino-ops-dead"])
    proc.wait(timeout=10)
    return proc.pid
