"""Where rate-limit counters live, and how they count: every ``limits`` storage URI and strategy.

``GRIDAUTH_RATELIMIT_STORAGE_URI`` takes any storage URI of the ``limits``
library (``memory://``, ``redis://``, ``rediss://``, ``redis+sentinel://``,
``redis+cluster://``, ``valkey://``, ``memcached://``, ``mongodb://``, ...);
``None`` lends the key storage's own server when it offers one
(:meth:`~flask_gridauth.storage.Storage.shared_counters`), else counts in
this process. ``GRIDAUTH_RATELIMIT_STRATEGY`` picks ``limits``' strategy.

Nothing is contacted at start-up. ``limits``' Redis Cluster storage would
contact the cluster when it is built, so the cluster backend lends counters
built on first use (:mod:`flask_gridauth.storage.cluster_counters`): an app
starts while its cluster is down and its requests get 503 until it answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.storage import (
    MemoryStorage,
    MovingWindowSupport,
    SlidingWindowCounterSupport,
    storage_from_string,
)
from limits.storage import RedisStorage as LimitsRedisStorage
from limits.storage import Storage as LimitsStorage
from limits.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter

from . import config as c
from .errors import ConfigurationError
from .memory_counters import MemoryCounters
from .storage import Storage, storage_from_uri
from .storage.redis import COUNTER_SUFFIX, split_uri

#: ``GRIDAUTH_RATELIMIT_STRATEGY`` values, and the ``limits`` strategy of each (fixed window: our own fast path).
STRATEGIES: dict[str, type[RateLimiter] | None] = {
    "fixed-window": None,
    "sliding-window-counter": SlidingWindowCounterRateLimiter,
    "moving-window": MovingWindowRateLimiter,
}
_SUPPORT: dict[str, type] = {
    "sliding-window-counter": SlidingWindowCounterSupport,
    "moving-window": MovingWindowSupport,
}


def strategy_name(config: Mapping[str, Any]) -> str:
    """``GRIDAUTH_RATELIMIT_STRATEGY``, checked."""
    name = config.get(c.RATELIMIT_STRATEGY, "fixed-window")
    if name not in STRATEGIES:
        raise ConfigurationError(
            "GRIDAUTH_RATELIMIT_STRATEGY must be one of: " + ", ".join(repr(s) for s in STRATEGIES)
        )
    return str(name)


def _from_uri(uri: str, strategy: str, timeout: float) -> LimitsStorage:
    scheme = urlsplit(uri).scheme
    if scheme == "memory":
        # Our timer-free counters do fixed windows; limits' own memory storage does the rest.
        return MemoryCounters() if strategy == "fixed-window" else MemoryStorage()
    if scheme.startswith("async+"):
        raise ConfigurationError(
            "GRIDAUTH_RATELIMIT_STORAGE_URI cannot be an async+ storage: Flask counts synchronously"
        )
    if scheme in ("redis", "rediss", "valkey", "valkeys"):
        url, prefix = split_uri(uri)  # ?key_prefix= as for the key storage; valkey:// through redis-py
        return LimitsRedisStorage(
            url, key_prefix=prefix + COUNTER_SUFFIX, socket_timeout=timeout, socket_connect_timeout=timeout
        )
    if scheme == "redis+cluster":
        # The cluster backend's client, built on first use, does the counting.
        shared = storage_from_uri(uri, timeout=timeout).shared_counters()
        if shared is not None:  # the cluster backend always lends them
            return shared[0]
    try:
        built = storage_from_string(uri)
    except LimitsConfigurationError as exc:
        raise ConfigurationError(f"GRIDAUTH_RATELIMIT_STORAGE_URI is not a usable limits storage: {exc}") from None
    if not isinstance(built, LimitsStorage):  # pragma: no cover - async schemes are refused above
        raise ConfigurationError("GRIDAUTH_RATELIMIT_STORAGE_URI must name a synchronous limits storage")
    return built


def counter_storage(config: Mapping[str, Any], storage: Storage) -> LimitsStorage:
    """The ``limits`` storage for the counters; nothing is contacted yet.

    An explicit ``GRIDAUTH_RATELIMIT_STORAGE_URI`` wins; else a key storage
    that offers :meth:`~flask_gridauth.storage.Storage.shared_counters` (Redis)
    lends its server; else per-process memory. The storage must support the
    configured strategy.
    """
    strategy = strategy_name(config)
    explicit = config.get(c.RATELIMIT_STORAGE_URI)
    counters: LimitsStorage | None = None
    if explicit is None:
        shared = storage.shared_counters()
        counters = None if shared is None else shared[0]
        if counters is None:
            counters = _from_uri("memory://", strategy, 2.0)
    elif not isinstance(explicit, str) or "://" not in explicit:
        raise ConfigurationError("GRIDAUTH_RATELIMIT_STORAGE_URI must be None or a limits storage URI")
    else:
        counters = _from_uri(explicit, strategy, float(config.get(c.STORAGE_TIMEOUT) or 2.0))
    support = _SUPPORT.get(strategy)
    if support is not None and not isinstance(counters, support):
        raise ConfigurationError(
            f"the rate-limit storage {type(counters).__name__} cannot count with the {strategy!r} strategy"
        )
    return counters


#: The largest ``GRIDAUTH_RATELIMIT_BATCH``: past it, a process could hold a window's whole budget.
MAX_BATCH = 10_000


def batch_size(config: Mapping[str, Any]) -> int:
    """``GRIDAUTH_RATELIMIT_BATCH``, checked: a whole number, above 1 only with fixed windows."""
    batch = config.get(c.RATELIMIT_BATCH, 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ConfigurationError(f"GRIDAUTH_RATELIMIT_BATCH must be a whole number from 1 to {MAX_BATCH}")
    if batch > 1 and strategy_name(config) != "fixed-window":
        raise ConfigurationError(
            "GRIDAUTH_RATELIMIT_BATCH above 1 needs GRIDAUTH_RATELIMIT_STRATEGY 'fixed-window':"
            " a sliding or moving window needs the time of each hit"
        )
    return batch


def limiter_for(config: Mapping[str, Any], counters: LimitsStorage) -> RateLimiter | None:
    """The ``limits`` strategy that counts, or ``None`` for a fixed window (counted directly, one call a limit)."""
    strategy = STRATEGIES[strategy_name(config)]
    return None if strategy is None else strategy(counters)
