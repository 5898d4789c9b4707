"""Redis storage: keys shared by every process and host that uses the same server.

Layout, all under one prefix (``gridauth`` unless ``?key_prefix=`` says otherwise):

- ``<p>:rec:<lookup>``  hash: one key record, found by its SHA-256 or fingerprint
  in one ``HGETALL`` (the hot path);
- ``<p>:id:<id>``       string: the lookup of a key id;
- ``<p>:owner:<owner>`` and ``<p>:all``: sorted sets of ids scored by ``seq``;
- ``<p>:seq``           the creation counter;
- ``<p>:seen:<token>``  the replay cache (``SET NX EX``).

Fields live in a hash so that a revocation and a ``last_used_at`` write never
overwrite each other. Multi-key operations run as Lua scripts, so they are
atomic; the layout therefore assumes one Redis server, not a cluster.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import StorageError
from ..records import KeyRecord
from .base import KeyExistsError, Storage, check_changes

if TYPE_CHECKING:
    import redis

_ADD = """
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local seq = redis.call('INCR', KEYS[3])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(ARGV, 3))
redis.call('SET', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[4], seq, ARGV[2])
redis.call('ZADD', KEYS[5], seq, ARGV[2])
return seq
"""

_GET = """
local lookup = redis.call('GET', KEYS[1])
if not lookup then return {} end
return redis.call('HGETALL', ARGV[1] .. ':rec:' .. lookup)
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
  if lookup then out[#out + 1] = redis.call('HGETALL', ARGV[1] .. ':rec:' .. lookup) end
end
return out
"""

_UPDATE = """
local lookup = redis.call('GET', KEYS[1])
if not lookup then return {} end
local rec = ARGV[1] .. ':rec:' .. lookup
local n = tonumber(ARGV[2])
for i = 0, n - 1 do
  local field, value = ARGV[3 + 2 * i], ARGV[4 + 2 * i]
  if value == '' then redis.call('HDEL', rec, field) else redis.call('HSET', rec, field, value) end
end
return redis.call('HGETALL', rec)
"""

_TIME_FIELDS = ("created_at", "expires_at", "revoked_at", "last_used_at")


def _encode(name: str, value: Any) -> str:
    """A field's value as stored; ``''`` means absent."""
    if value is None:
        return ""
    if name in _TIME_FIELDS:
        return repr(value.timestamp())
    if name in ("scopes", "metadata"):
        return json.dumps(list(value) if name == "scopes" else value)
    return str(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode(flat: list[bytes]) -> KeyRecord | None:
    if not flat:
        return None
    fields = {_text(flat[i]): _text(flat[i + 1]) for i in range(0, len(flat), 2)}

    def when(name: str) -> datetime | None:
        raw = fields.get(name)
        return None if not raw else datetime.fromtimestamp(float(raw), UTC)

    return KeyRecord(
        id=fields["id"],
        name=fields["name"],
        type=fields["type"],  # type: ignore[arg-type]
        lookup=fields["lookup"],
        prefix=fields["prefix"],
        scopes=tuple(json.loads(fields["scopes"])),
        environment=fields["environment"],
        owner=fields["owner"],
        created_at=datetime.fromtimestamp(float(fields["created_at"]), UTC),
        expires_at=when("expires_at"),
        revoked_at=when("revoked_at"),
        last_used_at=when("last_used_at"),
        metadata=json.loads(fields.get("metadata") or "{}"),
        rate_limit=fields.get("rate_limit") or None,
        public_key=fields.get("public_key") or None,
        seq=int(fields["seq"]),
    )


def _hash_items(record: KeyRecord) -> list[str]:
    items: list[str] = []
    for name in (
        "id", "name", "type", "lookup", "prefix", "scopes", "environment", "owner",
        "created_at", "expires_at", "revoked_at", "last_used_at", "metadata", "rate_limit", "public_key",
    ):  # fmt: skip
        value = _encode(name, getattr(record, name))
        if value != "":
            items += [name, value]
    return items


def split_uri(uri: str) -> tuple[str, str]:
    """Separate our ``key_prefix`` query parameter from a Redis URI."""
    parts = urlsplit(uri)
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = next((v for k, v in query if k == "key_prefix"), "gridauth")
    rest = urlencode([(k, v) for k, v in query if k != "key_prefix"])
    return urlunsplit(parts._replace(query=rest)), prefix


class RedisStorage(Storage):
    """Keys on a Redis server; revocations are seen by every process at once."""

    schemes = ("redis", "rediss")

    def __init__(self, uri: str, *, timeout: float = 2.0) -> None:
        try:
            import redis as redis_module
        except ImportError:  # pragma: no cover - depends on the install
            raise ImportError("Redis storage needs the redis extra: pip install 'flask-gridauth[redis]'") from None
        self._redis_module = redis_module
        url, self.prefix = split_uri(uri)
        # redis-py connects lazily: building the client never contacts the server.
        self.client: redis.Redis = redis_module.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, health_check_interval=30
        )
        self.url = url
        self._add = self.client.register_script(_ADD)
        self._get = self.client.register_script(_GET)
        self._list = self.client.register_script(_LIST)
        self._update = self.client.register_script(_UPDATE)

    def key(self, *parts: str) -> str:
        """A Redis key under this storage's prefix."""
        return ":".join((self.prefix, *parts))

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except self._redis_module.RedisError as exc:
            raise StorageError(f"Redis storage failed: {type(exc).__name__}") from None

    def add(self, record: KeyRecord) -> KeyRecord:
        """Store the hash, the id index and both listings atomically."""
        keys = [
            self.key("rec", record.lookup),
            self.key("id", record.id),
            self.key("seq"),
            self.key("owner", record.owner),
            self.key("all"),
        ]
        with self._errors():
            seq = int(self._add(keys=keys, args=[record.lookup, record.id, *_hash_items(record)]))
        if seq == 0:
            raise KeyExistsError(record.id)
        return dataclasses.replace(record, seq=seq)

    def get(self, key_id: str) -> KeyRecord | None:
        """The key with this id, in one round trip."""
        with self._errors():
            return _decode(self._get(keys=[self.key("id", key_id)], args=[self.prefix]))

    def find(self, lookup: str) -> KeyRecord | None:
        """The key with this hash or fingerprint: one ``HGETALL``."""
        with self._errors():
            # execute_command skips redis-py's dict-building response callback: one list, decoded once.
            flat = self.client.execute_command("HGETALL", self.key("rec", lookup))  # type: ignore[no-untyped-call]
        if not flat:
            return None
        if isinstance(flat, dict):  # RESP3 answers with a map
            flat = [x for pair in flat.items() for x in pair]
        return _decode(flat)

    def list(self, owner: str | None, *, limit: int, before_seq: int | None = None) -> list[KeyRecord]:
        """Keys newest first, from the owner's sorted set."""
        index = self.key("all") if owner is None else self.key("owner", owner)
        args = [self.prefix, "" if before_seq is None else str(before_seq), str(limit)]
        with self._errors():
            rows = self._list(keys=[index], args=args)
        return [r for r in map(_decode, rows) if r is not None]

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Set or clear fields of the hash, atomically, and return the result."""
        check_changes(changes)
        args: list[str] = [self.prefix, str(len(changes))]
        for name, value in changes.items():
            args += [name, _encode(name, value)]
        with self._errors():
            return _decode(self._update(keys=[self.key("id", key_id)], args=args))

    def touch(self, record: KeyRecord, when: datetime) -> None:
        """One ``HSET`` of ``last_used_at`` (records are never deleted, so it cannot resurrect one)."""
        with self._errors():
            self.client.hset(self.key("rec", record.lookup), "last_used_at", repr(when.timestamp()))

    def claim_once(self, token: str, ttl: float) -> bool:
        """``SET NX EX``: exactly one process wins a given token."""
        with self._errors():
            return bool(self.client.set(self.key("seen", token), b"1", nx=True, px=max(1, int(ttl * 1000))))

    def ping(self) -> None:
        """``PING`` the server."""
        with self._errors():
            self.client.ping()

    def close(self) -> None:
        """Drop pooled connections."""
        self.client.connection_pool.disconnect()
