"""An order the worker gave up as ``lost`` that the broker shows after all is taken back into the books.

``lost`` means: POSTed, but the broker had never heard of its client_order_id when the bar was over.
A broker that was slow to index the order (or answered a lookup from a stale replica) can show it
later, filled. Left alone, that fill is a position the worker treats as someone else's, and the books
drift from the broker for good. So every reconciliation looks the newest lost intents up again
(bounded: ``WINDOW`` of them, no older than ``MAX_AGE``, to spare the request budget) and settles any
the broker knows: a filled one is booked, a still-working one from an older bar is canceled first
(as any stale open order), what filled of it is booked. Each re-adoption is journaled.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from cappuccino_daemon.broker.ports import Broker, TransientBrokerError
from cappuccino_daemon.journal.store import Journal
from cappuccino_daemon.logsetup import get_logger
from cappuccino_daemon.states import IntentStatus

if TYPE_CHECKING:
    from cappuccino_daemon.worker.executor import Executor

log = get_logger(__name__)

WINDOW = 10
MAX_AGE = timedelta(days=2)


def readopt_lost(
    broker: Broker, journal: Journal, executor: Executor, current_bar: datetime | None
) -> list[str]:
    """Client ids of lost intents the broker knows after all, now settled into the journal."""
    if current_bar is None:
        lost = [i for i in journal.intents() if i.status == IntentStatus.LOST]
    else:
        lost = journal.intents_since(current_bar - MAX_AGE, IntentStatus.LOST)
    adopted: list[str] = []
    for intent in lost[-WINDOW:]:
        coid = intent.client_order_id
        try:
            snap = broker.get_order_by_client_id(coid)
            if snap is None:
                continue
            if snap.is_open and (current_bar is None or intent.bar_time < current_bar):
                broker.cancel_order(snap.id)
                snap = broker.get_order_by_client_id(coid) or snap
        except TransientBrokerError as exc:
            log.warning("readopt_lookup_failed", client_order_id=coid, error=str(exc))
            continue
        log.warning(
            "lost_order_readopted",
            client_order_id=coid,
            broker_status=snap.status.value,
            filled_qty=str(snap.filled_qty),
            rule="the broker knows it after all: book what it did",
        )
        executor.settle(intent, snap, event="reconcile_readopted")
        adopted.append(coid)
    return adopted
