"""The soak's audit rules on books built by hand in a real journal: each rule fires, and only then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.soak.audit import BrokerOrder, audit, read_books

BAR = timedelta(hours=1)
T0 = datetime(2024, 3, 1, tzinfo=UTC)
TICKERS = ("BTC", "ETH")


def coid(hour: int, symbol: str, side: str) -> str:
    return f"cp-abcd1234-{(T0 + hour * BAR).strftime('%Y%m%dT%H%M')}-{symbol}-{side[0]}"


def journal_with_one_buy(path: Path, btc_held: float = 0.01) -> Journal:
    """Bar 0: a BTC buy of 0.01 filled and booked; bar 1 skipped with a reason; bar 2 done."""
    journal = Journal(path)
    journal.save_normaliser("m", TICKERS, [100.0, 10.0], [1.0, 1.0], 1000.0, T0)
    journal.begin_cycle(T0, "m", "sha", [1.0, 0.0], {}, (1000.0, [0.0, 0.0], [0.0, 0.0]))
    journal.add_intent(coid(0, "BTC", "buy"), T0, "BTC", "buy", Decimal("0.01"), 100.0)
    journal.mark_attempt(coid(0, "BTC", "buy"))
    journal.update_intent(coid(0, "BTC", "buy"), "filled", filled_qty=Decimal("0.01"), filled_avg_price=100.0)
    journal.apply_fill(coid(0, "BTC", "buy"), Decimal("0.01"), 100.0, (998.0, [btc_held, 0.0], [0.0, 0.0]))
    journal.finish_cycle(T0, "done", 1.0)
    journal.skip_cycle(T0 + BAR, "m", "stale data")
    journal.begin_cycle(T0 + 2 * BAR, "m", "sha", [0.0, 0.0], {}, (998.0, [btc_held, 0.0], [0.0, 0.0]))
    journal.finish_cycle(T0 + 2 * BAR, "done", 1.0)
    return journal


def filled_buy() -> BrokerOrder:
    return BrokerOrder(coid(0, "BTC", "buy"), "BTC", "buy", "filled", Decimal("0.01"))


def test_books_that_agree_have_no_findings(tmp_path: Path) -> None:
    journal_with_one_buy(tmp_path / "m.sqlite").close()
    # The broker holds the buy less its 0.25 % fee in coin: within the clamp rule until the next clamp.
    found = audit([filled_buy()], {"BTC": Decimal("0.009975")}, [read_books(tmp_path / "m.sqlite")], BAR)
    assert found.problems == 0, found.to_json()
    assert (found.orders, found.fills, found.bars_decided, found.bars_skipped) == (1, 1, 2, 1)


def test_each_rule_fires(tmp_path: Path) -> None:
    journal = journal_with_one_buy(tmp_path / "m.sqlite")
    journal.add_intent(coid(2, "ETH", "sell"), T0 + 2 * BAR, "ETH", "sell", Decimal("1"), 10.0)
    journal.update_intent(coid(2, "ETH", "sell"), "submitted")  # the journal believes the broker has it
    journal.add_intent(coid(2, "BTC", "sell"), T0 + 2 * BAR, "BTC", "sell", Decimal("1"), 10.0)
    journal.update_intent(coid(2, "BTC", "sell"), "lost")  # ...and gave this one up
    journal._db.execute("DELETE FROM cycles WHERE bar_time = ?", ((T0 + BAR).isoformat(),))
    journal.close()
    orders = [
        filled_buy(),
        filled_buy(),  # the same id twice
        BrokerOrder(coid(2, "BTC", "sell"), "BTC", "sell", "filled", Decimal("0.004")),  # given up, filled
        BrokerOrder(coid(3, "LTC", "buy"), "LTC", "buy", "new", Decimal("0")),  # no intent anywhere
        BrokerOrder("someone-else", "BTC", "buy", "filled", Decimal("5")),  # not ours: ignored
    ]
    found = audit(orders, {"BTC": Decimal("0.5")}, [read_books(tmp_path / "m.sqlite")], BAR)
    assert len(found.duplicates) == 1 and coid(0, "BTC", "buy") in found.duplicates[0]
    assert any(coid(2, "ETH", "sell") in x and "unknown to the broker" in x for x in found.lost)
    assert any(coid(2, "BTC", "sell") in x and "lost" in x for x in found.lost)
    assert len(found.unbooked) == 1 and coid(2, "BTC", "sell") in found.unbooked[0]
    assert len(found.unjournaled) == 1 and coid(3, "LTC", "buy") in found.unjournaled[0]
    assert len(found.book_drift) == 1 and found.book_drift[0].startswith("BTC")
    assert len(found.unexplained_bars) == 1 and (T0 + BAR).isoformat() in found.unexplained_bars[0]


def test_books_above_the_broker_beyond_the_fee_are_drift(tmp_path: Path) -> None:
    journal_with_one_buy(tmp_path / "m.sqlite", btc_held=0.02).close()
    found = audit([filled_buy()], {"BTC": Decimal("0.009975")}, [read_books(tmp_path / "m.sqlite")], BAR)
    assert [x.split(":")[0] for x in found.book_drift] == ["BTC"]
