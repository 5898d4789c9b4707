"""Blueprint options: make_api_keys_blueprint, GRIDAUTH_MANAGE_SCOPE, trailing slashes, views mounted twice."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import (
    ConfigurationError,
    GridAuth,
    api_keys_blueprint,
    dashboard_blueprint,
    get_state,
    make_api_keys_blueprint,
    require_manage_scope,
)

from .conftest import TOKEN, bearer

ADMIN = bearer(TOKEN)


def make_app(tmp_path: Path, blueprint: Any = None, prefix: str = "/api/v1", **config: Any) -> Flask:
    """An app on memory storage with ``blueprint`` (default: api_keys_blueprint) at ``prefix``."""
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        TESTING=True,
        GRIDAUTH_API_TOKEN=TOKEN,
        GRIDAUTH_STORAGE_URI="memory://",
        GRIDAUTH_RATELIMIT_ENABLED=False,
        SECRET_KEY="options-test-" + "k" * 24,
    )
    app.config.update(config)
    GridAuth(app)
    app.register_blueprint(blueprint or api_keys_blueprint, url_prefix=prefix)
    return app


def key_with(app: Flask, scopes: list[str], owner: str = "alice") -> str:
    """A raw key of ``owner`` holding ``scopes``."""
    with app.app_context():
        return get_state().keys.create(name="k", scopes=scopes, owner=owner)[1]


def test_factory_leaves_out_health_me_and_openapi(tmp_path: Path) -> None:
    """make_api_keys_blueprint(health=False, me=False, openapi=False) mounts /api-keys only."""
    app = make_app(tmp_path, make_api_keys_blueprint(health=False, me=False, openapi=False), prefix="/v1/me")
    client = app.test_client()
    for path in ("/v1/me/me", "/v1/me/health", "/v1/me/openapi.json"):
        response = client.get(path, headers=ADMIN)
        assert response.status_code == 404, path
    assert client.get("/v1/me/api-keys", headers=ADMIN).status_code == 200
    assert client.post("/v1/me/api-keys", headers=ADMIN, json={"name": "n", "scopes": ["read"]}).status_code == 201


def test_factory_options_one_by_one(tmp_path: Path) -> None:
    """Each option adds its route; the served document lists only what is mounted."""
    app = make_app(tmp_path, make_api_keys_blueprint(me=False))
    client = app.test_client()
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/me", headers=ADMIN).status_code == 404
    paths = client.get("/api/v1/openapi.json").get_json()["paths"]
    assert "/me" not in paths and "/health" in paths and "/api-keys" in paths


def test_api_keys_blueprint_keeps_every_route(tmp_path: Path) -> None:
    """The ready-made blueprint still has /health, /me, /openapi.json and /api-keys."""
    client = make_app(tmp_path).test_client()
    assert client.get("/api/v1/health").status_code == 200
    assert client.get("/api/v1/me", headers=ADMIN).status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200
    assert client.get("/api/v1/api-keys", headers=ADMIN).status_code == 200


def test_trailing_slash_is_the_same_route(tmp_path: Path) -> None:
    """/api-keys/ answers like /api-keys (no redirect, no 404) for GET and POST."""
    client = make_app(tmp_path).test_client()
    created = client.post("/api/v1/api-keys/", headers=ADMIN, json={"name": "n", "scopes": ["read"]})
    assert created.status_code == 201 and "raw_key" in created.get_json()
    assert created.headers["Location"] == f"/api/v1/api-keys/{created.get_json()['id']}"
    listed = client.get("/api/v1/api-keys/", headers=ADMIN)
    assert listed.status_code == 200 and len(listed.get_json()["data"]) == 1


def test_manage_scope_guards_every_route(tmp_path: Path) -> None:
    """With GRIDAUTH_MANAGE_SCOPE = "keys:manage", admin alone is 403 on every /api-keys route."""
    app = make_app(tmp_path, GRIDAUTH_MANAGE_SCOPE="keys:manage")
    client = app.test_client()
    admin_only = bearer(key_with(app, ["admin"]))
    manager = bearer(key_with(app, ["keys:manage", "read"]))
    target = client.post("/api/v1/api-keys", headers=manager, json={"name": "t", "scopes": ["read"]})
    assert target.status_code == 201, target.get_json()
    key_id = target.get_json()["id"]
    calls = [
        ("POST", "/api/v1/api-keys", {"name": "n", "scopes": ["read"]}),
        ("GET", "/api/v1/api-keys", None),
        ("GET", f"/api/v1/api-keys/{key_id}", None),
        ("PATCH", f"/api/v1/api-keys/{key_id}", {"name": "m"}),
        ("POST", f"/api/v1/api-keys/{key_id}/rotate", None),
        ("DELETE", f"/api/v1/api-keys/{key_id}", None),
    ]
    for method, path, body in calls:
        refused = client.open(path, method=method, headers=admin_only, json=body)
        assert refused.status_code == 403 and "keys:manage" in refused.get_json()["message"], (method, path)
    for method, path, body in calls:
        allowed = client.open(path, method=method, headers=manager, json=body)
        assert allowed.status_code in (200, 201), (method, path, allowed.get_json())


def test_manage_scope_helper_for_other_routes(tmp_path: Path) -> None:
    """@require_manage_scope on an app's own route needs the configured scope; `routes` shows it."""
    app = make_app(tmp_path, GRIDAUTH_MANAGE_SCOPE="keys:manage")

    @app.get("/audit")
    @require_manage_scope
    def audit() -> dict[str, bool]:
        return {"ok": True}

    client = app.test_client()
    assert client.get("/audit", headers=bearer(key_with(app, ["admin"]))).status_code == 403
    assert client.get("/audit", headers=bearer(key_with(app, ["keys:manage"]))).status_code == 200
    listing = app.test_cli_runner().invoke(args=["gridauth", "routes"]).output
    assert any("/audit" in line and "scopes: keys:manage" in line for line in listing.splitlines()), listing
    assert any("/api/v1/api-keys/<key_id>" in line and "keys:manage" in line for line in listing.splitlines())


