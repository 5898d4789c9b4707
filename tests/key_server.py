"""One loopback HTTP server that serves a JSON document of public keys, for the tests of every key fetch.

``KeyServer`` listens on a free 127.0.0.1 port in a daemon thread and answers
``GET <path>`` with ``{<field>: [entries]}``. A test can replace the entries (a
key rotation), make it answer 503 or HTML, hang or trickle its answer (always
bounded), slow it down, stop it, and read how many requests it served.
``jwks_server.JWKSServer`` (an issuer's JWKS) and ``github_server.GitHubKeysServer``
(GitHub's secret-scanning keys) are this server with their own path and field.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, Self

Mode = Literal["ok", "error", "html", "hang", "trickle", "slow"]

#: Longest a hanging or trickling answer is held, so a broken client cannot stall the suite.
MAX_HOLD_SECONDS = 30.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        owner = self.server.owner
        owner.record_fetch()
        mode = owner.mode
        if self.path != owner.path:
            self._send(404, "application/json", b'{"error": "not found"}')
        elif mode == "error":
            self._send(503, "text/plain", b"service unavailable")
        elif mode == "html":
            self._send(200, "text/html", b"<!doctype html><html><body>Sign in</body></html>")
        elif mode == "hang":
            owner.hold()
        elif mode == "trickle":
            body = owner.body()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            for byte in body:
                if owner.released.wait(0.1):
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
        else:
            if mode == "slow":
                time.sleep(0.2)
            self._send(200, "application/json", owner.body())

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's signature
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: KeyServer


class KeyServer:
    """``{field: entries}`` at ``path`` on a free loopback port; use it as a context manager."""

    #: Where the document is served, and the field that holds the entries (set by each subclass).
    path = "/keys"
    field = "keys"

    def __init__(self, entries: list[dict[str, Any]] | None = None, *, name: str = "keys") -> None:
        self.mode: Mode = "ok"
        self.fetches = 0
        self.holding = 0
        self.released = threading.Event()
        self._entries: list[dict[str, Any]] = list(entries or [])
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=name, daemon=True)

    @property
    def url(self) -> str:
        """The document's URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.path}"

    def set_entries(self, entries: list[dict[str, Any]]) -> None:
        """Serve these entries from now on (a key rotation)."""
        with self._lock:
            self._entries = list(entries)

    def body(self) -> bytes:
        """The document currently served."""
        with self._lock:
            return json.dumps({self.field: self._entries}).encode()

    def record_fetch(self) -> None:
        """Count one request."""
        with self._lock:
            self.fetches += 1

    def hold(self) -> None:
        """Hang the current request until released (at most :data:`MAX_HOLD_SECONDS`)."""
        with self._lock:
            self.holding += 1
        try:
            self.released.wait(MAX_HOLD_SECONDS)
        finally:
            with self._lock:
                self.holding -= 1

    def start(self) -> Self:
        """Start serving; returns the server itself."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and close the port."""
        self.released.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
