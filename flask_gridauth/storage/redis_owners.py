"""Per-owner overrides of ``GRIDAUTH_RATELIMIT_OWNER`` on Redis: one hash, ``<p>:owner_limits``.

The owner is a field of the hash, never part of a key name, so every
operation is a single-key command: on a Redis Cluster the hash lives in the
one slot its name hashes to, whatever characters (braces included) an owner
holds, and the rate limiter reads every override in one ``HGETALL``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Storage


class RedisOwners(Storage):
    """The owner-limit methods of the Redis backends (an abstract base: driver errors wrapped)."""

    if TYPE_CHECKING:
        client: Any

        def key(self, *parts: str) -> str: ...

    def _owner_limits_key(self) -> str:
        """The hash holding every override (one key: one slot on a cluster)."""
        return self.key("owner_limits")

    def set_owner_limit(self, owner: str, limit: str | None) -> None:
        """``HSET`` or ``HDEL`` the owner's field."""
        if limit is None:
            self.client.hdel(self._owner_limits_key(), owner)
        else:
            self.client.hset(self._owner_limits_key(), owner, limit)

    def owner_limits(self) -> dict[str, str]:
        """One ``HGETALL``."""
        found = self.client.hgetall(self._owner_limits_key())
        return {bytes(k).decode("utf-8"): bytes(v).decode("utf-8") for k, v in found.items()}

    def get_owner_limit(self, owner: str) -> str | None:
        """One ``HGET``."""
        value = self.client.hget(self._owner_limits_key(), owner)
        return None if value is None else bytes(value).decode("utf-8")
