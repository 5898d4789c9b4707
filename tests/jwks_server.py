"""A real JWKS endpoint on 127.0.0.1 for tests, and signing keys whose public halves it serves.

``JWKSServer`` listens on a free loopback port in a daemon thread. A test can
rotate its keys, make it answer 503 or HTML, hang or trickle its answer
(always bounded), stop it, and read how many requests it served::

    with JWKSServer() as server:
        key = rsa_key("k1")
        server.set_keys(key.jwk())
        token = key.sign({"iss": "...", "sub": "u", "exp": ...})
"""

from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

Mode = Literal["ok", "error", "html", "hang", "trickle", "slow"]

JWKS_PATH = "/.well-known/jwks.json"
#: Longest a hanging or trickling answer is held, so a broken client cannot stall the suite.
MAX_HOLD_SECONDS = 30.0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
        owner = self.server.owner
        owner.record_fetch()
        mode = owner.mode
        if self.path != JWKS_PATH:
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
    owner: JWKSServer


class JWKSServer:
    """A JWKS endpoint on a free loopback port; use it as a context manager."""

    def __init__(self, *keys: dict[str, Any]) -> None:
        self.mode: Mode = "ok"
        self.fetches = 0
        self.holding = 0
        self.released = threading.Event()
        self._keys: list[dict[str, Any]] = list(keys)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="jwks", daemon=True)

    @property
    def url(self) -> str:
        """The JWKS URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{JWKS_PATH}"

    def set_keys(self, *keys: dict[str, Any]) -> None:
        """Serve these JWKs from now on (a key rotation)."""
        with self._lock:
            self._keys = list(keys)

    def body(self) -> bytes:
        """The JWKS document currently served."""
        with self._lock:
            return json.dumps({"keys": self._keys}).encode()

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

    def start(self) -> JWKSServer:
        """Start serving."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release held requests, stop serving and close the port."""
        self.released.set()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> JWKSServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@dataclass
class SigningKey:
    """A private key with its ``kid`` and algorithm: signs tokens, and gives its public JWK."""

    kid: str
    alg: str
    private: Any

    def jwk(self, **extra: Any) -> dict[str, Any]:
        """The public half as a JWK with ``kid``, ``alg`` and ``use``."""
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid, "alg": self.alg, "use": "sig", **extra}

    def sign(self, claims: dict[str, Any], **headers: Any) -> str:
        """A JWT of ``claims`` signed with this key; ``headers`` are added to (or replace) the defaults.

        The claims are serialised as given (PyJWS, not PyJWT), so tests can sign malformed ones.
        """
        payload = json.dumps(claims).encode()
        return jwt.PyJWS().encode(payload, self.private, algorithm=self.alg, headers={"kid": self.kid, **headers})

    def sign_exact(self, header: dict[str, Any], claims: dict[str, Any]) -> str:
        """A JWT with exactly this header (nothing added or checked), signed with this key's algorithm."""
        signing_input = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
        signature = get_default_algorithms()[self.alg].sign(signing_input.encode(), self.private)
        return signing_input + "." + _b64(signature)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rsa_key(kid: str = "rsa-1", alg: str = "RS256") -> SigningKey:
    """A new 2048-bit RSA key."""
    return SigningKey(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))


def ec_key(kid: str = "ec-1") -> SigningKey:
    """A new P-256 key for ES256."""
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def ed25519_key(kid: str = "ed-1") -> SigningKey:
    """A new Ed25519 key for EdDSA."""
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())
