"""The journal's SQLite schema (one file per worker state directory).

Rows are appended or moved forward, never deleted: the journal is the audit trail that lets a restarted
worker finish an interrupted cycle without sending anything twice. Times are ISO-8601 UTC text;
quantities are decimal text (exact), prices and cash REAL.
"""

from __future__ import annotations

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- The action normaliser, computed once at the first start of a model and never again.
CREATE TABLE IF NOT EXISTS normaliser (
    model_id    TEXT PRIMARY KEY,
    tickers     TEXT NOT NULL,      -- JSON list, state order
    p0          TEXT NOT NULL,      -- JSON list of floats
    anv         TEXT NOT NULL,      -- JSON list of floats (coins per unit of raw action)
    norm_action REAL NOT NULL,
    p0_bar      TEXT,               -- open time of the bar whose close became p0
    created_at  TEXT NOT NULL
);

-- One decision per completed bar. status: states.CycleStatus (executing -> done | partial | interrupted;
-- or skipped), moves checked against states.CYCLE_STATUSES.
CREATE TABLE IF NOT EXISTS cycles (
    bar_time     TEXT PRIMARY KEY,
    model_id     TEXT NOT NULL,
    status       TEXT NOT NULL,
    started_at   TEXT NOT NULL,
    finished_at  TEXT,
    state_sha256 TEXT,
    action       TEXT,              -- JSON raw action (float32 values)
    plan         TEXT,              -- JSON planned orders and prices
    lag_s        REAL,              -- bar close -> last order sent
    message      TEXT NOT NULL DEFAULT ''
);

-- One row per order we intend to send, written BEFORE the submit.
-- status: states.IntentStatus (pending | ambiguous | submitted | filled | canceled | rejected | expired |
-- lost), moves checked against states.INTENT_STATUSES.
CREATE TABLE IF NOT EXISTS intents (
    client_order_id  TEXT PRIMARY KEY,
    bar_time         TEXT NOT NULL,
    symbol           TEXT NOT NULL,
    side             TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    qty              TEXT NOT NULL,
    ref_price        REAL NOT NULL,
    status           TEXT NOT NULL,
    broker_order_id  TEXT,
    filled_qty       TEXT NOT NULL DEFAULT '0',
    filled_avg_price REAL,
    applied          INTEGER NOT NULL DEFAULT 0,  -- fill booked into the virtual account
    attempts         INTEGER NOT NULL DEFAULT 0,  -- submit attempts (POSTs sent)
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intents_by_bar ON intents (bar_time);
CREATE INDEX IF NOT EXISTS intents_by_status ON intents (status);
-- The worker's per-bar questions, answered without walking a year of history (bench/journal_queries.py):
-- the newest fill of a symbol, fills not booked yet, cycles still executing.
CREATE INDEX IF NOT EXISTS intents_by_symbol ON intents (symbol, created_at, client_order_id);
CREATE INDEX IF NOT EXISTS intents_unapplied ON intents (created_at) WHERE applied = 0;
CREATE INDEX IF NOT EXISTS cycles_by_status ON cycles (status, bar_time);

-- Everything that happened to an order or the books, in order: submit outcomes, lookups, reconcile notes.
CREATE TABLE IF NOT EXISTS events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              TEXT NOT NULL,
    client_order_id TEXT,
    kind            TEXT NOT NULL,
    detail          TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS events_by_kind ON events (kind, id);

-- Final fills booked into the virtual account (one per order: market orders fill once, finally).
CREATE TABLE IF NOT EXISTS fills (
    client_order_id TEXT PRIMARY KEY REFERENCES intents (client_order_id),
    symbol          TEXT NOT NULL,
    side            TEXT NOT NULL,
    qty             TEXT NOT NULL,
    price           REAL NOT NULL,
    at              TEXT NOT NULL
);

-- The virtual sub-account after every change (the newest row is the current account).
CREATE TABLE IF NOT EXISTS account_snapshots (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at       TEXT NOT NULL,
    bar_time TEXT,
    reason   TEXT NOT NULL,
    cash     REAL NOT NULL,
    holdings TEXT NOT NULL,          -- JSON list, state order
    cooldown TEXT NOT NULL           -- JSON list, state order
);
"""