def test_manage_scope_for_the_dashboard(tmp_path: Path) -> None:
    """The dashboard signs in only a key holding the manage scope."""
    app = make_app(tmp_path, GRIDAUTH_MANAGE_SCOPE="keys:manage")
    app.register_blueprint(dashboard_blueprint, url_prefix="/dashboard")
    client = app.test_client()
    for scopes, status in ((["admin"], 403), (["keys:manage"], 303)):
        page = client.get("/dashboard/sign-in").text
        csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
        response = client.post("/dashboard/sign-in", data={"csrf_token": csrf, "credential": key_with(app, scopes)})
        assert response.status_code == status, scopes


@pytest.mark.parametrize("value", ["", "bad scope", "x:*", 5])
def test_manage_scope_must_be_a_scope(tmp_path: Path, value: object) -> None:
    """A GRIDAUTH_MANAGE_SCOPE that is no scope name is a ConfigurationError at start-up."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_MANAGE_SCOPE"):
        make_app(tmp_path, GRIDAUTH_MANAGE_SCOPE=value)


def test_view_mounted_under_a_second_url_keeps_the_key(tmp_path: Path) -> None:
    """An app that mounts our create and rotate views under URLs of its own gets 201 with the raw key, no 500."""
    app = make_app(tmp_path)
    app.add_url_rule("/v2/keys", "alias_create", app.view_functions["gridauth.create_key"], methods=["POST"])
    app.add_url_rule(
        "/v2/keys/<key_id>/renew", "alias_rotate", app.view_functions["gridauth.rotate_key"], methods=["POST"]
    )
    client = app.test_client()
    created = client.post("/v2/keys", headers=ADMIN, json={"name": "n", "scopes": ["read"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    assert body["raw_key"] and created.headers["Location"] == f"/v2/keys/{body['id']}"
    assert client.get("/api/v1/me", headers=bearer(body["raw_key"])).status_code == 200
    rotated = client.post(f"/v2/keys/{body['id']}/renew", headers=ADMIN)
    assert rotated.status_code == 201 and rotated.get_json()["raw_key"]
    assert rotated.headers["Location"] == f"/v2/keys/{rotated.get_json()['id']}"
