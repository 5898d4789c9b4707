"""GRIDAUTH_CACHE_TTL: found keys cached per process, changes pushed (SQLite, PostgreSQL, Redis)."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import redis

from flask_gridauth.errors import ConfigurationError
from flask_gridauth.records import utcnow
from flask_gridauth.storage import Storage, storage_from_uri
from flask_gridauth.storage.cache import KeyCache
from flask_gridauth.testing import make_record

from .conftest import bearer, build_app, create_key, prefixed_redis_uri, schema_postgres_uri

PUSHED = ("sqlite", "postgres", "redis")


def _poll(check: Callable[[], Any], deadline: float = 20.0) -> Any:
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result or time.monotonic() > end:
            return result
        time.sleep(0.01)


def _store_uris(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh store's URI on ``backend``; exhausting the iterator drops it (PostgreSQL schema, Redis prefix)."""
    if backend == "sqlite":
        return iter([f"sqlite:///{tmp_path}/cache.db"])
    if backend == "postgres":
        return schema_postgres_uri(str(request.getfixturevalue("postgres_server")))
    return prefixed_redis_uri(str(request.getfixturevalue("redis_server")))


@pytest.fixture
def store_uri(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """A fresh store's URI on the backend the test names (``indirect`` parametrisation), dropped after it."""
    yield from _store_uris(str(request.param), request, tmp_path)


@pytest.fixture(params=PUSHED)
def pair(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[tuple[Storage, Storage, str]]:
    """A cached handle and a plain one on the same store, and the backend's name."""
    backend = str(request.param)
    uris = _store_uris(backend, request, tmp_path)
    uri = next(uris)
    cached, plain = storage_from_uri(uri), storage_from_uri(uri)
    assert cached.enable_cache(30.0)
    yield cached, plain, backend
    cached.close()
    plain.close()
    for _ in uris:  # the generator's clean-up
        pass


def _live(storage: Storage) -> KeyCache:
    cache = storage._key_cache
    assert cache is not None
    storage.find("0" * 64)  # the first look-up starts the listener
    assert _poll(lambda: cache.live), "the push channel never came up"
    return cache


def test_unit_ttl_generation_and_channel() -> None:
    """Entries expire after the TTL, a read older than a change is not kept, and a down channel empties it."""
    now = [100.0]
    cache = KeyCache(10, clock=lambda: now[0], live=True)
    record = make_record()
    cache.put("a", record, cache.generation)
    assert cache.get("a") is record
    now[0] += 10
    assert cache.get("a") is None
    generation = cache.generation
    cache.evict("other")
    cache.put("a", record, generation)  # read before the eviction: not kept
    assert cache.get("a") is None
    cache.put("a", record, cache.generation)
    cache.set_live(False)
    assert cache.get("a") is None
    cache.put("a", record, cache.generation)
    assert cache.get("a") is None


def test_an_outage_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    """A feed retrying every 0.2 s logs one warning per outage (not per retry), and one when it is back."""
    cache = KeyCache(60, live=True)
    record = make_record()
    cache.put(record.lookup, record, cache.generation)
    with caplog.at_level("WARNING", logger="flask_gridauth"):
        for _ in range(5):
            cache.feed_failed("Redis", ConnectionError("refused by 10.0.0.1 password=hunter2"))
            assert not cache.live and cache.get(record.lookup) is None
        cache.set_live(True)
        cache.set_live(True)  # a re-subscribe while up is no outage's end
        cache.feed_failed("Redis", OSError())
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "key cache off: the Redis change feed failed (ConnectionError); reconnecting",
        "key cache on again: its change feed is back",
        "key cache off: the Redis change feed failed (OSError); reconnecting",
    ]


def test_hits_then_pushed_revocation(pair: tuple[Storage, Storage, str]) -> None:
    """A found key is answered from the cache; a revocation made elsewhere reaches it by push."""
    cached, plain, _ = pair
    cache = _live(cached)
    record = plain.add(make_record())
    first = cached.find(record.lookup)
    assert first == record
    hits = cache.hits
    assert cached.find(record.lookup) is first and cache.hits == hits + 1
    revoked = utcnow().replace(microsecond=0)
    plain.update(record.id, {"revoked_at": revoked})
    seen = _poll(lambda: (r := cached.find(record.lookup)) is not None and r.revoked_at == revoked)
    assert seen, "the revocation never reached the cached handle"


def test_own_change_seen_at_once(pair: tuple[Storage, Storage, str]) -> None:
    """A change made through the cached handle itself is what its very next look-up returns."""
    cached, plain, _ = pair
    _live(cached)
    record = plain.add(make_record())
    assert cached.find(record.lookup) == record
    cached.update(record.id, {"scopes": ("read",)})
    found = cached.find(record.lookup)
    assert found is not None and found.scopes == ("read",)


def test_touch_refreshes_the_cached_record(pair: tuple[Storage, Storage, str]) -> None:
    """Recording a use updates the cached record, so the next request does not record it again."""
    cached, plain, _ = pair
    _live(cached)
    record = plain.add(make_record())
    found = cached.find(record.lookup)
    assert found is not None
    when = utcnow().replace(microsecond=0)
    cached.touch(found, when)
    again = cached.find(record.lookup)
    assert again is not None and again.last_used_at == when


def _kill_listener(backend: str, storage: Storage) -> None:
    if backend == "postgres":
        with psycopg.connect(storage.conninfo, autocommit=True) as conn:  # type: ignore[attr-defined]
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE %s",
                (f'LISTEN "{storage.channel}"%',),  # type: ignore[attr-defined]
            )
    else:
        client = redis.Redis.from_url(storage.url)  # type: ignore[attr-defined]
        client.client_kill_filter(_type="pubsub")
        client.close()


