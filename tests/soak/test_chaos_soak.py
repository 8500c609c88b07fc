"""The short fixed-seed chaos soak: about 20 kills of the real daemon, then a clean audit.

The long run is a documented command (README "Chaos soak"); this one keeps the property in CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cappuccino_daemon.soak.runner import SoakPlan, run_soak


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_short_soak_loses_nothing_and_sends_nothing_twice(tmp_path: Path) -> None:
    plan = SoakPlan(
        bars=50, worker_kills=14, supervisor_kills=3, emulator_kills=2, hangs=1, seed=3, timeout_s=800
    )
    result = run_soak(plan, tmp_path / "soak", say=lambda _line: None)
    found = result.findings
    assert found.problems == 0, found.to_json()
    assert sum(result.kills.values()) >= 16, result.kills  # the blows really landed
    assert result.kills["supervisor"] == 3
    assert found.fills > 0 and found.bars_decided > 0
