"""A loopback stand-in for GitHub's secret scanning: its public keys, and alerts signed with them.

``GitHubKeysServer`` serves ``{"public_keys": [...]}`` on a free 127.0.0.1 port
in a daemon thread, as ``api.github.com/meta/public_keys/secret_scanning``
does; a test can rotate the keys, make the endpoint answer 503 or HTML, stop it,
and read how many fetches it served. ``AlertKey`` is one of "GitHub's" ECDSA
P-256 keys: it signs an alert body the way GitHub does::

    with GitHubKeysServer() as github:
        key = AlertKey.generate()
        github.set_keys(key)
        body, headers = key.alert([{"token": raw, "type": "gridauth_api_key", "url": "...", "source": "content"}])
        client.post("/api/v1/secret-scanning", data=body, headers=headers)
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

Mode = Literal["ok", "error", "html"]

KEYS_PATH = "/meta/public_keys/secret_scanning"


@dataclass
class AlertKey:
    """One of "GitHub's" signing keys: an identifier and an ECDSA P-256 private key."""

    key_identifier: str
    private: ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls) -> AlertKey:
        """A new P-256 key with a GitHub-like hex identifier."""
        return cls(secrets.token_hex(32), ec.generate_private_key(ec.SECP256R1()))

    def entry(self, *, is_current: bool = True) -> dict[str, Any]:
        """The key's entry in the public-keys document (PEM public key)."""
        pem = self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return {"key_identifier": self.key_identifier, "key": pem.decode(), "is_current": is_current}

    def sign(self, body: bytes) -> str:
        """Base64 of the DER ECDSA P-256 / SHA-256 signature of ``body``."""
        return base64.b64encode(self.private.sign(body, ec.ECDSA(hashes.SHA256()))).decode()

    def headers(self, body: bytes) -> dict[str, str]:
        """The headers GitHub sends with ``body``."""
        return {
            "Content-Type": "application/json",
            "Github-Public-Key-Identifier": self.key_identifier,
            "Github-Public-Key-Signature": self.sign(body),
        }

    def alert(self, matches: list[dict[str, Any]]) -> tuple[bytes, dict[str, str]]:
        """A signed alert: the JSON body and its headers."""
        body = json.dumps(matches).encode()
        return body, self.headers(body)

    def send(self, url: str, matches: list[dict[str, Any]], *, timeout: float = 30.0) -> http.client.HTTPResponse:
        """POST a signed alert to a running server over real HTTP, as GitHub does; the response, body read."""
        body, headers = self.alert(matches)
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=timeout)
        try:
            conn.request("POST", parts.path, body=body, headers=headers)
            response = conn.getresponse()
            response.body = response.read()  # type: ignore[attr-defined]
            return response
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        owner = self.server.owner
        owner.record_fetch()
        if self.path != KEYS_PATH:
            self._send(404, "application/json", b'{"message": "Not Found"}')
        elif owner.mode == "error":
            self._send(503, "text/plain", b"service unavailable")
        elif owner.mode == "html":
            self._send(200, "text/html", b"<!doctype html><html><body>Unicorn!</body></html>")
        else:
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
    owner: GitHubKeysServer


class GitHubKeysServer:
    """GitHub's secret-scanning public-keys endpoint on a free loopback port; a context manager."""

    def __init__(self, *keys: AlertKey) -> None:
        self.mode: Mode = "ok"
        self.fetches = 0
        self._entries: list[dict[str, Any]] = [k.entry() for k in keys]
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="github", daemon=True)

    @property
    def url(self) -> str:
        """The public-keys URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{KEYS_PATH}"

    def set_keys(self, *keys: AlertKey, entries: list[dict[str, Any]] | None = None) -> None:
        """Serve these keys from now on (and any raw ``entries`` after them)."""
        with self._lock:
            self._entries = [k.entry() for k in keys] + list(entries or [])

    def body(self) -> bytes:
        """The document currently served."""
        with self._lock:
            return json.dumps({"public_keys": self._entries}).encode()

    def record_fetch(self) -> None:
        """Count one request."""
        with self._lock:
            self.fetches += 1

    def start(self) -> GitHubKeysServer:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> GitHubKeysServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
