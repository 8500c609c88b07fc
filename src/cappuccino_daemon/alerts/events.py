"""What we tell a person, and when two messages are the same one (``key``: sent again only after the
repeat interval, so a parity alarm on every bar is one message an hour, not sixty)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal[
    "worker_restarting",
    "worker_given_up",
    "broker_unreachable",
    "model_halted",
    "parity_alarm",
    "daily_summary",
    "reload_refused",
]
WARNING_KINDS = frozenset({"worker_restarting", "broker_unreachable", "parity_alarm", "reload_refused"})
FAILURE_KINDS = frozenset({"worker_given_up", "model_halted"})


@dataclass(frozen=True)
class Alert:
    kind: Kind
    title: str
    body: str
    key: str = ""  # what makes two alerts of one kind the same (a model name, say)

    @property
    def severity(self) -> str:
        """apprise's notify type: failure, warning or info."""
        if self.kind in FAILURE_KINDS:
            return "failure"
        return "warning" if self.kind in WARNING_KINDS else "info"
