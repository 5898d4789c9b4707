"""Redis storage: keys shared by every process and host that uses the same server.

Layout, all under one prefix (``gridauth`` unless ``?key_prefix=`` says otherwise):

- ``<p>:rec:<lookup>``  hash with two fields: ``d``, the key record as JSON, and
  ``u``, its ``last_used_at``. A request finds its key by SHA-256 or fingerprint
  in one ``HMGET`` (the hot path), and a usage write never touches ``d``, so it
  can never undo a revocation;
- ``<p>:id:<id>``       string: the lookup of a key id;
- ``<p>:owner:<owner>`` and ``<p>:all``: sorted sets of ids scored by ``seq``;
- ``<p>:seq``           the creation counter;
- ``<p>:seen:<token>``  the replay cache (``SET NX PX``);
- ``<p>:ratelimit:...`` the rate-limit counters (``limits``' key names; see :mod:`flask_gridauth.ratelimit`);
- ``<p>:audit:ev:<seq>`` an audit event as JSON, indexed by ``seq`` in the sorted sets
  ``<p>:audit:all``, ``<p>:audit:owner:<owner>`` and ``<p>:audit:target:<id>``; ``<p>:audit:seq`` counts;
- ``<p>:owner_limits`` hash of owner to its override of ``GRIDAUTH_RATELIMIT_OWNER``;
- ``<p>:usage:<id>:<hour>`` hash of one key's counts in one hour (``a``, ``f``, ``r``, ``s:<scope>``),
  indexed by hour in ``<p>:usage:idx:<id>`` and, for the purge, in ``<p>:usage:hours``.

The audit and usage keys are named by :meth:`RedisStorage.activity_key` and
every operation on them is one script, so a cluster can keep them in one slot.

With rate limits counted in the same Redis, an API-key request costs one round
trip: :meth:`RedisStorage.find_counted` runs a script that reads the record,
records its use when due, and hits its per-key counters, exactly as the
separate ``HMGET``, ``HSET`` and ``limits`` ``incr`` calls would.

Changes to ``d`` are compare-and-set (a Lua script that writes only if ``d`` is
still what was read), so two concurrent updates never lose one another.
Multi-key operations run as Lua scripts and are atomic on one server;
:mod:`flask_gridauth.storage.cluster` re-lays the keys for a Redis Cluster.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import random
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StorageError
from ..records import KeyRecord, utcnow
from .base import Counted, KeyExistsError, QuotaUse, check_changes
from .cache import start_listener
from .redis_activity import RedisActivity
from .redis_owners import RedisOwners
from .redis_records import _dump, _load, _quota_counter
from .redis_restarts import RedisRestarts
from .redis_scripts import _ADD, _CAS, _FIND_COUNT, _GET, _LIST, _ROTATE, _SPEND
from .redis_sessions import RedisSessions
from .values import from_epoch

logger = logging.getLogger("flask_gridauth")

if TYPE_CHECKING:
    import limits.storage

#: Most decoded records :meth:`RedisStorage.find` keeps (then the cache starts over).
MAX_CACHED_RECORDS = 4096

#: Optimistic retries of one update before giving up with StorageError.
_CAS_ATTEMPTS = 20


def _cas_backoff(attempt: int) -> None:
    """Wait a little before compare-and-set attempt ``attempt`` (from 0), longer each time.

    A lost compare-and-set means another writer made progress, so retrying cannot livelock;
    but on a loaded machine a thread can lose every race of a burst of writes to one key.
    Random jitter, growing to 50 ms, spreads the retries out (no sleep before the first).
    """
    if attempt:
        time.sleep(min(0.001 * 2**attempt, 0.05) * random.random())  # noqa: S311 - jitter, not a secret


#: Valkey speaks the Redis protocol: its schemes are Redis's to the driver.
_VALKEY = {"valkey": "redis", "valkeys": "rediss"}
#: Rate-limit counters live under ``<prefix>:ratelimit:`` in Redis.
COUNTER_SUFFIX = ":ratelimit"


def _import_redis() -> Any:
    try:
        import redis as redis_module
    except ImportError:  # pragma: no cover - depends on the install
        raise ImportError("Redis storage needs the redis extra: pip install 'flask-gridauth[redis]'") from None
    return redis_module


def split_uri(uri: str) -> tuple[str, str]:
    """Separate our ``key_prefix`` query parameter from a Redis URI (``valkey://`` reads as ``redis://``)."""
    parts = urlsplit(uri)
    if parts.scheme in _VALKEY:
        parts = parts._replace(scheme=_VALKEY[parts.scheme])
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "key_prefix"), "gridauth")
    rest = urlencode([(k, v) for k, v in query if k != "key_prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisStorage(RedisSessions, RedisRestarts, RedisActivity, RedisOwners):
    """Keys on a Redis server; revocations are seen by every process at once."""

    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "valkey", "valkeys")
    counts_in_lookup = True
    #: ``update`` publishes the changed lookup from its compare-and-set script, in the same write.
    pushes_own_changes = frozenset({"update", "mark_rotated"})

    def __init__(self, uri: str, *, timeout: float = 2.0) -> None:
        self._redis_module = _import_redis()
        self.driver_errors = (self._redis_module.RedisError,)
        self.url, self.prefix = split_uri(uri)
        self.timeout = timeout
        self._no_script: type[Exception] = self._redis_module.exceptions.NoScriptError
        # (d, u) as read -> their record: an unchanged stored key decodes to the same immutable
        # record object, so its JSON is parsed once rather than on every request.
        self._records: dict[tuple[bytes, bytes | None], KeyRecord] = {}
        self._listening = 0
        self._listener: threading.Thread | None = None
        self._listen_lock = threading.Lock()
        self._bind(self._make_client())

    def _make_client(self) -> Any:
        """The client; redis-py connects lazily, so building it never contacts the server."""
        return self._redis_module.Redis.from_url(
            self.url,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            health_check_interval=30,
            redis_connect_func=self._on_connect,
        )

    def _bind(self, client: Any) -> None:
        """Use ``client`` and register the scripts on it."""
        #: The redis-py client (a ``Redis``, or a ``RedisCluster`` for a cluster).
        self.client: Any = client
        self._add = client.register_script(_ADD)
        self._get = client.register_script(_GET)
        self._list = client.register_script(_LIST)
        self._cas = client.register_script(_CAS)
        self._rotate = client.register_script(_ROTATE)
        self._find_count = client.register_script(_FIND_COUNT)
        self._spend = client.register_script(_SPEND)

    def _rec_key(self, lookup: str) -> str:
        """The hash of the key whose lookup this is."""
        return self.key("rec", lookup)

    def _read_by_id(self, key_id: str) -> Any:
        """``[d, u]`` of the key with this id (empty if there is none)."""
        return self._get(keys=[self.key("id", key_id)], args=[self.prefix])

    def key(self, *parts: str) -> str:
        """A Redis key under this storage's prefix."""
        return ":".join((self.prefix, *parts))

    def storage_error(self, exc: BaseException) -> StorageError:
        """Only the error's type: a driver's message may hold the server's address or password."""
        return StorageError(f"Redis storage failed: {type(exc).__name__}")

    def enable_cache(self, ttl: float) -> bool:
        """Cache found keys, dropped when a change is published on ``<prefix>:changes`` (one subscriber)."""
        from .cache import KeyCache

        self._key_cache = KeyCache(ttl)  # off until the subscription is up
        self._listening = 0
        return True

    def _push_change(self) -> None:
        """Publish :data:`~flask_gridauth.storage.cache.EVERY_KEY` on ``<prefix>:changes``."""
        from .cache import EVERY_KEY

        self.client.publish(self.key("changes"), EVERY_KEY)

    def _cache_check(self) -> None:
        if self._listening != os.getpid():
            start_listener(self, self._listen_lock, "gridauth-redis-listen")

    def _listen(self) -> None:
        """Subscribe to the change channel; while the subscription is down the cache is off (empty)."""
        cache, pid = self._key_cache, os.getpid()
        channel = self.key("changes").encode()
        # The driver's errors (a cluster's too), and ValueError: a socket closed under the reader.
        failures: tuple[type[BaseException], ...] = (*self.driver_errors, OSError, ValueError)
        while cache is not None and self._listening == pid:
            pubsub = None
            try:
                pubsub = self.client.pubsub()  # on a cluster, building the client may fail already
                pubsub.subscribe(channel)
                while self._listening == pid:
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":  # also after redis-py reconnected: a new socket
                        sock = getattr(pubsub.connection, "_sock", None)
                        cache.set_live(True, feed=None if sock is None else sock.fileno())
                    elif message["type"] == "message":
                        cache.evict(message["data"].decode())
            except failures as exc:
                cache.feed_failed("Redis", exc)
            finally:
                if pubsub is not None:
                    pubsub.close()
            cache.set_live(False)
            if self._listening == pid:
                time.sleep(0.2)

    def _stop_listener(self) -> None:
        self._listening = 0
        listener, self._listener = self._listener, None
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=2.0)

    def shared_counters(self) -> tuple[limits.storage.Storage, str]:
        """``limits``' Redis storage on this client's connection pool, under ``<prefix>:ratelimit``."""
        from limits.storage import RedisStorage as LimitsRedisStorage

        # Sharing the pool keeps one set of connections and the same timeouts.
        counters = LimitsRedisStorage(
            self.url, connection_pool=self.client.connection_pool, key_prefix=self.prefix + COUNTER_SUFFIX
        )
        return counters, f"{self.prefix}{COUNTER_SUFFIX}:"

    def add(self, record: KeyRecord) -> KeyRecord:
        """Store the record, the id index and both listings atomically."""
        keys = [
            self.key("rec", record.lookup),
            self.key("id", record.id),
            self.key("seq"),
            self.key("owner", record.owner),
            self.key("all"),
        ]
        left, at = _quota_counter(record.quota, record.created_at)
        args = [record.lookup, record.id, _dump(dataclasses.replace(record, seq=0)), "" if left == "-" else left, at]
        seq = int(self._add(keys=keys, args=args))
        if seq == 0:
            raise KeyExistsError(record.id)
        if record.last_used_at is not None:
            self.client.hset(keys[0], "u", repr(record.last_used_at.timestamp()))
        stored = dataclasses.replace(record, seq=seq)
        if stored.quota is not None:
            quota = dataclasses.replace(stored.quota, remaining=int(left), refilled_at=from_epoch(float(at)))
            stored = dataclasses.replace(stored, quota=quota)
        return stored

    def get(self, key_id: str) -> KeyRecord | None:
        """The key with this id, in one round trip."""
        return _load(self._read_by_id(key_id))

    def find(self, lookup: str) -> KeyRecord | None:
        """The key with this hash or fingerprint: one ``HMGET``."""
        # execute_command skips redis-py's response callbacks: a plain list, decoded once by _load.
        pair = self.client.execute_command("HMGET", self._rec_key(lookup), "d", "u")
        return self._decode(pair)

    def _decode(self, reply: list[Any]) -> KeyRecord | None:
        """:func:`_load` of ``reply[:2]``, cached by the bytes read."""
        if not reply or reply[0] is None:
            return None
        pair = (reply[0], reply[1])
        records = self._records
        record = records.get(pair)
        if record is None:
            record = _load(list(pair))
            if record is None:  # pragma: no cover - _load returns None only without d
                return None
            if len(records) >= MAX_CACHED_RECORDS:
                records.clear()
            records[pair] = record
        return record

    def find_counted(
        self,
        lookup: str,
        *,
        record_type: str,
        now: float,
        touch_interval: float,
        counter_prefix: str,
        windows: Sequence[str | int],
        environments: Collection[str] | None = None,
        quota_cost: int = 0,
    ) -> Counted:
        """:meth:`find`, the ``last_used_at`` write when due, the key's counters and its quota, in one round trip.

        See :meth:`Storage.find_counted <flask_gridauth.storage.Storage.find_counted>`.
        """
        key = self._rec_key(lookup)
        accepted = "" if environments is None else " " + " ".join(environments) + " "
        args = (repr(now), touch_interval, record_type, lookup, counter_prefix, accepted, quota_cost, *windows)
        try:
            # execute_command skips the Script wrapper's per-call work; the script is loaded once.
            reply = self.client.execute_command("EVALSHA", self._find_count.sha, 1, key, *args)
        except self._no_script:
            reply = self._find_count(keys=[key], args=args)
        if not reply:
            return None, False, None, None
        record = self._decode(reply)
        if len(reply) < 3:
            return record, False, None, None
        if len(reply) == 3:
            return record, True, None, None
        end = 3 + len(windows)  # two numbers per window, as windows holds (suffix, seconds) pairs
        counts = [(int(reply[i]), int(reply[i + 1])) for i in range(3, end - 1, 2)]
        quota = QuotaUse(bool(int(reply[end])), int(reply[end + 1])) if len(reply) > end + 1 else None
        return record, True, counts, quota

    def list(self, owner: str | None, *, limit: int, before_seq: int | None = None) -> list[KeyRecord]:
        """Keys newest first, from the owner's sorted set."""
        index = self.key("all") if owner is None else self.key("owner", owner)
        args = [self.prefix, "" if before_seq is None else str(before_seq), str(limit)]
        rows = self._list(keys=[index], args=args)
        return [r for r in map(_load, rows) if r is not None]

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Read, change and compare-and-set ``d``; retried if another writer got there first."""
        check_changes(changes)
        for attempt in range(_CAS_ATTEMPTS):
            _cas_backoff(attempt)
            pair = self._read_by_id(key_id)
            record = _load(pair)
            if record is None:
                return None
            updated = dataclasses.replace(record, **changes)
            counter: tuple[str, str] = ("", "")
            if "quota" in changes:
                counter = _quota_counter(updated.quota, utcnow())
                quota = updated.quota
                if quota is not None:
                    refilled_at = from_epoch(float(counter[1]))
                    quota = dataclasses.replace(quota, remaining=int(counter[0]), refilled_at=refilled_at)
                updated = dataclasses.replace(updated, quota=quota)
            args = [pair[0], _dump(updated), *counter, self.key("changes"), record.lookup]
            if not changes or self._cas(keys=[self._rec_key(record.lookup)], args=args):
                return updated
        raise StorageError("Redis storage failed: too many concurrent updates of one key")

    def mark_rotated(self, key_id: str, *, expires_at: datetime | None, rotated_at: datetime) -> bool:
        """A script checks the mark and compare-and-sets ``d``; retried if another writer changed ``d``."""
        for attempt in range(_CAS_ATTEMPTS):
            _cas_backoff(attempt)
            pair = self._read_by_id(key_id)
            record = _load(pair)
            # A disable or revoke after the read changes 'd', so the script's compare-and-set sees it.
            if record is None or record.revoked_at is not None or record.disabled_at is not None:
                return False
            updated = record if expires_at is None else dataclasses.replace(record, expires_at=expires_at)
            args = [pair[0], _dump(updated), repr(rotated_at.timestamp()), self.key("changes"), record.lookup]
            won = int(self._rotate(keys=[self._rec_key(record.lookup)], args=args))
            if won >= 0:
                return won == 1
        raise StorageError("Redis storage failed: too many concurrent updates of one key")

    def spend_quota(self, record: KeyRecord, cost: int, now: datetime) -> QuotaUse | None:
        """One script: refill lazily and take the units, or take none, atomically."""
        reply = self._spend(keys=[self._rec_key(record.lookup)], args=[repr(now.timestamp()), cost])
        if not reply:
            return None
        return QuotaUse(bool(int(reply[0])), int(reply[1]))

    def touch(self, record: KeyRecord, when: datetime) -> None:
        """One ``HSET`` of ``u``: it never rewrites ``d``, so it cannot undo a revocation."""
        self.client.hset(self._rec_key(record.lookup), "u", repr(when.timestamp()))

    def ping(self) -> None:
        """``PING`` the server."""
        self.client.ping()

    def close(self) -> None:
        """Drop pooled connections (and stop the change listener, if any)."""
        self._stop_listener()
        self.client.connection_pool.disconnect()
