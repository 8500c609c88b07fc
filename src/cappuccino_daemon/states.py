"""The daemon's named state machines: each a string enum plus the table of moves it may make.

The values are the exact strings the journal (SQLite) and the state files (``supervisor.json``,
``heartbeat.json``) have always held, so files written before these enums existed load unchanged, and a
member compares equal to its string. The tables are the documentation (README, Development) and the
rule: the journal refuses an intent or cycle move the table does not list, the worker refuses a phase
move, the supervisor a child or status move; each refusal is an ``InvalidTransition`` (a bug, never
bad input). Standard library only: the supervisor imports this module and must stay small.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Generic, TypeVar

from cappuccino_daemon.errors import InvariantViolation

S = TypeVar("S", bound=StrEnum)


class InvalidTransition(InvariantViolation):
    """A move its state machine's table does not allow: a bug in the caller, never bad input."""


class Transitions(Generic[S]):
    """``table[old]`` = the states ``old`` may move to; ``initial`` = the states a new record starts in."""

    def __init__(self, name: str, initial: Iterable[S], table: Mapping[S, Iterable[S]]) -> None:
        self.name = name
        self.initial: frozenset[S] = frozenset(initial)
        self.table: dict[S, frozenset[S]] = {old: frozenset(new) for old, new in table.items()}

    def allows(self, old: S, new: S) -> bool:
        return new in self.table.get(old, frozenset())

    def check(self, old: S, new: S) -> S:
        """``new`` when the table allows ``old`` → ``new``; else raise ``InvalidTransition``."""
        if not self.allows(old, new):
            allowed = ", ".join(sorted(self.table.get(old, ()))) or "nothing (final)"
            raise InvalidTransition(f"{self.name}: {old} -> {new} is not allowed (from {old}: {allowed})")
        return new

    def final(self) -> frozenset[S]:
        return frozenset(old for old, new in self.table.items() if not new)


# -- worker --------------------------------------------------------------------------------------------
class WorkerPhase(StrEnum):
    """What the worker is doing, published in every heartbeat (``phase``)."""

    STARTING = "STARTING"  # loading the model, waiting for the exchange
    RECONCILING = "RECONCILING"  # journal vs broker, at start and before each new bar
    TRADING = "TRADING"  # one cycle: bars → decision → orders
    WAITING = "WAITING"  # between bars
    STOPPING = "STOPPING"  # stop requested or an invariant broke; exits next


_P = WorkerPhase
WORKER_PHASES = Transitions(
    "worker phase",
    initial=[_P.STARTING],
    table={
        # A refused poll (broker down, clock skew) keeps the phase it was in; only real moves are listed.
        _P.STARTING: [_P.RECONCILING, _P.STOPPING],
        _P.RECONCILING: [_P.TRADING, _P.STOPPING],
        _P.TRADING: [_P.WAITING, _P.RECONCILING, _P.STOPPING],
        _P.WAITING: [_P.RECONCILING, _P.TRADING, _P.STOPPING],
        _P.STOPPING: [],
    },
)


# -- journal -------------------------------------------------------------------------------------------
class IntentStatus(StrEnum):
    """One planned order in the journal (``intents.status``), written before its submit."""

    PENDING = "pending"  # journaled, not confirmed sent
    AMBIGUOUS = "ambiguous"  # a submit's outcome is unknown: look it up by client_order_id
    SUBMITTED = "submitted"  # the broker has it, not final yet
    FILLED = "filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"  # never sent, and its bar has passed
    LOST = "lost"  # sent, but the broker never heard of it and its bar has passed

    @property
    def is_open(self) -> bool:
        return self in OPEN_INTENT_STATUSES


OPEN_INTENT_STATUSES = frozenset({IntentStatus.PENDING, IntentStatus.AMBIGUOUS, IntentStatus.SUBMITTED})
_I = IntentStatus
_ENDS = [_I.FILLED, _I.CANCELED, _I.REJECTED, _I.EXPIRED, _I.LOST]
INTENT_STATUSES = Transitions(
    "intent status",
    initial=[_I.PENDING],
    table={
        _I.PENDING: [_I.SUBMITTED, _I.AMBIGUOUS, *_ENDS],
        _I.AMBIGUOUS: [_I.AMBIGUOUS, _I.SUBMITTED, *_ENDS],
        _I.SUBMITTED: [_I.SUBMITTED, *_ENDS],  # submitted → submitted: a partial fill moved on
        **{end: [] for end in _ENDS},
        # A lost order the broker shows later after all is re-adopted (worker/readopt.py).
        _I.LOST: [_I.SUBMITTED, _I.FILLED, _I.CANCELED],
    },
)


class CycleStatus(StrEnum):
    """One bar's decision in the journal (``cycles.status``)."""

    EXECUTING = "executing"  # decided and journaled; its orders are being sent (or resumed)
    DONE = "done"
    PARTIAL = "partial"  # done, but some orders stayed unresolved after the bounded wait
    SKIPPED = "skipped"  # not decided: gap, bad data, refused action, or the worker was down
    INTERRUPTED = "interrupted"  # the worker restarted after its bar; its orders were reconciled


