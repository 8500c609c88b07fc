"""alpaca-py errors → our errors, symbol forms, quantity flooring, and the default HTTP timeout."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import requests

from cappuccino_daemon.broker.alpaca import (
    AlpacaBroker,
    AlpacaEndpoints,
    DuplicateClientOrderIdError,
    _qty_text,
    map_error,
    order_status,
    parse_order,
)
from cappuccino_daemon.broker.http import ReadRetry, install_timeout
from cappuccino_daemon.broker.ports import BrokerUnavailableError, OrderStatus, RateLimitedError
from cappuccino_daemon.broker.symbols import to_bare, to_compact, to_pair
from cappuccino_daemon.errors import (
    AmbiguousSubmitError,
    BrokerRejectedError,
    ConfigError,
    TransientBrokerError,
)
from cappuccino_daemon.policy.ledger import floor_qty


def _api_error(status: int, body: str, headers: dict[str, str] | None = None) -> Exception:
    from alpaca.common.exceptions import APIError

    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers.update(headers or {})
    return APIError(body, requests.HTTPError(response=response))


def test_symbol_forms() -> None:
    assert to_pair("BTC") == to_pair("BTCUSD") == to_pair("BTC/USD") == "BTC/USD"
    assert to_compact("ETH/USD") == "ETHUSD"
    assert to_bare("LTC-USDT") == to_bare("LTCUSD") == "LTC"


def test_floor_never_rounds_up() -> None:
    assert floor_qty(0.123456789, Decimal("0.0001")) == Decimal("0.1234")
    assert floor_qty(Decimal("0.00009"), Decimal("0.0001")) == Decimal(0)
    assert floor_qty(-1.0, Decimal("0.1")) == Decimal(0)
    assert _qty_text(Decimal("0.00001000")) == "0.00001"  # never exponent form


@pytest.mark.parametrize(
    ("status", "body", "submit", "expected"),
    [
        (401, '{"code":40110000,"message":"request is not authorized"}', False, ConfigError),
        (403, '{"message": "forbidden."}', False, ConfigError),
        (403, '{"code":40310000,"message":"insufficient balance for USD"}', True, BrokerRejectedError),
        (429, '{"code":42910000,"message":"rate limit exceeded"}', False, TransientBrokerError),
        (500, "Internal Server Error", False, TransientBrokerError),
        (503, '{"code":50310000,"message":"x"}', True, AmbiguousSubmitError),
        (
            422,
            '{"code":40010001,"message":"client_order_id must be unique"}',
            True,
            DuplicateClientOrderIdError,
        ),
        (422, '{"code":42210000,"message":"invalid crypto time_in_force"}', True, BrokerRejectedError),
    ],
)
def test_error_mapping(status: int, body: str, submit: bool, expected: type[Exception]) -> None:
    mapped = map_error(_api_error(status, body), "call", is_submit=submit)
    assert isinstance(mapped, expected)
    if expected is BrokerRejectedError:
        assert not isinstance(mapped, DuplicateClientOrderIdError)
    if expected is ConfigError:
        assert "ALPACA_API_KEY" in str(mapped)


def test_timeouts_are_ambiguous_for_submits_only() -> None:
    assert isinstance(
        map_error(requests.exceptions.ReadTimeout("x"), "submit", is_submit=True), AmbiguousSubmitError
    )
    assert isinstance(map_error(requests.exceptions.ReadTimeout("x"), "get"), TransientBrokerError)


def test_retry_after_is_honoured() -> None:
    mapped = map_error(_api_error(429, "{}", {"Retry-After": "2"}), "get")
    assert getattr(mapped, "retry_after_s", None) == 2.0
    sleeps: list[float] = []
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise mapped
        return 7

    assert ReadRetry(attempts=4, base_s=0.01, max_wait_s=5, sleep=sleeps.append).call("x", flaky) == 7
    assert len(sleeps) == 2 and all(s >= 2.0 for s in sleeps)


def test_read_retry_is_bounded() -> None:
    sleeps: list[float] = []

    def always() -> None:
        raise TransientBrokerError("down")

    with pytest.raises(TransientBrokerError):
        ReadRetry(attempts=3, base_s=0.01, max_wait_s=0.05, sleep=sleeps.append).call("x", always)
    assert len(sleeps) == 2 and max(sleeps) <= 0.05


def test_parse_order_nanoseconds_and_pair_symbol() -> None:
    snap = parse_order(
        {
            "id": "61e69015-8549-4bfd-b9c3-01e75843f47d",
            "client_order_id": "cp-1",
            "symbol": "BTC/USD",
            "side": "buy",
            "qty": "0.01",
            "filled_qty": "0.01",
            "filled_avg_price": "30000.5",
            "status": "filled",
            "submitted_at": "2023-12-12T22:36:51.337711497Z",
        }
    )
    assert snap.symbol == "BTC" and snap.filled_qty == Decimal("0.01") and snap.is_final
    assert snap.submitted_at == datetime(2023, 12, 12, 22, 36, 51, 337711, tzinfo=UTC)


def test_hung_server_times_out() -> None:
    """A server that accepts and never answers must not block the worker (the SDK sets no timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    held: list[socket.socket] = []

    def accept() -> None:
        for _ in range(8):
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    broker = AlpacaBroker(
        "k",
        "s",
        AlpacaEndpoints(url, url),
        timeout_s=0.3,
        read_retry=ReadRetry(attempts=2, base_s=0.01, max_wait_s=0.02),
    )
    started = time.monotonic()
    with pytest.raises(TransientBrokerError):
        broker.get_account()
    with pytest.raises(AmbiguousSubmitError):
        broker.submit_market_order("BTC", "buy", Decimal("0.01"), "cp-test")
    assert time.monotonic() - started < 5
    with pytest.raises(TransientBrokerError):
        broker.get_bars(
            ["BTC"], timedelta(hours=1), datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 2, tzinfo=UTC)
        )
    server.close()
    for conn in held:
        conn.close()


