"""The journal: SQLite in WAL mode, synced to disk exactly where a guarantee depends on it.

Every method is one transaction. The ordering rules that make restarts safe live in the callers
(intent committed before the POST, outcome after); this module only guarantees that what it says was
written, was written, and that a fill and the account change it causes commit together.

Durability. Every commit survives a crash of the process at once (WAL; a SIGKILL loses nothing). A
power cut is the other failure: commits run at ``synchronous=NORMAL`` and only the *durable* ones
(``transaction(durable=True)``) wait for an fsync: the attempt written right before each POST, a
risk halt or resume, the action normaliser. An fsync of the WAL makes every commit before it durable
too, so each order's intent, its cycle and its books are on disk before the order can exist. What a
power cut can take is the tail since the last durable commit: fills settled after the bar's last POST
(reconciliation finds them at the broker by client id, as after any crash) or a decision that sent
nothing (the bar is decided again or journaled as missed). A tournament commits ~800 times per bar;
at ``synchronous=FULL`` each waited ~0.5 ms for the disk, which alone broke its 1 s budget
(bench/tournament.py).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cappuccino_daemon.errors import ConfigError, InvariantViolation
from cappuccino_daemon.journal.schema import SCHEMA, SCHEMA_VERSION
from cappuccino_daemon.states import (
    CYCLE_STATUSES,
    INTENT_STATUSES,
    OPEN_INTENT_STATUSES,
    CycleStatus,
    IntentStatus,
)

_OPEN = tuple(sorted(OPEN_INTENT_STATUSES))  # SQL parameters, in a stable order


def iso(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r} in the journal")
    return moment.astimezone(UTC).isoformat()


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _now() -> str:
    return iso(datetime.now(UTC))


@dataclass(frozen=True)
class NormaliserRecord:
    model_id: str
    tickers: tuple[str, ...]
    p0: tuple[float, ...]
    anv: tuple[float, ...]
    norm_action: float
    p0_bar: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class AccountRecord:
    cash: float
    holdings: tuple[float, ...]
    cooldown: tuple[float, ...]
    at: datetime
    reason: str
    bar_time: datetime | None


@dataclass(frozen=True)
class CycleRecord:
    bar_time: datetime
    model_id: str
    status: CycleStatus
    started_at: datetime
    finished_at: datetime | None
    state_sha256: str | None
    action: list[float] | None
    plan: dict[str, Any] | None
    lag_s: float | None
    message: str


@dataclass(frozen=True)
class IntentRecord:
    client_order_id: str
    bar_time: datetime
    symbol: str
    side: str
    qty: Decimal
    ref_price: float
    status: IntentStatus
    broker_order_id: str | None
    filled_qty: Decimal
    filled_avg_price: float | None
    applied: bool
    attempts: int

    @property
    def is_open(self) -> bool:
        return self.status.is_open


class Journal:
    """One model's durable memory. Not thread-safe: one connection, used by one thread at a time (a
    tournament's order sender may move a model's sends to a pool thread: worker/orderflow.py)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, isolation_level=None, timeout=10.0, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # see the module docstring: durable=True
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"Journal {self.path} cannot be opened ({exc}). If the file is corrupt, move it aside "
                f"(`mv {self.path} {self.path}.bad`, with its -wal/-shm files) and restart: the worker then "
                "reconciles from the broker and starts a fresh virtual account."
            ) from exc
        if row is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        elif int(row["value"]) != SCHEMA_VERSION:
            raise ConfigError(
                f"Journal {self.path} has schema version {row['value']}, this worker expects "
                f"{SCHEMA_VERSION}. "
                "Use the matching cappuccino-paper version, or move the journal aside to start afresh."
            )

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self, durable: bool = False) -> Iterator[sqlite3.Connection]:
        """``durable``: the commit returns once it (and every commit before it) is on disk."""
        if durable:
            self._db.execute("PRAGMA synchronous=FULL")
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        finally:
            if durable:
                self._db.execute("PRAGMA synchronous=NORMAL")

    # -- meta -------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str, durable: bool = False) -> None:
        with self.transaction(durable) as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # -- normaliser -------------------------------------------------------------------------------
    def get_normaliser(self, model_id: str) -> NormaliserRecord | None:
        row = self._db.execute("SELECT * FROM normaliser WHERE model_id=?", (model_id,)).fetchone()
        if row is None:
            return None
        return NormaliserRecord(
            model_id=row["model_id"],
            tickers=tuple(json.loads(row["tickers"])),
            p0=tuple(float(x) for x in json.loads(row["p0"])),
            anv=tuple(float(x) for x in json.loads(row["anv"])),
            norm_action=float(row["norm_action"]),
            p0_bar=parse_iso(row["p0_bar"]) if row["p0_bar"] else None,
            created_at=parse_iso(row["created_at"]),
        )

    def save_normaliser(
        self,
        model_id: str,
        tickers: Sequence[str],
        p0: Sequence[float],
        anv: Sequence[float],
        norm_action: float,
        p0_bar: datetime | None,
    ) -> NormaliserRecord:
        """Persist once; a second call for the same model returns the FIRST record unchanged."""
        with self.transaction(durable=True) as db:
            db.execute(
                "INSERT OR IGNORE INTO normaliser "
                "(model_id, tickers, p0, anv, norm_action, p0_bar, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    model_id,
                    json.dumps(list(tickers)),
                    json.dumps([float(x) for x in p0]),
                    json.dumps([float(x) for x in anv]),
                    float(norm_action),
                    iso(p0_bar) if p0_bar else None,
                    _now(),
                ),
            )
        record = self.get_normaliser(model_id)
        assert record is not None
        return record

    # -- account ----------------------------------------------------------------------------------
    def latest_account(self) -> AccountRecord | None:
        row = self._db.execute("SELECT * FROM account_snapshots ORDER BY id DESC LIMIT 1").fetchone()
        return None if row is None else _account(row)

    def save_account(
        self,
        cash: float,
        holdings: Sequence[float],
        cooldown: Sequence[float],
        reason: str,
        bar_time: datetime | None = None,
    ) -> None:
        with self.transaction() as db:
            _insert_account(db, cash, holdings, cooldown, reason, bar_time)

    # -- cycles -----------------------------------------------------------------------------------
    def begin_cycle(
        self,
        bar_time: datetime,
        model_id: str,
        state_sha256: str,
        action: Sequence[float],
        plan: dict[str, Any],
        account: tuple[float, Sequence[float], Sequence[float]],
    ) -> None:
        """Record a decision and the account after its cooldown update, atomically."""
        cash, holdings, cooldown = account
        with self.transaction() as db:
            db.execute(
                "INSERT INTO cycles (bar_time, model_id, status, started_at, state_sha256, action, plan) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    iso(bar_time),
                    model_id,
                    CycleStatus.EXECUTING,
                    _now(),
                    state_sha256,
                    json.dumps([float(a) for a in action]),
                    json.dumps(plan),
                ),
            )
            _insert_account(db, cash, holdings, cooldown, "cycle_start", bar_time)

    def skip_cycle(self, bar_time: datetime, model_id: str, message: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO cycles (bar_time, model_id, status, started_at, finished_at, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (iso(bar_time), model_id, CycleStatus.SKIPPED, _now(), _now(), message),
            )

    def skip_missed(
        self, after: datetime, before: datetime, step: timedelta, model_id: str, message: str
    ) -> list[datetime]:
        """Journal every bar strictly between two decided ones as skipped, so no bar goes unexplained."""
        missed: list[datetime] = []
        moment = after + step
        while moment < before:
            missed.append(moment)
            moment += step
        with self.transaction() as db:
            db.executemany(
                "INSERT OR IGNORE INTO cycles (bar_time, model_id, status, started_at, finished_at, message) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(iso(m), model_id, CycleStatus.SKIPPED, _now(), _now(), message) for m in missed],
            )
        return missed

    def finish_cycle(
        self, bar_time: datetime, status: CycleStatus, lag_s: float | None, message: str = ""
    ) -> None:
        """Move an executing cycle to its end state; any other move is an ``InvalidTransition``."""
        with self.transaction() as db:
            row = db.execute("SELECT status FROM cycles WHERE bar_time=?", (iso(bar_time),)).fetchone()
            if row is None:
                raise InvariantViolation(f"finish of unknown cycle {iso(bar_time)}")
            CYCLE_STATUSES.check(CycleStatus(row["status"]), status)
            db.execute(
                "UPDATE cycles SET status=?, finished_at=?, lag_s=COALESCE(?, lag_s), message=? "
                "WHERE bar_time=?",
                (status, _now(), lag_s, message, iso(bar_time)),
            )

    def get_cycle(self, bar_time: datetime) -> CycleRecord | None:
        row = self._db.execute("SELECT * FROM cycles WHERE bar_time=?", (iso(bar_time),)).fetchone()
        return None if row is None else _cycle(row)

    def cycles(self, status: CycleStatus | None = None) -> list[CycleRecord]:
        if status is None:
            rows = self._db.execute("SELECT * FROM cycles ORDER BY bar_time")
        else:
            rows = self._db.execute("SELECT * FROM cycles WHERE status=? ORDER BY bar_time", (status,))
        return [_cycle(r) for r in rows]

    def skipped_since_decision(self, event_kind: str) -> list[datetime]:
        """Bars skipped after the newest decided one that have no ``event_kind`` event yet (the env's
        step at a skipped bar is recorded once, at the next decision: worker/shadow.py)."""
        rows = self._db.execute(
            "SELECT bar_time FROM cycles WHERE status = ? AND bar_time > "
            "COALESCE((SELECT MAX(bar_time) FROM cycles WHERE status != ?), '') ORDER BY bar_time",
            (CycleStatus.SKIPPED, CycleStatus.SKIPPED),
        ).fetchall()
        seen = (
            {
                json.loads(r["detail"]).get("bar")
                for r in self._db.execute("SELECT detail FROM events WHERE kind = ?", (event_kind,))
            }
            if rows
            else set()
        )
        return [parse_iso(r["bar_time"]) for r in rows if r["bar_time"] not in seen]

    def last_cycle(self) -> CycleRecord | None:
        row = self._db.execute("SELECT * FROM cycles ORDER BY bar_time DESC LIMIT 1").fetchone()
        return None if row is None else _cycle(row)

    # -- intents ----------------------------------------------------------------------------------
    def add_intent(
        self, client_order_id: str, bar_time: datetime, symbol: str, side: str, qty: Decimal, ref_price: float
    ) -> IntentRecord:
        """Write the intent (idempotent: an existing row with this id is returned unchanged)."""
        now = _now()
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO intents "
                "(client_order_id, bar_time, symbol, side, qty, ref_price, status, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    client_order_id,
                    iso(bar_time),
                    symbol,
                    side,
                    str(qty),
                    float(ref_price),
                    IntentStatus.PENDING,
                    now,
                    now,
                ),
            )
        intent = self.get_intent(client_order_id)
        assert intent is not None
        return intent

    def get_intent(self, client_order_id: str) -> IntentRecord | None:
        row = self._db.execute("SELECT * FROM intents WHERE client_order_id=?", (client_order_id,)).fetchone()
        return None if row is None else _intent(row)

    def intents(self, bar_time: datetime | None = None) -> list[IntentRecord]:
        if bar_time is None:
            rows = self._db.execute("SELECT * FROM intents ORDER BY created_at, client_order_id")
        else:
            rows = self._db.execute(
                "SELECT * FROM intents WHERE bar_time=? ORDER BY created_at, client_order_id",
                (iso(bar_time),),
            )
        return [_intent(r) for r in rows]

    def intents_since(self, bar_time: datetime, status: IntentStatus | None = None) -> list[IntentRecord]:
        """Intents of bar ``bar_time`` on (of one status): what a poll reads, never the whole history."""
        sql, args = "SELECT * FROM intents WHERE bar_time >= ?", [iso(bar_time)]
        if status is not None:
            sql, args = sql + " AND status = ?", [*args, status]
        rows = self._db.execute(sql + " ORDER BY created_at, client_order_id", args)
        return [_intent(r) for r in rows]

    def broker_order_ids(self, since: datetime | None = None) -> set[str]:
        """The broker's ids of this journal's orders, of bar ``since`` on (all when None)."""
        sql, args = "SELECT broker_order_id FROM intents WHERE broker_order_id IS NOT NULL", []
        if since is not None:
            sql, args = sql + " AND bar_time >= ?", [iso(since)]
        return {str(row[0]) for row in self._db.execute(sql, args)}

    def latest_filled(self, symbol: str) -> IntentRecord | None:
        """The symbol's newest intent with a fill (the order ``intents()`` lists them in)."""
        row = self._db.execute(
            "SELECT * FROM intents WHERE symbol = ? AND CAST(filled_qty AS REAL) > 0 "
            "ORDER BY created_at DESC, client_order_id DESC LIMIT 1",
            (symbol,),
        ).fetchone()
        return None if row is None else _intent(row)

    def open_intents(self) -> list[IntentRecord]:
        marks = ",".join("?" * len(_OPEN))
        rows = self._db.execute(f"SELECT * FROM intents WHERE status IN ({marks}) ORDER BY created_at", _OPEN)
        return [_intent(r) for r in rows]

    def unapplied_final_intents(self) -> list[IntentRecord]:
        rows = self._db.execute(
            "SELECT * FROM intents WHERE applied=0 AND CAST(filled_qty AS REAL) > 0 ORDER BY created_at"
        )
        return [intent for intent in map(_intent, rows) if not intent.is_open]

    def mark_attempt(self, client_order_id: str) -> None:
        """Called right before a POST: the journal then knows the order may exist at the broker (on
        disk, with everything committed before it)."""
        with self.transaction(durable=True) as db:
            db.execute(
                "UPDATE intents SET attempts=attempts+1, updated_at=? WHERE client_order_id=?",
                (_now(), client_order_id),
            )

    def update_intent(
        self,
        client_order_id: str,
        status: IntentStatus,
        *,
        broker_order_id: str | None = None,
        filled_qty: Decimal | None = None,
        filled_avg_price: float | None = None,
        event: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        with self.transaction() as db:
            current = db.execute(
                "SELECT status FROM intents WHERE client_order_id=?", (client_order_id,)
            ).fetchone()
            if current is None:
                raise InvariantViolation(f"update of unknown intent {client_order_id}")
            INTENT_STATUSES.check(IntentStatus(current["status"]), status)
            db.execute(
                "UPDATE intents SET status=?, broker_order_id=COALESCE(?, broker_order_id), "
                "filled_qty=COALESCE(?, filled_qty), filled_avg_price=COALESCE(?, filled_avg_price), "
                "updated_at=? "
                "WHERE client_order_id=?",
                (
                    status,
                    broker_order_id,
                    None if filled_qty is None else str(filled_qty),
                    filled_avg_price,
                    _now(),
                    client_order_id,
                ),
            )
            if event:
                _insert_event(db, event, client_order_id, detail or {"status": status})

    def apply_fill(
        self,
        client_order_id: str,
        qty: Decimal,
        price: float,
        account: tuple[float, Sequence[float], Sequence[float]],
    ) -> bool:
        """Book a final fill and the resulting account in one transaction; False if already booked."""
        cash, holdings, cooldown = account
        with self.transaction() as db:
            row = db.execute(
                "SELECT applied, symbol, side, bar_time FROM intents WHERE client_order_id=?",
                (client_order_id,),
            ).fetchone()
            if row is None:
                raise InvariantViolation(f"fill for unknown intent {client_order_id}")
            if row["applied"]:
                return False
            db.execute(
                "INSERT INTO fills (client_order_id, symbol, side, qty, price, at) VALUES (?, ?, ?, ?, ?, ?)",
                (client_order_id, row["symbol"], row["side"], str(qty), float(price), _now()),
            )
            db.execute(
                "UPDATE intents SET applied=1, updated_at=? WHERE client_order_id=?",
                (_now(), client_order_id),
            )
            _insert_account(
                db, cash, holdings, cooldown, f"fill {client_order_id}", parse_iso(row["bar_time"])
            )
        return True

    def fills(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._db.execute("SELECT * FROM fills ORDER BY at, client_order_id")]

    # -- events -----------------------------------------------------------------------------------
    def record_event(
        self,
        kind: str,
        client_order_id: str | None = None,
        detail: dict[str, Any] | None = None,
        durable: bool = False,
    ) -> None:
        with self.transaction(durable) as db:
            _insert_event(db, kind, client_order_id, detail or {})

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        if kind is None:
            rows = self._db.execute("SELECT * FROM events ORDER BY id")
        else:
            rows = self._db.execute("SELECT * FROM events WHERE kind=? ORDER BY id", (kind,))
        return [{**dict(r), "detail": json.loads(r["detail"])} for r in rows]

    def last_event(self, kinds: Sequence[str]) -> dict[str, Any] | None:
        """The newest event of any of ``kinds`` (a halt and its resume, say), or None."""
        return newest_event(self._db, kinds)


def newest_event(db: sqlite3.Connection, kinds: Sequence[str]) -> dict[str, Any] | None:
    """``Journal.last_event`` over a bare connection (``sqlite3.Row`` rows): readers that never open a
    ``Journal``, which writes (ops/journal_view.py), ask the same question."""
    marks = ", ".join("?" for _ in kinds)
    row = db.execute(
        f"SELECT * FROM events WHERE kind IN ({marks}) ORDER BY id DESC LIMIT 1", tuple(kinds)
    ).fetchone()
    return None if row is None else {**dict(row), "detail": json.loads(row["detail"])}


def _insert_event(
    db: sqlite3.Connection, kind: str, client_order_id: str | None, detail: dict[str, Any]
) -> None:
    db.execute(
        "INSERT INTO events (at, client_order_id, kind, detail) VALUES (?, ?, ?, ?)",
        (_now(), client_order_id, kind, json.dumps(detail, default=str)),
    )


def _insert_account(
    db: sqlite3.Connection,
    cash: float,
    holdings: Sequence[float],
    cooldown: Sequence[float],
    reason: str,
    bar_time: datetime | None,
) -> None:
    db.execute(
        "INSERT INTO account_snapshots (at, bar_time, reason, cash, holdings, cooldown) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        (
            _now(),
            iso(bar_time) if bar_time else None,
            reason,
            float(cash),
            json.dumps([float(h) for h in holdings]),
            json.dumps([float(c) for c in cooldown]),
        ),
    )


