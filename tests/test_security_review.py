"""Regression tests for the security review: each one failed before its fix."""

from __future__ import annotations

import io
import json
import time
from typing import Any

import pytest
from flask import Flask, request
from werkzeug.test import EnvironBuilder

from flask_gridauth import public, require_any_scope, require_scope
from flask_gridauth.blueprint import MAX_BODY
from flask_gridauth.credentials.jwks import JWKSError, parse_jwks
from flask_gridauth.scopes import authenticated

from .conftest import TOKEN, bearer, build_app, create_key
from .jwks_server import JWKSServer, SigningKey, rsa_key

# -- route marks: OPTIONS served by the view, @public stacked with scopes, HEAD ------------------------------------


def _marked_app(tmp_path: Any, **config: Any) -> tuple[Flask, list[str]]:
    """A test app with views whose marks combine oddly; the list records every view that ran."""
    app = build_app(str(tmp_path / "instance"), **config)
    ran: list[str] = []

    @app.route("/purge", methods=["DELETE", "OPTIONS"])
    @require_scope("admin")
    def purge() -> dict[str, Any]:
        ran.append("purge:" + request.method)
        return {"purged": True}

    @app.route("/any-options", methods=["GET", "OPTIONS"])
    @require_any_scope("admin")
    def any_options() -> dict[str, Any]:
        ran.append("any_options")
        return {"ok": True}

    @app.route("/me-options", methods=["GET", "OPTIONS"])
    @authenticated
    def me_options() -> dict[str, Any]:
        ran.append("me_options")
        return {"ok": True}

    @app.get("/scope-over-public")
    @require_scope("admin")
    @public
    def scope_over_public() -> dict[str, Any]:
        ran.append("scope_over_public")
        return {"ok": True}

    @app.get("/public-over-scope")
    @public
    @require_scope("admin")
    def public_over_scope() -> dict[str, Any]:
        ran.append("public_over_scope")
        return {"ok": True}

    @app.get("/report")
    def report() -> dict[str, Any]:
        ran.append("report")
        return {"ok": True}

    return app, ran


