"""``POST /admin/shock``: prices scale from the forming bar on, closed bars stay as served."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta

import pytest

from cappuccino_daemon.broker.alpaca import AlpacaBroker, AlpacaEndpoints
from cappuccino_daemon.emulator.testing import EmulatorThread

START = datetime(2024, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _bars(emu: EmulatorThread) -> dict[str, list[float]]:
    broker = AlpacaBroker(emu.key_id, emu.secret_key, AlpacaEndpoints(emu.base_url, emu.base_url))
    frames = broker.get_bars(["BTC", "ETH"], HOUR, START, emu.now())
    return {s: [float(x) for x in f["close"]] for s, f in frames.items()}


def test_a_shock_scales_later_bars_of_its_coin_only_and_never_rewrites_history() -> None:
    with (
        EmulatorThread(synthetic_seed=3, start=START) as plain,
        EmulatorThread(synthetic_seed=3, start=START) as hit,
    ):
        for emu in (plain, hit):
            emu.advance(3 * 3600 + 1800)  # three bars closed, the fourth forming
        before = _bars(hit)
        request = urllib.request.Request(
            f"{hit.base_url}/admin/shock",
            data=json.dumps({"symbol": "BTC/USD", "factor": 0.5}).encode(),
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            body = json.loads(resp.read())
        assert body == {"symbol": "BTC/USD", "factor": 0.5, "from": (START + 3 * HOUR).isoformat()}
        assert _bars(hit) == before  # the closed bars are what was served
        for emu in (plain, hit):
            emu.advance(2 * 3600)
        shocked, unshocked = _bars(hit), _bars(plain)
        assert shocked["BTC"][:3] == unshocked["BTC"][:3]
        assert shocked["BTC"][3:] == pytest.approx([0.5 * c for c in unshocked["BTC"][3:]], rel=1e-12)
        assert len(shocked["BTC"]) == 5 and shocked["ETH"] == unshocked["ETH"]
