"""Dashboard sessions and the replay cache on Redis: single-key commands, so a cluster can place them apart.

Key layout: see :mod:`flask_gridauth.storage.redis`; :class:`RedisSessions` is a base of
:class:`~flask_gridauth.storage.redis.RedisStorage`.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import Storage


class RedisSessions(Storage):
    """The session and replay-cache methods of the Redis backends (an abstract base: driver errors wrapped)."""

    if TYPE_CHECKING:
        client: Any

        def key(self, *parts: str) -> str: ...

    def add_session(self, session_id: str, subject: str, expires_at: datetime) -> None:
        """``SET`` the session (expiring at ``expires_at``) and add it to its subject's set.

        Single-key commands only, so a cluster can place the two keys apart.
        """
        at = max(1, int(expires_at.timestamp() * 1000))
        index = self.key("sessions", subject)
        self.client.set(self.key("session", session_id), subject.encode("utf-8"), pxat=at)
        self.client.sadd(index, session_id)
        # The set lives as long as its newest session; ended ids in it are harmless.
        left = int(self.client.pttl(index))
        if left < 0 or left < at - int(time.time() * 1000):
            self.client.pexpireat(index, at)

    def session_subject(self, session_id: str) -> str | None:
        """One ``GET``: Redis drops an expired session itself."""
        value = self.client.get(self.key("session", session_id))
        return None if value is None else bytes(value).decode("utf-8")

    def end_session(self, session_id: str) -> None:
        """``DEL`` the session."""
        self.client.delete(self.key("session", session_id))

    def end_sessions(self, subject: str) -> int:
        """``DEL`` every session in the subject's set, then the set."""
        index = self.key("sessions", subject)
        ended = 0
        for member in self.client.smembers(index):
            sid = bytes(member).decode("utf-8")
            ended += int(self.client.delete(self.key("session", sid)))
        self.client.delete(index)
        return ended

    def claim_once(self, token: str, ttl: float) -> bool:
        """``SET NX PX``: exactly one process wins a given token."""
        return bool(self.client.set(self.key("seen", token), b"1", nx=True, px=max(1, int(ttl * 1000))))
