"""The PostgreSQL change feed: ``NOTIFY`` on a key change, and one ``LISTEN`` thread per process for the key cache."""

from __future__ import annotations

import os
import threading
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .base import Storage
from .cache import start_listener

if TYPE_CHECKING:
    import psycopg


class PostgresChanges(Storage):
    """The key-cache methods of :class:`~flask_gridauth.storage.postgres.PostgresStorage` (an abstract base)."""

    if TYPE_CHECKING:
        conninfo: str
        #: The NOTIFY channel of key changes (one per schema).
        channel: str
        _psycopg: Any
        _listening: int
        _listener: threading.Thread | None
        _pool_lock: threading.Lock

        def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    def enable_cache(self, ttl: float) -> bool:
        """Cache found keys, dropped when another process ``NOTIFY``s a change (one listener per process)."""
        from .cache import KeyCache

        self._key_cache = KeyCache(ttl)  # off until the listener is up
        return True

    def _push_change(self) -> None:
        """``NOTIFY`` :data:`~flask_gridauth.storage.cache.EVERY_KEY` on the change channel."""
        from .cache import EVERY_KEY

        with self._conn() as conn:
            conn.execute("SELECT pg_notify(%s, %s)", (self.channel, EVERY_KEY))

    def _cache_check(self) -> None:
        if self._listening != os.getpid():
            start_listener(self, self._pool_lock, "gridauth-pg-listen")

    def _listen(self) -> None:
        """``LISTEN`` on a connection of its own; while it is down the cache is off (empty)."""
        cache, pid = self._key_cache, os.getpid()
        while cache is not None and self._listening == pid:
            try:
                with self._psycopg.connect(self.conninfo, autocommit=True) as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    cache.set_live(True, feed=conn.fileno())
                    while self._listening == pid:
                        for note in conn.notifies(timeout=0.5):
                            cache.evict(note.payload)
            except self._psycopg.Error as exc:
                cache.feed_failed("PostgreSQL", exc)
            cache.set_live(False)
            if self._listening == pid:
                time.sleep(0.2)
