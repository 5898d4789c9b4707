"""Our errors are werkzeug's: Flask's error handlers see them, and the headers they owe survive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import werkzeug.exceptions as wz
from flask import Flask, redirect

import flask_gridauth
from flask_gridauth import GridAuth, api_keys_blueprint, require_scope
from flask_gridauth.errors import ErrorInfo, GridAuthError

from .conftest import TOKEN, bearer, create_key

API = "/api/v1"

PAIRS = [
    (flask_gridauth.Unauthorized, wz.Unauthorized, 401),
    (flask_gridauth.Forbidden, wz.Forbidden, 403),
    (flask_gridauth.NotFound, wz.NotFound, 404),
    (flask_gridauth.MethodNotAllowed, wz.MethodNotAllowed, 405),
    (flask_gridauth.PayloadTooLarge, wz.RequestEntityTooLarge, 413),
    (flask_gridauth.InvalidRequest, wz.UnprocessableEntity, 422),
    (flask_gridauth.RateLimited, wz.TooManyRequests, 429),
    (flask_gridauth.Unavailable, wz.ServiceUnavailable, 503),
]


def make(tmp_path: Path, **config: Any) -> tuple[Flask, GridAuth]:
    """An app with the blueprint at /api/v1, a GET /items route and a /boards route needing ``admin``."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False
    )
    app.config.update(config)
    auth = GridAuth(app)
    app.register_blueprint(api_keys_blueprint, url_prefix=API)

    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/boards")
    @require_scope("admin")
    def boards() -> dict[str, Any]:
        return {"ok": True}

    return app, auth


@pytest.mark.parametrize(("ours", "theirs", "status"), PAIRS)
def test_each_error_is_the_werkzeug_class_of_its_status(ours: type[GridAuthError], theirs: type, status: int) -> None:
    """Each class derives from GridAuthError and werkzeug's class; code is the int status, error_code the string."""
    assert issubclass(ours, GridAuthError) and issubclass(ours, theirs)
    exc = ours()
    assert exc.code == status and exc.status == status
    assert isinstance(exc.error_code, str) and exc.error_code != "error"
    assert exc.get_response().status_code == status


def test_base_error_is_filed_under_no_status() -> None:
    """GridAuthError sets no code, so Flask files a handler for it under every status, not 500."""
    assert GridAuthError.code is None


