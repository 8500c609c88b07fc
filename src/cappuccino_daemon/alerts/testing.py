"""A local HTTP receiver for apprise's ``json://`` URLs (tests, and trying a setup by hand): what arrived,
and switches to make it hang or fail."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, status: int = 200) -> None:
        self.status = status
        self.messages: list[dict[str, Any]] = []
        self.arrived = threading.Event()
        self.release = threading.Event()  # a hanging receiver answers only once this is set
        self.hang = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.messages.append(json.loads(body or b"{}"))
                receiver.arrived.set()
                if receiver.hang:
                    receiver.release.wait(30)
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/{path}"

    def wait_for(self, n: int, timeout_s: float = 20.0) -> list[dict[str, Any]]:
        """Block until ``n`` messages arrived (a barrier, not a sleep)."""
        done = threading.Event()

        def poll() -> None:
            while len(self.messages) < n and not done.is_set():
                self.arrived.wait(0.05)
                self.arrived.clear()
            done.set()

        poll_thread = threading.Thread(target=poll, daemon=True)
        poll_thread.start()
        poll_thread.join(timeout_s)
        done.set()
        return list(self.messages)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
