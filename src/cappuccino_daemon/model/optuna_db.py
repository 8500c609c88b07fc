"""Read an Optuna RDB SQLite file read-only, keyed by (study, number), categoricals decoded.

Plain SQL over a ``mode=ro`` connection rather than ``optuna.load_study``: opening a file through
Optuna's RDBStorage may create tables or migrate the schema, and a model-selection tool must never
write to the training database. ``param_value`` holds Optuna's internal representation (the index
into ``choices`` for categoricals); each value is decoded with its own ``distribution_json``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.errors import ConfigError

_SQLITE_MAGIC = b"SQLite format 3\x00"
_REQUIRED_TABLES = {"studies", "study_directions", "trials", "trial_params", "trial_values"}
_INF = {"INF_POS": float("inf"), "INF_NEG": float("-inf")}


@dataclass(frozen=True)
class DbTrial:
    study: str
    direction: str  # "MAXIMIZE" | "MINIMIZE" (first objective)
    number: int
    trial_id: int
    state: str
    values: list[float] | None
    params: dict[str, Any]  # external representation (batch_size=1536, use_lr_schedule=False)
    distributions: dict[str, dict[str, Any]]  # distribution_json, parsed
    user_attrs: dict[str, Any] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    intermediate_values: dict[int, float] = field(default_factory=dict)
    datetime_start: datetime | None = None
    datetime_complete: datetime | None = None

    @property
    def value(self) -> float | None:
        return self.values[0] if self.values else None


def _fix(db: Path) -> str:
    return (
        f"Fix: pass --db with the Optuna SQLite file the trainer used (Cappuccino writes "
        f"databases/optuna_cappuccino.db); `ls {db.parent}` shows what is there."
    )


@contextmanager
def open_db(db: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a validated Optuna SQLite file."""
    db = Path(db)
    if not db.is_file():
        raise ConfigError(f"Optuna database {db} does not exist. {_fix(db)}")
    with db.open("rb") as fh:
        if fh.read(16) != _SQLITE_MAGIC:
            raise ConfigError(f"{db} is not an SQLite database (wrong file header). {_fix(db)}")
    uri = f"file:{db.resolve()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.Error as exc:
        raise ConfigError(f"Cannot read {db} as SQLite ({exc}). {_fix(db)}") from None
    missing = _REQUIRED_TABLES - tables
    if missing:
        conn.close()
        raise ConfigError(
            f"{db} is an SQLite file but not an Optuna storage (missing tables: "
            f"{', '.join(sorted(missing))}). {_fix(db)}"
        )
    try:
        yield conn
    except sqlite3.Error as exc:
        raise ConfigError(f"Reading {db} failed ({exc}); the file may be corrupt. {_fix(db)}") from None
    finally:
        conn.close()


