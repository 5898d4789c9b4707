"""Rate-limit counter storages that are built without contacting their server.

``limits``' Redis Cluster storage contacts the cluster when it is built; built
at start-up, an app whose cluster is down would not start. :func:`lazy_cluster_counters`
gives the same storage, built on its first use from a client the caller
supplies (the key storage's own cluster client), so the app starts and its
requests get 503 until the cluster answers.
"""

from __future__ import annotations

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

    def __getattr__(self, name: str) -> Any:
        # Reached only while ``storage`` and the scripts are missing: build them now.
        if name != "storage" and not name.startswith("lua_"):
            raise AttributeError(name)
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
