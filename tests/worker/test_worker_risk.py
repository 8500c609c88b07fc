"""Risk limits on the emulator: each limit driven to its breach or cut by real prices (a price shock
through the admin API), the halt surviving a restart of the worker, and ``resume-model`` clearing it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_worker_e2e import next_bar
from worker_support import TICKERS, Model, broker_for, quick_options

from cappuccino_daemon.cli import main
from cappuccino_daemon.config import RiskLimits, load_settings
from cappuccino_daemon.emulator.testing import EmulatorThread
from cappuccino_daemon.journal.halts import current_halt
from cappuccino_daemon.worker.build import build_loop
from cappuccino_daemon.worker.loop import WorkerLoop
from cappuccino_daemon.worker.metrics import WorkerMetrics


def _loop(state: Path, emu: EmulatorThread, model: Model, **opts: Any) -> WorkerLoop:
    return build_loop(quick_options(model.dir, state, **opts), model.spec, model.policy, broker_for(emu))


def _shock(emu: EmulatorThread, symbol: str, factor: float | None) -> dict[str, Any]:
    body = {"symbol": symbol} if factor is None else {"symbol": symbol, "factor": factor}
    request = urllib.request.Request(
        f"{emu.base_url}/admin/shock",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:
        body: dict[str, Any] = json.loads(resp.read())
    return body


def _buys(loop: WorkerLoop) -> list[str]:
    return [i.client_order_id for i in loop.cycle.journal.intents() if i.side == "buy"]


@pytest.mark.parametrize("limit", ["max_drawdown", "daily_loss"])
def test_a_loss_limit_halts_the_model_across_a_restart_until_resume_model(
    tmp_path: Path,
    emulator: EmulatorThread,
    tiny_model: Model,
    limit: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Also: ``status`` and ``leaderboard`` show the halt while it holds."""
    risk = RiskLimits(**{limit: 0.05})
    loop = _loop(tmp_path / "state", emulator, tiny_model, risk=risk)
    next_bar(emulator)
    assert loop.step().kind == "traded"  # the stub buys what it lacks (what its cash allows)
    bought = _buys(loop)
    assert bought and current_halt(loop.cycle.journal) is None
    for ticker in TICKERS:  # every coin loses 70 % from the bar now forming
        assert _shock(emulator, ticker, 0.3)["factor"] == 0.3
    next_bar(emulator)
    assert loop.step().kind == "traded"
    halt = current_halt(loop.cycle.journal)
    assert halt is not None and halt["limit"] == limit and halt["value"] >= 0.05
    assert halt["equity"] < halt["peak" if limit == "max_drawdown" else "day_start"]
    sells = [i for i in loop.cycle.journal.intents() if i.side == "sell" and i.status == "filled"]
    assert len(sells) == len(bought)  # a halt still lets the model sell

    # A new worker on the same state directory (a restart): still halted, the stub's buys are cut.
    loop = _loop(tmp_path / "state", emulator, tiny_model, risk=risk)
    next_bar(emulator)
    assert loop.step().kind == "traded"
    assert _buys(loop) == bought
    last = loop.cycle.journal.cycles()[-1]
    plan = last.plan or {}
    cuts = [
        c for c in loop.cycle.journal.events("order_cut") if c["detail"]["bar"] == last.bar_time.isoformat()
    ]
    assert plan["risk"]["halted"] == "halt" and plan["orders"] == []
    assert len(cuts) == len(plan["risk"]["cuts"]) >= 1 and {c["detail"]["limit"] for c in cuts} == {"halted"}

    config = tmp_path / "daemon.toml"
    config.write_text(f'[model]\ndir = "{tiny_model.dir}"\n[paths]\nstate = "{tmp_path / "state"}"\n')
    capsys.readouterr()
    assert main(["status", "--json", "--config", str(config)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["journal"]["halt"]["limit"] == limit and status["models"][0]["halt"]["limit"] == limit
    assert main(["leaderboard", "--json", "--config", str(config)]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["halted"]["limit"] == limit and row["halted"]["on_breach"] == "halt"
    model_id = loop.cycle.spec.model_id  # what the log and the alert name: accepted as well as the name
    assert main(["resume-model", model_id, "--config", str(config), "--note", "checked"]) == 0
    resumed = loop.cycle.journal.events("risk_resumed")
    assert len(resumed) == 1 and resumed[0]["detail"]["note"] == "checked"
    assert resumed[0]["detail"]["halt"]["limit"] == limit
    next_bar(emulator)
    assert loop.step().kind == "traded"
    assert current_halt(loop.cycle.journal) is None  # the marks restarted: no breach at once
    assert len(_buys(loop)) > len(bought)


def test_resume_model_refuses_an_unknown_name_and_leaves_a_trading_model_alone(
    tmp_path: Path, emulator: EmulatorThread, tiny_model: Model, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = _loop(tmp_path / "state", emulator, tiny_model)
    next_bar(emulator)
    loop.step()
    config = tmp_path / "daemon.toml"
    config.write_text(f'[model]\ndir = "{tiny_model.dir}"\n[paths]\nstate = "{tmp_path / "state"}"\n')
    assert main(["resume-model", "nosuch", "--config", str(config)]) == 78
    err = capsys.readouterr().err
    assert "no model named 'nosuch'" in err and tiny_model.dir.name in err
    assert main(["resume-model", tiny_model.dir.name, "--config", str(config)]) == 0
    assert "is not halted; nothing written" in capsys.readouterr().out
    assert loop.cycle.journal.events("risk_resumed") == []


def test_order_limits_cut_buys_and_are_journaled_with_the_limit(
    tmp_path: Path, emulator: EmulatorThread, tiny_model: Model
) -> None:
    risk = RiskLimits(max_orders_per_bar=1, max_notional_per_order=150.0)
    loop = _loop(tmp_path / "state", emulator, tiny_model, risk=risk)
    next_bar(emulator)
    assert loop.step().kind == "traded"
    planned = loop.cycle.journal.cycles()[-1].plan or {}
    assert len(planned["orders"]) == 1  # the stub's plan had two buys (BTC, LTC); the second is cut
    (buy,) = [i for i in loop.cycle.journal.intents() if i.side == "buy"]
    assert buy.symbol == "BTC" and float(buy.qty) * buy.ref_price <= 150.0 + 1e-6
    limits = [c["detail"]["limit"] for c in loop.cycle.journal.events("order_cut")]
    assert sorted(limits) == ["max_notional_per_order", "max_orders_per_bar"]
    assert current_halt(loop.cycle.journal) is None  # cutting an order never halts


def test_max_position_fraction_caps_a_coin_at_its_share_of_equity(
    tmp_path: Path, emulator: EmulatorThread, tiny_model: Model
) -> None:
    loop = _loop(tmp_path / "state", emulator, tiny_model, risk=RiskLimits(max_position_fraction=0.02))
    next_bar(emulator)
    assert loop.step().kind == "traded"
    equity = loop.cycle.spec.profile.initial_capital  # the first bar: all cash
    for intent in (i for i in loop.cycle.journal.intents() if i.side == "buy"):
        assert float(intent.qty) * intent.ref_price <= 0.02 * equity + 1e-6
    cuts = loop.cycle.journal.events("order_cut")
    assert cuts and {c["detail"]["limit"] for c in cuts} == {"max_position_fraction"}


def test_the_account_floor_halts_every_model(
    tmp_path: Path, emulator: EmulatorThread, tiny_model: Model
) -> None:
    loop = _loop(tmp_path / "state", emulator, tiny_model, min_account_equity=1e12)
    config = tmp_path / "daemon.toml"
    config.write_text('[model]\ndir = "m"\n[paths]\nstate = "state"\n[metrics]\nenabled = true\nport = 0\n')
    loop.metrics = WorkerMetrics.start(load_settings(config, require_model_dir=False))
    next_bar(emulator)
    assert loop.step().kind == "traded"
    halt = current_halt(loop.cycle.journal)
    assert halt is not None and halt["limit"] == "min_account_equity" and halt["threshold"] == 1e12
    assert _buys(loop) == []
    assert loop.metrics.address is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{loop.metrics.address[1]}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    loop.metrics.close()
    assert f'cappuccino_model_halted{{model="{loop.cycle.spec.model_id}"}} 1.0' in text


def test_the_emulator_refuses_a_shock_it_cannot_apply(emulator: EmulatorThread) -> None:
    for symbol, factor in (("BTC", -1.0), ("NOPE", 0.5), ("BTC", None)):
        with pytest.raises(urllib.error.HTTPError) as info:
            _shock(emulator, symbol, factor)
        assert info.value.code == 422


def test_a_halt_and_the_daily_summary_reach_a_person(
    tmp_path: Path, emulator: EmulatorThread, tiny_model: Model
) -> None:
    from datetime import date

    from cappuccino_daemon.alerts.sender import AlertSender
    from cappuccino_daemon.alerts.testing import Receiver

    receiver = Receiver()
    try:
        loop = _loop(tmp_path / "state", emulator, tiny_model, min_account_equity=1e12)
        sender = AlertSender([receiver.url()], timeout_s=5, max_per_minute=100).start()
        loop.attach_alerts(sender)
        assert loop.summary is not None
        loop.summary.day = date(2024, 2, 29)  # as if the previous bar closed yesterday
        next_bar(emulator)
        assert loop.step().kind == "traded"
        messages = receiver.wait_for(2)
        sender.close()
    finally:
        receiver.close()
    by_type = {m["type"]: m for m in messages}
    halted, summary = by_type["failure"], by_type["info"]
    assert "halted (min_account_equity)" in halted["title"]
    assert f"cappuccino-paper resume-model {loop.cycle.spec.model_id}" in halted["message"]
    assert summary["title"].endswith("on 2024-03-01") and "HALTED" in summary["message"]


class AlwaysBuys:
    """A pure policy that wants every coin, whatever it holds: only a flatten makes it sell."""

    def act(self, state: Any) -> Any:
        import numpy as np

        return np.ones(len(TICKERS), dtype=np.float32)


def test_flatten_sells_everything_from_the_breach_on_though_the_model_wants_to_buy(
    tmp_path: Path, emulator: EmulatorThread, tiny_model: Model
) -> None:
    risk = RiskLimits(max_drawdown=0.05, on_breach="flatten")
    options = quick_options(tiny_model.dir, tmp_path / "state", risk=risk)
    loop = build_loop(options, tiny_model.spec, AlwaysBuys(), broker_for(emulator))
    next_bar(emulator)
    assert loop.step().kind == "traded"
    held = {i.symbol for i in loop.cycle.journal.intents() if i.side == "buy" and i.status == "filled"}
    assert held
    for ticker in TICKERS:
        _shock(emulator, ticker, 0.3)
    next_bar(emulator)
    assert loop.step().kind == "traded"
    halt = current_halt(loop.cycle.journal)
    assert halt is not None and halt["on_breach"] == "flatten"
    last = loop.cycle.journal.cycles()[-1]
    assert (last.plan or {})["risk"]["halted"] == "flatten"
    sold = {i.symbol for i in loop.cycle.journal.intents(last.bar_time) if i.side == "sell"}
    assert sold == held and all(o["side"] == "sell" for o in (last.plan or {})["orders"])
    positions = loop.cycle.broker.get_positions()
    assert all(float(positions[s].qty) < 1e-3 for s in held if s in positions)  # only fee dust remains
