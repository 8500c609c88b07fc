"""Open the configured broker: the one place outside ``broker/alpaca.py`` that names the adapter.

The worker's composition root (``worker/build.py``) calls ``open_broker`` and gets a ``ports.Broker``;
endpoints, credentials and the emulator's dummy keys stay on this side of the port. The import-linter
contract that keeps Alpaca out of the worker exempts exactly that one import.
"""

from __future__ import annotations

from cappuccino_daemon.broker.alpaca import (
    EMULATOR_DUMMY_KEY,
    EMULATOR_DUMMY_SECRET,
    AlpacaBroker,
    default_endpoints,
)
from cappuccino_daemon.broker.budget import RequestBudget
from cappuccino_daemon.broker.http import ReadRetry
from cappuccino_daemon.broker.ports import Broker
from cappuccino_daemon.config import load_alpaca_credentials
from cappuccino_daemon.errors import ConfigError


def open_broker(
    kind: str, url: str | None, data_url: str | None, timeout_s: float, budget_per_min: int = 0
) -> Broker:
    """``kind`` is ``emulator`` or ``alpaca-paper``; keys come from the environment / systemd credentials.

    ``budget_per_min`` > 0 keeps the trading API's request rate below that (``broker/budget.py``).
    """
    creds = load_alpaca_credentials()
    endpoints = default_endpoints(kind, url, data_url)
    if creds is None:
        if kind == "alpaca-paper":
            raise ConfigError(
                "No Alpaca credentials: the alpaca-paper broker needs your paper keys. Set ALPACA_API_KEY "
                "and "
                "ALPACA_API_SECRET in the environment (or the systemd credentials alpaca_api_key / "
                "alpaca_api_secret), then start the worker again."
            )
        key, secret = EMULATOR_DUMMY_KEY, EMULATOR_DUMMY_SECRET
    else:
        key, secret = creds.key_id, creds.secret_key
    budget = RequestBudget(budget_per_min) if budget_per_min > 0 else None
    return AlpacaBroker(key, secret, endpoints, timeout_s=timeout_s, read_retry=ReadRetry(), budget=budget)
