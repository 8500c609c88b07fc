"""How long ``status`` and ``report`` take on a year-plus journal (default 10,000 hourly bars).

Usage: .venv/bin/python bench/ops_status_large_journal.py [BARS]. Prints figures, asserts nothing.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.ops.journal_view import read_journal
from cappuccino_daemon.ops.report import render_report
from cappuccino_daemon.ops.series import from_journal
from cappuccino_daemon.ops.status import StatusInputs, collect_status

TICKERS = ("AAVE", "AVAX", "BTC", "ETH", "LINK", "LTC", "UNI")


def build(path: Path, bars: int) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    n = len(TICKERS)
    with Journal(path) as j:
        j.save_normaliser("bench-00000000", TICKERS, [100.0] * n, [0.01] * n, 1.0, start)
    db = sqlite3.connect(path)
    cycles, intents, fills, snaps = [], [], [], []
    for k in range(bars):
        t = (start + timedelta(hours=k)).isoformat()
        prices = [100.0 + (k % 50) + i for i in range(n)]
        plan = {"prices": prices, "orders": [{"index": k % n, "side": "buy", "qty": 0.01, "kind": "buy"}]}
        cycles.append((t, "bench-00000000", "done", t, t, json.dumps([0.1] * n), json.dumps(plan), 1.0))
        coid = f"c{k}"
        intents.append((coid, t, f"{TICKERS[k % n]}/USD", "buy", "0.01", prices[k % n], "filled", t, t))
        fills.append((coid, f"{TICKERS[k % n]}/USD", "buy", "0.01", prices[k % n], t))
        holdings = json.dumps([0.01 * (k // n + (1 if i <= k % n else 0)) for i in range(n)])
        snaps.append((t, t, "cycle_start", 1000.0 - k, holdings, json.dumps([0.0] * n)))
        snaps.append((t, t, f"fill {coid}", 999.0 - k, holdings, json.dumps([0.0] * n)))
    with db:
        db.executemany(
            "INSERT INTO cycles (bar_time, model_id, status, started_at, finished_at, action, plan, lag_s) "
            "VALUES (?,?,?,?,?,?,?,?)",
            cycles,
        )
        db.executemany(
            "INSERT INTO intents (client_order_id, bar_time, symbol, side, qty, ref_price, status, "
            "created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
            intents,
        )
        db.executemany(
            "INSERT INTO fills (client_order_id, symbol, side, qty, price, at) VALUES (?,?,?,?,?,?)", fills
        )
        db.executemany(
            "INSERT INTO account_snapshots (at, bar_time, reason, cash, holdings, cooldown) "
            "VALUES (?,?,?,?,?,?)",
            snaps,
        )
    db.close()


def main() -> None:
    bars = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        journal = root / "journal.sqlite"
        t0 = time.perf_counter()
        build(journal, bars)
        print(f"built {bars} bars ({journal.stat().st_size / 1e6:.1f} MB) in {time.perf_counter() - t0:.2f}s")
        inputs = StatusInputs(
            root, root / "heartbeat.json", root / "supervisor.json", journal, "bench", 300.0
        )
        t0 = time.perf_counter()
        status = collect_status(inputs)
        print(f"status: {time.perf_counter() - t0:.3f}s  (equity {status['account']['equity']:.2f})")
        t0 = time.perf_counter()
        series = from_journal(read_journal(journal))
        t1 = time.perf_counter()
        render_report(series, root / "r.png")
        t2 = time.perf_counter()
        size = (root / "r.png").stat().st_size / 1e3
        print(f"report: series {t1 - t0:.3f}s, png {t2 - t1:.3f}s ({size:.0f} kB)")


if __name__ == "__main__":
    main()
