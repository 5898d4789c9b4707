"""A loopback stand-in for GitHub's secret scanning: its public keys, and alerts signed with them.

``GitHubKeysServer`` (the loopback key server of ``key_server.py``) serves
``{"public_keys": [...]}`` as ``api.github.com/meta/public_keys/secret_scanning``
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
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .key_server import KeyServer, Mode

__all__ = ["KEYS_PATH", "AlertKey", "GitHubKeysServer", "Mode"]

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


class GitHubKeysServer(KeyServer):
    """GitHub's secret-scanning public-keys endpoint on a free loopback port; a context manager."""

    path = KEYS_PATH
    field = "public_keys"

    def __init__(self, *keys: AlertKey) -> None:
        super().__init__([k.entry() for k in keys], name="github")

    def set_keys(self, *keys: AlertKey, entries: list[dict[str, Any]] | None = None) -> None:
        """Serve these keys from now on (and any raw ``entries`` after them)."""
        self.set_entries([k.entry() for k in keys] + list(entries or []))
