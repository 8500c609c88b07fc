"""The fill deadline: what is still open when the executor stops waiting is canceled, not left working.

A market order that has not filled by the worker's fill deadline (``[worker] fill_timeout_s``; Alpaca
fills crypto market orders in parts) is no longer what the model decided. So the remainder is
canceled, whatever did fill is booked into the virtual account (the settled order is final:
``canceled`` with its partial ``filled_qty``), and the unfilled rest is journaled as
``order_unfilled`` with its reason. The next bar then starts from the true books. An order whose
cancel has not become final yet (``pending_cancel``) or whose lookup fails stays open for
reconciliation, which treats it as any stale open order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cappuccino_daemon.broker.ports import TransientBrokerError
from cappuccino_daemon.journal.store import IntentRecord
from cappuccino_daemon.logsetup import get_logger

if TYPE_CHECKING:
    from cappuccino_daemon.worker.executor import Executor

log = get_logger(__name__)

DEADLINE_REASON = "fill_deadline: not filled within [worker] fill_timeout_s; the remainder was canceled"
CANCEL_POLLS = 3


def cancel_at_deadline(executor: Executor, open_intents: Sequence[IntentRecord]) -> list[IntentRecord]:
    """Cancel the unfilled remainder of every open order, book what filled; returns those still open."""
    still_open: list[IntentRecord] = []
    for intent in open_intents:
        settled = _cancel_one(executor, intent)
        if settled is None or settled.is_open:
            still_open.append(settled or intent)
    return still_open


def _cancel_one(executor: Executor, intent: IntentRecord) -> IntentRecord | None:
    coid = intent.client_order_id
    try:
        snap = executor.broker.get_order_by_client_id(coid)
        if snap is None or snap.is_final:
            return executor.settle(intent, snap) if snap is not None else None
        executor.broker.cancel_order(snap.id)
        for _ in range(CANCEL_POLLS):
            snap = executor.broker.get_order_by_client_id(coid) or snap
            if snap.is_final:
                break
            executor.clock.sleep(executor.poll_s)
    except TransientBrokerError as exc:
        log.warning("deadline_cancel_failed", client_order_id=coid, error=str(exc))
        return None
    settled = executor.settle(intent, snap, event="deadline_cancel")
    if not settled.is_open and snap.filled_qty < snap.qty:
        unfilled = snap.qty - snap.filled_qty
        log.warning(
            "order_unfilled",
            client_order_id=coid,
            filled=str(snap.filled_qty),
            unfilled=str(unfilled),
            status=snap.status.value,
            reason="fill_deadline",
        )
        executor.journal.record_event(
            "order_unfilled",
            coid,
            {
                "qty": str(snap.qty),
                "filled_qty": str(snap.filled_qty),
                "unfilled_qty": str(unfilled),
                "broker_status": snap.status.value,
                "reason": DEADLINE_REASON,
            },
        )
    return settled
