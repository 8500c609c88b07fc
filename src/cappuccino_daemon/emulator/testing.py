"""``EmulatorThread``: a real emulator on a random loopback port, inside the test process.

    with EmulatorThread(synthetic_seed=1, start=datetime(2024, 1, 1, tzinfo=UTC)) as emu:
        client = TradingClient(emu.key_id, emu.secret_key, paper=True, url_override=emu.base_url)
        emu.advance(3600)  # one more bar closes

Speed defaults to 0: simulated time only moves with ``advance``, so tests are deterministic.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from cappuccino_daemon.emulator.faults import FaultRule, parse_rule
from cappuccino_daemon.emulator.options import EmulatorOptions
from cappuccino_daemon.emulator.server import EmulatorServer

DEFAULT_TEST_START = datetime(2024, 1, 1, tzinfo=UTC)


class EmulatorThread:
    def __init__(
        self,
        bars_dir: Path | None = None,
        synthetic_seed: int = 1,
        start: datetime | None = DEFAULT_TEST_START,
        speed: float = 0.0,
        state_file: Path | None = None,
        profile: str = "lenient",
        **options: Any,
    ) -> None:
        """``options`` are ``EmulatorOptions`` fields (page_size, fill_delay_s, slippage_bps,
        require_keys=(key, secret), faults=["orders_submit:503:1"], rate_clock=fake_wall, ...);
        ``profile="strict"`` starts from ``EmulatorOptions.strict()`` (fields still override it)."""
        faults = [f if isinstance(f, FaultRule) else parse_rule(f) for f in options.pop("faults", [])]
        self.options = EmulatorOptions.for_profile(
            profile,
            bars_dir=Path(bars_dir) if bars_dir is not None else None,
            synthetic_seed=synthetic_seed,
            start=start,
            speed=speed,
            state_file=Path(state_file) if state_file is not None else None,
            faults=faults,
            **options,
        )
        keys = self.options.require_keys
        self.key_id, self.secret_key = keys if keys else ("PKTESTEMULATOR0000001", "emulator-test-secret")
        self._server: EmulatorServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def server(self) -> EmulatorServer:
        if self._server is None:
            raise RuntimeError("EmulatorThread is not running; use it as a context manager")
        return self._server

    @property
    def base_url(self) -> str:
        return self.server.base_url

    @property
    def exchange(self) -> Any:
        return self.server.exchange

    def start(self) -> EmulatorThread:
        self._server = EmulatorServer(self.options)

        def run() -> None:
            try:
                self.server.serve()
            except BaseException as exc:  # surfaced by start()/stop()
                self._error = exc
                self.server.ready.set()

        self._thread = threading.Thread(target=run, name="emulator", daemon=True)
        self._thread.start()
        if not self.server.ready.wait(30) or self._error is not None:
            raise RuntimeError(f"emulator did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.stop()
            self._thread.join(15)
            self._thread = None

    def __enter__(self) -> EmulatorThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def now(self) -> datetime:
        return self.server.exchange.now()

    def advance(self, seconds: float) -> datetime:
        """Move simulated time forward; due orders fill and newly closed bars become visible."""
        return self.server.exchange.advance(seconds)

    def set_time(self, when: datetime) -> datetime:
        return self.server.exchange.set_time(when)

    def set_faults(self, *specs: str | dict[str, Any] | FaultRule) -> None:
        """Replace the active faults (none = clear): ``emu.set_faults("orders_submit:ambiguous:1:1")``."""
        rules = [s if isinstance(s, FaultRule) else parse_rule(s) for s in specs]
        self.server.exchange.faults.set(rules)
