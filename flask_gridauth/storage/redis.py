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

import builtins
import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..activity import AuditEvent, UsageCount
from ..errors import StorageError
from ..records import REFILL_SECONDS, KeyRecord, Quota, utcnow
from .base import Counted, KeyExistsError, QuotaUse, Storage, check_changes, from_epoch, quota_state, to_epoch

logger = logging.getLogger("flask_gridauth")

if TYPE_CHECKING:
    import limits.storage

_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[3])
local data = string.gsub(ARGV[3], '"seq": 0', '"seq": ' .. seq, 1)
redis.call('HSET', KEYS[1], 'd', data)
if ARGV[4] ~= '' then redis.call('HSET', KEYS[1], 'q', ARGV[4], 'qt', ARGV[5]) end
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[4], seq, ARGV[2])
redis.call('ZADD', KEYS[5], seq, ARGV[2])
return seq
"""

_GET = """
local lookup = redis.call('GET', KEYS[1])
if not lookup then return {} end
return redis.call('HMGET', ARGV[1] .. ':rec:' .. lookup, 'd', 'u', 'q', 'qt')
"""

_LIST = """
local ids
if ARGV[2] == '' then
  ids = redis.call('ZREVRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)
else
  ids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '(' .. ARGV[2], '-inf', 'LIMIT', 0, tonumber(ARGV[3]))
end
local out = {}
for i, id in ipairs(ids) do
  local lookup = redis.call('GET', ARGV[1] .. ':id:' .. id)
  if lookup then out[#out + 1] = redis.call('HMGET', ARGV[1] .. ':rec:' .. lookup, 'd', 'u', 'q', 'qt') end
end
return out
"""

# ARGV[3]: '' leaves the quota counter alone, '-' deletes it, else it is re-set to ARGV[3], ARGV[4].
# ARGV[5], ARGV[6]: the channel of key changes and the lookup published on it (for the key caches).
_CAS = """
if redis.call('HGET', KEYS[1], 'd') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'd', ARGV[2])
if ARGV[3] == '-' then redis.call('HDEL', KEYS[1], 'q', 'qt')
elseif ARGV[3] and ARGV[3] ~= '' then redis.call('HSET', KEYS[1], 'q', ARGV[3], 'qt', ARGV[4]) end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"""

# spend(rec, key, now, cost) takes cost units of the record's quota, refilled lazily first, as
# records.refilled() and the SQL of the SQLite backend do. Returns {1, left} or {0, left}.
_SPEND_FUNCTION = (
    "local REFILL_SECONDS = {"
    + ", ".join(f"{name} = {seconds}" for name, seconds in REFILL_SECONDS.items())
    + "}"
    + """
local function spend(quota, key, now, cost)
  local state = redis.call('HMGET', key, 'q', 'qt')
  local left, at = tonumber(state[1]), tonumber(state[2])
  if not left or not at then return nil end
  local seconds = REFILL_SECONDS[quota['refill_interval']]
  local amount = tonumber(quota['refill_amount'])
  if seconds and amount and amount > 0 then
    local periods = math.floor((now - at) / seconds)
    if periods > 0 then
      left = math.min(tonumber(quota['limit']), left + periods * amount)
      at = at + periods * seconds
    end
  end
  local allowed = 0
  if left >= cost then left = left - cost; allowed = 1 end
  redis.call('HSET', key, 'q', left, 'qt', string.format('%.6f', at))
  return {allowed, left}
end
"""
)

_SPEND = (
    _SPEND_FUNCTION
    + """
local d = redis.call('HGET', KEYS[1], 'd')
if not d then return {} end
local rec = cjson.decode(d)
if type(rec['quota']) ~= 'table' then return {} end
return spend(rec['quota'], KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])) or {}
"""
)

# The hot path of an API key with Redis rate limits, in one round trip. ARGV: now (epoch
# seconds, as written to ``u``), the touch interval, the record type and lookup that are
# acceptable, the counter-key prefix, the accepted environments (" live test ", or '' for any),
# then (suffix, window seconds) pairs. A canary, a disabled key or one with an address
# allowlist is left to the caller. The record is
# checked as check_record() does; only a usable one is touched and counted, and only when
# it has no own rate_limit (that one the caller parses and counts). The counter is
# limits' incr_expire: INCRBY, and EXPIRE on the window's first hit.
# ARGV[7] is the quota cost: when above 0 and no counter went over its limit (the amount is the
# first number of the suffix), the record's quota pays it in the same script (spend()), and
# {allowed, left} follow the counts.
# Reply: {} (no record) | {d, u} (nothing done) | {d, u, 1} (touched if due) |
# {d, u, 1, count, pttl, ..., [allowed, left]} (touched if due, counted, quota spent).
_FIND_COUNT = (
    _SPEND_FUNCTION
    + """