def _account(row: sqlite3.Row) -> AccountRecord:
    return AccountRecord(
        cash=float(row["cash"]),
        holdings=tuple(float(x) for x in json.loads(row["holdings"])),
        cooldown=tuple(float(x) for x in json.loads(row["cooldown"])),
        at=parse_iso(row["at"]),
        reason=str(row["reason"]),
        bar_time=parse_iso(row["bar_time"]) if row["bar_time"] else None,
    )


def _cycle(row: sqlite3.Row) -> CycleRecord:
    return CycleRecord(
        bar_time=parse_iso(row["bar_time"]),
        model_id=str(row["model_id"]),
        status=CycleStatus(row["status"]),
        started_at=parse_iso(row["started_at"]),
        finished_at=parse_iso(row["finished_at"]) if row["finished_at"] else None,
        state_sha256=row["state_sha256"],
        action=json.loads(row["action"]) if row["action"] else None,
        plan=json.loads(row["plan"]) if row["plan"] else None,
        lag_s=row["lag_s"],
        message=str(row["message"]),
    )


def _intent(row: sqlite3.Row) -> IntentRecord:
    return IntentRecord(
        client_order_id=str(row["client_order_id"]),
        bar_time=parse_iso(row["bar_time"]),
        symbol=str(row["symbol"]),
        side=str(row["side"]),
        qty=Decimal(row["qty"]),
        ref_price=float(row["ref_price"]),
        status=IntentStatus(row["status"]),
        broker_order_id=row["broker_order_id"],
        filled_qty=Decimal(row["filled_qty"]),
        filled_avg_price=row["filled_avg_price"],
        applied=bool(row["applied"]),
        attempts=int(row["attempts"]),
    )
