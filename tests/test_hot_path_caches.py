"""The hot path's decode and principal caches never serve a key as it was before a change."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from flask_gridauth import get_state

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
