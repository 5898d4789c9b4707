"""The per-process cache of found keys (``GRIDAUTH_CACHE_TTL``), emptied by pushed invalidation.

A backend that can learn of changes made elsewhere turns it on in
:meth:`~flask_gridauth.storage.Storage.enable_cache`: SQLite checks
``PRAGMA data_version`` on every look-up (exact, no round trip), PostgreSQL
listens for ``NOTIFY`` on one connection per process, Redis subscribes to a
pub/sub channel. A change a process makes itself empties its own cache at
once. While the push channel is down the cache is off: every look-up goes to
storage, as without a cache, until the channel is back. An entry is never
used longer than ``ttl`` seconds.

A change reaches a process in two steps: its bytes arrive on the push
connection, then the listener thread reads them and evicts. On a busy host the
second step waits for a CPU and for the GIL (up to the interpreter's switch
interval, 5 ms, behind a request that holds it, and longer when that request's
thread is preempted). So a listener names its connection's file descriptor
(the ``feed``), and a look-up that would be answered from the cache first polls
it without blocking: while bytes are waiting there, nothing is answered from
the cache. A change then counts from the moment it reaches the host, whoever
is scheduled; the poll costs one system call per hit (about 0.7 µs).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Protocol

from ..records import KeyRecord

logger = logging.getLogger("flask_gridauth")

#: Most entries kept (then the cache starts over).
MAX_ENTRIES = 10_000
#: What a push names when the change's key is not known: every process drops every cached key.
EVERY_KEY = "*"


_POLL = getattr(select, "poll", None)


def unread(feed: int) -> bool:
    """Whether the connection ``feed`` (a file descriptor) holds bytes not read yet, or cannot be polled.

    A closed descriptor (or a hung-up connection) counts as unread: the cache is not trusted then.
    A fresh poll object each time: one shared by threads would refuse concurrent calls.
    """
    try:
        if _POLL is None:  # pragma: no cover - Windows has no poll(); select() takes sockets there
            return bool(select.select([feed], [], [], 0)[0])
        poller = _POLL()
        poller.register(feed, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


class KeyCache:
    """Found records by lookup, each for at most ``ttl`` seconds, while the push channel is ``live``."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic, live: bool = False) -> None:
        self.ttl = ttl
        self.clock = clock
        self._entries: dict[str, tuple[float, KeyRecord]] = {}
        self._live = live
        #: The push connection's file descriptor, polled before each hit (``None``: not polled).
        self._feed: int | None = None
        self._lock = threading.Lock()
        #: Look-ups answered from the cache, and evictions pushed, since start (for tests and metrics).
        self.hits = 0
        self.pushed = 0
        #: Bumped by every clear and eviction: a look-up that started before one must not fill the cache.
        self.generation = 0
        #: The push channel's outage was logged (its listener retries every 0.2 s: one line per outage).
        self._outage_logged = False

    @property
    def live(self) -> bool:
        """Whether the push channel is up (the cache is used only then)."""
        return self._live

    def set_live(self, live: bool, *, feed: int | None = None) -> None:
        """The push channel went up or down; either way the cache starts empty (down: and stays off).

        ``feed``: the file descriptor the changes arrive on, while up (see the module's doc).
        """
        with self._lock:
            self._live = live
            self._feed = feed if live else None
            self.generation += 1
            self._entries.clear()
            back, self._outage_logged = live and self._outage_logged, self._outage_logged and not live
        if back:
            logger.warning("key cache on again: its change feed is back")

    def feed_failed(self, source: str, exc: BaseException) -> None:
        """Turn the cache off after the push channel failed; the first failure of an outage is logged.

        Only the error's type is logged: a driver's message can hold a connection string.
        """
        self.set_live(False)
        with self._lock:
            first, self._outage_logged = not self._outage_logged, True
        if first:
            logger.warning("key cache off: the %s change feed failed (%s); reconnecting", source, type(exc).__name__)

    def get(self, lookup: str) -> KeyRecord | None:
        """The cached record, or ``None`` (a miss, an expired entry, or the channel down)."""
        entry = self._entries.get(lookup)
        if entry is None or not self._live:
            return None
        if entry[0] <= self.clock():
            self._entries.pop(lookup, None)
            return None
        feed = self._feed
        if feed is not None and unread(feed):
            return None  # a change has arrived that the listener has not read yet
        self.hits += 1
        return entry[1]

    def put(self, lookup: str, record: KeyRecord, generation: int) -> None:
        """Keep ``record``, read when the cache was at ``generation``, for ``ttl`` seconds.

        Nothing is kept when the channel is down, or when a change arrived
        since the read began (the record may be older than the change).
        """
        with self._lock:
            if not self._live or generation != self.generation:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[lookup] = (self.clock() + self.ttl, record)

    def used(self, lookup: str, record: KeyRecord) -> None:
        """Show a recorded use in the cached entry: ``record`` is the key as read, with its new ``last_used_at``.

        The entry (keeping its expiry) is replaced only while it holds the same
        key in every other field. A request may record its use after a revocation
        emptied the entry and another request cached the revoked key: its older
        record must not replace that (nor refill an emptied entry). Under the
        lock, so an eviction cannot land between the read and the write.
        """
        with self._lock:
            entry = self._entries.get(lookup)
            if entry is not None and dataclasses.replace(entry[1], last_used_at=record.last_used_at) == record:
                self._entries[lookup] = (entry[0], record)

    def evict(self, lookup: str) -> None:
        """Forget one key (a change pushed by another process); :data:`EVERY_KEY` forgets them all."""
        with self._lock:
            self.pushed += 1
            self.generation += 1
            if lookup == EVERY_KEY:
                self._entries.clear()
            else:
                self._entries.pop(lookup, None)

    def clear(self) -> None:
        """Forget every key (a change made here, or one whose key is not known)."""
        with self._lock:
            self.generation += 1
            self._entries.clear()


class Listening(Protocol):
    """A backend whose change feed a thread of its own reads (``_listen``), one per process."""

    _listening: int
    _listener: threading.Thread | None
    _key_cache: KeyCache | None

    def _listen(self) -> None: ...


def start_listener(backend: Listening, lock: threading.Lock, name: str) -> None:
    """Start ``backend``'s listener thread unless this process has one (a forked child starts its own).

    Its caller checks ``backend._listening != os.getpid()`` first, so a look-up pays one comparison.
    """
    with lock:
        pid = os.getpid()
        if backend._listening == pid:
            return
        if backend._key_cache is not None:
            backend._key_cache.set_live(False)  # inherited through a fork: off until our channel is up
        backend._listening = pid
        backend._listener = threading.Thread(target=backend._listen, name=name, daemon=True)
        backend._listener.start()
