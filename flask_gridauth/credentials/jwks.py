"""An issuer's public keys (JWKS): parsed here, fetched and cached by :mod:`flask_gridauth.keyfetch`.

The fetch and cache rules (DESIGN.md, "Security rules") live in
:class:`~flask_gridauth.keyfetch.KeyFetchCache`, shared with the secret-scanning
keys: a deadline and a size cap per fetch, no redirects, a TTL, a refetch on an
unknown ``kid`` at most once per cooldown, the last good keys kept when a
refresh fails, and one fetch at a time per issuer.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK

from ..keyfetch import FAILURE_BACKOFF, MAX_BODY_BYTES, KeyFetchCache, KeyFetchError, fetch_url

__all__ = [
    "ALGORITHM_FAMILIES",
    "FAILURE_BACKOFF",
    "MAX_JWKS_BYTES",
    "MAX_KEYS",
    "MIN_RSA_BITS",
    "JWKSCache",
    "JWKSError",
    "KeySet",
    "VerificationKey",
    "fetch_url",
    "key_family",
    "parse_jwk",
    "parse_jwks",
]

#: The key family each asymmetric algorithm needs; a key of another family never verifies it.
ALGORITHM_FAMILIES: dict[str, str] = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "PS256": "RSA",
    "PS384": "RSA",
    "PS512": "RSA",
    "ES256": "EC:secp256r1",
    "ES384": "EC:secp384r1",
    "ES512": "EC:secp521r1",
    "ES256K": "EC:secp256k1",
    "EdDSA": "OKP",
}

#: Largest JWKS body read; real ones are a few kilobytes.
MAX_JWKS_BYTES = MAX_BODY_BYTES
#: Most keys taken from one set.
MAX_KEYS = 64
#: Smallest RSA modulus accepted, in bits (NIST SP 800-131A).
MIN_RSA_BITS = 2048
#: A JWKS could not be fetched or held no usable key; the message holds no secret.
JWKSError = KeyFetchError


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """A public key from a JWKS, parsed once: its ``kid``, family, optional ``alg`` and key object."""

    kid: str | None
    family: str
    alg: str | None
    key: Any


KeySet = Mapping[str | None, VerificationKey]


def key_family(key: object) -> str | None:
    """The family of a public key (``RSA``, ``EC:<curve>``, ``OKP``), or ``None`` if it is never used."""
    if isinstance(key, RSAPublicKey):
        return "RSA" if key.key_size >= MIN_RSA_BITS else None
    if isinstance(key, EllipticCurvePublicKey):
        return "EC:" + key.curve.name
    if isinstance(key, Ed25519PublicKey | Ed448PublicKey):
        return "OKP"
    return None


def parse_jwk(jwk: object, algorithms: frozenset[str]) -> VerificationKey | None:
    """One verification key from a JWK, or ``None`` when it is unusable for these ``algorithms``.

    Symmetric (``oct``) keys and keys carrying private material are never
    used: a JWKS is public, and an HMAC key in it would let anyone sign.
    """
    if not isinstance(jwk, dict) or "d" in jwk or jwk.get("kty") not in ("RSA", "EC", "OKP"):
        return None
    if jwk.get("use", "sig") != "sig":
        return None
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return None
    alg = jwk.get("alg")
    kid = jwk.get("kid")
    # Types first: a list or object "alg" is unhashable, and must skip the key, not fail the set.
    if (alg is not None and not isinstance(alg, str)) or (kid is not None and not isinstance(kid, str)):
        return None
    if alg is not None and alg not in algorithms:
        return None
    try:
        key = PyJWK(jwk).key
    except Exception:  # a malformed key is skipped, never fatal to the whole set
        return None
    family = key_family(key)
    if family is None or not any(ALGORITHM_FAMILIES[a] == family for a in algorithms):
        return None
    return VerificationKey(kid=kid, family=family, alg=alg, key=key)


def parse_jwks(body: bytes, algorithms: frozenset[str]) -> dict[str | None, VerificationKey]:
    """The usable keys of a JWKS document by ``kid``; :class:`JWKSError` if it holds none."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        raise JWKSError("the response is not JSON") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JWKSError("the response has no 'keys' list")
    keys: dict[str | None, VerificationKey] = {}
    for entry in entries[:MAX_KEYS]:
        key = parse_jwk(entry, algorithms)
        if key is not None:
            keys.setdefault(key.kid, key)  # a repeated kid keeps its first key
    if not keys:
        raise JWKSError("the set holds no usable key")
    return keys


class JWKSCache(KeyFetchCache[VerificationKey]):
    """The keys of one issuer's JWKS URL, kept by ``kid``.

    Nothing is fetched until the first token of this issuer arrives, so an app
    starts while its identity provider is unreachable.
    """

    def __init__(
        self,
        url: str,
        *,
        issuer: str,
        algorithms: frozenset[str],
        timeout: float,
        ttl: float,
        cooldown: float,
    ) -> None:
        self.issuer = issuer
        self.algorithms = algorithms
        super().__init__(
            url,
            parse=lambda body: parse_jwks(body, algorithms),
            label="JWKS",
            source=f"issuer {issuer}",
            timeout=timeout,
            ttl=ttl,
            cooldown=cooldown,
        )
