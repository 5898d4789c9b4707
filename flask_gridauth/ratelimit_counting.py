"""Hitting ``limits`` counters: one storage call per fixed-window limit, and when each window ends.

Why the hot path calls ``limits`` and not flask-limiter's ``Limiter``: the
``Limiter`` resolves its key function, limit managers and request context on
every request, which measured +95–115 µs per request on a bare route (issue
7), several times the whole cost of verifying an API key. The counters are
flask-limiter's own engine, ``limits``: its Redis storage (the same
``incr``-and-expire Lua script flask-limiter uses) and its fixed-window
semantics (``FixedWindowRateLimiter``). We call the storage's ``incr``
directly because the count it returns already gives
``X-RateLimit-Remaining``; the strategy's ``hit`` returns only a bool, and its
``get_window_stats`` costs two more storage calls. A window's end is learned
once per window and process (from the counter's first hit, else one
``get_expiry`` call), so a request costs one storage call per limit. In
memory, :class:`~flask_gridauth.memory_counters.MemoryCounters` implements the
``limits`` storage interface without the timer thread of ``limits``' own
memory storage.
"""

from __future__ import annotations

import logging
import time

from limits.errors import StorageError as LimitsStorageError
from limits.storage import Storage as LimitsStorage
from limits.strategies import RateLimiter

from .errors import Unavailable
from .ratelimit_items import Limit, Result

logger = logging.getLogger("flask_gridauth")

#: Most window ends cached per process (then the cache starts over).
MAX_CACHED = 10_000


class Counting:
    """Counts hits on one ``limits`` storage, fixed windows directly or through a strategy.

    A storage error becomes :class:`~flask_gridauth.errors.Unavailable` (503):
    limits fail closed, like authentication.
    """

    def __init__(self, counters: LimitsStorage, limiter: RateLimiter | None = None) -> None:
        self.counters = counters
        #: The ``limits`` strategy for a sliding or moving window; ``None``: fixed windows, counted directly.
        self.limiter = limiter
        self.errors: tuple[type[Exception], ...] = (LimitsStorageError, *_as_tuple(counters.base_exceptions))
        self._resets: dict[str, float] = {}

    def reset_of(self, key: str, limit: Limit, count: int, now: float) -> float:
        """When ``key``'s window ends: known from its first hit, else asked once per window."""
        if count == 1:
            reset = now + limit.expiry
        else:
            reset = self._resets.get(key, 0.0)
            if reset > now:
                return reset
            # Redis answers in whole seconds: never show a window that has already ended.
            reset = max(self.counters.get_expiry(key), now + 1.0)
        if len(self._resets) >= MAX_CACHED:
            self._resets.clear()
        self._resets[key] = reset
        return reset

    def count(self, key: str, limits: tuple[Limit, ...], now: float, out: list[Result]) -> None:
        """Hit every limit of ``key`` once (one storage call each), appending its :data:`Result`."""
        if self.limiter is not None:
            self._count_with_strategy(self.limiter, key, limits, out)
            return
        incr = self.counters.incr
        resets = self._resets
        for limit in limits:
            name = key + limit.suffix
            count = incr(name, limit.expiry)
            # The usual case, a window whose end is known and still ahead, inline: no call to reset_of.
            reset = resets.get(name, 0.0) if count != 1 else 0.0
            if reset <= now:
                reset = self.reset_of(name, limit, count, now)
            left = limit.amount - count  # a conditional, not max(0, ...): the builtin call costs ~10 times more
            out.append((limit.amount, left if left > 0 else 0, reset, count > limit.amount))

    @staticmethod
    def _count_with_strategy(limiter: RateLimiter, key: str, limits: tuple[Limit, ...], out: list[Result]) -> None:
        """A sliding or moving window through ``limits``' strategy: a hit, then the window's stats."""
        for limit in limits:
            allowed = limiter.hit(limit.item, key)
            reset, remaining = limiter.get_window_stats(limit.item, key)
            out.append((limit.amount, remaining, max(reset, time.time() + 1.0), not allowed))


def counted_results(limits: tuple[Limit, ...], counts: list[tuple[int, int]], now: float, out: list[Result]) -> None:
    """Turn what a storage look-up already counted (``(count, ms left)`` per limit) into results."""
    for limit, (count, left_ms) in zip(limits, counts, strict=True):
        # A window's first hit opened it now; else the storage says how long it has left.
        reset = now + limit.expiry if count == 1 else now + max(left_ms / 1000, 1.0)
        left = limit.amount - count  # not max(0, ...): see count
        out.append((limit.amount, left if left > 0 else 0, reset, count > limit.amount))


def unavailable(exc: Exception) -> Unavailable:
    """The 503 for a counter storage error (logged by type only: a driver's message may hold its URI)."""
    logger.error("rate-limit storage unavailable: %s", type(exc).__name__)
    return Unavailable()


def _as_tuple(value: type[Exception] | tuple[type[Exception], ...]) -> tuple[type[Exception], ...]:
    return value if isinstance(value, tuple) else (value,)
