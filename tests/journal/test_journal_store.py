"""The journal's own guarantees: durable settings, idempotent writes, atomic fill+account booking."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from cappuccino_daemon.errors import ConfigError, InvariantViolation
from cappuccino_daemon.journal.store import Journal

BAR = datetime(2024, 1, 1, 10, tzinfo=UTC)


def test_wal_with_an_fsync_where_a_guarantee_needs_one(tmp_path: Path) -> None:
    """Commits run at NORMAL (a process crash loses nothing in WAL mode); the attempt before a POST,
    halts and the normaliser commit at FULL, which puts every earlier commit on disk with them."""
    with Journal(tmp_path / "j.sqlite") as journal:
        mode = journal._db.execute("PRAGMA journal_mode").fetchone()[0]
        assert mode == "wal"
        assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        statements: list[str] = []
        journal._db.set_trace_callback(statements.append)
        journal.add_intent("cp-x-1", BAR, "BTC", "buy", Decimal("0.0123"), 30000.0)
        assert not any("synchronous=FULL" in s for s in statements)
        statements.clear()
        journal.mark_attempt("cp-x-1")
        full = statements.index("PRAGMA synchronous=FULL")
        assert statements[full + 1] == "BEGIN IMMEDIATE" and statements[-1] == "PRAGMA synchronous=NORMAL"
        assert any(s.startswith("UPDATE intents SET attempts") for s in statements[full:])
        statements.clear()
        journal.record_event("risk_halt", None, {"limit": "max_drawdown"}, durable=True)
        journal.save_normaliser("m1", ["BTC"], [30000.0], [1.0], 10000.0, BAR)
        assert statements.count("PRAGMA synchronous=FULL") == 2
        journal._db.set_trace_callback(None)
        assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_normaliser_is_saved_once_and_never_rescaled(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        first = journal.save_normaliser("m1", ["BTC", "ETH"], [30000.0, 900.0], [1.0, 100.0], 10000.0, BAR)
        again = journal.save_normaliser("m1", ["BTC", "ETH"], [99999.0, 1001.0], [1.0, 10.0], 10000.0, BAR)
    assert again == first
    with Journal(path) as journal:  # survives a reopen (restart)
        record = journal.get_normaliser("m1")
    assert record is not None and record.anv == (1.0, 100.0) and record.p0 == (30000.0, 900.0)
    assert record.p0_bar == BAR


def test_intent_is_idempotent_and_tracks_attempts(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        a = journal.add_intent("cp-x-1", BAR, "BTC", "buy", Decimal("0.0123"), 30000.0)
        b = journal.add_intent("cp-x-1", BAR, "BTC", "buy", Decimal("9"), 1.0)
        assert a == b and a.qty == Decimal("0.0123") and a.status == "pending" and a.attempts == 0
        journal.mark_attempt("cp-x-1")
        journal.update_intent("cp-x-1", "ambiguous", event="submit_ambiguous")
        intent = journal.get_intent("cp-x-1")
        assert intent is not None and intent.attempts == 1 and intent.status == "ambiguous" and intent.is_open
        assert [i.client_order_id for i in journal.open_intents()] == ["cp-x-1"]
        assert journal.events("submit_ambiguous")[0]["client_order_id"] == "cp-x-1"
        with pytest.raises(InvariantViolation):
            journal.update_intent("nope", "filled")


def test_fill_and_account_commit_together_once(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.save_account(1000.0, [0.0, 0.0], [0.0, 0.0], "initial")
        journal.add_intent("cp-x-2", BAR, "ETH", "buy", Decimal("0.5"), 1000.0)
        journal.update_intent("cp-x-2", "filled", filled_qty=Decimal("0.5"), filled_avg_price=1001.0)
        assert [i.client_order_id for i in journal.unapplied_final_intents()] == ["cp-x-2"]
        assert journal.apply_fill("cp-x-2", Decimal("0.5"), 1001.0, (499.0, [0.0, 0.5], [0.0, 0.0]))
        assert not journal.apply_fill("cp-x-2", Decimal("0.5"), 1001.0, (0.0, [0.0, 1.0], [0.0, 0.0]))
        account = journal.latest_account()
        assert account is not None and account.cash == 499.0 and account.holdings == (0.0, 0.5)
        assert journal.unapplied_final_intents() == []
        assert len(journal.fills()) == 1


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        with pytest.raises(RuntimeError), journal.transaction() as db:
            db.execute("INSERT INTO meta (key, value) VALUES ('x', 'y')")
            raise RuntimeError("crash inside")
        assert journal.get_meta("x") is None


def test_cycles_lifecycle(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.begin_cycle(BAR, "m1", "abc", [0.5, -0.5], {"orders": []}, (1000.0, [0.0, 0.0], [1.0, 0.0]))
        assert journal.get_cycle(BAR) is not None
        assert [c.bar_time for c in journal.cycles("executing")] == [BAR]
        journal.finish_cycle(BAR, "done", 1.25)
        cycle = journal.get_cycle(BAR)
        assert (
            cycle is not None
            and cycle.status == "done"
            and cycle.lag_s == 1.25
            and cycle.action == [0.5, -0.5]
        )
        account = journal.latest_account()
        assert account is not None and account.reason == "cycle_start" and account.cooldown == (1.0, 0.0)


def test_garbage_file_is_a_config_error_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ConfigError, match="move it aside"):
        Journal(path)


def test_schema_version_mismatch_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    db.commit()
    db.close()
    with pytest.raises(ConfigError, match="schema version 99"):
        Journal(path)


def test_the_workers_per_bar_reads_never_walk_the_whole_history(tmp_path: Path) -> None:
    """A tournament asks each journal these every bar; after a year a full scan of the intents cost
    150 ms a call (bench/journal_queries.py). Each read must use an index, whatever the data."""
    from datetime import timedelta

    from cappuccino_daemon.journal.event_kinds import SKIPPED_ENV
    from cappuccino_daemon.journal.halts import current_halt
    from cappuccino_daemon.states import CycleStatus, IntentStatus

    with Journal(tmp_path / "j.sqlite") as journal:
        statements: list[str] = []
        journal._db.set_trace_callback(statements.append)
        journal.get_cycle(BAR)
        journal.cycles(CycleStatus.EXECUTING)
        journal.skipped_since_decision(SKIPPED_ENV)
        journal.open_intents()
        journal.intents_since(BAR - timedelta(days=2), IntentStatus.LOST)
        journal.intents(BAR)
        journal.latest_filled("ETH")
        journal.unapplied_final_intents()
        journal.broker_order_ids(BAR)
        current_halt(journal)
        journal._db.set_trace_callback(None)
        plans = {
            sql: " | ".join(str(row[3]) for row in journal._db.execute(f"EXPLAIN QUERY PLAN {sql}"))
            for sql in statements
            if sql.startswith("SELECT")
        }
    assert len(plans) == 10
    for sql, plan in plans.items():
        walks = [step for step in plan.split(" | ") if step.startswith("SCAN") and "INDEX" not in step]
        assert not walks, f"{sql}: {plan}"
