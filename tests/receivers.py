"""Webhook receivers for the tests: real HTTP servers on loopback, each in a thread of its own,
that record every request and answer as told (fail the first N, redirect, always accept)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    failures: list[int] = field(default_factory=list)
    """Statuses answered to the first requests, in order; every later request gets 204."""
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def accepted(self) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if 200 <= r.status < 300]

    def answer(self, headers: dict[str, str], body: bytes) -> int:
        with self.lock:
            status = self.failures[len(self.requests)] if len(self.requests) < len(self.failures) else 204
            self.requests.append(Received(headers, body, status))
            return status


@contextlib.contextmanager
def receiver(failures: list[int] | None = None) -> Iterator[Receiver]:
    """A receiver at ``http://127.0.0.1:<port>/hook``."""
    state: Receiver

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status = state.answer({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("location", f"{state.url}/elsewhere")
            # A long answer: only its first KiB is kept.
            payload = b"" if status == 204 else b"x" * 5000
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state = Receiver(url=f"http://127.0.0.1:{server.server_address[1]}/hook", failures=list(failures or []))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def unused_url() -> str:
    """A loopback URL where nothing listens (every delivery is refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
