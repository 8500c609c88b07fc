"""Emulator state in SQLite (WAL, synchronous=FULL): account, positions, orders, clock, market identity.

Every mutating request commits one transaction, so a ``kill -9`` leaves the last committed state and
nothing half-written. The market identity (bars source, synthetic seed and origin) is stored too: a
restart with a different market would silently reprice the account, so it is refused instead.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.emulator.orders import Order
from cappuccino_daemon.errors import ConfigError

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    client_order_id TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    data TEXT NOT NULL
);
"""


class StateStore:
    """One SQLite file; one connection used under a lock (the emulator is a single process)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"Emulator state file {self.path} is not a usable SQLite database ({exc}). Move it aside "
                f"(mv {self.path} {self.path}.bad) to start a fresh paper account, or pass another "
                "--state FILE."
            ) from exc
        self._lock = threading.Lock()
        version = self.get("schema_version")
        if version is None:
            self.put_many({"schema_version": SCHEMA_VERSION})
        elif version != SCHEMA_VERSION:
            raise ConfigError(
                f"Emulator state file {self.path} has schema version {version}, this emulator writes "
                f"{SCHEMA_VERSION}. Move it aside (mv {self.path} {self.path}.old) to start a fresh account."
            )

    def get(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_many(self, values: dict[str, Any]) -> None:
        self.commit(values, [])

    def commit(self, values: dict[str, Any], orders: list[Order]) -> None:
        """Write key/values and orders in ONE transaction."""
        with self._lock:
            cur = self._conn.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                for key, value in values.items():
                    cur.execute(
                        "INSERT INTO kv(key, value) VALUES(?, ?) "
                        "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (key, json.dumps(value, sort_keys=True)),
                    )
                for order in orders:
                    cur.execute(
                        "INSERT INTO orders(id, client_order_id, created_at, data) VALUES(?, ?, ?, ?) "
                        "ON CONFLICT(id) DO UPDATE SET data=excluded.data",
                        (
                            order.id,
                            order.client_order_id,
                            order.created_at.isoformat(),
                            json.dumps(order.to_state(), sort_keys=True),
                        ),
                    )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def load_orders(self) -> list[Order]:
        rows = self._conn.execute("SELECT data FROM orders ORDER BY created_at, rowid").fetchall()
        return [Order.from_state(json.loads(r[0])) for r in rows]

    def clock(self) -> datetime | None:
        value = self.get("clock")
        return None if value is None else datetime.fromisoformat(value)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
