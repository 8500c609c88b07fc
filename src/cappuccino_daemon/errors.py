"""Errors grouped by what the caller must do, not by where they came from.

- ``ConfigError``: a human must fix a file or a setting; the process exits 78 (EX_CONFIG) so that
  neither systemd nor our supervisor restarts it in a loop.
- ``TransientBrokerError``: the broker or network hiccuped; retry inside the cycle (bounded).
- ``AmbiguousSubmitError``: an order submit whose outcome is unknown; resolve by client_order_id.
- ``InvariantViolation``: something that must never happen did (NaN in a state, journal and broker
  disagree beyond repair); crash and let the supervisor restart from a clean slate.
- ``StaleDataError``: data we cannot trust; skip this cycle, never trade on it.
"""

from __future__ import annotations

EX_CONFIG = 78
EX_SOFTWARE = 70
EX_TEMPFAIL = 75


class CappuccinoError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(CappuccinoError):
    """Unrecoverable configuration or model problem; the message is one paragraph with the fix."""

    exit_code = EX_CONFIG


class TransientBrokerError(CappuccinoError):
    """A broker call failed in a way that usually resolves itself (429, 5xx, timeout)."""


class AmbiguousSubmitError(CappuccinoError):
    """An order submit was sent but its outcome is unknown (timeout, lost response)."""


class BrokerRejectedError(CappuccinoError):
    """The broker refused a request for a reason retrying cannot fix (403, 422, ...)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class StaleDataError(CappuccinoError):
    """Market data is too old, incomplete or non-finite; the cycle must not trade on it."""


class InvariantViolation(CappuccinoError):
    """A broken invariant; the worker crashes and the supervisor restarts it."""
