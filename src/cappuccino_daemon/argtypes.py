"""argparse ``type=`` helpers: a bad flag value is a usage error (exit 2) naming the flag, never a traceback.

Numbers must be finite: ``inf``/``nan``/``1e308`` parse as floats but turn into overflows and broken
invariants far from the flag that caused them.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

MAX_USD = (
    1e12  # a trillion dollars: beyond it float money arithmetic (fees, state scaling) stops meaning much
)


def port(text: str) -> int:
    """A TCP port, 0..65535 (0 lets the OS pick a free one)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port number; use 1-65535 (or 0 for any)"
        ) from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"{value} is not a port number; use 1-65535 (or 0 for any free port)"
        )
    return value


def finite_float(
    low: float, high: float = math.inf, *, low_open: bool = False, what: str = "a number"
) -> Callable[[str], float]:
    """A float in [low, high] (or (low, high] with ``low_open``), finite."""
    bounds = f"{'>' if low_open else '>='} {low:g}" + ("" if math.isinf(high) else f" and <= {high:g}")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}; give a number {bounds}") from None
        too_low = value <= low if low_open else value < low
        if not math.isfinite(value) or too_low or value > high:
            raise argparse.ArgumentTypeError(f"{text!r} is out of range; give {what} {bounds}")
        return value

    return parse


def at_least(low: int) -> Callable[[str], int]:
    """An integer >= ``low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (>= {low})") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is too small; give a whole number >= {low}")
        return value

    return parse


usd_amount = finite_float(0.0, MAX_USD, low_open=True, what="an amount in USD")


def setting(section: str, key: str) -> Callable[[str], object]:
    """A flag overriding ``config.<section>.<key>``, checked by that setting's own rules.

    ``section`` names the settings class (e.g. ``"WorkerSection"``); pydantic is imported only when a
    flag is actually given, so building the parser stays light.
    """

    def parse(text: str) -> object:
        from cappuccino_daemon import config

        return config.setting_type(getattr(config, section), key)(text)

    parse.__name__ = key
    return parse
