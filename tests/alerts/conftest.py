"""Alert test fixtures: a local HTTP receiver for apprise's json:// URLs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cappuccino_daemon.alerts.testing import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()
