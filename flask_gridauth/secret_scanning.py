"""GitHub secret-scanning alerts: the public keys that sign them, and the signature check.

GitHub signs each alert it sends to a partner with ECDSA P-256 / SHA-256 over
the raw body: the signature (base64 of its DER form) comes in
``Github-Public-Key-Signature``, the signing key's identifier in
``Github-Public-Key-Identifier``. The public keys are served at a URL
(``GRIDAUTH_SECRET_SCANNING_KEYS_URL``) as::

    {"public_keys": [{"key_identifier": "...", "key": "-----BEGIN PUBLIC KEY-----...", "is_current": true}]}

They are fetched and cached by :class:`~flask_gridauth.keyfetch.KeyFetchCache`,
the same rules as an issuer's JWKS: a key identifier the cache does not hold
causes one refetch per cooldown, and a failed refresh keeps the last good keys.
Every listed key verifies, current or not: GitHub keeps signing with a key for
a while after it stops being current.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from . import config as c
from .errors import ConfigurationError, Unauthorized
from .keyfetch import KeyFetchCache, KeyFetchError, check_key_url, check_seconds
from .keys import CHECKSUM_HEX, RANDOM_HEX, validate_prefix

#: Header holding the base64 DER signature, and the one naming the key that made it.
SIGNATURE_HEADER = "Github-Public-Key-Signature"
KEY_ID_HEADER = "Github-Public-Key-Identifier"
#: Longest key identifier and base64 signature read (a DER P-256 signature is at most 72 bytes).
MAX_KEY_ID = 256
MAX_SIGNATURE = 256
#: Most public keys taken from one document, and the longest PEM read for one.
MAX_KEYS = 32
MAX_PEM = 4096
#: Largest alert body read, whatever ``MAX_CONTENT_LENGTH`` allows.
MAX_ALERT_BYTES = 1024 * 1024

Action = Literal["revoke", "notify"]
ACTIONS: tuple[Action, ...] = ("revoke", "notify")


def scanning_regex(prefix: str = "grd") -> str:
    """The regular expression to register with GitHub for keys of ``prefix``.

    ``\\b<prefix>_(?:live|test)_[0-9a-f]{48}\\b``: the exact key shape, lowercase
    hex only, between word boundaries so a longer token that merely contains a
    key-like run is not reported. It cannot match a JWT, a bootstrap token or a
    signing-key fingerprint (see the leaked-keys guide).
    """
    return rf"\b{re.escape(validate_prefix(prefix))}_(?:live|test)_[0-9a-f]{{{RANDOM_HEX + CHECKSUM_HEX}}}\b"


def parse_public_keys(body: bytes) -> dict[str | None, ec.EllipticCurvePublicKey]:
    """The usable P-256 keys of GitHub's key document by identifier; :class:`KeyFetchError` if none.

    An entry that is not an object, lacks a string identifier, or holds a key
    that is not a P-256 public key in PEM is skipped, never fatal to the set.
    """
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise KeyFetchError("the response is not JSON") from None
    entries = document.get("public_keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeyFetchError("the response has no 'public_keys' list")
    keys: dict[str | None, ec.EllipticCurvePublicKey] = {}
    for entry in entries[:MAX_KEYS]:
        parsed = _parse_entry(entry)
        if parsed is not None:
            keys.setdefault(parsed[0], parsed[1])  # a repeated identifier keeps its first key
    if not keys:
        raise KeyFetchError("the document holds no usable P-256 key")
    return keys


def _parse_entry(entry: object) -> tuple[str, ec.EllipticCurvePublicKey] | None:
    if not isinstance(entry, dict):
        return None
    kid, pem = entry.get("key_identifier"), entry.get("key")
    if not isinstance(kid, str) or not 1 <= len(kid) <= MAX_KEY_ID or not kid.isascii():
        return None
    if not isinstance(pem, str) or len(pem) > MAX_PEM or not pem.isascii():
        return None
    try:
        key = load_pem_public_key(pem.encode("ascii"))
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        return None
    return kid, key


def _decode_signature(value: str) -> bytes | None:
    if not value or len(value) > MAX_SIGNATURE or not value.isascii():
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class SecretScanning:
    """One app's secret-scanning settings and its cache of GitHub's public keys."""

    url: str
    action: Action
    max_tokens: int
    keys: KeyFetchCache[ec.EllipticCurvePublicKey]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SecretScanning | None:
        """Built from ``GRIDAUTH_SECRET_SCANNING_*``; ``None`` when no keys URL is set (the route is off)."""
        # Read with the defaults as fallback: a blueprint may be registered before ``init_app`` ran.
        config = {**c.DEFAULTS, **config}
        url = config[c.SCANNING_KEYS_URL]
        if url is None:
            return None
        url = check_key_url(url, c.SCANNING_KEYS_URL)
        action = config[c.SCANNING_ACTION]
        if action not in ACTIONS:
            raise ConfigurationError(f"{c.SCANNING_ACTION} must be 'revoke' or 'notify'")
        max_tokens = config[c.SCANNING_MAX_TOKENS]
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 100_000:
            raise ConfigurationError(f"{c.SCANNING_MAX_TOKENS} must be a whole number from 1 to 100000")
        keys = KeyFetchCache(
            url,
            parse=parse_public_keys,
            label="Secret-scanning keys",
            source="GitHub",
            timeout=check_seconds(config[c.SCANNING_TIMEOUT], c.SCANNING_TIMEOUT, allow_zero=False),
            ttl=check_seconds(config[c.SCANNING_CACHE_TTL], c.SCANNING_CACHE_TTL, allow_zero=False),
            cooldown=check_seconds(config[c.SCANNING_REFETCH_COOLDOWN], c.SCANNING_REFETCH_COOLDOWN, allow_zero=True),
        )
        return cls(url=url, action=action, max_tokens=max_tokens, keys=keys)

    def verify(self, body: bytes, signature: str | None, key_id: str | None) -> None:
        """Return if ``signature`` is GitHub's over ``body`` by the key ``key_id``, else raise.

        :class:`~flask_gridauth.errors.Unauthorized` for a missing, malformed or
        wrong signature or an unknown key; :class:`~flask_gridauth.errors.Unavailable`
        while GitHub's keys could never be fetched.
        """
        if not key_id or len(key_id) > MAX_KEY_ID or not key_id.isascii():
            raise Unauthorized()
        der = _decode_signature(signature or "")
        if der is None:
            raise Unauthorized()
        key = self.keys.key(key_id)
        try:
            key.verify(der, body, ec.ECDSA(hashes.SHA256()))
        except (InvalidSignature, ValueError):
            raise Unauthorized() from None
