"""Event kinds that one layer writes and another reads (the worker writes, ``audit`` reads)."""

from __future__ import annotations

SKIPPED_ENV = "skipped_bar_env"  # the env's step at a bar the worker skipped (worker/shadow.py)
