"""An issuer's public keys (JWKS): fetched within a deadline, cached, refetched only when allowed.

The rules (DESIGN.md, "Security rules"):

- a fetch has a total deadline and a size cap; it never follows a redirect;
- a fetched set is trusted for ``ttl`` seconds, then refreshed; a refresh that
  fails (down, timeout, HTML, no usable key) keeps the last good keys;
- a ``kid`` the set does not hold triggers a refetch at most once per
  ``cooldown`` (the initial fetch and the scheduled refreshes do not count), so
  random ``kid`` values cannot hammer the provider;
- one fetch at a time per issuer: a thread that waited for another's fetch uses
  its result instead of fetching again, and a thread that finds a stale set
  being refreshed keeps using the stale set.
"""

from __future__ import annotations

import http.client
import json
import logging
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from jwt import PyJWK

from ..errors import Unauthorized, Unavailable

logger = logging.getLogger("flask_gridauth")

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
MAX_JWKS_BYTES = 256 * 1024
#: Most keys taken from one set.
MAX_KEYS = 64
#: Smallest RSA modulus accepted, in bits (NIST SP 800-131A).
MIN_RSA_BITS = 2048
#: Seconds between two fetch attempts after a failure (never more than the cooldown),
#: so an unreachable provider costs one timeout per interval, not one per request.
FAILURE_BACKOFF = 5.0


class JWKSError(Exception):
    """A JWKS could not be fetched or held no usable key; the message holds no secret."""


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


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise JWKSError("timed out")
    return left


def fetch_url(url: str, timeout: float) -> bytes:
    """The body of ``GET url`` (status 200 only), read within ``timeout`` seconds in total.

    The socket timeout is reset to the time left before every step, so a
    server that answers slowly, or trickles its answer, is cut off at the
    deadline. Redirects are refused; the body is capped at :data:`MAX_JWKS_BYTES`.
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.connect()
        sock = conn.sock  # kept: http.client drops its own reference once the response owns the socket
        sock.settimeout(_remaining(deadline))
        conn.request("GET", target, headers={"Accept": "application/json", "User-Agent": "flask-gridauth"})
        sock.settimeout(_remaining(deadline))
        response = conn.getresponse()
        if response.status != 200:
            raise JWKSError(f"HTTP status {response.status}")
        body = bytearray()
        while True:
            sock.settimeout(_remaining(deadline))
            chunk = response.read1(65536)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > MAX_JWKS_BYTES:
                raise JWKSError("the response is too large")
    except TimeoutError:
        raise JWKSError("timed out") from None
    except (OSError, http.client.HTTPException) as exc:
        raise JWKSError(f"connection failed ({type(exc).__name__})") from None
    finally:
        conn.close()


class JWKSCache:
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
        self.url = url
        self.issuer = issuer
        self.algorithms = algorithms
        self.timeout = timeout
        self.ttl = ttl
        self.cooldown = cooldown
        self._backoff = min(cooldown, FAILURE_BACKOFF)
        self._lock = threading.Lock()
        # One snapshot swapped as a whole, so readers never see new keys with an old expiry.
        self._snapshot: tuple[KeySet | None, float] = (None, float("-inf"))
        self._attempts = 0
        self._next_attempt = float("-inf")
        self._next_kid_refetch = float("-inf")

    def key(self, kid: str | None) -> VerificationKey:
        """The key named ``kid`` (or the only key when ``kid`` is ``None``).

        Raises :class:`~flask_gridauth.errors.Unauthorized` for a ``kid`` the
        set does not hold, and :class:`~flask_gridauth.errors.Unavailable`
        (503) while no key set could ever be fetched.
        """
        keys, fresh_until = self._snapshot
        if keys is not None and time.monotonic() < fresh_until:
            found = _select(keys, kid)
            if found is not None:
                return found
            if time.monotonic() < self._next_kid_refetch:
                raise Unauthorized()
        # Never fetched, stale, or an unknown kid with a refetch allowed. A stale
        # set is refreshed by one thread while the others keep using it.
        self._refresh(kid, wait=keys is None or time.monotonic() < fresh_until)
        keys, _ = self._snapshot
        if keys is None:
            raise Unavailable()
        found = _select(keys, kid)
        if found is None:
            raise Unauthorized()
        return found

    def _refresh(self, kid: str | None, *, wait: bool) -> None:
        seen = self._attempts
        # A waiting thread gives up a little after the fetch in progress must have ended.
        if not self._lock.acquire(blocking=wait, timeout=self.timeout + 0.5 if wait else -1):
            return
        try:
            if self._attempts != seen:
                return  # another thread fetched while this one waited: use its result
            now = time.monotonic()
            keys, fresh_until = self._snapshot
            if now < self._next_attempt:
                return  # backing off after a failed fetch
            if keys is not None and now < fresh_until:
                if _select(keys, kid) is not None or now < self._next_kid_refetch:
                    return
                self._next_kid_refetch = now + self.cooldown
            self._fetch()
        finally:
            self._lock.release()

    def _fetch(self) -> None:
        """Fetch and swap in a new set; on failure keep the old one and back off."""
        self._attempts += 1
        try:
            keys = parse_jwks(fetch_url(self.url, self.timeout), self.algorithms)
        except JWKSError as exc:
            self._next_attempt = time.monotonic() + self._backoff
            kept = "keeping the last good keys" if self._snapshot[0] is not None else "no keys yet"
            logger.warning("JWKS fetch failed for issuer %s: %s (%s)", self.issuer, exc, kept)
            return
        self._snapshot = (keys, time.monotonic() + self.ttl)
        logger.info("JWKS fetched for issuer %s: %d key(s)", self.issuer, len(keys))


def _select(keys: KeySet, kid: str | None) -> VerificationKey | None:
    if kid is None:
        # A token without kid is only accepted when the set leaves no choice.
        if len(keys) == 1:
            return next(iter(keys.values()))
        return None
    return keys.get(kid)
