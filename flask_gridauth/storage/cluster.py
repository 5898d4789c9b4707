"""Redis Cluster: the Redis layout re-laid so that every script touches one hash slot.

``redis+cluster://[:password@]host:port[,host:port]`` (any nodes of the
cluster; the rest are discovered), with ``?key_prefix=`` as for ``redis://``.

Layout (``{...}`` is a hash tag: every key with the same tag is in one slot):

- ``<p>:rec:{<lookup>}`` the key's hash (``d`` and ``u``), as on one server;
  the counters :meth:`find_counted` hits for that key are named
  ``<counter prefix>{<lookup>}:<id><suffix>``, in the same slot, so the hot
  path stays one script, one round trip, on one node;
- ``{<p>}:id:<id>``, ``{<p>}:owner:<owner>``, ``{<p>}:all``, ``{<p>}:seq``: the
  indexes, all in one slot of their own;
- ``<p>:seen:<token>``: the replay cache, one key each (``SET NX PX``);
- ``{<p>}:audit:...`` and ``{<p>}:usage:...``: the audit log and usage counts, in the indexes' slot;
- ``<p>:owner_limits``: the per-owner overrides, one hash (single-key commands; owners are fields).

The key cache (``GRIDAUTH_CACHE_TTL``) works as on one server: a change is
published on ``<p>:changes`` with plain ``PUBLISH`` (from inside the
compare-and-set scripts, or after the write), which the cluster bus carries to
every node, and each process subscribes on one node. Sharded pub/sub
(``SPUBLISH``) is not used: a script may only publish to a channel in its own
key's slot, so a process would have to subscribe on every shard, and redis-py
reads several shard connections in turn rather than waiting on all at once.

A key is added in three steps (a ``seq`` from the counter, the record with
``HSETNX``, which refuses a taken lookup, then the indexes in one script), so
for a moment a new key can be found before it is listed. The client is built
on first use: an app starts while the cluster is down and answers 503 until
it is back.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from ..records import KeyRecord
from .base import KeyExistsError
from .redis import COUNTER_SUFFIX, RedisStorage, _import_redis, split_uri
from .redis_records import _dump, _load, _quota_counter
from .redis_scripts import _CAS, _FIND_COUNT, _ROTATE, _SPEND
from .sentinel import parse_hosts
from .values import from_epoch

_INDEX = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX') == false then return 0 end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
return 1
"""

#: Attributes that exist once the client is built (see ``ClusterStorage.__getattr__``).
_LAZY = frozenset({"client", "_cas", "_find_count", "_index", "_spend"})


