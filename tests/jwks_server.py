"""A real JWKS endpoint on 127.0.0.1 for tests, and signing keys whose public halves it serves.

``JWKSServer`` is the loopback key server of ``key_server.py`` serving
``{"keys": [...]}`` at the well-known path. A test can rotate its keys, make it
answer 503 or HTML, hang or trickle its answer (always bounded), stop it, and
read how many requests it served::

    with JWKSServer() as server:
        key = rsa_key("k1")
        server.set_keys(key.jwk())
        token = key.sign({"iss": "...", "sub": "u", "exp": ...})
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm, get_default_algorithms

from .key_server import MAX_HOLD_SECONDS, KeyServer, Mode

__all__ = ["JWKS_PATH", "MAX_HOLD_SECONDS", "JWKSServer", "Mode", "SigningKey", "ec_key", "ed25519_key", "rsa_key"]

JWKS_PATH = "/.well-known/jwks.json"


class JWKSServer(KeyServer):
    """A JWKS endpoint on a free loopback port; use it as a context manager."""

    path = JWKS_PATH
    field = "keys"

    def __init__(self, *keys: dict[str, Any]) -> None:
        super().__init__(list(keys), name="jwks")

    def set_keys(self, *keys: dict[str, Any]) -> None:
        """Serve these JWKs from now on (a key rotation)."""
        self.set_entries(list(keys))


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
