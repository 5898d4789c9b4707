"""Principals of JWTs that already verified, kept for a few seconds.

PyJWT's ``decode_complete`` costs about three times the rest of a request on
this path (it re-parses the token, scans its alphabet and, for HMAC, tries the
secret as a PEM and JWK on every call). A client sends the same token for many
requests, so the outcome of one full verification is kept, keyed by the
token's SHA-256 (never the token itself), until the token's ``exp`` or for
``GRIDAUTH_JWT_CACHE_TTL`` seconds, whichever comes first. Only successes are
kept: a refused token is verified in full every time.

The entries live in a :class:`~flask_gridauth.bounded_cache.BoundedCache` the
app's state owns (``jwt_verified``); each holds its own deadline, which
:meth:`VerifiedTokens.get` checks.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from ..bounded_cache import BoundedCache
from ..principal import Principal

#: Entries kept at most; past it, the oldest go first (an expired one is dropped when it is next asked for).
MAX_ENTRIES = 10_000


class VerifiedTokens:
    """A bounded map from a token's SHA-256 to its principal and the time it stops being valid."""

    def __init__(
        self,
        ttl: float,
        *,
        entries: BoundedCache[bytes, tuple[Principal, float]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.entries: BoundedCache[bytes, tuple[Principal, float]] = (
            entries if entries is not None else BoundedCache("jwt_verified", MAX_ENTRIES)
        )

    @staticmethod
    def digest(token: str) -> bytes:
        """What an entry is keyed by: no token is kept in memory past its request."""
        return hashlib.sha256(token.encode("ascii")).digest()

    def get(self, digest: bytes) -> Principal | None:
        """The principal of a token verified before, while it is still valid."""
        entry = self.entries.get(digest)
        if entry is None:
            return None
        if entry[1] <= self.clock():
            self.entries.pop(digest)
            return None
        return entry[0]

    def put(self, digest: bytes, principal: Principal, exp: float) -> None:
        """Keep ``principal`` until ``exp`` (the token's own, leeway included) or for ``ttl`` seconds."""
        now = self.clock()
        until = min(exp, now + self.ttl)
        if until > now:
            self.entries.put(digest, (principal, until))
