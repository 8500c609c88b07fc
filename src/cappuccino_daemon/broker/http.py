"""HTTP plumbing under alpaca-py: a default timeout on every request and bounded, jittered read retries.

alpaca-py calls ``Session.request`` without a timeout (a hung server blocks forever) and retries only
429/504 with a fixed sleep. We swap the client's session for one that always sets a timeout, switch the
SDK's own retry off, and retry *reads* ourselves with tenacity. Submits never pass through ``ReadRetry``.

Why private attributes: alpaca-py (0.44, checked in ``alpaca/common/rest.py``) offers no supported seam
for either. ``RESTClient`` builds ``self._session = Session()`` itself and takes no session, adapter or
timeout argument; its ``retry_attempts`` only accepts values > 0 and ``TradingClient`` /
``CryptoHistoricalDataClient`` do not even forward it. So ``install_timeout`` is the one place that
touches ``_session`` / ``_retry``; it checks both exist with the expected types first and fails with a
clear error if an alpaca-py upgrade renames them (tests/broker pin the behaviour: a hung server times out).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, stop_after_delay
from tenacity.wait import wait_random_exponential

from cappuccino_daemon.broker.budget import RequestBudget
from cappuccino_daemon.broker.ports import RateLimitedError, TransientBrokerError
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)
T = TypeVar("T")


class TimeoutSession(requests.Session):
    """A ``requests.Session`` whose requests time out unless the caller says otherwise."""

    def __init__(self, timeout_s: float, trust_env: bool = True, budget: RequestBudget | None = None) -> None:
        super().__init__()
        self.timeout_s = timeout_s
        self.budget = budget  # the trading API's request budget (None: not counted)
        # Loopback (the emulator) must never go through a proxy from the environment.
        self.trust_env = trust_env

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", (min(self.timeout_s, 5.0), self.timeout_s))
        if self.budget is None:
            return super().request(method, url, *args, **kwargs)
        self.budget.acquire()
        response = super().request(method, url, *args, **kwargs)
        self.budget.observe(response.status_code, response.headers)
        return response


def install_timeout(
    client: Any, timeout_s: float, trust_env: bool = True, budget: RequestBudget | None = None
) -> None:
    """Give an alpaca-py REST client a timeout session and turn its built-in retry loop off.

    The only code that writes alpaca-py internals (see the module docstring for why).
    """
    session = getattr(client, "_session", None)
    retry = getattr(client, "_retry", None)
    if not isinstance(session, requests.Session) or not isinstance(retry, int):
        raise RuntimeError(
            f"alpaca-py's {type(client).__name__} no longer has the _session/_retry attributes this "
            "daemon replaces to bound every request in time; pin alpaca-py to the version in "
            "pyproject.toml or update cappuccino_daemon/broker/http.py for the new version."
        )
    client._session = TimeoutSession(timeout_s, trust_env=trust_env, budget=budget)
    client._retry = 0  # our retries (reads only) live in ReadRetry


class _Wait:
    """Jittered exponential backoff, stretched to honour a Retry-After hint, capped at ``max_s``."""

    def __init__(self, base_s: float, max_s: float) -> None:
        self._jitter = wait_random_exponential(multiplier=base_s, max=max_s)
        self._max_s = max_s

    def __call__(self, state: RetryCallState) -> float:
        wait = float(self._jitter(state))
        exc = state.outcome.exception() if state.outcome is not None else None
        hint = exc.retry_after_s if isinstance(exc, RateLimitedError) else None
        if hint is not None and hint > 0:
            wait = max(wait, float(hint))
        return min(wait, self._max_s)


class ReadRetry:
    """Bounded retry policy for idempotent reads (429/5xx/timeouts surface as TransientBrokerError)."""

    def __init__(
        self,
        attempts: int = 4,
        base_s: float = 0.5,
        max_wait_s: float = 8.0,
        max_total_s: float = 30.0,
        sleep: Callable[[float], None] | None = None,
    ) -> None:
        self.attempts = attempts
        self.base_s = base_s
        self.max_wait_s = max_wait_s
        self.max_total_s = max_total_s
        self.sleep = sleep

    def call(self, name: str, fn: Callable[[], T]) -> T:
        kwargs: dict[str, Any] = {}
        if self.sleep is not None:
            kwargs["sleep"] = self.sleep
        retrying = Retrying(
            retry=retry_if_exception_type(TransientBrokerError),
            stop=stop_after_attempt(self.attempts) | stop_after_delay(self.max_total_s),
            wait=_Wait(self.base_s, self.max_wait_s),
            reraise=True,
            before_sleep=lambda state: log.warning(
                "broker_read_retry",
                call=name,
                attempt=state.attempt_number,
                error=str(state.outcome.exception()) if state.outcome else "",
            ),
            **kwargs,
        )
        return retrying(fn)
