"""GRIDAUTH_CACHE_TTL on: every change to a key made through one app reaches another app's cache (push, not TTL)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_gridauth.storage import Storage
from flask_gridauth.storage.base import _NOT_KEY_WRITES, _READS, SCHEMES
from flask_gridauth.storage.cache import EVERY_KEY, KeyCache
from flask_gridauth.storage.memory import MemoryStorage
from flask_gridauth.testing import make_record

from .conftest import TOKEN, bearer, build_app, create_key, prefixed_redis_uri, schema_postgres_uri

ADMIN = bearer(TOKEN)
API = "/api/v1"
#: Far longer than any push takes, far shorter than the TTL: a change seen before it was pushed.
DEADLINE = 10.0
TTL = 600


def _poll(check: Callable[[], bool], deadline: float = DEADLINE) -> bool:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture(params=("sqlite", "postgres", "redis"))
def shared_uri(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """One store, on each backend that has a pushed key cache."""
    backend = str(request.param)
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/shared.db"
        return
    if backend == "postgres":
        uris = schema_postgres_uri(str(request.getfixturevalue("postgres_server")))
    else:
        uris = prefixed_redis_uri(str(request.getfixturevalue("redis_server")))
    yield next(uris)
    for _ in uris:  # the generator's clean-up
        pass


@pytest.fixture
def apps(shared_uri: str, tmp_path: Any) -> tuple[Flask, Flask]:
    """A serving app with the cache on, and a managing app (cache off) on the same store."""
    serving = build_app(str(tmp_path / "serving"), GRIDAUTH_STORAGE_URI=shared_uri, GRIDAUTH_CACHE_TTL=TTL)
    managing = build_app(str(tmp_path / "managing"), GRIDAUTH_STORAGE_URI=shared_uri)
    return serving, managing


def _cache(app: Flask) -> KeyCache:
    cache = app.extensions["gridauth"].storage._key_cache
    assert cache is not None
    return cache


def _warm(app: Flask, raw: str, path: str = "/items") -> KeyCache:
    """Serve ``raw`` until the answer comes from the cache (the push channel is up and the key cached)."""
    cache = _cache(app)
    client = app.test_client()

    def cached() -> bool:
        before = cache.hits
        assert client.get(path, headers=bearer(raw)).status_code == 200
        return cache.hits > before

    assert _poll(cached), "the key was never served from the cache"
    return cache


def _refused(app: Flask, raw: str, path: str = "/items", status: tuple[int, ...] = (401,)) -> bool:
    """Whether ``app`` refuses ``raw`` on ``path`` (polled until the deadline)."""
    client = app.test_client()
    return _poll(lambda: client.get(path, headers=bearer(raw)).status_code in status)


def test_revoke_reaches_the_other_app(apps: tuple[Flask, Flask]) -> None:
    """DELETE on one app: the other app, which served the key from its cache, refuses it."""
    serving, managing = apps
    record, raw = create_key(managing)
    _warm(serving, raw)
    assert managing.test_client().delete(f"{API}/api-keys/{record.id}", headers=ADMIN).status_code in (200, 204)
    assert _refused(serving, raw)


def test_disable_and_enable_reach_the_other_app(apps: tuple[Flask, Flask]) -> None:
    """POST /disable is refused by the other app's cache; POST /enable lets the key back in there."""
    serving, managing = apps
    record, raw = create_key(managing)
    _warm(serving, raw)
    manage = managing.test_client()
    assert manage.post(f"{API}/api-keys/{record.id}/disable", headers=ADMIN).status_code == 200
    assert _refused(serving, raw, status=(401, 403))
    assert manage.post(f"{API}/api-keys/{record.id}/enable", headers=ADMIN).status_code == 200
    client = serving.test_client()
    assert _poll(lambda: client.get("/items", headers=bearer(raw)).status_code == 200)


def test_rotate_ends_the_old_secret_on_the_other_app(apps: tuple[Flask, Flask]) -> None:
    """POST /rotate without grace: the other app refuses the old secret and takes the new one."""
    serving, managing = apps
    record, raw = create_key(managing)
    _warm(serving, raw)
    answer = managing.test_client().post(f"{API}/api-keys/{record.id}/rotate", json={"grace_period": 0}, headers=ADMIN)
    assert answer.status_code in (200, 201), answer.get_json()
    new_raw = answer.get_json()["raw_key"]
    assert new_raw != raw
    assert _refused(serving, raw)
    assert serving.test_client().get("/items", headers=bearer(new_raw)).status_code == 200


