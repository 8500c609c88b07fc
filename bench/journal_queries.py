"""The worker's per-bar journal reads on a year-plus journal (prints, asserts nothing).

A tournament asks each model's journal the same questions every bar (reconciliation, the decision,
the order flow). On a fresh journal they cost microseconds; this bench checks they still do after
10,000 hourly bars, 10,000 orders and their fills (the ``ops_status_large_journal.py`` journal, every
fill booked), and prints what a bar of 100 models spends on them.

    .venv/bin/python bench/journal_queries.py [BARS]
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ops_status_large_journal import build

from cappuccino_daemon.journal.event_kinds import SKIPPED_ENV
from cappuccino_daemon.journal.halts import current_halt
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.states import CycleStatus, IntentStatus

ROUNDS = 50


def _questions(journal: Journal, now: datetime) -> dict[str, Callable[[], Any]]:
    return {
        "get_cycle (this bar)": lambda: journal.get_cycle(now),
        "last_cycle": journal.last_cycle,
        "cycles still executing": lambda: journal.cycles(CycleStatus.EXECUTING),
        "bars skipped since the last decision": lambda: journal.skipped_since_decision(SKIPPED_ENV),
        "open intents": journal.open_intents,
        "lost intents of the last 2 days": lambda: journal.intents_since(
            now - timedelta(days=2), IntentStatus.LOST
        ),
        "buys since the last reconciliation": lambda: journal.intents_since(now - timedelta(hours=1)),
        "newest fill of a symbol": lambda: journal.latest_filled("ETH/USD"),
        "fills not booked": journal.unapplied_final_intents,
        "latest account": journal.latest_account,
        "broker ids since the last fee audit (daily)": lambda: journal.broker_order_ids(
            now - timedelta(days=3)
        ),
        "halt in force": lambda: current_halt(journal),
    }


def main() -> None:
    bars = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "journal.sqlite"
        build(path, bars)
        db = sqlite3.connect(path)
        with db:  # as the worker leaves them: every order filled and booked
            db.execute("UPDATE intents SET applied = 1, filled_qty = qty, filled_avg_price = ref_price")
        db.close()
        now = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(hours=bars)
        total = 0.0
        with Journal(path) as journal:
            for name, ask in _questions(journal, now).items():
                started = time.perf_counter()
                for _ in range(ROUNDS):
                    ask()
                each = (time.perf_counter() - started) / ROUNDS
                total += each
                print(f"{name:46s} {each * 1e3:7.3f} ms")
        print(f"all of them, once per model: {total * 1e3:.2f} ms; 100 models: {total * 1e5:.0f} ms a bar")


if __name__ == "__main__":
    main()