@pytest.mark.parametrize("path", ["/purge", "/any-options", "/me-options"])
def test_options_served_by_a_decorated_view_needs_a_credential(tmp_path: Any, path: str) -> None:
    """A scope-decorated view that serves OPTIONS itself never runs for an unauthenticated OPTIONS request."""
    app, ran = _marked_app(tmp_path)
    client = app.test_client()
    response = client.options(path, headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"
    assert ran == []
    # The hook authenticates an OPTIONS request its view serves, so a credential lets it run.
    assert client.options(path, headers=bearer(TOKEN)).status_code == 200
    assert len(ran) == 1
    method = "DELETE" if path == "/purge" else "GET"
    assert client.open(path, method=method, headers=bearer(TOKEN)).status_code == 200
    assert len(ran) == 2


def test_automatic_options_stays_open(tmp_path: Any) -> None:
    """An OPTIONS request Flask answers itself (the view never runs) still needs no credential."""
    app, ran = _marked_app(tmp_path)
    response = app.test_client().options("/report")
    assert response.status_code == 200
    assert "GET" in response.headers["Allow"]
    assert ran == []


@pytest.mark.parametrize("path", ["/scope-over-public", "/public-over-scope"])
def test_scope_decorator_wins_over_public_in_either_order(tmp_path: Any, path: str) -> None:
    """@public stacked with @require_scope fails closed: the scope is required, whatever the order."""
    app, ran = _marked_app(tmp_path)
    client = app.test_client()
    assert client.get(path).status_code == 401
    _, reader = create_key(app, ["read"])
    assert client.get(path, headers=bearer(reader)).status_code == 403
    assert ran == []
    _, admin = create_key(app, ["admin"])
    assert client.get(path, headers=bearer(admin)).status_code == 200
    assert len(ran) == 1


def test_head_needs_the_get_scope_when_the_table_omits_head(tmp_path: Any) -> None:
    """HEAD runs the GET view, so a method table without HEAD still makes HEAD need GET's scope."""
    app, ran = _marked_app(tmp_path, GRIDAUTH_METHOD_SCOPES={"GET": "read", "POST": "write"})
    client = app.test_client()
    _, outsider = create_key(app, ["billing:read"])
    assert client.get("/report", headers=bearer(outsider)).status_code == 403
    assert client.head("/report", headers=bearer(outsider)).status_code == 403
    assert ran == []
    _, reader = create_key(app, ["read"])
    assert client.head("/report", headers=bearer(reader)).status_code == 200


def test_head_follows_an_explicit_head_entry(tmp_path: Any) -> None:
    """A table that names HEAD is obeyed as written (here: HEAD needs no scope)."""
    app, _ = _marked_app(tmp_path, GRIDAUTH_METHOD_SCOPES={"GET": "read", "HEAD": ""})
    _, outsider = create_key(app, ["billing:read"])
    assert app.test_client().head("/report", headers=bearer(outsider)).status_code == 200


# -- JWKS: a malformed document from the provider is a failed fetch, never a 500 ---------------------------------------


def test_jwks_entries_with_odd_types_are_skipped() -> None:
    """A key whose alg or kid is a list or object is skipped; the other keys of the set are kept."""
    good = rsa_key("good").jwk()
    bad = [
        {**rsa_key("x").jwk(), "alg": ["RS256"]},
        {**rsa_key("y").jwk(), "alg": {"a": 1}},
        {**rsa_key("z").jwk(), "kid": ["k"]},
    ]
    keys = parse_jwks(json.dumps({"keys": [*bad, good]}).encode(), frozenset({"RS256"}))
    assert list(keys) == ["good"]
    with pytest.raises(JWKSError):
        parse_jwks(json.dumps({"keys": bad}).encode(), frozenset({"RS256"}))


def test_deeply_nested_jwks_is_not_json() -> None:
    """A document nested deeper than the JSON parser goes is refused as not JSON (no RecursionError)."""
    body = b'{"keys": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(JWKSError):
        parse_jwks(body, frozenset({"RS256"}))


def _jwt_app(tmp_path: Any, url: str) -> Flask:
    return build_app(
        str(tmp_path / "instance"),
        GRIDAUTH_JWT_ISSUERS=[{"issuer": "https://idp.example", "jwks_url": url, "algorithms": ["RS256"]}],
    )


def _claims() -> dict[str, Any]:
    return {"iss": "https://idp.example", "sub": "user_1", "exp": int(time.time()) + 300, "permissions": ["read"]}


def test_jwks_with_an_unhashable_alg_still_serves_its_good_keys(tmp_path: Any) -> None:
    """Over HTTP: a JWKS holding a key with "alg": [...] verifies tokens of its other keys (was a 500)."""
    key: SigningKey = rsa_key("good")
    with JWKSServer({**rsa_key("odd").jwk(), "alg": ["RS256"]}, key.jwk()) as server:
        client = _jwt_app(tmp_path, server.url).test_client()
        assert client.get("/items", headers=bearer(key.sign(_claims()))).status_code == 200


def test_jwks_of_only_bad_keys_is_503_not_500(tmp_path: Any) -> None:
    """Over HTTP: a JWKS whose every key is malformed answers 503 JSON, like any failed first fetch."""
    key = rsa_key("good")
    with JWKSServer({**key.jwk(), "alg": ["RS256"]}) as server:
        response = _jwt_app(tmp_path, server.url).test_client().get("/items", headers=bearer(key.sign(_claims())))
        assert response.status_code == 503
        assert response.get_json()["code"] == "unavailable"


# -- the blueprint: raw keys are never cached, bodies are never read unbounded ----------------------------------------


def test_raw_key_responses_are_not_cacheable(tmp_path: Any) -> None:
    """The create and rotate responses, which hold raw_key, carry Cache-Control: no-store."""
    client = build_app(str(tmp_path / "instance")).test_client()
    created = client.post("/api/v1/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=bearer(TOKEN))
    assert created.status_code == 201
    assert "raw_key" in created.get_json()
    assert created.headers["Cache-Control"] == "no-store"
    key_id = created.get_json()["id"]
    rotated = client.post(f"/api/v1/api-keys/{key_id}/rotate", headers=bearer(TOKEN))
    assert rotated.status_code == 201
    assert rotated.headers["Cache-Control"] == "no-store"


class _EndlessBody(io.RawIOBase):
    """A request body that never ends by itself (bounded at 20 MB so a broken server cannot hang the test)."""

    def __init__(self) -> None:
        self.sent = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.sent >= 20_000_000:
            return 0
        size = len(buffer)
        buffer[:size] = b" " * size
        self.sent += size
        return size


def test_chunked_management_body_is_not_read_past_the_limit(tmp_path: Any) -> None:
    """A chunked body to POST /api-keys is cut off just past 64 KiB with a JSON 413, not read whole."""
    app = build_app(str(tmp_path / "instance"))
    environ = EnvironBuilder(
        path="/api/v1/api-keys", method="POST", headers={**bearer(TOKEN), "Content-Type": "application/json"}
    ).get_environ()
    body = _EndlessBody()
    environ.update({"wsgi.input": body, "wsgi.input_terminated": True, "HTTP_TRANSFER_ENCODING": "chunked"})
    environ.pop("CONTENT_LENGTH", None)
    statuses: list[str] = []
    payload = b"".join(app.wsgi_app(environ, lambda status, headers: statuses.append(status)))
    assert statuses[0].startswith("413")
    assert b'"payload_too_large"' in payload
    assert body.sent <= MAX_BODY + 64 * 1024


def test_view_serving_options_is_authenticated(tmp_path: Any) -> None:
    """A view that serves OPTIONS itself needs a credential; Flask's automatic OPTIONS stays open."""
    from flask_gridauth import GridAuth

    ran: list[str] = []
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False)
    GridAuth(app)

    @app.route("/explicit", methods=["GET", "OPTIONS"])
    def explicit() -> str:
        ran.append("explicit")
        return "ran"

    @app.get("/automatic")
    def automatic() -> str:
        return "ran"

    client = app.test_client()
    assert client.options("/explicit").status_code == 401
    assert ran == []
    assert client.options("/explicit", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert ran == ["explicit"]
    assert client.options("/automatic").status_code == 200


def test_view_named_static_is_not_public(tmp_path: Any) -> None:
    """Without a static folder, a view whose endpoint is 'static' is private like any other."""
    from flask_gridauth import GridAuth

    app = Flask(__name__, instance_path=str(tmp_path), static_folder=None)
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False)
    GridAuth(app)

    @app.get("/files/<name>")
    def static(name: str) -> str:
        return f"file {name}"

    assert app.test_client().get("/files/secret.txt").status_code == 401


def test_made_up_methods_do_not_grow_the_requirement_cache(tmp_path: Any) -> None:
    """Requests with invented methods on unknown paths leave the per-endpoint cache unchanged."""
    from flask_gridauth import GridAuth

    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False)
    GridAuth(app)
    client = app.test_client()
    for i in range(50):
        assert client.open("/nowhere", method=f"X{i}").status_code == 401
    state = app.extensions["gridauth"]
    assert len(state.requirement) == 0
    assert client.get("/nowhere").status_code == 401 and len(state.requirement) == 0  # unmatched: never kept


def test_sqlite_file_created_private(tmp_path: Any) -> None:
    """The SQLite database file is created with mode 0600."""
    import os
    import stat

    from flask_gridauth.storage import storage_from_uri

    storage = storage_from_uri(f"sqlite:///{tmp_path}/keys.db", instance_path=str(tmp_path))
    storage.ping()
    assert stat.S_IMODE(os.stat(tmp_path / "keys.db").st_mode) == 0o600
