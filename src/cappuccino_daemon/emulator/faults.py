"""Injected faults per route, off by default, switchable at run time (flags and ``/admin/faults``).

A rule is ``ROUTE:KIND:RATE`` (optionally ``:TIMES``): ROUTE is a route name or glob (``orders_submit``,
``orders_*``, ``data``, ``trading``, ``*``); KIND is one of

- ``429`` ``500`` ``502`` ``503`` ``504``: Alpaca's JSON error body with that status;
- ``500text``: a non-JSON ``Internal Server Error`` body;
- ``latency=S``: answer normally after S seconds;
- ``hang=S``: say nothing for S seconds (default 3600), then answer normally;
- ``drop``: close the connection without answering, before doing anything;
- ``ambiguous``: carry out the request (e.g. accept the order), then drop the connection.

RATE is a probability in [0, 1]; TIMES caps how often the rule fires. Draws come from a seeded RNG,
so a test with a fixed seed sees the same faults every run.
"""

from __future__ import annotations

import fnmatch
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

ERROR_KINDS = frozenset({"429", "500", "502", "503", "504", "500text"})
TIMED_KINDS = frozenset({"latency", "hang"})
OTHER_KINDS = frozenset({"drop", "ambiguous"})
ALL_KINDS = ERROR_KINDS | TIMED_KINDS | OTHER_KINDS

DATA_ROUTES = frozenset(
    {
        "bars",
        "quotes",
        "trades",
        "latest_bars",
        "latest_quotes",
        "latest_trades",
        "snapshots",
        "latest_orderbooks",
    }
)

ERROR_BODIES: dict[str, dict[str, Any]] = {
    "429": {"code": 42910000, "message": "rate limit exceeded"},
    "500": {"code": 50010000, "message": "internal server error occurred"},
    "502": {"code": 50210000, "message": "bad gateway"},
    "503": {"code": 50310000, "message": "service unavailable"},
    "504": {"code": 50410000, "message": "gateway timeout"},
}


@dataclass
class FaultRule:
    route: str
    kind: str
    rate: float = 1.0
    seconds: float | None = None
    times: int | None = None
    fired: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ALL_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {sorted(ALL_KINDS)}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"fault rate must be within [0, 1], got {self.rate}")
        if self.kind == "latency" and self.seconds is None:
            raise ValueError("latency faults need seconds, e.g. orders_submit:latency=2.5:1")
        if self.kind == "hang" and self.seconds is None:
            self.seconds = 3600.0

    def matches(self, route: str) -> bool:
        if self.route == route or fnmatch.fnmatchcase(route, self.route):
            return True
        if self.route == "data":
            return route in DATA_ROUTES
        if self.route == "trading":
            return route not in DATA_ROUTES
        return False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def parse_rule(spec: str | dict[str, Any]) -> FaultRule:
    """``"orders_submit:ambiguous:1:1"`` or ``{"route":..., "kind":..., "rate":..., ...}`` → rule."""
    if isinstance(spec, dict):
        return FaultRule(
            route=str(spec["route"]),
            kind=str(spec["kind"]),
            rate=float(spec.get("rate", 1.0)),
            seconds=None if spec.get("seconds") is None else float(spec["seconds"]),
            times=None if spec.get("times") is None else int(spec["times"]),
        )
    parts = spec.split(":")
    if len(parts) not in (2, 3, 4) or not parts[0]:
        raise ValueError(f"fault {spec!r} is not ROUTE:KIND[:RATE[:TIMES]], e.g. orders_submit:503:0.5")
    kind, _, seconds = parts[1].partition("=")
    return FaultRule(
        route=parts[0],
        kind=kind,
        rate=float(parts[2]) if len(parts) > 2 else 1.0,
        seconds=float(seconds) if seconds else None,
        times=int(parts[3]) if len(parts) > 3 else None,
    )


class Faults:
    """The active rules; ``pick(route)`` draws at most one fault for a request."""

    def __init__(self, rules: list[FaultRule] | None = None, seed: int = 0) -> None:
        self._rules = list(rules or [])
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def set(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = list(rules)

    def add(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        self.set([])

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def pick(self, route: str) -> FaultRule | None:
        with self._lock:
            for rule in self._rules:
                if not rule.matches(route) or (rule.times is not None and rule.fired >= rule.times):
                    continue
                if rule.rate >= 1.0 or self._rng.random() < rule.rate:
                    rule.fired += 1
                    return rule
            return None
