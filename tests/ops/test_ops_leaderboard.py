"""``leaderboard``: figures from journals made with the real Journal API, the live-vs-sim gap by
construction, sorting, a model without a journal, the CLI's JSON and PNG, a bad flag."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from ops_helpers import EQUITY, FEE, T0, TICKERS, make_daemon

from cappuccino_daemon.config import ModelEntry, load_settings
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.model.profiles import get_profile
from cappuccino_daemon.ops.leaderboard import ModelFacts, leaderboard, model_row
from cappuccino_daemon.ops.status import find_journal
from cappuccino_daemon.policy.planner import AccountState, plan_step
from cappuccino_daemon.worker.account import as_tuple

PROFILE = replace(get_profile("finrl-crypto", 2), buy_cost_pct=FEE, sell_cost_pct=FEE, initial_capital=1000.0)
FACTS = ModelFacts(FEE, FEE, 1.0, 24 * 365, 0.75, PROFILE)


def test_figures_of_a_known_journal(tmp_path: Path) -> None:
    daemon = make_daemon(tmp_path)
    row = model_row(daemon.state, ModelEntry("five", daemon.model_dir, 1000.0), FACTS)
    assert row["problem"] is None and row["journal"] == str(daemon.journal)
    assert row["equity"] == pytest.approx(EQUITY) and row["return"] == pytest.approx(EQUITY / 1000.0 - 1)
    assert row["trades"] == 2 and row["bars"] == 2  # two fills; T2 was skipped (no prices)
    assert row["fees_usd"] == pytest.approx((2 * 101.0 + 5 * 12.0) * FEE)  # the ledger's cash fees
    equity_t0 = 1000.0 - 2 * 101.0 * (1 + FEE) + 2 * 100.0
    assert row["max_drawdown"] == 0.0 and equity_t0 < EQUITY  # a new high at each bar
    assert row["buy_and_hold_return"] == pytest.approx((110.0 / 100.0 + 12.0 / 10.0) / 2 - 1)
    assert row["objective"] == 0.75 and row["sharpe"] is None  # one return only
    assert row["sim_equity"] is not None and row["gap_usd"] == pytest.approx(EQUITY - row["sim_equity"])


def _journal_from_plans(path: Path, model_id: str, cash_slip: float) -> None:
    """Two bars whose live books are the plan's books exactly, except ``cash_slip`` dollars lost on the
    first bar's fills (what a worse fill price would cost)."""
    p0 = np.array([100.0, 10.0])
    anv = np.array([1.0, 10.0])  # 0.5 of it: half a BTC
    bars = [(T0, [100.0, 10.0], [0.5, 0.0]), (T0 + timedelta(hours=1), [104.0, 11.0], [0.0, 0.0])]
    with Journal(path) as j:
        j.save_normaliser(model_id, TICKERS, p0.tolist(), anv.tolist(), 1.0, T0)
        account = AccountState.initial(1000.0, 2)
        for k, (bar, prices, action) in enumerate(bars):
            raw = np.asarray(action, dtype=np.float32)
            plan = plan_step(raw, account, np.asarray(prices), anv, PROFILE)
            j.begin_cycle(bar, model_id, f"s{k}", action, {"prices": prices, "orders": []}, as_tuple(account))
            account = AccountState(plan.after.cash - (cash_slip if k == 0 else 0.0), plan.after.holdings,
                                   plan.after.cooldown)  # fmt: skip
            cash, holdings, cooldown = as_tuple(account)
            j.save_account(cash, holdings, cooldown, reason="fill", bar_time=bar)
            j.finish_cycle(bar, "done", None)


@pytest.mark.parametrize("slip", [0.0, 5.0])
def test_the_gap_is_what_the_live_books_lost_against_the_plan(tmp_path: Path, slip: float) -> None:
    daemon = make_daemon(tmp_path, journal=False)
    path, _ = find_journal(daemon.state, daemon.model_dir)
    assert path is None
    from ops_helpers import model_id_for

    journal = daemon.state / "journal" / f"{model_id_for(daemon.model_dir)}.sqlite"
    _journal_from_plans(journal, model_id_for(daemon.model_dir), slip)
    row = model_row(daemon.state, ModelEntry("five", daemon.model_dir, 1000.0), FACTS)
    assert row["bars"] == 2 and row["equity"] != 1000.0  # it bought BTC on the first bar
    assert row["gap_usd"] == pytest.approx(-slip, abs=1e-9)
    assert row["sim_equity"] == pytest.approx(row["equity"] + slip, abs=1e-9)


def _two_model_config(tmp_path: Path) -> Path:
    daemon = make_daemon(tmp_path)
    (tmp_path / "models" / "idle_1h").mkdir()
    (tmp_path / "models" / "idle_1h" / "actor.pth").write_bytes(b"another actor")
    config = tmp_path / "tournament.toml"
    config.write_text(
        '[[models]]\nname = "five"\ndir = "models/trial_5_1h"\ncapital = 1000.0\n\n'
        '[[models]]\nname = "idle"\ndir = "models/idle_1h"\ncapital = 500.0\n\n'
        f'[paths]\nstate = "{daemon.state}"\n',
        encoding="utf-8",
    )
    return config


