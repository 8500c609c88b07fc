"""The supervisor's memory across restarts and reboots: ``<state>/supervisor.json``, written atomically.

Restart counts and the failure streak survive a supervisor crash, so a crash loop keeps its backoff
instead of starting again at 5 s. A corrupt or truncated file is moved aside with a warning and rebuilt:
losing counters is harmless, a supervisor that crash-loops on its own state file is not.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from cappuccino_daemon.atomic import atomic_write_json
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.layout import StateLayout
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.states import (
    CHILD_STATES,
    SUPERVISOR_STATUSES,
    ChildState,
    ExitReason,
    SupervisorStatus,
)

log = get_logger(__name__)

SCHEMA_VERSION = 1


@dataclass
class ChildRecord:
    """One supervised child (``worker`` or ``emulator``); times are ISO-8601 UTC strings."""

    name: str
    state: ChildState = ChildState.STOPPED
    pid: int | None = None
    started_at: str | None = None
    starts: int = 0  # every spawn
    restarts: int = 0  # spawns after a failure
    consecutive_failures: int = 0
    backoff_s: float = 0.0  # the delay chosen after the last failure (0 = none pending)
    next_start_at: str | None = None
    last_exit_code: int | None = None
    last_exit_signal: str | None = None
    last_exit_reason: ExitReason | None = None
    last_exit_detail: str | None = None  # e.g. why a spawn failed
    last_exit_at: str | None = None
    last_heartbeat_at: str | None = None
    hang_kills: int = 0

    def move(self, new: ChildState) -> None:
        """Follow ``CHILD_STATES``; a move it does not list raises ``InvalidTransition`` (a bug)."""
        self.state = CHILD_STATES.check(self.state, new)


@dataclass
class SupervisorState:
    version: int = SCHEMA_VERSION
    status: SupervisorStatus = SupervisorStatus.STARTING
    message: str = ""
    supervisor_pid: int | None = None
    supervisor_started_at: str | None = None
    updated_at: str | None = None
    ready_at: str | None = None
    children: dict[str, ChildRecord] = field(default_factory=dict)

    def move(self, new: SupervisorStatus) -> None:
        """Follow ``SUPERVISOR_STATUSES`` (staying put is fine); else raise ``InvalidTransition``."""
        if new != self.status:
            self.status = SUPERVISOR_STATUSES.check(self.status, new)

    def child(self, name: str) -> ChildRecord:
        if name not in self.children:
            self.children[name] = ChildRecord(name=name)
        return self.children[name]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SupervisorState:
        """Strict parse: anything unexpected raises ValueError (the caller rebuilds)."""
        if not isinstance(data, dict):
            raise ValueError("top level is not an object")
        if data.get("version") != SCHEMA_VERSION:
            raise ValueError(f"unknown schema version {data.get('version')!r}")
        raw_children = data.get("children", {})
        if not isinstance(raw_children, dict):
            raise ValueError("children is not an object")
        children = {str(name): _child_from_json(str(name), raw) for name, raw in raw_children.items()}
        known = {f.name for f in fields(cls)} - {"children"}
        kwargs = {k: v for k, v in data.items() if k in known}
        state = cls(**kwargs, children=children)
        _check_types(state, ("status", "message"), str)
        state.status = SupervisorStatus(state.status)  # the values are the strings files always held
        _check_optional(state, ("supervisor_pid",), int)
        _check_optional(state, ("supervisor_started_at", "updated_at", "ready_at"), str)
        return state


def _child_from_json(name: str, raw: Any) -> ChildRecord:
    if not isinstance(raw, dict):
        raise ValueError(f"child {name} is not an object")
    known = {f.name for f in fields(ChildRecord)}
    record = ChildRecord(**{k: v for k, v in raw.items() if k in known and k != "name"}, name=name)
    _check_types(record, ("starts", "restarts", "consecutive_failures", "hang_kills"), int)
    _check_types(record, ("state",), str)
    record.state = ChildState(record.state)
    _check_optional(record, ("pid", "last_exit_code"), int)
    _check_optional(
        record,
        (
            "started_at",
            "last_exit_signal",
            "last_exit_reason",
            "last_exit_detail",
            "last_exit_at",
            "last_heartbeat_at",
        ),
        str,
    )
    if record.last_exit_reason is not None:
        text = record.last_exit_reason
        record.last_exit_reason = ExitReason.parse(text)
        if text != record.last_exit_reason and record.last_exit_detail is None:
            record.last_exit_detail = text  # an older file's free text: "killed by SIGKILL", ...
    if record.pid is not None and record.pid <= 0:
        raise ValueError(f"child {name}: pid {record.pid!r} is not a process id")
    if not isinstance(record.backoff_s, int | float) or record.backoff_s < 0:
        raise ValueError(f"child {name}: backoff_s {record.backoff_s!r} is not a non-negative number")
    # fromisoformat raises ValueError when garbled; the time must be aware (compared with UTC now)
    if record.next_start_at is not None and datetime.fromisoformat(record.next_start_at).tzinfo is None:
        raise ValueError(f"child {name}: next_start_at {record.next_start_at!r} has no time zone")
    return record


def _check_optional(obj: object, names: tuple[str, ...], kind: type) -> None:
    """Like ``_check_types`` but None is allowed (e.g. no pid while a child is not running)."""
    _check_types(obj, tuple(n for n in names if getattr(obj, n) is not None), kind)


def _check_types(obj: object, names: tuple[str, ...], kind: type) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"{name} is {value!r}, expected {kind.__name__}")


class StateStore:
    def __init__(self, state_dir: Path) -> None:
        self.path = StateLayout(Path(state_dir)).supervisor_state

    def load(self, now: datetime) -> SupervisorState:
        """The saved state, a fresh one when there is none, or a rebuilt one when the file is damaged."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SupervisorState()
        except OSError as exc:
            raise ConfigError(
                f"Cannot read the supervisor state file {self.path} ({exc.strerror or exc}). It must be a "
                "file the service user can read and write: fix its owner/permissions, or remove it (only "
                "restart counters are lost)."
            ) from None
        try:
            return SupervisorState.from_json(json.loads(text))
        except (ValueError, TypeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{now.strftime('%Y%m%dT%H%M%S%fZ')}")
            try:
                self.path.replace(aside)
            except OSError as move_exc:
                raise ConfigError(
                    f"The supervisor state file {self.path} is damaged ({str(exc)[:200]}) and cannot be "
                    f"moved aside ({move_exc.strerror or move_exc}). Make its folder writable for the "
                    "service user, or remove the file (only restart counters are lost)."
                ) from None
            log.warning(
                "state_file_corrupt",
                path=str(self.path),
                moved_to=str(aside),
                error=str(exc)[:200],
                action="rebuilt with zero restart counts",
            )
            return SupervisorState()

    def save(self, state: SupervisorState, now: datetime) -> None:
        state.updated_at = now.isoformat()
        atomic_write_json(self.path, state.to_json())
