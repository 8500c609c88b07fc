"""The paper account: a USD cash account, long-only crypto positions, market and limit orders.

Rules (Alpaca crypto, as in the reference):
- Orders are accepted as ``pending_new``; they fill ``fill_delay_s`` of SIMULATED time later, on the
  next request or clock step, at the close of the latest bar closed at the fill time, moved against
  the trader by ``slippage_bps``. Limit orders fill at once if marketable, else rest (gtc) and fill
  at their limit when a later closed bar trades through it, or are canceled (ioc).
- The taker fee is charged in the asset received: a buy of ``q`` BTC adds ``q*(1-fee)`` BTC (the
  order's ``filled_qty`` stays ``q``); a sell pays ``fee`` of its USD proceeds.
- Cash and position quantity held by open orders are reserved; selling more than is available and
  buying for more than the free cash are 403 ``insufficient balance``. No shorting, no margin.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from cappuccino_daemon.emulator import apierrors
from cappuccino_daemon.emulator.apierrors import ApiError
from cappuccino_daemon.emulator.fills import PositionChange, fill_record, plan_split, schedule
from cappuccino_daemon.emulator.market import Market, from_ns, to_ns
from cappuccino_daemon.emulator.orders import Order, OrderRequest
from cappuccino_daemon.emulator.symbols import AssetRule, compact, rule_for
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)

QTY_STEP = Decimal("0.000000001")
USD_STEP = Decimal("0.00000001")


def floor_qty(value: Decimal, step: Decimal = QTY_STEP) -> Decimal:
    return (value / step).to_integral_value(rounding=ROUND_DOWN) * step


def usd(value: Decimal) -> Decimal:
    return value.quantize(USD_STEP, rounding=ROUND_HALF_EVEN)


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


def dec(value: float) -> Decimal:
    """A float price as the shortest decimal that round-trips (no binary noise)."""
    return Decimal(repr(float(value)))


@dataclass
class EngineConfig:
    initial_cash: Decimal = Decimal("100000")
    taker_fee: Decimal = Decimal("0.0025")
    min_notional: Decimal = Decimal("10")
    max_notional: Decimal = Decimal("200000")
    slippage_bps: Decimal = Decimal("0")
    fill_delay_s: float = 0.0
    maker_fee: Decimal = Decimal("0.0015")
    partial_fill_rate: float = 0.0
    fill_window_s: float = 60.0
    position_lag_s: float = 0.0
    seed: int = 0
    asset_rules: dict[str, AssetRule] | None = None  # None: built-in rules, no price increment check

    @property
    def enforce_price_increment(self) -> bool:
        return self.asset_rules is not None


@dataclass
class Position:
    base: str
    qty: Decimal
    cost_basis: Decimal  # USD paid for the quantity still held

    @property
    def avg_entry_price(self) -> Decimal:
        return self.cost_basis / self.qty if self.qty > 0 else Decimal(0)


@dataclass
class Account:
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    account_number: str = field(default_factory=lambda: "PA" + uuid.uuid4().hex[:10].upper())
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    cash: Decimal = Decimal("100000")
    last_equity: Decimal = Decimal("100000")
    last_equity_day: str = ""


class Engine:
    """Account, positions and orders; every public method takes the simulated ``now``."""

    def __init__(self, config: EngineConfig, market: Market, account: Account | None = None) -> None:
        self.config = config
        self.market = market
        self.account = account or Account(cash=config.initial_cash, last_equity=config.initial_cash)
        self.positions: dict[str, Position] = {}
        self.orders: dict[str, Order] = {}
        self.by_client_id: dict[str, str] = {}
        self._open: dict[str, Order] = {}  # open orders by id, so ticks stay cheap as history grows
        self.dirty: set[str] = set()
        self.dirty_account = True
        self.lagging: list[PositionChange] = []  # recent fills, for the lagging positions view

    # ---- reads ---------------------------------------------------------------------------------
    def rule(self, base: str, now: datetime) -> AssetRule:
        rules = self.config.asset_rules
        if rules is not None and base in rules:
            return rules[base]
        return rule_for(base, self.market.price(base, now))

    def price(self, base: str, when: datetime) -> Decimal | None:
        value = self.market.price(base, when)
        return None if value is None else dec(value)

    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    def reserved_cash(self) -> Decimal:
        return sum((o.reserved_cash for o in self.open_orders()), Decimal(0))

    def reserved_qty(self, base: str) -> Decimal:
        return sum((o.reserved_qty for o in self.open_orders() if o.base == base), Decimal(0))

    def free_cash(self) -> Decimal:
        return self.account.cash - self.reserved_cash()

    def available_qty(self, base: str, now: datetime | None = None) -> Decimal:
        """Sellable quantity: the position (the lagging view's, if smaller) less open sells."""
        pos = self.positions.get(base)
        held = pos.qty if pos else Decimal(0)
        if now is not None and self.lagging:
            shown = self.visible_positions(now).get(base)
            held = min(held, shown.qty if shown else Decimal(0))
        return held - self.reserved_qty(base)

    def equity(self, now: datetime) -> Decimal:
        total = self.account.cash
        for pos in self.positions.values():
            price = self.price(pos.base, now)
            if price is not None:
                total += pos.qty * price
        return usd(total)

    # ---- submit --------------------------------------------------------------------------------
    def submit(self, req: OrderRequest, now: datetime, *, closing: bool = False) -> Order:
        """Validate ``req`` as Alpaca would (422/403 ``ApiError``), reserve funds, accept it."""
        if req.client_order_id in self.by_client_id:
            raise apierrors.invalid("client_order_id must be unique")
        price = self.price(req.base, now)
        if price is None:
            raise apierrors.rejected(f"no market price yet for {req.base}/USD; wait for the first bar")
        rule = self.rule(req.base, now)
        if not closing:
            self._check_increments(req, rule)
        est_price = self._fill_price(req.side, price, req.limit_price)
        qty_est = req.qty if req.qty is not None else floor_qty(req.notional / est_price)  # type: ignore[operator]
        if qty_est < rule.min_order_size and not closing:
            raise apierrors.invalid(
                f"qty {qty_est} is below the minimum order size {rule.min_order_size} for {req.base}/USD"
            )
        if req.side == "buy":
            reserved_cash, reserved_qty = self._reserve_buy(req, qty_est, est_price), Decimal(0)
        else:
            reserved_cash, reserved_qty = Decimal(0), self._reserve_sell(req, qty_est, now)
        return self._accept(req, now, closing, reserved_cash, reserved_qty)

    def _check_increments(self, req: OrderRequest, rule: AssetRule) -> None:
        """422 for a quantity or limit price off the asset's steps, as Alpaca refuses them."""
        if req.qty is not None and floor_qty(req.qty, rule.min_trade_increment) != req.qty:
            raise apierrors.invalid(
                f"invalid qty: {req.qty} is not a multiple of min_trade_increment {rule.min_trade_increment}"
            )
        step, limit = rule.price_increment, req.limit_price
        if self.config.enforce_price_increment and limit is not None and floor_qty(limit, step) != limit:
            raise apierrors.invalid(
                f"invalid limit_price: {limit} is not a multiple of price_increment {step}"
            )

    def _reserve_buy(self, req: OrderRequest, qty_est: Decimal, est_price: Decimal) -> Decimal:
        cost = usd(req.notional if req.notional is not None else qty_est * est_price)
        if cost < self.config.min_notional:
            raise apierrors.rejected(
                f"cost basis must be >= minimal amount of order {_plain(self.config.min_notional)}"
            )
        if cost > self.config.max_notional:
            raise apierrors.rejected(
                f"cost basis must be <= maximal amount of order {_plain(self.config.max_notional)}"
            )
        self._wash_guard(req, "sell")
        free = usd(self.free_cash())
        if cost > free:
            raise apierrors.rejected(
                f"insufficient balance for USD (requested: {cost}, available: {free})",
                available=str(free),
                balance=str(usd(self.account.cash)),
                symbol="USD",
            )
        return cost

    def _reserve_sell(self, req: OrderRequest, qty_est: Decimal, now: datetime) -> Decimal:
        self._wash_guard(req, "buy")
        available = self.available_qty(req.base, now)
        pos = self.positions.get(req.base)
        if qty_est > available:
            raise apierrors.rejected(
                f"insufficient balance for {req.base} (requested: {qty_est}, available: {available})",
                available=str(available),
                balance=str(pos.qty if pos else Decimal(0)),
                symbol=compact(req.base),
            )
        return qty_est

    def _accept(
        self, req: OrderRequest, now: datetime, closing: bool, reserved_cash: Decimal, reserved_qty: Decimal
    ) -> Order:
        order = Order(
            id=str(uuid.uuid4()),
            client_order_id=req.client_order_id,
            base=req.base,
            side=req.side,
            type=req.type,
            time_in_force=req.time_in_force,
            qty=req.qty,
            notional=req.notional,
            limit_price=req.limit_price,
            status="pending_new",
            created_at=now,
            updated_at=now,
            submitted_at=now,
            fill_due=now + timedelta(seconds=self.config.fill_delay_s),
            checked_until=now,
            reserved_cash=reserved_cash,
            reserved_qty=reserved_qty,
            position_intent="sell_to_close" if closing or req.side == "sell" else "buy_to_open",
            extra={"split": [str(f) for f in plan_split(self.config, len(self.orders))]},
        )
        self.orders[order.id] = order
        self._open[order.id] = order
        self.by_client_id[order.client_order_id] = order.id
        self.dirty.add(order.id)
        log.info(
            "emulator_order_accepted",
            order_id=order.id,
            client_order_id=order.client_order_id,
            symbol=order.symbol,
            side=order.side,
            qty=str(order.qty),
            notional=str(order.notional),
        )
        return order

    def _wash_guard(self, req: OrderRequest, opposite: str) -> None:
        for other in self.open_orders():
            if other.base == req.base and other.side == opposite and other.type == "limit":
                raise apierrors.rejected("potential wash trade detected. use complex orders")

    def _fill_price(self, side: str, price: Decimal, limit: Decimal | None) -> Decimal:
        slip = self.config.slippage_bps / Decimal(10_000)
        moved = price * (1 + slip) if side == "buy" else price * (1 - slip)
        if limit is not None:
            moved = min(moved, limit) if side == "buy" else max(moved, limit)
        return moved.quantize(QTY_STEP)

    # ---- time passes ---------------------------------------------------------------------------
    def tick(self, now: datetime) -> None:
        """Fill or expire every order whose time has come; roll ``last_equity`` at UTC midnight."""
        for order in sorted(self.open_orders(), key=lambda o: o.fill_due):
            if "schedule" in order.extra:
                self._fill_due_parts(order, now)
                continue
            if order.fill_due > now:
                if order.status == "pending_new" and now > order.submitted_at:
                    self._set_status(order, "new", now)
                continue
            if order.type == "market":
                self._begin_fill(order, order.fill_due, None, "taker", now)
            else:
                self._work_limit(order, now)
        cutoff = now - timedelta(seconds=self.config.position_lag_s)
        self.lagging = [c for c in self.lagging if c.when > cutoff]
        day = now.date().isoformat()
        if day != self.account.last_equity_day:
            midnight = datetime(now.year, now.month, now.day, tzinfo=UTC)
            self.account.last_equity = self.equity(midnight)
            self.account.last_equity_day = day
            self.dirty_account = True

    def _part_price(self, order: Order, when: datetime) -> Decimal | None:
        """Market price of a part at ``when`` (slippage, capped at the limit), or a resting limit's."""
        fixed = order.extra.get("limit_fill")
        if fixed:
            return Decimal(fixed)
        price = self.price(order.base, when)
        return None if price is None else self._fill_price(order.side, price, order.limit_price)

    def _work_limit(self, order: Order, now: datetime) -> None:
        assert order.limit_price is not None
        if order.status == "pending_new":  # first look: marketable at the fill time?
            price = self.price(order.base, order.fill_due)
            marketable = price is not None and (
                price <= order.limit_price if order.side == "buy" else price >= order.limit_price
            )
            if marketable:
                self._begin_fill(order, order.fill_due, None, "taker", now)
                return
            if order.time_in_force == "ioc":
                self._cancel(order, order.fill_due, "ioc limit not marketable")
                return
            self._set_status(order, "new", order.fill_due)
            order.checked_until = order.fill_due
        step = self.market.step_ns
        window = self.market.bars(order.base, now, step, to_ns(order.checked_until) - step + 1, to_ns(now))
        for i in range(len(window)):
            close_time = from_ns(int(window.times[i]) + step)
            if close_time <= order.checked_until:
                continue
            low, high = window.data[2, i], window.data[1, i]
            if (order.side == "buy" and dec(low) <= order.limit_price) or (
                order.side == "sell" and dec(high) >= order.limit_price
            ):
                self._begin_fill(order, close_time, order.limit_price, "maker", now)
                return
        order.checked_until = now

    def _begin_fill(
        self, order: Order, when: datetime, fixed_price: Decimal | None, liquidity: str, now: datetime
    ) -> None:
        """The order trades from ``when``: schedule its part(s), then fill those already due."""
        order.extra["liquidity"] = liquidity
        order.extra["limit_fill"] = str(fixed_price) if fixed_price is not None else ""
        price = self._part_price(order, when)
        if price is None or price <= 0:
            self._cancel(order, when, "no price")
            return
        step = self.rule(order.base, when).min_trade_increment if self.config.asset_rules else QTY_STEP
        total = order.qty if order.qty is not None else floor_qty(order.notional / price, step)  # type: ignore[operator]
        fractions = [Decimal(f) for f in order.extra.get("split", ["1"])]
        parts = schedule(total, fractions, step, when, self.config.fill_window_s)
        if order.time_in_force == "ioc" and len(parts) > 1:
            parts = parts[:1]
            order.extra["ioc_remainder"] = str(total - parts[0][1])
        order.extra["total_qty"] = str(total)
        order.extra["schedule"] = [[t.isoformat(), str(q)] for t, q in parts]
        self._fill_due_parts(order, now)

    def _fill_due_parts(self, order: Order, now: datetime) -> None:
        plan: list[list[str]] = order.extra["schedule"]
        while plan and datetime.fromisoformat(plan[0][0]) <= now and order.is_open:
            when, qty = datetime.fromisoformat(plan[0][0]), Decimal(plan[0][1])
            price = self._part_price(order, when)
            if price is None or price <= 0:
                self._cancel(order, when, "no price")
                return
            if not self._fill_part(order, when, qty, price):
                return
            plan.pop(0)
            self.dirty.add(order.id)
        if not plan and order.is_open:
            if "ioc_remainder" in order.extra:
                self._cancel(order, order.updated_at, "ioc remainder canceled")
            else:
                order.filled_at = order.updated_at
                self._set_status(order, "filled", order.updated_at)

    def _fill_part(self, order: Order, when: datetime, qty: Decimal, price: Decimal) -> bool:
        """Execute ``qty`` at ``price``: move cash and position, charge the fee; False = canceled."""
        maker = order.extra.get("liquidity") == "maker"
        fee = self.config.maker_fee if maker else self.config.taker_fee
        gross = usd(qty * price)
        if order.side == "buy":
            free = usd(self.free_cash() + order.reserved_cash)
            if gross > free:
                self._cancel(order, when, "insufficient cash at fill time")
                return False
            received = floor_qty(qty * (1 - fee))
            self.account.cash -= gross
            self._move_position(order.base, when, received, gross)
            order.reserved_cash = max(Decimal(0), order.reserved_cash - gross)
            part_fee, fee_asset = qty - received, order.base
        else:
            pos = self.positions.get(order.base)
            if pos is None or qty > pos.qty:
                self._cancel(order, when, "insufficient position at fill time")
                return False
            proceeds = usd(gross * (1 - fee))
            cost_out = pos.cost_basis * qty / pos.qty if pos.qty > 0 else Decimal(0)
            self._move_position(order.base, when, -qty, -cost_out)
            self.account.cash += proceeds
            order.reserved_qty = max(Decimal(0), order.reserved_qty - qty)
            part_fee, fee_asset = gross - proceeds, "USD"
        self._record_part(order, when, qty, price, part_fee, fee_asset)
        return True

    def _record_part(
        self, order: Order, when: datetime, qty: Decimal, price: Decimal, fee: Decimal, fee_asset: str
    ) -> None:
        done = order.filled_qty + qty
        average = ((order.filled_avg_price or Decimal(0)) * order.filled_qty + price * qty) / done
        order.filled_avg_price = average.quantize(QTY_STEP).normalize()
        order.filled_qty = done
        order.fee += fee
        order.extra.setdefault("fills", []).append(fill_record(when, qty, price, fee, fee_asset))
        self._set_status(order, "partially_filled", when)
        self.dirty_account = True
        log.info(
            "emulator_order_fill",
            order_id=order.id,
            symbol=order.symbol,
            side=order.side,
            qty=str(qty),
            price=str(price),
            fee=str(fee),
            liquidity=order.extra.get("liquidity"),
        )

    def _move_position(self, base: str, when: datetime, qty: Decimal, cost: Decimal) -> None:
        pos = self.positions.get(base)
        if pos is None:
            pos = self.positions[base] = Position(base, Decimal(0), Decimal(0))
        pos.qty += qty
        pos.cost_basis += cost
        if pos.qty <= 0:
            del self.positions[base]
        if self.config.position_lag_s > 0:
            self.lagging.append(PositionChange(when, base, qty, cost))

    def visible_positions(self, now: datetime) -> dict[str, Position]:
        """Positions as ``/v2/positions`` shows them: fills younger than ``position_lag_s`` not yet in."""
        cutoff = now - timedelta(seconds=self.config.position_lag_s)
        shown = {b: Position(b, p.qty, p.cost_basis) for b, p in self.positions.items()}
        for change in self.lagging:
            if change.when > cutoff:
                pos = shown.setdefault(change.base, Position(change.base, Decimal(0), Decimal(0)))
                pos.qty -= change.qty
                pos.cost_basis -= change.cost
        return {b: p for b, p in sorted(shown.items()) if p.qty > 0}

    def _set_status(self, order: Order, status: str, when: datetime) -> None:
        order.status = status
        order.updated_at = max(when, order.updated_at)
        if not order.is_open:
            self._open.pop(order.id, None)
        self.dirty.add(order.id)

    def _cancel(self, order: Order, when: datetime, reason: str) -> None:
        order.reserved_cash, order.reserved_qty = Decimal(0), Decimal(0)
        order.canceled_at = when
        order.reason = reason
        self._set_status(order, "canceled", when)

    # ---- cancel / close ------------------------------------------------------------------------
    def get(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise apierrors.not_found("order not found")
        return order

    def get_by_client_id(self, client_order_id: str) -> Order:
        order_id = self.by_client_id.get(client_order_id)
        if order_id is None:
            raise apierrors.not_found(f"order not found for {client_order_id}")
        return self.orders[order_id]

    def cancel(self, order_id: str, now: datetime) -> Order:
        order = self.get(order_id)
        if not order.is_open:
            raise apierrors.invalid(f'order is already in "{order.status}" state', code=42210000)
        self._cancel(order, now, "canceled by user")
        return order

    def cancel_all(self, now: datetime) -> list[Order]:
        canceled = self.open_orders()
        for order in canceled:
            self._cancel(order, now, "canceled by user")
        return canceled

    def close_position(
        self, base: str, now: datetime, qty: Decimal | None = None, percentage: Decimal | None = None
    ) -> Order:
        pos = self.visible_positions(now).get(base)
        if pos is None or pos.qty <= 0:
            raise apierrors.not_found(f"position not found: {compact(base)}")
        if qty is not None and percentage is not None:
            raise apierrors.invalid("only one of qty or percentage is accepted")
        if percentage is not None:
            if not Decimal(0) < percentage <= Decimal(100):
                raise apierrors.invalid("percentage must be in (0, 100]")
            qty = floor_qty(pos.qty * percentage / Decimal(100), self.rule(base, now).min_trade_increment)
        amount = pos.qty if qty is None else qty
        available = self.available_qty(base, now)
        if amount <= 0 or amount > available:
            raise apierrors.rejected(
                f"insufficient qty available for order (requested: {amount}, available: {available})",
                available=str(available),
                existing_qty=str(pos.qty),
                held_for_orders=str(pos.qty - available),
                symbol=compact(base),
            )
        req = OrderRequest(base, "sell", "market", "gtc", amount, None, None, str(uuid.uuid4()))
        return self.submit(req, now, closing=amount == pos.qty)

    def close_all(self, now: datetime, cancel_orders: bool) -> list[tuple[str, Order | ApiError]]:
        if cancel_orders:
            self.cancel_all(now)
        results: list[tuple[str, Order | ApiError]] = []
        for base in self.visible_positions(now):
            try:
                results.append((base, self.close_position(base, now)))
            except ApiError as exc:
                results.append((base, exc))
        return results

    # ---- persistence ---------------------------------------------------------------------------
    def export_account(self) -> dict[str, Any]:
        acc = self.account
        return {
            "id": acc.id,
            "account_number": acc.account_number,
            "created_at": acc.created_at.isoformat(),
            "cash": str(acc.cash),
            "last_equity": str(acc.last_equity),
            "last_equity_day": acc.last_equity_day,
            "positions": {
                b: {"qty": str(p.qty), "cost_basis": str(p.cost_basis)} for b, p in self.positions.items()
            },
        }

    def restore(self, account: dict[str, Any], orders: list[Order]) -> None:
        self.account = Account(
            id=account["id"],
            account_number=account["account_number"],
            created_at=datetime.fromisoformat(account["created_at"]),
            cash=Decimal(account["cash"]),
            last_equity=Decimal(account["last_equity"]),
            last_equity_day=account["last_equity_day"],
        )
        self.positions = {
            b: Position(b, Decimal(p["qty"]), Decimal(p["cost_basis"]))
            for b, p in account["positions"].items()
        }
        self.orders = {o.id: o for o in sorted(orders, key=lambda o: o.created_at)}
        self.by_client_id = {o.client_order_id: o.id for o in self.orders.values()}
        self._open = {o.id: o for o in self.orders.values() if o.is_open}
        self.dirty.clear()
        self.dirty_account = False
