"""Request latency of the local emulator on loopback (p50/p99 per endpoint); prints figures, asserts nothing.

.venv/bin/python bench/emulator_latency.py [--requests 300] [--profile strict]

``--profile strict`` measures partial fills, position lag and asset steps, but without the request
budget (it would answer 429 after 200 requests a minute, which is not latency).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import requests

from cappuccino_daemon.emulator.testing import EmulatorThread


def _measure(call: Callable[[], requests.Response], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        began = time.perf_counter()
        response = call()
        samples.append((time.perf_counter() - began) * 1000.0)
        if response.status_code >= 400:
            raise SystemExit(f"unexpected {response.status_code}: {response.text}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=300, help="requests per endpoint (max 5000)")
    parser.add_argument("--profile", choices=("lenient", "strict"), default="lenient")
    args = parser.parse_args()
    n = min(args.requests, 5000)
    with EmulatorThread(synthetic_seed=1, page_size=1000, profile=args.profile, rate_limit=0) as emu:
        session = requests.Session()
        session.headers.update({"APCA-API-KEY-ID": emu.key_id, "APCA-API-SECRET-KEY": emu.secret_key})
        base = emu.base_url
        order = {"symbol": "BTC/USD", "qty": 0.001, "side": "buy", "type": "market", "time_in_force": "gtc"}
        bars_7x = {
            "symbols": ",".join(f"{b}/USD" for b in ("AAVE", "AVAX", "BTC", "ETH", "LINK", "LTC", "UNI")),
            "timeframe": "1Hour",
            "start": "2023-12-20T00:00:00Z",
            "limit": 1000,
        }
        endpoints: dict[str, Callable[[], requests.Response]] = {
            "GET /v2/account": lambda: session.get(f"{base}/v2/account"),
            "GET /v2/positions": lambda: session.get(f"{base}/v2/positions"),
            "GET /v2/clock": lambda: session.get(f"{base}/v2/clock"),
            "POST /v2/orders": lambda: session.post(f"{base}/v2/orders", json=order),
            "GET /v2/orders?status=all": lambda: session.get(f"{base}/v2/orders", params={"status": "all"}),
            "GET latest/bars (7 symbols)": lambda: session.get(
                f"{base}/v1beta3/crypto/us/latest/bars", params={"symbols": bars_7x["symbols"]}
            ),
            "GET bars (7 symbols, 1000 pts)": lambda: session.get(
                f"{base}/v1beta3/crypto/us/bars", params=bars_7x
            ),
            "GET bars 5Min (7 symbols, 1000 pts)": lambda: session.get(
                f"{base}/v1beta3/crypto/us/bars", params={**bars_7x, "timeframe": "5Min"}
            ),
            "GET /v2/account/activities": lambda: session.get(f"{base}/v2/account/activities"),
        }
        print(f"emulator latency on loopback, {n} requests per endpoint (keep-alive session)")
        print(f"{'endpoint':34s} {'p50 ms':>8s} {'p99 ms':>8s} {'max ms':>8s}")
        for name, call in endpoints.items():
            samples = sorted(_measure(call, n))
            p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
            print(f"{name:34s} {statistics.median(samples):8.2f} {p99:8.2f} {samples[-1]:8.2f}")


if __name__ == "__main__":
    main()
