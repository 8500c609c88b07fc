"""Ops fixtures (defined in ops_helpers, a uniquely named module the tests import directly)."""

from ops_helpers import cappuccino_process, dead_pid

__all__ = ["cappuccino_process", "dead_pid"]
