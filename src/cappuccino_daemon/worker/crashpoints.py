"""Named points where a test can make the worker die with SIGKILL (never set in production).

``CAPPUCCINO_TEST_CRASH_AT=after_submit`` kills the process the first time it reaches that point;
``name:N`` kills it at the N-th time. Points: ``cycle_journaled``, ``before_submit`` (intent and
attempt committed, POST not sent), ``after_submit`` (broker accepted, outcome not journaled),
``after_journal`` (outcome journaled), ``before_buys`` (sells filled, buys not planned).
"""

from __future__ import annotations

import os
import signal

ENV = "CAPPUCCINO_TEST_CRASH_AT"
_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.partition(":")
    if target != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= (int(nth) if nth else 1):
        os.kill(os.getpid(), signal.SIGKILL)