def _dt(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _decode_param(value: float, distribution_json: str) -> tuple[Any, dict[str, Any]]:
    """(external value, parsed distribution) using Optuna's own decoder."""
    from optuna.distributions import json_to_distribution

    dist = json_to_distribution(distribution_json)
    return dist.to_external_repr(value), json.loads(distribution_json)


def list_studies(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    """(study_id, name, direction of objective 0) for every study."""
    rows = conn.execute(
        "SELECT s.study_id, s.study_name, COALESCE(d.direction, 'MINIMIZE') FROM studies s "
        "LEFT JOIN study_directions d ON d.study_id = s.study_id AND d.objective = 0 ORDER BY s.study_id"
    ).fetchall()
    return [(int(a), str(b), str(c)) for a, b, c in rows]


def load_trials(
    conn: sqlite3.Connection,
    *,
    study: str | None = None,
    trial_ids: list[int] | None = None,
    states: tuple[str, ...] | None = None,
) -> list[DbTrial]:
    """Trials (optionally filtered) with params decoded and attributes parsed."""
    studies = {sid: (name, direction) for sid, name, direction in list_studies(conn)}
    sql = "SELECT trial_id, number, study_id, state, datetime_start, datetime_complete FROM trials WHERE 1=1"
    args: list[Any] = []
    if study is not None:
        ids = [sid for sid, (name, _) in studies.items() if name == study]
        sql += f" AND study_id IN ({','.join('?' * len(ids)) or 'NULL'})"
        args += ids
    if trial_ids is not None:
        sql += f" AND trial_id IN ({','.join('?' * len(trial_ids)) or 'NULL'})"
        args += trial_ids
    if states is not None:
        sql += f" AND state IN ({','.join('?' * len(states))})"
        args += list(states)
    rows = conn.execute(sql + " ORDER BY trial_id", args).fetchall()
    out: list[DbTrial] = []
    for trial_id, number, study_id, state, start, complete in rows:
        vals = conn.execute(
            "SELECT value, value_type FROM trial_values WHERE trial_id=? ORDER BY objective", (trial_id,)
        ).fetchall()
        values = [_INF.get(vt, v) for v, vt in vals] if vals else None
        params: dict[str, Any] = {}
        dists: dict[str, dict[str, Any]] = {}
        for name, pv, dj in conn.execute(
            "SELECT param_name, param_value, distribution_json FROM trial_params WHERE trial_id=? "
            "ORDER BY param_id",
            (trial_id,),
        ):
            params[name], dists[name] = _decode_param(pv, dj)
        name, direction = studies.get(study_id, (f"<study {study_id}>", "MINIMIZE"))
        out.append(
            DbTrial(
                study=name,
                direction=direction,
                number=int(number),
                trial_id=int(trial_id),
                state=str(state),
                values=[float(v) for v in values] if values is not None else None,
                params=params,
                distributions=dists,
                user_attrs=_attrs(conn, "trial_user_attributes", trial_id),
                system_attrs=_attrs(conn, "trial_system_attributes", trial_id),
                intermediate_values=_intermediate(conn, trial_id),
                datetime_start=_dt(start),
                datetime_complete=_dt(complete),
            )
        )
    return out


def _attrs(conn: sqlite3.Connection, table: str, trial_id: int) -> dict[str, Any]:
    rows = conn.execute(f"SELECT key, value_json FROM {table} WHERE trial_id=?", (trial_id,)).fetchall()
    return {str(k): json.loads(v) for k, v in rows}


def _intermediate(conn: sqlite3.Connection, trial_id: int) -> dict[int, float]:
    try:
        rows = conn.execute(
            "SELECT step, intermediate_value FROM trial_intermediate_values WHERE trial_id=?", (trial_id,)
        ).fetchall()
    except sqlite3.OperationalError:
        return {}
    return {int(s): float(v) for s, v in rows if v is not None}


def best_trials(conn: sqlite3.Connection, study: str | None = None, top: int = 10) -> list[DbTrial]:
    """The ``top`` best COMPLETE trials of each study, ordered by that study's direction."""
    names = [name for _, name, _ in list_studies(conn)]
    if study is not None and study not in names:
        raise ConfigError(
            f"Study {study!r} is not in the database (studies: {', '.join(names) or 'none'}). Fix: pass one "
            "of those names to --study."
        )
    out: list[DbTrial] = []
    for name in [study] if study else names:
        done = [t for t in load_trials(conn, study=name, states=("COMPLETE",)) if t.value is not None]
        maximize = bool(done) and done[0].direction == "MAXIMIZE"
        done.sort(key=lambda t: t.value if t.value is not None else 0.0, reverse=maximize)
        out += done[:top]
    return out


def find_trials(conn: sqlite3.Connection, ident: int, study: str | None = None) -> list[DbTrial]:
    """Trials whose per-study number OR global trial_id equals ``ident`` (the old ambiguous --trial-id)."""
    ids = [
        int(r[0])
        for r in conn.execute(
            "SELECT t.trial_id FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE (t.number = ? OR t.trial_id = ?) AND (? IS NULL OR s.study_name = ?)",
            (ident, ident, study, study),
        )
    ]
    return load_trials(conn, trial_ids=ids) if ids else []


def get_trial(conn: sqlite3.Connection, study: str, number: int) -> DbTrial | None:
    """The trial keyed by (study, number), the only unambiguous key."""
    return next((t for t in load_trials(conn, study=study) if t.number == number), None)


def trial_folder(results_dir: Path, trial: DbTrial) -> Path:
    """Where Cappuccino's trainer put the weights: ``cwd_tests/trial_<number>_<timeframe>``."""
    tf = trial.user_attrs.get("timeframe") or trial.params.get("timeframe") or "1h"
    return Path(results_dir) / "cwd_tests" / f"trial_{trial.number}_{tf}"