class ClusterStorage(RedisStorage):
    """Keys on a Redis Cluster; every multi-key operation stays in one hash slot."""

    schemes = ("redis+cluster",)

    def __init__(self, uri: str, *, timeout: float = 2.0) -> None:
        # Not RedisStorage.__init__: a RedisCluster contacts the nodes when it is built, so it is built
        # on first use (``__getattr__``), not here.
        self._redis_module = _import_redis()
        exceptions = self._redis_module.exceptions
        self.driver_errors = (exceptions.RedisError, exceptions.RedisClusterException)
        self.url, self.prefix = split_uri(uri)
        if "{" in self.prefix or "}" in self.prefix:
            raise ConfigurationError("a redis+cluster:// key_prefix cannot contain { or }")
        self.timeout = timeout
        parts = urlsplit(self.url)
        self._hosts, self._user, self._password = parse_hosts(parts.netloc, "redis+cluster")
        self._no_script: type[Exception] = self._redis_module.exceptions.NoScriptError
        self._records: dict[tuple[bytes, bytes | None], KeyRecord] = {}
        self._connect_lock = threading.Lock()
        self._listening = 0
        self._listener: threading.Thread | None = None
        self._listen_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        # Only reached while an attribute is missing: the client and its scripts, before first use.
        if name not in _LAZY:
            raise AttributeError(name)
        with self._connect_lock:
            if "client" not in self.__dict__:
                self._bind(self._make_client())
        return self.__dict__[name]

    def _make_client(self) -> Any:
        from redis.cluster import ClusterNode, RedisCluster

        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in self._hosts],  # type: ignore[no-untyped-call]
            username=self._user,
            password=self._password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
        )

    def _bind(self, client: Any) -> None:
        self._cas = client.register_script(_CAS)
        self._rotate = client.register_script(_ROTATE)
        self._find_count = client.register_script(_FIND_COUNT)
        self._index = client.register_script(_INDEX)
        self._spend = client.register_script(_SPEND)
        self.client = client  # last: its presence means the scripts are there too

    def _rec_key(self, lookup: str) -> str:
        return f"{self.prefix}:rec:{{{lookup}}}"

    def _index_key(self, *parts: str) -> str:
        return ":".join((f"{{{self.prefix}}}", *parts))

    def activity_key(self, *parts: str) -> str:
        """Audit and usage keys share the indexes' slot: their scripts touch several at once."""
        return self._index_key(*parts)

    def _read_by_id(self, key_id: str) -> Any:
        lookup = self.client.get(self._index_key("id", key_id))
        if lookup is None:
            return []
        return self.client.hmget(self._rec_key(lookup.decode()), "d", "u", "q", "qt")

    def add(self, record: KeyRecord) -> KeyRecord:
        """A ``seq``, the record (``HSETNX`` refuses a taken lookup), then the indexes in one script."""
        client = self.client
        seq = int(client.incr(self._index_key("seq")))
        stored = dataclasses.replace(record, seq=seq)
        rec_key = self._rec_key(record.lookup)
        if not client.hsetnx(rec_key, "d", _dump(stored)):
            raise KeyExistsError(record.id)
        if record.last_used_at is not None:
            client.hset(rec_key, "u", repr(record.last_used_at.timestamp()))
        left, at = _quota_counter(record.quota, record.created_at)
        if stored.quota is not None:
            client.hset(rec_key, mapping={"q": left, "qt": at})
            quota = dataclasses.replace(stored.quota, remaining=int(left), refilled_at=from_epoch(float(at)))
            stored = dataclasses.replace(stored, quota=quota)
        keys = [self._index_key("id", record.id), self._index_key("owner", record.owner), self._index_key("all")]
        if not self._index(keys=keys, args=[record.lookup, record.id, seq]):
            client.delete(rec_key)
            raise KeyExistsError(record.id)
        return stored

    def list(self, owner: str | None, *, limit: int, before_seq: int | None = None) -> list[KeyRecord]:
        """Ids from the sorted set, their lookups in one ``MGET``, the records in one pipeline."""
        client = self.client
        index = self._index_key("all") if owner is None else self._index_key("owner", owner)
        if before_seq is None:
            ids = client.zrevrange(index, 0, limit - 1)
        else:
            ids = client.zrevrangebyscore(index, f"({before_seq}", "-inf", start=0, num=limit)
        if not ids:
            return []
        lookups = client.mget([self._index_key("id", i.decode()) for i in ids])
        pipe = client.pipeline()
        for lookup in lookups:
            if lookup is not None:
                pipe.hmget(self._rec_key(lookup.decode()), "d", "u", "q", "qt")
        return [r for r in map(_load, pipe.execute()) if r is not None]

    def find_counted(self, lookup: str, *, counter_prefix: str, **kwargs: Any) -> Any:
        """As on one server, with the key's counters tagged into its record's slot."""
        return super().find_counted(lookup, counter_prefix=f"{counter_prefix}{{{lookup}}}:", **kwargs)

    def shared_counters(self) -> Any:
        """``limits``' cluster storage under ``<prefix>:ratelimit``, built on its first use."""
        from .cluster_counters import lazy_cluster_counters

        # The same client as the keys (one set of connections), built when either first needs it.
        counters = lazy_cluster_counters(lambda: self.client, key_prefix=self.prefix + COUNTER_SUFFIX)
        return counters, f"{self.prefix}{COUNTER_SUFFIX}:"

    def close(self) -> None:
        """Stop the change listener, if any, and close the cluster client (a later call builds a new one)."""
        self._stop_listener()
        client = self.__dict__.pop("client", None)
        if client is not None:
            client.close()