@pytest.mark.parametrize("key", [401, wz.Unauthorized, flask_gridauth.Unauthorized, GridAuthError])
def test_app_handler_shapes_our_401_and_keeps_www_authenticate(tmp_path: Path, key: Any) -> None:
    """@app.errorhandler(401 / werkzeug's class / ours / the base) is called; WWW-Authenticate is still set."""
    app, _ = make(tmp_path)
    seen: list[Any] = []

    @app.errorhandler(key)
    def shaped(exc: Any) -> Any:
        seen.append(exc)
        return {"detail": "who are you"}, exc.code

    response = app.test_client().get("/items")
    assert response.status_code == 401
    assert response.get_json() == {"detail": "who are you"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert len(seen) == 1 and isinstance(seen[0], flask_gridauth.Unauthorized)


def test_app_handler_for_403_is_called_for_a_missing_scope(tmp_path: Path) -> None:
    """A scope refusal from the request hook reaches @app.errorhandler(403)."""
    app, _ = make(tmp_path)
    _, raw = create_key(app, ["read"])

    @app.errorhandler(403)
    def shaped(exc: Any) -> Any:
        return {"nope": exc.description}, 403

    response = app.test_client().get("/boards", headers=bearer(raw))
    assert response.status_code == 403
    assert response.get_json() == {"nope": "Missing required scope: admin"}
    assert "WWW-Authenticate" not in response.headers


def test_handler_that_redirects_gets_no_www_authenticate(tmp_path: Path) -> None:
    """Owed headers go only on a response that still answers the error's status."""
    app, _ = make(tmp_path)
    app.register_error_handler(401, lambda exc: redirect("/sign-in"))
    response = app.test_client().get("/items")
    assert response.status_code == 302 and "WWW-Authenticate" not in response.headers


def test_local_agent_server_answers_detail_with_error_handler(tmp_path: Path) -> None:
    """@auth.error_handler shapes our 401 as {"detail": ...}; the status and WWW-Authenticate are kept."""
    app, auth = make(tmp_path)
    seen: list[ErrorInfo] = []

    @auth.error_handler
    def detail(error: ErrorInfo) -> dict[str, str]:
        seen.append(error)
        return {"detail": error.message}

    response = app.test_client().get("/items")
    assert response.status_code == 401
    assert response.get_json() == {"detail": "Authentication required"}
    assert response.headers["WWW-Authenticate"] == "Bearer"
    (info,) = seen
    assert (info.status, info.code, info.message) == (401, "unauthorized", "Authentication required")
    assert isinstance(info.error, flask_gridauth.Unauthorized)


def test_error_handler_shapes_the_blueprints_errors(tmp_path: Path) -> None:
    """Blueprint errors (422 body, routing 404 and 405 under its prefix) go through @auth.error_handler."""
    app, auth = make(tmp_path)

    @auth.error_handler
    def detail(error: ErrorInfo) -> tuple[dict[str, Any], int]:
        return {"detail": error.message, "kind": error.code, "field": error.field}, error.status

    client = app.test_client()
    bad = client.post(f"{API}/api-keys", json={"name": "", "scopes": ["read"]}, headers=bearer(TOKEN))
    assert bad.status_code == 422 and bad.get_json()["kind"] == "invalid_request"
    assert bad.get_json()["field"] == "name"
    missing = client.get(f"{API}/api-keys/key_x/nothing-here", headers=bearer(TOKEN))
    assert missing.status_code == 404 and missing.get_json()["kind"] == "not_found"
    wrong = client.put(f"{API}/api-keys", headers=bearer(TOKEN))
    assert wrong.status_code == 405 and wrong.get_json()["kind"] == "method_not_allowed"
    assert set(wrong.headers["Allow"].split(", ")) >= {"GET", "POST"}


def test_app_handler_for_404_comes_before_the_blueprints(tmp_path: Path) -> None:
    """An app's @app.errorhandler(404) also shapes a 404 under the blueprint, as Flask orders handlers."""
    app, _ = make(tmp_path)
    app.register_error_handler(404, lambda exc: ({"app": "404"}, 404))
    response = app.test_client().get(f"{API}/api-keys/key_x/nothing-here", headers=bearer(TOKEN))
    assert response.status_code == 404 and response.get_json() == {"app": "404"}


def test_blueprint_fallback_routes_need_a_credential(tmp_path: Path) -> None:
    """An unknown path or method under the blueprint is a 401 to a caller without a credential."""
    app, _ = make(tmp_path)
    client = app.test_client()
    assert client.get(f"{API}/api-keys/key_x/nothing-here").status_code == 401
    assert client.put(f"{API}/health").status_code == 401
    assert client.get(f"{API}/health").status_code == 200


def test_app_handler_for_429_keeps_retry_after_and_ratelimit_headers(tmp_path: Path) -> None:
    """A 429 shaped by @app.errorhandler(429) still carries Retry-After and X-RateLimit-*."""
    app, _ = make(tmp_path, GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY="1/minute")
    app.register_error_handler(wz.TooManyRequests, lambda exc: ("slow down", 429))
    _, raw = create_key(app, ["read"])
    client = app.test_client()
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    response = client.get("/items", headers=bearer(raw))
    assert response.status_code == 429 and response.get_data(as_text=True) == "slow down"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["X-RateLimit-Limit"] == "1" and response.headers["X-RateLimit-Remaining"] == "0"


def test_error_info_of_a_werkzeug_error_names_it() -> None:
    """ErrorInfo.of gives werkzeug's own errors a snake_case code and maps 413 and 405 to ours."""
    assert ErrorInfo.of(wz.BadRequest()).code == "bad_request"
    assert ErrorInfo.of(wz.RequestEntityTooLarge()).code == "payload_too_large"
    info = ErrorInfo.of(wz.MethodNotAllowed(valid_methods=["GET"]))
    assert info.code == "method_not_allowed" and info.headers["Allow"] == "GET"
