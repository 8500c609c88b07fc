"""Per-asset trading rules read from a JSON file (``--assets FILE.json``).

The file maps pairs (``"BTC/USD"``) to ``min_order_size``, ``min_trade_increment`` and
``price_increment`` as decimal strings, as ``GET /v2/assets`` serves them; keys starting with ``_``
are comments. Pairs the file does not name keep the built-in rules. A bad file is a ConfigError.
"""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from cappuccino_daemon.emulator.symbols import AssetRule
from cappuccino_daemon.errors import ConfigError

FIELDS = ("min_order_size", "min_trade_increment", "price_increment")
_EXAMPLE = (
    '{"BTC/USD": {"min_order_size": "0.0001", "min_trade_increment": "0.0001", "price_increment": "1"}}'
)


def _fail(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"Emulator asset file {path} {problem}. It must be a JSON object mapping pairs to their rules, "
        f"e.g. {_EXAMPLE}, each a positive decimal string. Fix the file, or drop --assets to use the "
        "shipped defaults."
    )


def _rule(path: Path, symbol: str, entry: Any) -> AssetRule:
    if not isinstance(entry, dict):
        raise _fail(path, f'has "{symbol}" set to {entry!r} instead of an object')
    values: list[Decimal] = []
    for name in FIELDS:
        raw = entry.get(name)
        try:
            value = Decimal(str(raw)) if isinstance(raw, str | int | float) else None
        except InvalidOperation:
            value = None
        if value is None or not value.is_finite() or value <= 0:
            raise _fail(path, f'has "{symbol}".{name} = {raw!r}, not a positive decimal')
        values.append(value)
    return AssetRule(values[0], values[1], values[2])


def load_asset_rules(path: Path) -> dict[str, AssetRule]:
    """Bare base (``"BTC"``) → its rule, from ``path``."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise _fail(path, f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise _fail(path, "does not hold a JSON object")
    rules: dict[str, AssetRule] = {}
    for symbol, entry in data.items():
        if symbol.startswith("_"):
            continue
        base, slash, quote = symbol.partition("/")
        if not slash or quote != "USD" or not base.isalnum() or base != base.upper():
            raise _fail(path, f'names "{symbol}", not a USD pair such as "BTC/USD"')
        rules[base] = _rule(path, symbol, entry)
    return rules