local pair = redis.call('HMGET', KEYS[1], 'd', 'u')
if not pair[1] then return {} end
local ok, rec = pcall(cjson.decode, pair[1])
local now = tonumber(ARGV[1])
if not ok or type(rec) ~= 'table' or rec['type'] ~= ARGV[3] or rec['lookup'] ~= ARGV[4]
    or type(rec['id']) ~= 'string' or rec['revoked_at'] ~= cjson.null
    or (rec['disabled_at'] ~= nil and rec['disabled_at'] ~= cjson.null) or rec['canary'] == true
    or (type(rec['allowed_ips']) == 'table' and #rec['allowed_ips'] > 0)
    or (ARGV[6] ~= '' and not string.find(ARGV[6], ' ' .. tostring(rec['environment']) .. ' ', 1, true)) then
  return {pair[1], pair[2]}
end
local expires = rec['expires_at']
if expires ~= cjson.null and (type(expires) ~= 'number' or expires <= now) then return {pair[1], pair[2]} end
local used = tonumber(pair[2])
if not used or now - used >= tonumber(ARGV[2]) then redis.call('HSET', KEYS[1], 'u', ARGV[1]) end
local out = {pair[1], pair[2], 1}
local own = rec['rate_limit']
if own ~= cjson.null and own ~= '' then return out end
local base = ARGV[5] .. rec['id']
local over = false
for i = 8, #ARGV - 1, 2 do
  local key = base .. ARGV[i]
  local count = redis.call('INCRBY', key, 1)
  if count == 1 then redis.call('EXPIRE', key, ARGV[i + 1]) end
  local amount = tonumber(string.match(ARGV[i], '^/(%d+)/'))
  if amount and count > amount then over = true end
  out[#out + 1] = count
  out[#out + 1] = redis.call('PTTL', key)
end
local cost = tonumber(ARGV[7])
if cost and cost > 0 and not over and type(rec['quota']) == 'table' then
  local spent = spend(rec['quota'], KEYS[1], now, cost)
  if spent then
    out[#out + 1] = spent[1]
    out[#out + 1] = spent[2]
  end
end
return out
"""
)

# KEYS: the seq counter, the all/owner/target indexes ('' when absent). ARGV: the event JSON with
# "seq": 0 first, the event key prefix. The event and its index entries land together.
_AUDIT_ADD = """
local seq = redis.call('INCR', KEYS[1])
local data = string.gsub(ARGV[1], '"seq": 0', '"seq": ' .. seq, 1)
redis.call('SET', ARGV[2] .. seq, data)
for i = 2, #KEYS do
  if KEYS[i] ~= '' then redis.call('ZADD', KEYS[i], seq, seq) end
end
return seq
"""

# KEYS[1]: the index to walk. ARGV: event key prefix, before seq ('' = none), limit, then the
# owner, action and target_id to match ('' = any). Walks newest first in pages until ``limit`` match.
_AUDIT_LIST = """
local limit = tonumber(ARGV[3])
local max = ARGV[2] == '' and '+inf' or '(' .. ARGV[2]
local out, offset = {}, 0
while #out < limit do
  local seqs = redis.call('ZREVRANGEBYSCORE', KEYS[1], max, '-inf', 'LIMIT', offset, 200)
  if #seqs == 0 then break end
  offset = offset + #seqs
  for _, seq in ipairs(seqs) do
    local data = redis.call('GET', ARGV[1] .. seq)
    if data then
      local ev = cjson.decode(data)
      if (ARGV[4] == '' or ev['owner'] == ARGV[4]) and (ARGV[5] == '' or ev['action'] == ARGV[5])
          and (ARGV[6] == '' or ev['target_id'] == ARGV[6]) then
        out[#out + 1] = data
        if #out >= limit then break end
      end
    end
  end
end
return out
"""

# KEYS[1]: the all index. ARGV: event key prefix, owner index prefix, target index prefix, cutoff
# (epoch seconds), limit. Deletes the oldest events created before the cutoff with their index entries.
_AUDIT_PURGE = """
local seqs = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[5]) - 1)
local n = 0
for _, seq in ipairs(seqs) do
  local data = redis.call('GET', ARGV[1] .. seq)
  if data then
    local ev = cjson.decode(data)
    if tonumber(ev['created_at']) >= tonumber(ARGV[4]) then break end
    if ev['owner'] ~= cjson.null then redis.call('ZREM', ARGV[2] .. ev['owner'], seq) end
    if ev['target_id'] ~= cjson.null then redis.call('ZREM', ARGV[3] .. ev['target_id'], seq) end
    redis.call('DEL', ARGV[1] .. seq)
    n = n + 1
  end
  redis.call('ZREM', KEYS[1], seq)
end
return n
"""

# ARGV: usage key prefix, then per bucket: key id, hour, allowed, forbidden, rate-limited, the number of
# scopes, then (scope, count) pairs. Adds to the hashes and indexes them, all at once.
_USAGE_ADD = """
local p, i = ARGV[1], 2
while i <= #ARGV do
  local id, hour = ARGV[i], ARGV[i + 1]
  local bucket = p .. id .. ':' .. hour
  redis.call('HINCRBY', bucket, 'a', ARGV[i + 2])
  redis.call('HINCRBY', bucket, 'f', ARGV[i + 3])
  redis.call('HINCRBY', bucket, 'r', ARGV[i + 4])
  local n = tonumber(ARGV[i + 5])
  for j = 0, n - 1 do
    redis.call('HINCRBY', bucket, 's:' .. ARGV[i + 6 + 2 * j], ARGV[i + 7 + 2 * j])
  end
  redis.call('ZADD', p .. 'idx:' .. id, hour, hour)
  redis.call('ZADD', p .. 'hours', hour, hour .. ':' .. id)
  i = i + 6 + 2 * n
end
return 1
"""

# ARGV: usage key prefix, key id, first hour. Reply: hour, then the HGETALL of its hash, per hour.
_USAGE_LIST = """
local p, id = ARGV[1], ARGV[2]
local out = {}
for _, hour in ipairs(redis.call('ZRANGEBYSCORE', p .. 'idx:' .. id, ARGV[3], '+inf')) do
  out[#out + 1] = hour
  out[#out + 1] = redis.call('HGETALL', p .. id .. ':' .. hour)
end
return out
"""

# KEYS[1]: the global hour index. ARGV: usage key prefix, cutoff hour, limit. Members are "<hour>:<id>".
_USAGE_PURGE = """
local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, member in ipairs(members) do
  local sep = string.find(member, ':', 1, true)
  local hour, id = string.sub(member, 1, sep - 1), string.sub(member, sep + 1)
  redis.call('DEL', ARGV[1] .. id .. ':' .. hour)
  redis.call('ZREM', ARGV[1] .. 'idx:' .. id, hour)
  redis.call('ZREM', KEYS[1], member)
end
return #members
"""

_ACTIVITY_SCRIPTS = {
    "audit_add": _AUDIT_ADD,
    "audit_list": _AUDIT_LIST,
    "audit_purge": _AUDIT_PURGE,
    "usage_add": _USAGE_ADD,
    "usage_list": _USAGE_LIST,
    "usage_purge": _USAGE_PURGE,
}

#: Most decoded records :meth:`RedisStorage.find` keeps (then the cache starts over).
MAX_CACHED_RECORDS = 4096

#: Optimistic retries of one update before giving up with StorageError.
_CAS_ATTEMPTS = 20


def _dump(record: KeyRecord) -> str:
    """The JSON of ``d``: every field but ``last_used_at``."""
    return json.dumps(
        {
            "seq": record.seq,
            "id": record.id,
            "name": record.name,
            "type": record.type,
            "lookup": record.lookup,
            "prefix": record.prefix,
            "scopes": list(record.scopes),
            "environment": record.environment,
            "owner": record.owner,
            "created_at": to_epoch(record.created_at),
            "expires_at": to_epoch(record.expires_at),
            "revoked_at": to_epoch(record.revoked_at),
            "metadata": record.metadata,
            "rate_limit": record.rate_limit,
            "public_key": record.public_key,
            "disabled_at": to_epoch(record.disabled_at),
            "allowed_ips": list(record.allowed_ips),
            "canary": record.canary,
            "quota": None if record.quota is None else _quota_dump(record.quota),
        }
    )


def _quota_dump(quota: Quota) -> dict[str, Any]:
    return {"limit": quota.limit, "refill_amount": quota.refill_amount, "refill_interval": quota.refill_interval}


def _quota_counter(quota: Quota | None, since: datetime) -> tuple[str, str]:
    """``q`` and ``qt`` of a new or re-set quota as script arguments; ``('-', '')`` for none."""
    remaining, refilled_at = quota_state(quota, since)
    if remaining is None or refilled_at is None:
        return "-", ""
    return str(remaining), f"{refilled_at:.6f}"


def _load(pair: list[bytes | None] | None) -> KeyRecord | None:
    """A record from ``[d, u]`` (or ``[d, u, q, qt]``, with the quota counter) as HMGET returns them.

    Fields added in 0.2 take their defaults in a record written by 0.1.
    """
    if not pair or pair[0] is None:
        return None
    data = json.loads(pair[0])
    used = pair[1]
    quota = None
    spec = data.get("quota")
    if spec:
        left = pair[2] if len(pair) > 2 else None
        at = pair[3] if len(pair) > 3 else None
        quota = Quota(
            spec["limit"],
            spec["refill_amount"],
            spec["refill_interval"],
            remaining=None if left is None else int(left),
            refilled_at=None if at is None else datetime.fromtimestamp(float(at), UTC),
        )
    return KeyRecord(
        seq=data["seq"],
        id=data["id"],
        name=data["name"],
        type=data["type"],
        lookup=data["lookup"],
        prefix=data["prefix"],
        scopes=tuple(data["scopes"]),
        environment=data["environment"],
        owner=data["owner"],
        created_at=datetime.fromtimestamp(data["created_at"], UTC),
        expires_at=from_epoch(data["expires_at"]),
        revoked_at=from_epoch(data["revoked_at"]),
        last_used_at=None if used is None else datetime.fromtimestamp(float(used), UTC),
        metadata=data["metadata"],
        rate_limit=data["rate_limit"],
        public_key=data["public_key"],
        disabled_at=from_epoch(data.get("disabled_at")),
        allowed_ips=tuple(data.get("allowed_ips") or ()),
        canary=bool(data.get("canary", False)),
        quota=quota,
    )


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


def parse_info(reply: bytes | str) -> dict[str, str]:
    """``INFO``'s ``field:value`` lines as a dict (section headers and blank lines skipped)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


def split_uri(uri: str) -> tuple[str, str]:
    """Separate our ``key_prefix`` query parameter from a Redis URI (``valkey://`` reads as ``redis://``)."""
    parts = urlsplit(uri)
    if parts.scheme in _VALKEY:
        parts = parts._replace(scheme=_VALKEY[parts.scheme])
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "key_prefix"), "gridauth")
    rest = urlencode([(k, v) for k, v in query if k != "key_prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisStorage(Storage):
    """Keys on a Redis server; revocations are seen by every process at once."""

    schemes: ClassVar[tuple[str, ...]] = ("redis", "rediss", "valkey", "valkeys")
    counts_in_lookup = True
    #: ``update`` publishes the changed lookup from its compare-and-set script, in the same write.
    pushes_own_changes = frozenset({"update"})
    #: The server run (INFO ``run_id``) this process last connected to, and when it started
    #: (see :meth:`started_at`); set by :meth:`_on_connect`, on clients built with it.
    _run_id: str | None = None
    _started: float | None = None

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
            with self._listen_lock:
                if self._listening != os.getpid():
                    self._listening = os.getpid()
                    self._listener = threading.Thread(target=self._listen, name="gridauth-redis-listen", daemon=True)
                    self._listener.start()

    def _listen(self) -> None:
        """Subscribe to the change channel; while the subscription is down the cache is off (empty)."""
        cache, pid = self._key_cache, os.getpid()
        channel = self.key("changes").encode()
        while cache is not None and self._listening == pid:
            pubsub = self.client.pubsub()
            try:
                pubsub.subscribe(channel)
                while self._listening == pid:
                    message = pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        cache.set_live(True)
                    elif message["type"] == "message":
                        cache.evict(message["data"].decode())
            except (self._redis_module.RedisError, OSError, ValueError) as exc:  # ValueError: a socket closed under it
                logger.warning("key cache off: the Redis change feed failed (%s); reconnecting", type(exc).__name__)
            finally:
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
        for _ in range(_CAS_ATTEMPTS):
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

    def spend_quota(self, record: KeyRecord, cost: int, now: datetime) -> QuotaUse | None:
        """One script: refill lazily and take the units, or take none, atomically."""
        reply = self._spend(keys=[self._rec_key(record.lookup)], args=[repr(now.timestamp()), cost])
        if not reply:
            return None
        return QuotaUse(bool(int(reply[0])), int(reply[1]))

    def touch(self, record: KeyRecord, when: datetime) -> None:
        """One ``HSET`` of ``u``: it never rewrites ``d``, so it cannot undo a revocation."""
        self.client.hset(self._rec_key(record.lookup), "u", repr(when.timestamp()))

    def add_session(self, session_id: str, subject: str, expires_at: datetime) -> None:
        """``SET`` the session (expiring at ``expires_at``) and add it to its subject's set.

        Single-key commands only, so a cluster can place the two keys apart.
        """
        at = max(1, int(expires_at.timestamp() * 1000))
        index = self.key("sessions", subject)
        self.client.set(self.key("session", session_id), subject.encode("utf-8"), pxat=at)
        self.client.sadd(index, session_id)
        # The set lives as long as its newest session; ended ids in it are harmless.
        left = int(self.client.pttl(index))
        if left < 0 or left < at - int(time.time() * 1000):
            self.client.pexpireat(index, at)

    def session_subject(self, session_id: str) -> str | None:
        """One ``GET``: Redis drops an expired session itself."""
        value = self.client.get(self.key("session", session_id))
        return None if value is None else bytes(value).decode("utf-8")

    def end_session(self, session_id: str) -> None:
        """``DEL`` the session."""
        self.client.delete(self.key("session", session_id))

    def end_sessions(self, subject: str) -> int:
        """``DEL`` every session in the subject's set, then the set."""
        index = self.key("sessions", subject)
        ended = 0
        for member in self.client.smembers(index):
            sid = bytes(member).decode("utf-8")
            ended += int(self.client.delete(self.key("session", sid)))
        self.client.delete(index)
        return ended

    def claim_once(self, token: str, ttl: float) -> bool:
        """``SET NX PX``: exactly one process wins a given token."""
        return bool(self.client.set(self.key("seen", token), b"1", nx=True, px=max(1, int(ttl * 1000))))

    def ping(self) -> None:
        """``PING`` the server."""
        self.client.ping()

    def started_at(self) -> float | None:
        """When the server this process is connected to started, learnt on connecting (no round trip).

        After a failover to another server (a new ``run_id`` where another was
        seen), the moment this process noticed counts as the start: the new
        server's replay cache may lack the last claims of the old one.
        """
        return self._started

    def _on_connect(self, conn: Any) -> None:
        """Every new connection: the usual handshake, then one ``INFO`` to learn the server's run and start.

        A restarted server drops every connection, so the first command after a
        restart runs on a new connection and this runs first: no request pays a
        round trip for it, and none is served before the new start is known.
        """
        conn.on_connect()
        try:
            conn.send_command("INFO")
            reply = conn.read_response()
        except self._redis_module.ResponseError:
            # INFO refused (an ACL without +info, a renamed command): start unknown, said once.
            if self._run_id is None:
                self._run_id = ""
                logger.warning(
                    "Redis at %s refuses INFO: replays of signed requests after a restart from an older"
                    " snapshot cannot be refused; allow INFO for this user",
                    self._where(conn),
                )
            return
        info = parse_info(reply)
        run_id = info.get("run_id", "")
        if run_id == self._run_id:
            return
        try:
            started = time.time() - int(info.get("uptime_in_seconds", "0"))
        except ValueError:
            started = time.time()
        if self._run_id:  # another server, or the same one restarted: noticed now
            started = max(started, time.time())
            logger.warning("Redis at %s is a new server run (restarted or failed over)", self._where(conn))
        self._started = started
        previous, self._run_id = self._run_id, run_id
        if previous is None and info.get("aof_enabled", "0") == "0":
            logger.warning(
                "Redis at %s keeps no append-only file (appendonly no): a crash restores the last snapshot,"
                " which can bring revoked keys back and forget recent changes. Turn on appendonly, or use"
                " PostgreSQL, the store of record",
                self._where(conn),
            )

    @staticmethod
    def _where(conn: Any) -> str:
        # Host and port only: never the URL, which may hold a password.
        host, port = getattr(conn, "host", None), getattr(conn, "port", None)
        return f"{host}:{port}" if host else "the configured server"

    def close(self) -> None:
        """Drop pooled connections (and stop the change listener, if any)."""
        self._stop_listener()
        self.client.connection_pool.disconnect()

    # -- audit log and usage -------------------------------------------------

    def activity_key(self, *parts: str) -> str:
        """The name of an audit or usage key (a cluster puts them all in one slot)."""
        return self.key(*parts)

    def _activity(self, name: str) -> Any:
        """One of the audit and usage scripts, registered on the current client once."""
        client = self.client
        cached = self.__dict__.get("_activity_scripts")
        if cached is None or cached[0] is not client:
            cached = (client, {n: client.register_script(src) for n, src in _ACTIVITY_SCRIPTS.items()})
            self.__dict__["_activity_scripts"] = cached
        return cached[1][name]

    def add_audit_event(self, event: AuditEvent) -> AuditEvent:
        """Store the event and its index entries in one script."""
        k = self.activity_key
        keys = [
            k("audit", "seq"),
            k("audit", "all"),
            "" if event.owner is None else k("audit", "owner", event.owner),
            "" if event.target_id is None else k("audit", "target", event.target_id),
        ]
        data = json.dumps(dataclasses.replace(event, seq=0).to_row())
        seq = int(self._activity("audit_add")(keys=[x for x in keys if x], args=[data, k("audit", "ev", "")]))
        return dataclasses.replace(event, seq=seq)

    def list_audit_events(
        self,
        owner: str | None,
        *,
        limit: int,
        before_seq: int | None = None,
        action: str | None = None,
        target_id: str | None = None,
    ) -> builtins.list[AuditEvent]:
        """Events newest first: the narrowest index is walked, the other filters applied in the script."""
        k = self.activity_key
        if target_id is not None:
            index = k("audit", "target", target_id)
        elif owner is not None:
            index = k("audit", "owner", owner)
        else:
            index = k("audit", "all")
        args = [
            k("audit", "ev", ""),
            "" if before_seq is None else str(before_seq),
            str(limit),
            owner or "",
            action or "",
            target_id or "",
        ]
        rows = self._activity("audit_list")(keys=[index], args=args)
        return [AuditEvent.from_row(json.loads(row)) for row in rows]

    def purge_audit_events(self, before: datetime, *, limit: int = 1000) -> int:
        """Delete the oldest events created before ``before`` (one script, at most ``limit``)."""
        k = self.activity_key
        args = [
            k("audit", "ev", ""),
            k("audit", "owner", ""),
            k("audit", "target", ""),
            repr(before.timestamp()),
            limit,
        ]
        return int(self._activity("audit_purge")(keys=[k("audit", "all")], args=args))

    def add_usage(self, counts: Sequence[UsageCount]) -> None:
        """``HINCRBY`` every count in one script: one round trip, all or nothing."""
        if not counts:
            return
        args: builtins.list[str | int] = [self.activity_key("usage", "")]
        for c in counts:
            args += [c.key_id, c.hour, c.allowed, c.forbidden, c.rate_limited, len(c.scopes)]
            for scope, n in c.scopes.items():
                args += [scope, n]
        self._activity("usage_add")(keys=[self.activity_key("usage", "hours")], args=args)

    def list_usage(self, key_id: str, *, since_hour: int) -> builtins.list[UsageCount]:
        """The key's hours from its index and their hashes, in one script."""
        reply = self._activity("usage_list")(
            keys=[self.activity_key("usage", "idx", key_id)], args=[self.activity_key("usage", ""), key_id, since_hour]
        )
        out = []
        for i in range(0, len(reply), 2):
            flat = reply[i + 1]
            values = {flat[j].decode(): int(flat[j + 1]) for j in range(0, len(flat), 2)}
            if not values:
                continue
            scopes = {name[2:]: n for name, n in values.items() if name.startswith("s:")}
            out.append(
                UsageCount(key_id, int(reply[i]), values.get("a", 0), values.get("f", 0), values.get("r", 0), scopes)
            )
        return out

    def purge_usage(self, before_hour: int, *, limit: int = 1000) -> int:
        """Delete buckets of hours before ``before_hour`` with their index entries (one script)."""
        args = [self.activity_key("usage", ""), before_hour, limit]
        return int(self._activity("usage_purge")(keys=[self.activity_key("usage", "hours")], args=args))