@pytest.mark.parametrize("store_uri", ("postgres", "redis"), indirect=True)
def test_channel_down_empties_cache_and_misses_nothing(store_uri: str) -> None:
    """When the push connection dies the cache empties, stays off, and comes back clean: nothing stale."""
    uri = store_uri
    cached, plain = storage_from_uri(uri), storage_from_uri(uri)
    try:
        assert cached.enable_cache(30.0)
        cache = _live(cached)
        record = plain.add(make_record())
        assert cached.find(record.lookup) == record
        generation = cache.generation
        _kill_listener("postgres" if uri.startswith("postgresql") else "redis", cached)
        assert _poll(lambda: cache.generation > generation), "the cache was not emptied"
        plain.update(record.id, {"name": "changed while the channel was down"})  # its push may be lost
        assert _poll(lambda: cache.live)
        found = cached.find(record.lookup)
        assert found is not None and found.name == "changed while the channel was down"
    finally:
        cached.close()
        plain.close()


def test_app_revocation_reaches_other_app(tmp_path: Any) -> None:
    """With GRIDAUTH_CACHE_TTL on SQLite, a key revoked by another app is refused on the next request."""
    uri = f"sqlite:///{tmp_path}/shared.db"
    serving = build_app(str(tmp_path / "a"), GRIDAUTH_STORAGE_URI=uri, GRIDAUTH_CACHE_TTL=60)
    managing = build_app(str(tmp_path / "b"), GRIDAUTH_STORAGE_URI=uri)
    record, raw = create_key(managing)
    client = serving.test_client()
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    cache = serving.extensions["gridauth"].storage._key_cache
    assert cache is not None and cache.hits >= 1
    with managing.app_context():
        managing.extensions["gridauth"].keys.revoke(record.id)
    assert client.get("/items", headers=bearer(raw)).status_code == 401


@pytest.mark.parametrize("value", (-1, "10", True, 10**6))
def test_bad_cache_ttl_refused(tmp_path: Any, value: Any) -> None:
    """GRIDAUTH_CACHE_TTL must be seconds from 0 to a day."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_CACHE_TTL"):
        build_app(str(tmp_path), GRIDAUTH_CACHE_TTL=value)


def test_memory_has_no_cache(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """memory:// needs no cache: the setting is ignored with a warning naming the backend."""
    build_app(str(tmp_path), GRIDAUTH_CACHE_TTL=5)
    assert "MemoryStorage cannot push changes" in caplog.text


def _memory_with_cache() -> tuple[Storage, KeyCache]:
    """A memory store with a live key cache put in by hand: no listener, so no push can race the test."""
    storage = storage_from_uri("memory://")
    cache = KeyCache(30, live=True)
    storage._key_cache = cache
    return storage, cache


def test_use_recorded_after_a_revocation_does_not_bring_the_key_back() -> None:
    """A request that found a key before its revocation records its use after: the cache keeps the revocation."""
    storage, _ = _memory_with_cache()
    record = storage.add(make_record())
    found = storage.find(record.lookup)  # request A finds the key (it is cached)
    assert found is not None and found.revoked_at is None
    storage.update(record.id, {"revoked_at": utcnow()})  # revoked meanwhile: the cache was emptied
    again = storage.find(record.lookup)  # request B reads the revoked key: cached
    assert again is not None and again.revoked_at is not None
    storage.touch(found, utcnow())  # request A records its use with the record it read before
    after = storage.find(record.lookup)
    assert after is not None and after.revoked_at is not None, "a stale record replaced the revoked one"


