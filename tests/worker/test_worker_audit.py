"""The audit of a real run: the stub trades six bars on an emulator with slippage and fees in coin, the
worker misses two bars, and the gap the audit finds is split into causes with next to nothing left."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from test_worker_e2e import next_bar
from worker_support import START, Model, broker_for, quick_options

from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.ops.audit import Fees, audit_journal
from cappuccino_daemon.ops.journal_view import read_journal
from cappuccino_daemon.worker.build import build_loop


def test_a_real_runs_gap_is_explained(tmp_path: Path, tiny_model: Model) -> None:
    with EmulatorThread(synthetic_seed=3, start=START, slippage_bps=30.0) as emu:
        opts = quick_options(tiny_model.dir, tmp_path)
        loop = build_loop(opts, tiny_model.spec, tiny_model.policy, broker_for(emu))
        for k in range(6):
            next_bar(emu)
            if k == 3:  # the worker is down for two bars: missed, then valued by the replay path
                next_bar(emu)
                next_bar(emu)
            assert loop.step().kind == "traded"
            loop.reconcile_now(loop.cycle.broker.now())  # the clamps of fees kept in coin
    path = loop.cycle.journal.path
    profile = tiny_model.spec.profile
    fees = Fees(profile.buy_cost_pct, profile.sell_cost_pct)
    result = audit_journal(path, read_journal(path), fees, profile, timedelta(hours=1))
    parts = result["components"]
    assert result["bars_decided"] == 6 and len(result["bars"]) == 6 + 2
    assert result["bars_env_at_next_close"] == 5  # as training fills; the newest bar has no next close yet
    assert parts["fill_price"] < 0  # 30 bp of slippage against every order
    assert parts["dropped_or_resized"] != 0  # the broker's steps and minimums
    assert parts["fees_in_coin"] < 0  # the coins the broker kept, clamped out of the books
    assert (result["bars_skipped"], result["bars_skipped_valued"]) == (2, 2)
    assert parts["skipped_bars"] != 0  # the stub trades every bar: two steps the env took and live did not
    assert abs(parts["other"]) < 1e-3 * abs(result["gap_usd"])
    assert result["gap_usd"] == pytest.approx(sum(parts.values()), abs=1e-9)
    assert result["live_equity"] - result["env_equity"] == pytest.approx(result["gap_usd"], abs=1e-9)
