"""Run the emulator with uvicorn on a socket we bind ourselves (so port 0 works and the URL is known).

SIGTERM/SIGINT stop it cleanly (state committed, exit 0) when it runs in the main thread; in a
thread (``EmulatorThread``) signals are left alone and ``stop()`` ends it.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
from collections.abc import Callable, Generator
from types import FrameType
from typing import Any

import uvicorn

from cappuccino_daemon.atomic import atomic_write_text
from cappuccino_daemon.emulator.app import build_app
from cappuccino_daemon.emulator.exchange import Exchange
from cappuccino_daemon.emulator.options import EmulatorOptions
from cappuccino_daemon.errors import ConfigError
from cappuccino_daemon.logsetup import get_logger

log = get_logger(__name__)


class _Server(uvicorn.Server):
    """uvicorn.Server that reports readiness and exits 0 on SIGTERM instead of re-raising it."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._on_ready()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handle(sig: int, _frame: FrameType | None) -> None:
            log.info("emulator_signal", signal=signal.Signals(sig).name)
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

        previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(
        family, socket.SOCK_STREAM, socket.IPPROTO_TCP
    )  # proto set: asyncio then sets NODELAY
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"The emulator cannot listen on {host}:{port} ({exc.strerror}). Another process probably holds "
            f"the port: pick another with --port N, or --port 0 for any free port."
        ) from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class EmulatorServer:
    """One exchange served on one socket; ``serve()`` blocks until ``stop()`` or a signal."""

    def __init__(self, options: EmulatorOptions) -> None:
        self.options = options
        self.exchange = Exchange(options)
        self.app, self.ctx = build_app(self.exchange)
        self._sock = _bind(options.host, options.port)
        self.port: int = self._sock.getsockname()[1]
        host = f"[{options.host}]" if ":" in options.host else options.host
        self.base_url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            self.app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="on",
            http="h11",
            loop="asyncio",
            timeout_graceful_shutdown=2,
            timeout_keep_alive=30,
        )
        self.ready = threading.Event()
        self._server = _Server(config, self._on_ready)
        self.ctx.dropper = self._drop

    def _on_ready(self) -> None:
        if self.options.ready_file is not None:
            atomic_write_text(self.options.ready_file, self.base_url + "\n")
        ex = self.exchange
        log.info(
            "emulator_listening",
            url=self.base_url,
            market=ex.market.description,
            now=ex.now().isoformat(),
            speed=ex.clock.speed,
            state_file=str(self.options.state_file or ""),
            resumed=ex.resumed,
            faults=len(ex.faults.rules()),
        )
        self.ready.set()

    def _drop(self, client: Any) -> bool:
        """Abort (RST) the TCP connection of ``client`` = (host, port): a dropped connection."""
        if not client:
            return False
        for conn in list(self._server.server_state.connections):
            if getattr(conn, "client", None) == tuple(client):
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.abort()
                    return True
        return False

    def serve(self) -> None:
        try:
            self._server.run(sockets=[self._sock])
        finally:
            self.exchange.close()
            self._sock.close()
            log.info("emulator_stopped", url=self.base_url)

    def stop(self) -> None:
        self._server.should_exit = True