_C = CycleStatus
CYCLE_STATUSES = Transitions(
    "cycle status",
    initial=[_C.EXECUTING, _C.SKIPPED],
    table={
        _C.EXECUTING: [_C.DONE, _C.PARTIAL, _C.INTERRUPTED],
        _C.DONE: [],
        _C.PARTIAL: [],
        _C.SKIPPED: [],
        _C.INTERRUPTED: [],
    },
)
DECIDED_CYCLE_STATUSES = frozenset({CycleStatus.DONE, CycleStatus.PARTIAL})


# -- supervisor ----------------------------------------------------------------------------------------
class ChildState(StrEnum):
    """A supervised child (worker or emulator) in ``supervisor.json`` (``children.<name>.state``)."""

    STOPPED = "stopped"
    STARTING = "starting"  # spawned, no heartbeat / ready file yet
    RUNNING = "running"
    STOPPING = "stopping"  # SIGTERM sent (hung, not ready, or the supervisor stops)
    BACKOFF = "backoff"  # exited or failed to spawn; restarts at next_start_at
    GIVEN_UP = "given_up"  # exited 78: not restarted in this supervisor life


_K = ChildState
CHILD_STATES = Transitions(
    "child state",
    initial=[_K.STOPPED],
    table={
        # Every state may become STOPPED: a new supervisor life begins every child there.
        # STOPPED/BACKOFF -> GIVEN_UP: another trader holds the account lock, refused before the spawn.
        _K.STOPPED: [_K.STARTING, _K.BACKOFF, _K.STOPPED, _K.GIVEN_UP],
        _K.STARTING: [_K.RUNNING, _K.STOPPING, _K.BACKOFF, _K.STOPPED, _K.GIVEN_UP],
        _K.RUNNING: [_K.STOPPING, _K.BACKOFF, _K.STOPPED, _K.GIVEN_UP],
        _K.STOPPING: [_K.BACKOFF, _K.STOPPED],
        _K.BACKOFF: [_K.STARTING, _K.BACKOFF, _K.STOPPED, _K.GIVEN_UP],
        _K.GIVEN_UP: [_K.STOPPED],
    },
)


class ExitReason(StrEnum):
    """Why a child last ended (``last_exit_reason``); ``after`` says what the supervisor does next."""

    DELIBERATE_STOP = "deliberate_stop"  # the worker exited 0: the supervisor stops too
    DO_NOT_RESTART = "do_not_restart"  # exit 78, a configuration or model problem
    CRASHED = "crashed"  # any other exit code
    KILLED = "killed"  # a signal it did not ask for (the name is in last_exit_signal)
    HUNG = "hung"  # no heartbeat progress for heartbeat_timeout_s: stopped by us
    NOT_READY = "not_ready"  # the emulator did not serve within its ready timeout: stopped by us
    SPAWN_FAILED = "spawn_failed"  # the command could not be started (detail in last_exit_detail)
    SUPERVISOR_STOP = "supervisor_stop"  # we stopped it because we stop
    RELOAD = "reload"  # we stopped it to start it again with a reloaded configuration (SIGHUP)

    @property
    def after(self) -> ChildState:
        return _AFTER_EXIT.get(self, ChildState.BACKOFF)

    @classmethod
    def parse(cls, text: str) -> ExitReason:
        """Also the free-text reasons of older state files (``killed by SIGKILL``, ``spawn failed: ...``)."""
        if text.startswith("killed by "):
            return cls.KILLED
        if text.startswith("spawn failed"):
            return cls.SPAWN_FAILED
        return cls(text)


_AFTER_EXIT = {
    ExitReason.DELIBERATE_STOP: ChildState.STOPPED,
    ExitReason.DO_NOT_RESTART: ChildState.GIVEN_UP,
    ExitReason.SUPERVISOR_STOP: ChildState.STOPPED,
    ExitReason.RELOAD: ChildState.STOPPED,  # and started again at once: no failure, no backoff
}


class SupervisorStatus(StrEnum):
    """The supervisor itself in ``supervisor.json`` (``status``)."""

    STARTING = "starting"  # validating; the worker checks its model
    RUNNING = "running"
    STOPPING = "stopping"
    STOPPED = "stopped"
    GIVEN_UP = "given_up"  # validation failed or a child exited 78: exit 78, systemd leaves it failed


_V = SupervisorStatus
SUPERVISOR_STATUSES = Transitions(
    "supervisor status",
    initial=[_V.STARTING],  # every life starts here, whatever the previous one left in the file
    table={
        _V.STARTING: [_V.RUNNING, _V.STOPPING, _V.GIVEN_UP],
        _V.RUNNING: [_V.STOPPING, _V.GIVEN_UP],
        _V.STOPPING: [_V.STOPPED],
        _V.STOPPED: [],
        _V.GIVEN_UP: [],
    },
)