def test_rows_sort_and_a_model_without_a_journal_is_listed_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cappuccino_daemon.ops.leaderboard as lb

    monkeypatch.setattr(lb, "model_facts", lambda _entry: FACTS)  # the helper's folders hold no real actor
    settings = load_settings(_two_model_config(tmp_path), require_model_dir=False)
    rows = leaderboard(settings)
    assert [r["name"] for r in rows] == ["five", "idle"]
    assert rows[1]["problem"] and rows[1]["equity"] is None and rows[1]["capital"] == 500.0
    assert [r["name"] for r in leaderboard(settings, sort="name")] == ["five", "idle"]
    with pytest.raises(ConfigError, match="--sort 'luck' is not one of"):
        leaderboard(settings, sort="luck")


def test_cli_json_and_png(tmp_path: Path) -> None:
    """Through the real CLI on a real trained-format model: the stub actor of the worker tests."""
    from cappuccino_daemon.model.testing import write_trading_stub

    config = _two_model_config(tmp_path)
    text = config.read_text().replace("models/idle_1h", "models/stub_1h")
    config.write_text(text)
    write_trading_stub(tmp_path / "models" / "stub_1h", ("BTC", "ETH", "LTC"))
    out = tmp_path / "board.png"
    cmd = [sys.executable, "-m", "cappuccino_daemon", "leaderboard", "--config", str(config), "--json"]
    proc = subprocess.run([*cmd, "--out", str(out)], capture_output=True, text=True, timeout=120)
    # "five" has a journal but its folder holds no real actor: its books are shown, the rest is explained
    assert proc.returncode == 0, proc.stderr
    five, idle = sorted(json.loads(proc.stdout), key=lambda r: r["name"])
    assert five["equity"] == pytest.approx(EQUITY) and five["trades"] == 2
    assert "actor.pth" in five["problem"] and five["gap_usd"] is None and five["fees_usd"] is None
    row = idle
    keys = {"name", "equity", "return", "max_drawdown", "sharpe", "trades", "fees_usd", "buy_and_hold_return",
            "vs_buy_and_hold", "objective", "sim_equity", "gap_usd", "problem"}  # fmt: skip
    assert keys <= set(row) and keys <= set(five) and row["problem"] and row["equity"] is None  # no journal
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    missing = subprocess.run(
        [sys.executable, "-m", "cappuccino_daemon", "leaderboard", "--config", str(tmp_path / "nope.toml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 78 and "nope.toml" in missing.stderr and "Traceback" not in missing.stderr


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "cappuccino_daemon", "leaderboard", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_cli_state_dir_overrides_the_config_and_bad_input_exits_78(tmp_path: Path) -> None:
    """``--state-dir`` reads the journals there, not the config's; a missing one or a broken TOML is one
    paragraph and exit 78."""
    config = _two_model_config(tmp_path)
    real_state = tmp_path / "state"
    assert (real_state / "journal").is_dir()
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    config.write_text(config.read_text().replace(str(real_state), str(empty)))
    rows = {r["name"]: r for r in json.loads(_cli("--config", str(config), "--json").stdout)}
    assert rows["five"]["equity"] is None and rows["five"]["problem"]  # the config's state has no journal
    proc = _cli("--config", str(config), "--state-dir", str(real_state), "--json")
    assert proc.returncode == 0, proc.stderr
    rows = {r["name"]: r for r in json.loads(proc.stdout)}
    assert rows["five"]["equity"] == pytest.approx(EQUITY) and rows["five"]["trades"] == 2
    missing = _cli("--config", str(config), "--state-dir", str(tmp_path / "gone"))
    assert missing.returncode == 78 and "gone" in missing.stderr and "Traceback" not in missing.stderr
    config.write_text("[[models]\nname = ")
    broken = _cli("--config", str(config))
    assert broken.returncode == 78 and str(config.name) in broken.stderr and "Traceback" not in broken.stderr


def test_three_models_sorted_by_return_then_by_gap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two planned journals that differ only by a known cash slip, and a model with no journal: best
    return first, the no-journal model last with its config fields; ``gap_usd`` equals minus the slip."""
    from ops_helpers import ACTOR_BYTES, model_id_for

    import cappuccino_daemon.ops.leaderboard as lb

    monkeypatch.setattr(lb, "model_facts", lambda _entry: FACTS)
    state = tmp_path / "state"
    (state / "journal").mkdir(parents=True)
    text = ""
    for name, slip in (("idle", None), ("slip", 7.0), ("fresh", 0.0)):
        folder = tmp_path / "models" / f"{name}_1h"
        folder.mkdir(parents=True)
        (folder / "actor.pth").write_bytes(ACTOR_BYTES)
        if slip is not None:
            mid = model_id_for(folder)
            _journal_from_plans(state / "journal" / f"{mid}.sqlite", mid, slip)
        text += f'[[models]]\nname = "{name}"\ndir = "{folder}"\ncapital = 1000.0\n\n'
    config = tmp_path / "t.toml"
    config.write_text(text + f'[paths]\nstate = "{state}"\n', encoding="utf-8")
    settings = load_settings(config, require_model_dir=False)
    rows = leaderboard(settings)
    assert [r["name"] for r in rows] == ["fresh", "slip", "idle"]
    fresh, slip_row, idle = rows
    assert fresh["return"] - slip_row["return"] == pytest.approx(7.0 / 1000.0)
    assert fresh["gap_usd"] == pytest.approx(0.0, abs=1e-9) and slip_row["gap_usd"] == pytest.approx(-7.0)
    assert idle["equity"] is None and idle["capital"] == 1000.0 and idle["model_id"] is None
    assert [r["name"] for r in leaderboard(settings, sort="gap_usd")] == ["fresh", "slip", "idle"]
