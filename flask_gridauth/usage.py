"""Usage per key and hour, counted in memory and written to storage in batches.

An ``after_request`` step (:meth:`UsageCounter.after_request`) adds one to a
dict entry for every request made with an API key or a signing key: allowed,
forbidden (403) or rate-limited (429), and for an allowed request the scopes
its route needed. Nothing is written per request and nothing is sent to
Redis on the request's path: a flusher thread of each process, started by the
first counted request (never by a constructor, and again after a fork), adds
the gathered counts to storage every ``GRIDAUTH_USAGE_FLUSH_INTERVAL`` seconds
in one write. A flush that fails keeps its counts for the next one and never
touches a request; a process that exits flushes (``atexit``).

:func:`usage_report` turns the stored buckets into the ``usage`` object of
``GET /api-keys/<id>/usage``, with the least-privilege figures: which held
scopes the key's requests never needed.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from flask import Response
from flask.globals import _cv_app, _cv_request

from .activity import HOUR, UsageCount, hour_of
from .errors import ConfigurationError, StorageError
from .principal import G_ATTR, Principal
from .records import KeyRecord, isoformat
from .scopes import scope_granted
from .storage import Storage

logger = logging.getLogger("flask_gridauth")

#: Outcomes, as indexes into a bucket's counts.
ALLOWED, FORBIDDEN, RATE_LIMITED = 0, 1, 2
#: Default seconds between two flushes (the lag of ``GET /api-keys/<id>/usage`` is at most this, plus the write).
DEFAULT_FLUSH_INTERVAL = 5.0
#: Most buckets a retention purge deletes at once; a purge runs at most once an hour per process.
PURGE_BATCH = 1000

#: What a route needs, as the extension's requirement look-up gives it: (all of, any of, ...) or None.
Requirement = tuple[Any, ...] | None
#: (key id, hour, outcome, the route's requirement, the principal's scopes when it had a choice)
_Entry = tuple[str, int, int, Requirement, frozenset[str] | None]


def _used_scopes(needs: Requirement, held: frozenset[str] | None) -> tuple[str, ...]:
    """The scopes an allowed request used: all it required, and the first of its any-of it held."""
    if not needs:
        return ()
    required_all: tuple[str, ...] = needs[0]
    required_any: tuple[str, ...] = needs[1]
    if not required_any:
        return required_all
    chosen = next((s for s in required_any if held is not None and scope_granted(held, s)), required_any[0])
    return (*required_all, chosen)


class UsageCounter:
    """One app's usage counts in this process, and their flushing to ``storage``.

    ``requirement(endpoint, method)`` gives what a route needs (the extension's
    cached look-up); ``clock`` gives epoch seconds (tests inject one).
    """

    def __init__(
        self,
        storage: Storage,
        requirement: Callable[[str | None, str], Requirement],
        *,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
        retention_days: int = 90,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.storage = storage
        self.requirement = requirement
        self.flush_interval = flush_interval
        self.retention = retention_days * 24 * HOUR
        self.clock = clock
        self._pending: dict[_Entry, int] = {}
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._pid = 0
        self._wake = threading.Event()
        self._purge_at = 0.0
        self._getpid = os.getpid

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        storage: Storage,
        requirement: Callable[[str | None, str], Requirement],
    ) -> UsageCounter:
        """The counter ``GRIDAUTH_USAGE_FLUSH_INTERVAL`` and ``GRIDAUTH_USAGE_RETENTION_DAYS`` describe."""
        interval = config.get("GRIDAUTH_USAGE_FLUSH_INTERVAL", DEFAULT_FLUSH_INTERVAL)
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not 0 < interval <= 3600:
            raise ConfigurationError("GRIDAUTH_USAGE_FLUSH_INTERVAL must be a number of seconds above 0, at most 3600")
        days = config.get("GRIDAUTH_USAGE_RETENTION_DAYS", 90)
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ConfigurationError("GRIDAUTH_USAGE_RETENTION_DAYS must be a whole number of days, at least 1")
        return cls(storage, requirement, flush_interval=float(interval), retention_days=days)

    # -- the request path ----------------------------------------------------

    def after_request(self, response: Response) -> Response:
        """Count this response's request against its key, if a key made it: a few dict operations.

        The request and ``g`` are read from Flask's context variables directly: the proxies
        cost more than the counting itself.
        """
        principal: Principal | None = getattr(_cv_app.get().g, G_ATTR, None)
        if principal is None or principal.key is None:
            return response
        status = response.status_code
        hour = int(self.clock()) // HOUR * HOUR
        if status == 403:
            entry: _Entry = (principal.key.id, hour, FORBIDDEN, None, None)
        elif status == 429:
            entry = (principal.key.id, hour, RATE_LIMITED, None, None)
        else:
            req = _cv_request.get().request
            needs = self.requirement(req.endpoint, req.method)
            entry = (principal.key.id, hour, ALLOWED, needs, principal.scopes if needs and needs[1] else None)
        if self._pid != self._getpid():
            self._start()
        with self._lock:
            pending = self._pending
            pending[entry] = pending.get(entry, 0) + 1
        return response

    # -- flushing --------------------------------------------------------------

    def _start(self) -> None:
        """Start this process's flusher thread (first count, or first count after a fork)."""
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._pid:
                # A forked child: the counts it inherited are the parent's to write.
                self._pending = {}
                self._wake = threading.Event()
                self._flush_lock = threading.Lock()
            self._pid = os.getpid()
        thread = threading.Thread(
            target=_flush_loop, args=(weakref.ref(self), self._wake), name="gridauth-usage-flush", daemon=True
        )
        thread.start()
        atexit.register(_flush_at_exit, weakref.ref(self))

    def pending(self) -> list[UsageCount]:
        """The counts gathered in this process and not written yet, as buckets."""
        with self._lock:
            snapshot = dict(self._pending)
        return _buckets(snapshot)

    def flush(self) -> None:
        """Write the gathered counts in one storage call; on ``StorageError`` they are kept for the next flush."""
        with self._flush_lock:
            with self._lock:
                batch, self._pending = self._pending, {}
            if batch:
                try:
                    self.storage.add_usage(_buckets(batch))
                except BaseException:
                    with self._lock:
                        for entry, n in batch.items():
                            self._pending[entry] = self._pending.get(entry, 0) + n
                    raise
            self._purge_when_due()

    def flush_quietly(self) -> bool:
        """:meth:`flush`, logging a failure instead of raising it; whether it succeeded."""
        try:
            self.flush()
        except StorageError as exc:
            logger.warning("usage counts not written yet (kept, retried at the next flush): %s", exc)
            return False
        return True

    def close(self) -> None:
        """Write what is gathered (quietly), drop what could not be written, and stop the flusher thread.

        For an app being torn down whose storage is going away: nothing is left
        for the exit-time flush to retry against a storage that no longer exists.
        """
        self.flush_quietly()
        with self._lock:
            self._pending = {}
        self._wake.set()
        self._pid = 0

    def report(
        self, record: KeyRecord, *, days: int, expand: Callable[[Iterable[str]], frozenset[str]]
    ) -> dict[str, Any]:
        """The ``usage`` object of ``record`` over the last ``days`` days (this process's counts written first)."""
        self.flush_quietly()
        until = hour_of(self.clock())
        since = until - (days * 24 - 1) * HOUR
        buckets = self.storage.list_usage(record.id, since_hour=since)
        return usage_report(record, buckets, since_hour=since, until_hour=until, expand=expand)

    def _purge_when_due(self) -> None:
        now = time.monotonic()
        if now < self._purge_at:
            return
        removed = self.storage.purge_usage(hour_of(self.clock() - self.retention), limit=PURGE_BATCH)
        self._purge_at = now if removed >= PURGE_BATCH else now + HOUR


