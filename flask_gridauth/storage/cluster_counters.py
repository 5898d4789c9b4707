"""``limits``' Redis Cluster counters on the cluster backend's own client, built at first use.

``limits``' ``RedisClusterStorage`` contacts the cluster in its constructor; an
app must start while its cluster is down (and answer 503 until it is back), so
this subclass defers building its client and scripts to the first count.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from limits.storage import RedisClusterStorage


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
