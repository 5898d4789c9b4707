"""Where rate-limit counters live, and how they count: every ``limits`` storage URI and strategy.

``GRIDAUTH_RATELIMIT_STORAGE_URI`` takes any storage URI of the ``limits``
library (``memory://``, ``redis://``, ``rediss://``, ``redis+sentinel://``,
``redis+cluster://``, ``valkey://``, ``memcached://``, ``mongodb://``, ...);
``None`` lends the key storage's own server when it offers one
(:meth:`~flask_gridauth.storage.Storage.shared_counters`), else counts in
this process. ``GRIDAUTH_RATELIMIT_STRATEGY`` picks ``limits``' strategy.

Nothing is contacted at start-up. ``limits``' Redis Cluster storage would
contact the cluster when it is built, so it is built on first use here
(:class:`LazyClusterCounters`): an app starts while its cluster is down and
its requests get 503 until the cluster answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from limits.errors import ConfigurationError as LimitsConfigurationError
from limits.storage import (
    MemoryStorage,
    MovingWindowSupport,
    RedisClusterStorage,
    SlidingWindowCounterSupport,
    storage_from_string,
)
from limits.storage import RedisStorage as LimitsRedisStorage
from limits.storage import Storage as LimitsStorage
from limits.strategies import MovingWindowRateLimiter, RateLimiter, SlidingWindowCounterRateLimiter

from . import config as c
from .errors import ConfigurationError
from .memory_counters import MemoryCounters
from .storage import Storage
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


class LazyClusterCounters(RedisClusterStorage):
    """``limits``' cluster storage on a client made by ``get_client`` at first use."""

    STORAGE_SCHEME = None  # type: ignore[assignment]  # never picked by URI: limits' own cluster class keeps it

    def __init__(self, get_client: Callable[[], Any], *, key_prefix: str) -> None:
        # Not RedisClusterStorage.__init__: it builds (and so contacts) a cluster client.
        import redis

        self.key_prefix = key_prefix
        self.target_server = "redis"
        self.dependency = redis
        self.wrap_exceptions = False
        self._get_client = get_client
        self._build_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Reached only while ``storage`` and the scripts are missing: build them now.
        if name != "storage" and not name.startswith("lua_"):
            raise AttributeError(name)
        with self._build_lock:
            if "lua_incr_expire" not in self.__dict__:
                self.storage = self._get_client()
                self.initialize_storage("")
        return self.__dict__[name]

    @property
    def base_exceptions(self) -> tuple[type[Exception], ...]:
        """redis-py's errors, including the cluster's own that do not derive from ``RedisError``."""
        import redis.exceptions

        return (redis.exceptions.RedisError, redis.exceptions.RedisClusterException)


def lazy_cluster_counters(get_client: Callable[[], Any], *, key_prefix: str) -> LazyClusterCounters:
    """A ``limits`` cluster storage under ``key_prefix`` whose client ``get_client`` makes at first use."""
    return LazyClusterCounters(get_client, key_prefix=key_prefix)


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
        from .storage.cluster import ClusterStorage

        keys = ClusterStorage(uri, timeout=timeout)  # its client, built on first use, does the counting
        return lazy_cluster_counters(lambda: keys.client, key_prefix=keys.prefix + COUNTER_SUFFIX)
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


def limiter_for(config: Mapping[str, Any], counters: LimitsStorage) -> RateLimiter | None:
    """The ``limits`` strategy that counts, or ``None`` for a fixed window (counted directly, one call a limit)."""
    strategy = STRATEGIES[strategy_name(config)]
    return None if strategy is None else strategy(counters)
