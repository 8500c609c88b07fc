"""``audit``: a journal whose gap is known by construction gives back each component; a real run on the
emulator adds up to its gap with (next to) nothing left over; the CLI's JSON, table and PNG."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from cappuccino_daemon.cli import main
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.ops.audit import COMPONENTS, Fees, audit_journal
from cappuccino_daemon.ops.journal_view import read_journal

T0 = datetime(2024, 3, 1, 10, tzinfo=UTC)
FEES = Fees(buy=0.01, sell=0.01)
TICKERS = ("BTC", "ETH")


def _known_journal(path: Path) -> None:
    """One buy and its five detours from the env's plan, then a skipped bar (where the env would have
    bought 0.1 BTC more at 105) and a quiet bar.

    The env buys 1.0 BTC at the 100 close (1 % fee in cash); our risk limit cuts it to 0.8; 0.7 is
    sent (broker steps); 0.6 fills, at 102; the broker keeps 0.001 BTC as its fee. Marked at 110."""
    with Journal(path) as j:
        j.save_normaliser("m", TICKERS, [100.0, 10.0], [1.0, 1.0], 1.0, T0)
        plan = {
            "prices": [100.0, 10.0],
            "orders": [{"index": 0, "side": "buy", "qty": 0.8, "kind": "buy"}],
            "env_after": {"cash": 1000.0 - 1.0 * 100.0 * 1.01, "holdings": [1.0, 0.0]},
        }
        j.begin_cycle(T0, "m", "s0", [1.0, 0.0], plan, (1000.0, [0.0, 0.0], [0.0, 0.0]))
        j.record_event("order_cut", None, {"bar": T0.isoformat(), "index": 0, "qty": 1.0, "kept": 0.8})
        j.add_intent("c1", T0, "BTC", "buy", Decimal("0.7"), 100.0)
        j.mark_attempt("c1")
        j.update_intent("c1", "filled", filled_qty=Decimal("0.6"), filled_avg_price=102.0)
        cash = 1000.0 - 0.6 * 102.0 * 1.01
        j.apply_fill("c1", Decimal("0.6"), 102.0, (cash, [0.6, 0.0], [0.0, 0.0]))
        j.finish_cycle(T0, "done", 1.0)
        j.save_account(cash, [0.599, 0.0], [0.0, 0.0], reason="reconcile_clamp")
        t1 = T0 + timedelta(hours=1)
        j.skip_cycle(t1, "m", "gap: bar missing")
        env_t1 = {"cash": cash - 0.1 * 105.0 * 1.01, "holdings": [0.699, 0.0]}  # the env buys 0.1 at 105
        shadow = {"bar": t1.isoformat(), "cash": cash, "holdings": [0.599, 0.0], "prices": [105.0, 10.0]}
        shadow["env_after"] = env_t1
        j.record_event("skipped_bar_env", None, shadow)
        j.record_event("skipped_bar_env", None, {"bar": "2024-03-01T09:00:00+00:00", "cash": cash,
                                                 "holdings": [0.0, 0.0], "unvalued": "no bars"})  # fmt: skip
        t2 = T0 + timedelta(hours=2)
        quiet = {"prices": [110.0, 10.0], "orders": [], "env_after": {"cash": cash, "holdings": [0.599, 0.0]}}
        j.begin_cycle(t2, "m", "s2", [0.0, 0.0], quiet, (cash, [0.599, 0.0], [0.0, 0.0]))
        j.finish_cycle(t2, "done", None)


def test_each_component_of_a_known_gap(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite"
    _known_journal(path)
    result = audit_journal(path, read_journal(path), FEES)
    worth = 110.0 - 100.0 * 1.01  # what one BTC bought at the close is worth at the mark, after the fee
    expected = {
        "risk_limits": -0.2 * worth,
        "dropped_or_resized": -0.1 * worth,
        "partial_or_unfilled": -0.1 * worth,
        "fill_price": -0.6 * 2.0 * 1.01,
        "fees_in_coin": -0.001 * 110.0,
        "skipped_bars": -(0.1 * 110.0 - 0.1 * 105.0 * 1.01),  # the env's buy that live never made
    }
    for name, value in expected.items():
        assert result["components"][name] == pytest.approx(value, abs=1e-9), name
    assert abs(result["components"]["other"]) < 1e-5  # float32 holdings only
    live = 1000.0 - 0.6 * 102.0 * 1.01 + 0.599 * 110.0
    env = 1000.0 - 101.0 + 1.0 * 110.0 + (0.1 * 110.0 - 0.1 * 105.0 * 1.01)
    assert result["live_equity"] == pytest.approx(live, abs=1e-4)
    assert result["env_equity"] == pytest.approx(env, abs=1e-4)
    assert result["gap_usd"] == pytest.approx(sum(result["components"].values()), abs=1e-12)
    assert result["gap_usd"] == pytest.approx(sum(expected.values()), abs=1e-4)
    assert (result["bars_decided"], result["bars_skipped"], result["orders_cut"]) == (2, 1, 1)
    assert (result["bars_skipped_valued"], result["bars_skipped_unvalued"]) == (1, 1)
    assert [b["bar"][11:16] for b in result["bars"]] == ["10:00", "11:00", "12:00"]  # in time order
    assert result["bars"][2]["gap"] == pytest.approx(0.0, abs=1e-9)  # the quiet bar


def test_a_journal_without_env_records_says_so(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    with Journal(path) as j:
        j.save_normaliser("m", TICKERS, [100.0, 10.0], [1.0, 1.0], 1.0, T0)
        j.begin_cycle(
            T0, "m", "s", [0.0, 0.0], {"prices": [100.0, 10.0], "orders": []}, (1000.0, [0, 0], [0, 0])
        )
    result = audit_journal(path, read_journal(path), FEES)
    assert result["bars_without_env_record"] == 1 and "no decided bar with an env record" in result["problem"]


def test_cli_json_table_and_png(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cappuccino_daemon.model.loader import load_model_spec
    from cappuccino_daemon.model.testing import write_trading_stub

    folder = write_trading_stub(tmp_path / "models" / "trial_5_1h", TICKERS)
    model_id = load_model_spec(folder, list(TICKERS)).model_id
    _known_journal(tmp_path / "state" / "journal" / f"{model_id}.sqlite")
    config = tmp_path / "daemon.toml"
    config.write_text('[model]\ndir = "models/trial_5_1h"\n[paths]\nstate = "state"\n', encoding="utf-8")
    capsys.readouterr()  # the stub's own log lines
    assert main(["audit", "--config", str(config), "--json", "--out", str(tmp_path / "audit.png")]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["problem"] is None and set(row["components"]) == set(COMPONENTS) and row["bars_decided"] == 2
    assert row["gap_usd"] == pytest.approx(sum(row["components"].values()), abs=1e-12)
    assert (tmp_path / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["audit", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "fill price" in text and "fees in coin" in text
    assert "1 skipped: 1 valued, 1 without their data" in text
    assert main(["audit", "--config", str(config), "--model", "nosuch"]) == 78
    assert "no model named 'nosuch'" in capsys.readouterr().err
