"""Where each file lives in the state directory (``[paths] state``): the one place their names are spelled.

The supervisor, the worker, ``status``, ``metrics`` and the soak runner all find each other's files
through this class, so a renamed file cannot leave one of them reading the old name. Standard library
only: the lean supervisor imports it.

    <state>/supervisor.json         the supervisor's counters and child states (supervisor/state_store.py)
    <state>/supervisor.lock         single-instance flock (supervisor/lock.py)
    <state>/heartbeat.json          the worker's proof of life (heartbeat.py)
    <state>/emulator.ready          the embedded emulator's "serving" file, touched while it runs
    <state>/emulator.sqlite         the embedded emulator's account, orders and clock
    <state>/journal/<model>.sqlite  one worker journal per model (journal/store.py)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SUPERVISOR_STATE_NAME = "supervisor.json"
SUPERVISOR_LOCK_NAME = "supervisor.lock"
HEARTBEAT_NAME = "heartbeat.json"
EMULATOR_READY_NAME = "emulator.ready"
EMULATOR_STATE_NAME = "emulator.sqlite"
JOURNAL_DIR_NAME = "journal"
JOURNAL_SUFFIX = ".sqlite"


@dataclass(frozen=True)
class StateLayout:
    """The files of one state directory (paths only: nothing is created or read here)."""

    root: Path

    @property
    def supervisor_state(self) -> Path:
        return self.root / SUPERVISOR_STATE_NAME

    @property
    def supervisor_lock(self) -> Path:
        return self.root / SUPERVISOR_LOCK_NAME

    @property
    def heartbeat(self) -> Path:
        return self.root / HEARTBEAT_NAME

    @property
    def emulator_ready(self) -> Path:
        return self.root / EMULATOR_READY_NAME

    @property
    def emulator_state(self) -> Path:
        return self.root / EMULATOR_STATE_NAME

    @property
    def journal_dir(self) -> Path:
        return self.root / JOURNAL_DIR_NAME

    def journal(self, model_id: str) -> Path:
        """The journal of one model (``model_id`` is ``<model folder>-<sha8 of actor.pth>``)."""
        return self.journal_dir / f"{model_id}{JOURNAL_SUFFIX}"

    def journals(self) -> list[Path]:
        """Every journal in the folder, by name (empty when there is none yet)."""
        return sorted(self.journal_dir.glob(f"*{JOURNAL_SUFFIX}"))
