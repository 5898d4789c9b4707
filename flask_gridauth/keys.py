"""API key format: ``<prefix>_<live|test>_<48 hex>``, checksum and hashing.

The last 8 of the 48 hex digits are the CRC32 of the first 40, so a mistyped
or made-up key is refused before any storage look-up. Keys are stored only as
the hex SHA-256 of the whole key.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib
from typing import Literal

from .errors import ConfigurationError

Environment = Literal["live", "test"]
ENVIRONMENTS: tuple[Environment, ...] = ("live", "test")

#: Hex digits of randomness (160 bits) and of the CRC32 checksum.
RANDOM_HEX = 40
CHECKSUM_HEX = 8
#: Random hex digits kept in a key's displayed ``prefix``, to recognise it.
DISPLAY_HEX = 8

_PREFIX_RE = re.compile(r"[a-z][a-z0-9]{0,15}")


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if it can start an API key, else raise :class:`ConfigurationError`."""
    if not isinstance(prefix, str) or not _PREFIX_RE.fullmatch(prefix):
        raise ConfigurationError("GRIDAUTH_KEY_PREFIX must be 1-16 lowercase letters or digits, starting with a letter")
    return prefix


def _checksum(random_part: str) -> str:
    return f"{zlib.crc32(random_part.encode('ascii')):08x}"


def generate_key(prefix: str, environment: Environment = "live") -> str:
    """A new raw API key from ``secrets``, with its checksum."""
    random_part = secrets.token_hex(RANDOM_HEX // 2)
    return f"{prefix}_{environment}_{random_part}{_checksum(random_part)}"


def key_pattern(prefix: str) -> re.Pattern[str]:
    """The exact shape of a key with this prefix (lowercase hex only)."""
    return re.compile(rf"{re.escape(prefix)}_(live|test)_([0-9a-f]{{{RANDOM_HEX}}})([0-9a-f]{{{CHECKSUM_HEX}}})")


def check_key(token: str, pattern: re.Pattern[str]) -> bool:
    """Whether ``token`` has the exact shape and a correct checksum."""
    match = pattern.fullmatch(token)
    # Both sides derive from the caller's own input: nothing secret to time.
    return match is not None and _checksum(match.group(2)) == match.group(3)


def hash_key(raw_key: str) -> str:
    """The hex SHA-256 under which a key is stored and looked up."""
    return hashlib.sha256(raw_key.encode("ascii")).hexdigest()


def display_prefix(raw_key: str, prefix: str) -> str:
    """The first characters of a key, safe to show: ``grd_live_1a2b3c4d``."""
    return raw_key[: len(prefix) + len("_live_") + DISPLAY_HEX]
