"""GridAuth(storage=factory): each app gets its own storage from the factory."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from flask_gridauth import GridAuth
from flask_gridauth.storage import Storage, storage_from_uri

from .conftest import TOKEN, bearer, create_key


def _app(tmp_path: Path, name: str) -> Flask:
    app = Flask(name, instance_path=str(tmp_path / name))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_RATELIMIT_ENABLED=False)
    app.add_url_rule("/items", "items", lambda: {"ok": True})
    return app


def test_two_apps_from_one_gridauth_have_two_storages(tmp_path: Path) -> None:
    """The factory is called once per app with that app; a key of one app is unknown to the other."""
    seen: list[Flask] = []

    def factory(app: Flask) -> Storage:
        seen.append(app)
        return storage_from_uri("memory://", instance_path=app.instance_path, timeout=2.0)

    auth = GridAuth(storage=factory)
    one, two = _app(tmp_path, "one"), _app(tmp_path, "two")
    auth.init_app(one)
    auth.init_app(two)
    assert seen == [one, two]
    assert auth.storage(one) is not auth.storage(two)
    _, raw = create_key(one, ["read"])
    assert one.test_client().get("/items", headers=bearer(raw)).status_code == 200
    assert two.test_client().get("/items", headers=bearer(raw)).status_code == 401


def test_a_storage_object_is_refused_with_a_hint(tmp_path: Path) -> None:
    """Passing a Storage instance (shared by every app) is a TypeError that says to pass a factory."""
    storage = storage_from_uri("memory://", instance_path=str(tmp_path), timeout=2.0)
    with pytest.raises(TypeError, match="factory"):
        GridAuth(storage=storage)  # type: ignore[arg-type]


def test_a_factory_that_returns_no_storage_is_refused(tmp_path: Path) -> None:
    """A factory must return a Storage; anything else fails at init_app."""
    with pytest.raises(TypeError, match="not a Storage"):
        GridAuth(_app(tmp_path, "bad"), storage=lambda app: "memory://")  # type: ignore[arg-type,return-value]
