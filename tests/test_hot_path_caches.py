"""The hot path's caches: never a key as it was before a change, one set per app, each bounded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from flask_gridauth import get_state
from flask_gridauth.bounded_cache import BoundedCache

from .conftest import bearer, build_app, create_key


def test_scope_change_applies_to_the_next_request(make_app: Callable[..., Flask]) -> None:
    """Narrowing a key's scopes is seen by its very next request, on every backend."""
    app = make_app()
    record, raw = create_key(app, scopes=["read", "reports:read"])
    client = app.test_client()
    assert client.get("/both", headers=bearer(raw)).status_code == 200
    assert client.get("/both", headers=bearer(raw)).status_code == 200  # served from the caches now
    with app.app_context():
        get_state(app).keys.update(record.id, scopes=["read"])
    assert client.get("/both", headers=bearer(raw)).status_code == 403


def test_revocation_by_another_app_is_seen_at_once(make_app: Callable[..., Flask], tmp_path: Any) -> None:
    """A key revoked through a second app on the same storage is refused by the first at once."""
    first = make_app()
    record, raw = create_key(first)
    client = first.test_client()
    for _ in range(3):
        assert client.get("/items", headers=bearer(raw)).status_code == 200
    uri = first.config["GRIDAUTH_STORAGE_URI"]
    if uri == "memory://":  # memory storage is per app: revoke through the same one
        second = first
    else:
        second = build_app(str(tmp_path / "second"), GRIDAUTH_STORAGE_URI=uri)
    with second.app_context():
        get_state(second).keys.revoke(record.id)
    assert client.get("/items", headers=bearer(raw)).status_code == 401


def test_cached_principal_belongs_to_its_own_key(make_app: Callable[..., Flask]) -> None:
    """Two keys used in turn each authenticate as themselves, however often they repeat."""
    app = make_app()
    _, alice = create_key(app, owner="alice")
    _, bob = create_key(app, owner="bob")
    client = app.test_client()
    owners = [client.get("/items", headers=bearer(k)).json["owner"] for k in (alice, bob) * 3]
    assert owners == ["alice", "bob"] * 3


def test_each_app_owns_its_caches(tmp_path: Any) -> None:
    """Two apps in one process have caches of their own: one app's requests leave the other's empty."""
    first = build_app(str(tmp_path / "first"))
    second = build_app(str(tmp_path / "second"))
    _, raw = create_key(first)
    assert first.test_client().get("/items", headers=bearer(raw)).status_code == 200
    one, two = get_state(first).caches, get_state(second).caches
    assert set(one) == set(two) and all(one[name] is not two[name] for name in one)
    assert len(one["expanded_scopes"]) == 1 and len(one["route_requirements"]) >= 1
    assert all(len(cache) == 0 for cache in two.values())


def test_every_cache_is_bounded(tmp_path: Any) -> None:
    """Every cache an app holds has a bound, and past it the oldest entries go first."""
    state = get_state(build_app(str(tmp_path)))
    assert state.caches and all(0 < cache.max_entries <= 10_000 for cache in state.caches.values())
    cache = state.caches["expanded_scopes"]
    for i in range(cache.max_entries + 3):
        state.expand([f"scope{i}"])
    assert len(cache) == cache.max_entries
    assert ("scope0",) not in cache and (f"scope{cache.max_entries + 2}",) in cache


def test_bounded_cache_forgets_on_request() -> None:
    """pop forgets one entry, clear all of them, and a cache of size 0 keeps nothing."""
    cache: BoundedCache[str, int] = BoundedCache("test", 2)
    cache.put("a", 1)
    cache.put("b", 2)
    cache.put("a", 3)  # replacing an entry evicts nothing
    assert (cache.get("a"), cache.get("b")) == (3, 2)
    cache.pop("a")
    assert cache.get("a") is None and cache.get("b") == 2
    cache.clear()
    assert len(cache) == 0 and cache.get("b", "gone") == "gone"  # get is still the live dict's
    off: BoundedCache[str, int] = BoundedCache("off", 0)
    assert off.put("a", 1) == 1 and len(off) == 0
