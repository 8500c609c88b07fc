"""A model's risk halt, as journal events: in force from a ``risk_halt`` until a ``risk_resumed``.

Kept as events (not a flag) so the journal says when, why and by whom each halt began and ended; the
worker (``worker/riskguard.py``) writes halts, ``cappuccino-paper resume-model`` writes resumes, and
``status``/``leaderboard`` read the newest of the two.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from cappuccino_daemon.journal.store import Journal, newest_event

HALT, RESUMED, CUT = "risk_halt", "risk_resumed", "order_cut"
MARKS_KEY = "risk_marks"  # meta: the peak and the day's first equity the loss limits measure from


def current_halt(journal: Journal) -> dict[str, Any] | None:
    """The halt in force (its event detail, with ``at``), or None."""
    return _in_force(journal.last_event((HALT, RESUMED)))


def halt_in(db: sqlite3.Connection) -> dict[str, Any] | None:
    """``current_halt`` for a reader without a ``Journal`` (a read-only connection: ops/journal_view.py)."""
    return _in_force(newest_event(db, (HALT, RESUMED)))


def _in_force(newest: dict[str, Any] | None) -> dict[str, Any] | None:
    if newest is None or newest["kind"] != HALT:
        return None
    return {**newest["detail"], "at": newest["at"]}


def resume(journal: Journal, note: str = "") -> dict[str, Any] | None:
    """Clear a halt (journaled) and restart the marks from the next decision, or the model would breach
    again at once; returns the halt it cleared, or None when there was none (nothing is written)."""
    halt = current_halt(journal)
    if halt is None:
        return None
    journal.record_event(RESUMED, None, {"halt": halt, "note": note, "by": "resume-model"}, durable=True)
    journal.set_meta(MARKS_KEY, "{}", durable=True)
    return halt
