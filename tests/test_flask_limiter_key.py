"""flask-limiter's own Limiter and decorators, counting per credential through ``gridauth_key``."""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask_limiter import Limiter

from flask_gridauth import GridAuth, gridauth_key, public

from .conftest import TOKEN, bearer, create_key


def _app(tmp_path: Any) -> Flask:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False)
    GridAuth(app)  # first: its hook authenticates before flask-limiter asks for the key
    limiter = Limiter(key_func=gridauth_key, app=app, storage_uri="memory://")

    @app.get("/items")
    @limiter.limit("2/minute")
    def items() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/open")
    @public
    @limiter.limit("1/minute")
    def open_route() -> dict[str, bool]:
        return {"ok": True}

    return app


def test_each_credential_has_its_own_flask_limiter_budget(tmp_path: Any) -> None:
    """Two keys from one address each get the decorator's 2/minute; the third call of one key is 429."""
    app = _app(tmp_path)
    client = app.test_client()
    _, first = create_key(app, ["read"])
    _, second = create_key(app, ["read"])
    assert [client.get("/items", headers=bearer(first)).status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/items", headers=bearer(second)).status_code for _ in range(2)] == [200, 200]


def test_public_route_counts_the_address(tmp_path: Any) -> None:
    """Without a principal the key is the client address, namespaced apart from credential ids."""
    app = _app(tmp_path)
    client = app.test_client()
    assert client.get("/open").status_code == 200
    assert client.get("/open", environ_base={"REMOTE_ADDR": "10.0.0.9"}).status_code == 200
    assert client.get("/open").status_code == 429
    with app.test_request_context("/open", environ_base={"REMOTE_ADDR": "10.0.0.9"}):
        assert gridauth_key() == "address:10.0.0.9"


def test_unauthenticated_request_never_reaches_flask_limiter(tmp_path: Any) -> None:
    """A request without a credential is refused by our hook (401) before any flask-limiter counter moves."""
    app = _app(tmp_path)
    client = app.test_client()
    assert [client.get("/items").status_code for _ in range(4)] == [401] * 4
    _, raw = create_key(app, ["read"])
    assert client.get("/items", headers=bearer(raw)).status_code == 200
