"""The named state machines: every table walked, the moves the code enforces refused, old files loading."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from cappuccino_daemon.clock import SystemClock
from cappuccino_daemon.heartbeat import read_heartbeat
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.states import (
    CHILD_STATES,
    CYCLE_STATUSES,
    INTENT_STATUSES,
    OPEN_INTENT_STATUSES,
    SUPERVISOR_STATUSES,
    WORKER_PHASES,
    ChildState,
    CycleStatus,
    ExitReason,
    IntentStatus,
    InvalidTransition,
    SupervisorStatus,
    Transitions,
    WorkerPhase,
)
from cappuccino_daemon.supervisor.state_store import ChildRecord, StateStore, SupervisorState
from cappuccino_daemon.worker.loop import WorkerLoop

NOW = datetime(2026, 1, 5, 12, tzinfo=UTC)
BAR = datetime(2026, 1, 5, 10, tzinfo=UTC)
MACHINES: list[tuple[Transitions[Any], type[StrEnum]]] = [
    (WORKER_PHASES, WorkerPhase),
    (INTENT_STATUSES, IntentStatus),
    (CYCLE_STATUSES, CycleStatus),
    (CHILD_STATES, ChildState),
    (SUPERVISOR_STATUSES, SupervisorStatus),
]


@pytest.mark.parametrize(("machine", "enum"), MACHINES, ids=lambda m: getattr(m, "name", ""))
def test_each_table_is_walked_allowed_moves_pass_the_rest_are_refused(
    machine: Transitions[Any], enum: type[StrEnum]
) -> None:
    assert set(machine.table) == set(enum), "every state has a row (an empty row means final)"
    assert machine.initial and machine.initial <= set(enum)
    allowed = refused = 0
    for old, new in itertools.product(enum, repeat=2):
        if new in machine.table[old]:
            assert machine.check(old, new) is new
            allowed += 1
        else:
            with pytest.raises(InvalidTransition, match=f"{old} -> {new} is not allowed"):
                machine.check(old, new)
            refused += 1
    assert allowed > 0 and refused > 0
    # Every state is reachable from a start state (no dead rows in the documentation).
    reached, frontier = set(machine.initial), list(machine.initial)
    while frontier:
        for new in machine.table[frontier.pop()]:
            if new not in reached:
                reached.add(new)
                frontier.append(new)
    assert reached == set(enum)


def test_values_are_the_strings_files_have_always_held() -> None:
    assert [p.value for p in WorkerPhase] == ["STARTING", "RECONCILING", "TRADING", "WAITING", "STOPPING"]
    assert {s.value for s in OPEN_INTENT_STATUSES} == {"pending", "ambiguous", "submitted"}
    assert CycleStatus.EXECUTING == "executing" and json.dumps(ChildState.GIVEN_UP) == '"given_up"'
    assert ExitReason.parse("killed by SIGKILL") is ExitReason.KILLED
    assert ExitReason.parse("spawn failed: [Errno 2] No such file") is ExitReason.SPAWN_FAILED
    assert ExitReason.DO_NOT_RESTART.after is ChildState.GIVEN_UP
    assert ExitReason.HUNG.after is ChildState.BACKOFF


# -- the journal enforces intent and cycle moves -------------------------------------------------------
def test_journal_refuses_an_intent_move_its_table_does_not_list(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        intent = journal.add_intent("c1", BAR, "BTC/USD", "buy", Decimal("0.01"), 50_000.0)
        assert intent.status is IntentStatus.PENDING and intent.is_open
        journal.update_intent("c1", IntentStatus.SUBMITTED)
        journal.update_intent("c1", IntentStatus.FILLED, filled_qty=Decimal("0.01"))
        with pytest.raises(InvalidTransition, match="intent status: filled -> submitted"):
            journal.update_intent("c1", IntentStatus.SUBMITTED)
        record = journal.get_intent("c1")
        assert record is not None and record.status is IntentStatus.FILLED and not record.is_open


def test_journal_refuses_to_finish_a_cycle_twice(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        journal.begin_cycle(BAR, "m", "sha", [0.1], {"orders": []}, (1000.0, [0.0], [0.0]))
        journal.finish_cycle(BAR, CycleStatus.DONE, 0.5)
        with pytest.raises(InvalidTransition, match="cycle status: done -> interrupted"):
            journal.finish_cycle(BAR, CycleStatus.INTERRUPTED, None)
        journal.skip_cycle(BAR + timedelta(hours=1), "m", "gap")
        statuses = [c.status for c in journal.cycles()]
        assert statuses == [CycleStatus.DONE, CycleStatus.SKIPPED]


def test_journal_rows_written_with_the_old_literal_strings_load(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    Journal(path).close()  # the schema
    db = sqlite3.connect(path)
    t = BAR.isoformat()
    db.execute(
        "INSERT INTO cycles (bar_time, model_id, status, started_at, message) "
        "VALUES (?, 'm', 'executing', ?, '')",
        (t, t),
    )
    db.execute(
        "INSERT INTO intents (client_order_id, bar_time, symbol, side, qty, ref_price, status, created_at, "
        "updated_at) VALUES ('old', ?, 'BTC/USD', 'sell', '0.5', 1.0, 'ambiguous', ?, ?)",
        (t, t, t),
    )
    db.commit()
    db.close()
    with Journal(path) as journal:
        (cycle,) = journal.cycles(CycleStatus.EXECUTING)
        assert cycle.status is CycleStatus.EXECUTING
        (intent,) = journal.open_intents()
        assert intent.status is IntentStatus.AMBIGUOUS
        journal.update_intent("old", IntentStatus.LOST)  # and it moves on by the table
        journal.finish_cycle(BAR, CycleStatus.INTERRUPTED, None, "worker restarted after its bar")
        assert journal.open_intents() == [] and journal.cycles(CycleStatus.EXECUTING) == []


# -- the supervisor's state file --------------------------------------------------------------------------
def test_a_supervisor_json_with_the_old_literal_strings_loads(tmp_path: Path) -> None:
    old = {
        "version": 1,
        "status": "running",
        "message": "",
        "supervisor_pid": 4242,
        "children": {
            "worker": {
                "name": "worker",
                "state": "backoff",
                "consecutive_failures": 2,
                "backoff_s": 10.0,
                "last_exit_signal": "SIGKILL",
                "last_exit_reason": "killed by SIGKILL",
            },
            "emulator": {"name": "emulator", "state": "given_up", "last_exit_reason": "do_not_restart"},
            "other": {"name": "other", "state": "stopped", "last_exit_reason": "spawn failed: [Errno 2] x"},
        },
    }
    (tmp_path / "supervisor.json").write_text(json.dumps(old))
    state = StateStore(tmp_path).load(NOW)
    assert state.status is SupervisorStatus.RUNNING
    worker, emulator, other = (state.children[n] for n in ("worker", "emulator", "other"))
    assert (worker.state, worker.last_exit_reason) == (ChildState.BACKOFF, ExitReason.KILLED)
    assert worker.last_exit_detail == "killed by SIGKILL" and worker.consecutive_failures == 2
    assert (emulator.state, emulator.last_exit_reason) == (ChildState.GIVEN_UP, ExitReason.DO_NOT_RESTART)
    assert other.last_exit_reason is ExitReason.SPAWN_FAILED
    assert other.last_exit_detail == "spawn failed: [Errno 2] x"
    assert not list(tmp_path.glob("supervisor.json.corrupt-*"))
    StateStore(tmp_path).save(state, NOW)  # written back by value: the same strings
    again = json.loads((tmp_path / "supervisor.json").read_text())
    assert again["children"]["worker"]["state"] == "backoff" and again["status"] == "running"


def test_an_unknown_child_state_is_a_damaged_file_rebuilt(tmp_path: Path) -> None:
    (tmp_path / "supervisor.json").write_text(
        json.dumps({"version": 1, "children": {"worker": {"state": "dancing"}}})
    )
    assert StateStore(tmp_path).load(NOW).children == {}
    assert list(tmp_path.glob("supervisor.json.corrupt-*"))


def test_child_record_and_supervisor_status_refuse_moves_off_their_tables() -> None:
    record = ChildRecord("worker")
    record.move(ChildState.STARTING)
    record.move(ChildState.GIVEN_UP)
    with pytest.raises(InvalidTransition, match="child state: given_up -> running"):
        record.move(ChildState.RUNNING)
    state = SupervisorState()
    state.move(SupervisorStatus.RUNNING)
    state.move(SupervisorStatus.RUNNING)  # staying put is not a move
    state.move(SupervisorStatus.STOPPING)
    with pytest.raises(InvalidTransition, match="supervisor status: stopping -> running"):
        state.move(SupervisorStatus.RUNNING)


# -- the worker's phase ---------------------------------------------------------------------------------
def test_worker_loop_refuses_a_phase_move_off_the_table() -> None:
    # No heartbeat file and no broker is touched: only the phases are exercised.
    parts = {
        "broker": None,
        "journal": None,
        "spec": SimpleNamespace(profile=None),
        "tickers": (),
        "pace": None,
    }
    cycle = cast(Any, SimpleNamespace(clock=SystemClock(), **parts))
    loop = WorkerLoop(cycle, heartbeat_file=None, poll_interval_s=1.0)
    assert loop.status.phase is WorkerPhase.STARTING
    loop._set_phase(WorkerPhase.RECONCILING)
    loop._set_phase(WorkerPhase.TRADING)
    loop._set_phase(WorkerPhase.WAITING)
    loop._set_phase(WorkerPhase.STOPPING)
    with pytest.raises(InvalidTransition, match="worker phase: STOPPING -> TRADING"):
        loop._set_phase(WorkerPhase.TRADING)
    assert loop.status.phase is WorkerPhase.STOPPING


def test_a_heartbeat_with_the_old_phase_string_loads(tmp_path: Path) -> None:
    beat = {"time": NOW.isoformat(), "pid": 1, "phase": "WAITING", "cycles": 3}
    (tmp_path / "heartbeat.json").write_text(json.dumps(beat))
    hb = read_heartbeat(tmp_path / "heartbeat.json")
    assert hb is not None and hb.phase is WorkerPhase.WAITING and hb.cycles == 3


def test_the_bottom_modules_import_no_ml_stack_and_no_pydantic() -> None:
    """The lean supervisor imports these; so they must stay standard library (plus our errors)."""
    code = (
        "import sys; import cappuccino_daemon.states, cappuccino_daemon.layout, cappuccino_daemon.procinfo;"
        "print(sorted(m for m in ('torch', 'numpy', 'pandas', 'pydantic', 'structlog') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