class _RacingEntries(dict[str, Any]):
    """The cache's entries, with a pushed eviction landing right after ``used`` read one, if anything lets it."""

    def __init__(self, cache: KeyCache, lookup: str) -> None:
        super().__init__()
        self.cache, self.lookup, self.armed, self.landed = cache, lookup, False, False

    def get(self, key: str, default: Any = None) -> Any:
        value = super().get(key, default)
        if self.armed and key == self.lookup:
            self.armed = False
            # The listener thread evicts under the cache's lock: it gets in now only if the reader does not
            # hold it (else it waits, and lands after the write).
            if not self.cache._lock.locked():
                self.cache.evict(self.lookup)
                self.landed = True
        return value


def test_eviction_between_read_and_write_of_a_use_is_not_undone() -> None:
    """An eviction pushed while ``used`` refreshes the entry is never overwritten by the refresh."""
    storage, cache = _memory_with_cache()
    record = storage.add(make_record())
    found = storage.find(record.lookup)
    assert found is not None
    entries = _RacingEntries(cache, record.lookup)
    entries.update(cache._entries)
    cache._entries = entries
    entries.armed = True
    storage.touch(found, utcnow())
    if not entries.landed:  # kept out while the entry was refreshed: it lands now
        cache.evict(record.lookup)
    assert cache.get(record.lookup) is None, "the refresh put back an entry an eviction had removed"


def test_unread_push_bytes_bypass_the_cache() -> None:
    """While the push connection holds bytes the listener has not read, no look-up is answered from the cache."""
    ours, theirs = socket.socketpair()
    try:
        cache = KeyCache(30, live=False)
        cache.set_live(True, feed=ours.fileno())
        record = make_record()
        cache.put("a", record, cache.generation)
        assert cache.get("a") is record
        theirs.send(b"a change")
        assert cache.get("a") is None
        ours.recv(64)  # the listener read it
        assert cache.get("a") is record
    finally:
        ours.close()
        theirs.close()
    assert cache.get("a") is None  # a closed feed: the cache is not trusted


@pytest.mark.parametrize("store_uri", ("postgres", "redis"), indirect=True)
def test_change_waiting_for_a_busy_listener_is_seen(store_uri: str) -> None:
    """A revocation that reached the host while the listener thread is held up is seen by the next look-up."""
    uri = store_uri
    cached, plain = storage_from_uri(uri), storage_from_uri(uri)
    release = threading.Event()
    try:
        assert cached.enable_cache(30.0)
        cache = _live(cached)
        record, other = plain.add(make_record()), plain.add(make_record())
        assert cached.find(record.lookup) == record
        held = threading.Event()
        evict = cache.evict

        def held_evict(lookup: str) -> None:  # the listener thread, stuck (no CPU, no GIL) after one change
            held.set()
            release.wait(30)
            evict(lookup)

        cache.evict = held_evict  # type: ignore[method-assign]
        plain.update(other.id, {"name": "first change"})
        assert held.wait(20), "the first change never reached the listener"
        assert cached.find(record.lookup) == record  # nothing waiting: still answered from the cache
        plain.update(record.id, {"revoked_at": utcnow()})
        feed = cache._feed
        assert feed is not None
        poller = select.poll()
        poller.register(feed, select.POLLIN)
        assert poller.poll(20_000), "the revocation never reached the push connection"
        found = cached.find(record.lookup)
        assert found is not None and found.revoked_at is not None, "a revoked key was answered from the cache"
    finally:
        release.set()
        cached.close()
        plain.close()


@pytest.mark.parametrize("store_uri", ("postgres", "redis"), indirect=True)
def test_cache_inherited_through_a_fork_is_not_used(store_uri: str) -> None:
    """A child process's first look-up empties the cache it inherited and keeps it off until its own channel is up."""
    uri = store_uri
    cached = storage_from_uri(uri)
    try:
        assert cached.enable_cache(30.0)
        cache = _live(cached)
        record = cached.add(make_record())
        listener = cached._listener  # type: ignore[attr-defined]
        cached._listening = 0  # type: ignore[attr-defined]  # a forked child has no listener thread
        listener.join(10)
        cache.set_live(True)  # ... but the parent's cache: live, with an entry
        cache.put(record.lookup, record, cache.generation)
        cached._listen = lambda: None  # type: ignore[attr-defined]  # the child's channel does not come up here
        cached._listening = -1  # type: ignore[attr-defined]  # the parent's pid
        cached._cache_check()  # the child's first look-up
        assert not cache.live
        assert cache.get(record.lookup) is None, "a child answered from the cache its parent filled"
    finally:
        cached.close()