def _buckets(entries: dict[_Entry, int]) -> list[UsageCount]:
    """Counts per (key, hour) from the raw entries."""
    totals: dict[tuple[str, int], tuple[list[int], dict[str, int]]] = {}
    for (key_id, hour, outcome, needs, held), n in entries.items():
        counts, scopes = totals.setdefault((key_id, hour), ([0, 0, 0], {}))
        counts[outcome] += n
        if outcome == ALLOWED:
            for scope in _used_scopes(needs, held):
                scopes[scope] = scopes.get(scope, 0) + n
    return [UsageCount(k, h, c[0], c[1], c[2], s) for (k, h), (c, s) in totals.items()]


def _flush_loop(ref: weakref.ref[UsageCounter], wake: threading.Event) -> None:
    """The flusher thread: flush every interval until the counter is gone or the process forks away."""
    pid = os.getpid()
    while True:
        counter = ref()
        if counter is None or counter._pid != pid:
            return
        interval = counter.flush_interval
        del counter  # hold no reference while sleeping: an app that is dropped is collected
        if wake.wait(interval):
            return
        counter = ref()
        if counter is None:
            return
        counter.flush_quietly()
        del counter


def _flush_at_exit(ref: weakref.ref[UsageCounter]) -> None:
    counter = ref()
    if counter is not None and counter._pid == os.getpid():
        counter._wake.set()
        counter.flush_quietly()


# -- the report --------------------------------------------------------------


def unused_scopes(
    held: Iterable[str], used: Iterable[str], expand: Callable[[Iterable[str]], frozenset[str]]
) -> list[str]:
    """The held scopes no used scope needed.

    A used scope is credited to the narrowest held scopes that grant it: with
    ``read`` and ``write`` held and only ``read`` used, ``write`` is unused;
    with ``admin`` and ``write`` held and ``read`` used, ``admin`` is.
    """
    held = list(dict.fromkeys(held))
    grants = {h: expand([h]) for h in held}
    needed: set[str] = set()
    for scope in used:
        grantors = [h for h in held if scope_granted(grants[h], scope)]
        for h in grantors:
            # h is the narrowest if it grants no other grantor.
            if not any(other != h and scope_granted(grants[h], other) for other in grantors):
                needed.add(h)
    return [h for h in held if h not in needed]


def usage_report(
    record: KeyRecord,
    buckets: Iterable[UsageCount],
    *,
    since_hour: int,
    until_hour: int,
    expand: Callable[[Iterable[str]], frozenset[str]],
) -> dict[str, Any]:
    """The ``usage`` object: one bucket per hour from ``since_hour`` to ``until_hour``, oldest first."""
    by_hour: dict[int, list[int]] = {}
    used: set[str] = set()
    for bucket in buckets:
        counts = by_hour.setdefault(bucket.hour, [0, 0, 0])
        counts[0] += bucket.allowed
        counts[1] += bucket.forbidden
        counts[2] += bucket.rate_limited
        used.update(s for s, n in bucket.scopes.items() if n > 0)
    series = []
    for hour in range(since_hour, until_hour + 1, HOUR):
        allowed, forbidden, rate_limited = by_hour.get(hour, (0, 0, 0))
        series.append(
            {
                "start": isoformat(UsageCount(record.id, hour).start),
                "allowed": allowed,
                "forbidden": forbidden,
                "rate_limited": rate_limited,
            }
        )
    held = list(record.scopes)
    return {
        "object": "usage",
        "key_id": record.id,
        "buckets": series,
        "scopes_held": held,
        "scopes_used": sorted(used),
        "unused_scopes": unused_scopes(held, used, expand),
    }


__all__ = ["UsageCounter", "unused_scopes", "usage_report"]