def test_scope_change_reaches_the_other_app(apps: tuple[Flask, Flask]) -> None:
    """PATCH scopes on one app: a route needing the dropped scope is refused by the other app's cache."""
    serving, managing = apps
    record, raw = create_key(managing, scopes=["read", "reports:read"])
    _warm(serving, raw, "/both")
    answer = managing.test_client().patch(f"{API}/api-keys/{record.id}", json={"scopes": ["read"]}, headers=ADMIN)
    assert answer.status_code == 200, answer.get_json()
    assert _refused(serving, raw, "/both", status=(403,))
    assert serving.test_client().get("/items", headers=bearer(raw)).status_code == 200


def test_leak_revocation_reaches_the_other_app(apps: tuple[Flask, Flask]) -> None:
    """POST /api-keys/revoke-leaked on one app: the other app refuses the key it had cached."""
    serving, managing = apps
    _, raw = create_key(managing)
    _warm(serving, raw)
    assert managing.test_client().post(f"{API}/api-keys/revoke-leaked", json={"keys": [raw]}).status_code == 202
    assert _refused(serving, raw)


def test_quota_is_never_served_from_the_cache(apps: tuple[Flask, Flask]) -> None:
    """Two apps, one cached: a quota of 3 lets exactly 3 requests through across both, then 429 on both."""
    serving, managing = apps
    _, raw = create_key(serving, quota={"limit": 3})
    passed = 0
    answers = []
    for app in (serving, managing, serving, managing, serving, managing):
        status = app.test_client().get("/items", headers=bearer(raw)).status_code
        answers.append(status)
        passed += status == 200
    assert passed == 3, answers
    assert answers[3:] == [429, 429, 429]
    assert _cache(serving).hits >= 1  # the record itself did come from the cache


def _backends() -> list[type[Storage]]:
    from flask_gridauth.storage import cluster, memory, postgres, redis, sentinel, sqlite  # noqa: F401 - registers

    return sorted(set(SCHEMES.values()), key=lambda cls: cls.__name__)


@pytest.mark.parametrize("backend", _backends(), ids=lambda cls: cls.__name__)
def test_every_key_write_pushes(backend: type[Storage]) -> None:
    """Every public method of every backend is a read, a write of no key, pushes its own change, or is pushed."""
    import inspect

    for name, _value in inspect.getmembers(backend, inspect.isfunction):
        if name.startswith("_") or name in _READS or name in _NOT_KEY_WRITES:
            continue
        # Only update() and mark_rotated() may change a key today; they push themselves where the backend
        # has a channel (or are pushed by the base class).
        assert name in ("update", "mark_rotated"), (
            f"{backend.__name__}.{name} changes a key: add it to a list in storage/base.py"
        )


class _Recording(MemoryStorage):
    """Memory storage that counts pushes and has a new key-writing method."""

    pushes = 0

    def _push_change(self) -> None:
        type(self).pushes += 1

    def rename_everything(self, name: str) -> int:
        """A key write added later and listed nowhere: pushed by the base class."""
        for record in self.list(None, limit=100):
            self.update(record.id, {"name": name})
        return 1


def test_a_new_key_write_is_pushed_without_being_listed() -> None:
    """A write method no list names is followed by a push to every process; reads and session writes are not."""
    storage = _Recording()
    storage.add(make_record())
    storage.get("key_missing")
    before = _Recording.pushes
    assert storage.rename_everything("x") == 1
    # update() pushes once per key (memory lists it as not pushing itself), rename_everything once more.
    assert _Recording.pushes == before + 2
    storage.find("0" * 64)
    storage.list(None, limit=10)
    assert _Recording.pushes == before + 2


def test_every_key_push_empties_the_cache() -> None:
    """A push naming EVERY_KEY drops every cached record (the change's key was not known)."""
    cache = KeyCache(60, live=True)
    cache.put("a", make_record(), cache.generation)
    cache.put("b", make_record(), cache.generation)
    cache.evict(EVERY_KEY)
    assert cache.get("a") is None and cache.get("b") is None
    assert cache.pushed == 1