def test_broker_clock_keeps_the_utc_offset_of_fractional_timestamps() -> None:
    """Alpaca's clock is New York time with microseconds; a running clock must not lose the -05:00 offset."""
    from cappuccino_daemon.emulator.testing import EmulatorThread

    start = datetime(2026, 11, 26, 0, 2, tzinfo=UTC)
    with EmulatorThread(synthetic_seed=7, speed=3600.0, start=start) as emu:
        broker = AlpacaBroker(emu.key_id, emu.secret_key, AlpacaEndpoints(emu.base_url, emu.base_url), 5.0)
        seen = broker.now()
        truth = emu.now()
    assert seen.tzinfo is not None
    assert seen.microsecond != 0 or truth.microsecond == 0
    assert abs((truth - seen).total_seconds()) < 3600 * 2  # two wall seconds of simulated drift at most
    assert seen >= start


def test_parse_order_keeps_offsets_after_nanoseconds() -> None:
    """A nanosecond fraction followed by an explicit offset converts to the right UTC instant."""
    order = parse_order(
        {
            "id": "x",
            "client_order_id": "c",
            "symbol": "BTC/USD",
            "side": "buy",
            "qty": "1",
            "filled_qty": "0",
            "status": "new",
            "submitted_at": "2026-11-25T19:13:38.123456789-05:00",
        }
    )
    assert order.submitted_at == datetime(2026, 11, 26, 0, 13, 38, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    ("alpaca", "ours"),
    [
        ("filled", OrderStatus.FILLED),
        ("done_for_day", OrderStatus.EXPIRED),
        ("expired", OrderStatus.EXPIRED),
        ("replaced", OrderStatus.CANCELED),
        ("canceled", OrderStatus.CANCELED),
        ("rejected", OrderStatus.REJECTED),
        ("new", OrderStatus.OPEN),
        ("partially_filled", OrderStatus.PARTIALLY_FILLED),
        ("pending_cancel", OrderStatus.PENDING_CANCEL),
        ("pending_review", OrderStatus.PENDING),
        ("accepted_for_bidding", OrderStatus.PENDING),
        ("HELD", OrderStatus.PENDING),
        ("some_future_status", OrderStatus.PENDING),  # unknown is never taken as over
    ],
)
def test_alpaca_statuses_map_onto_the_port(alpaca: str, ours: OrderStatus) -> None:
    assert order_status(alpaca) is ours
    assert ours.is_final == (
        ours in (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED)
    )


def test_mapped_errors_are_the_port_types() -> None:
    assert isinstance(map_error(_api_error(503, "{}"), "get"), BrokerUnavailableError)
    assert isinstance(map_error(requests.exceptions.ConnectTimeout("x"), "get"), BrokerUnavailableError)
    limited = map_error(_api_error(429, "{}"), "submit", is_submit=True)
    assert isinstance(limited, RateLimitedError) and limited.retry_after_s is None


def test_install_timeout_refuses_a_client_without_the_expected_internals() -> None:
    """If an alpaca-py upgrade renames _session/_retry, the worker must say so, not run without timeouts."""

    class Renamed:
        session = requests.Session()

    with pytest.raises(RuntimeError, match="_session/_retry"):
        install_timeout(Renamed(), 5.0)
