"""Fixes from the 0.2 security review: app verifiers, error handlers, 405s, sessions, owner limits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import ConfigurationError, GridAuth, Principal, Unavailable, api_keys_blueprint, require_scope
from flask_gridauth.dashboard.session import COOKIE_NAME

from .conftest import TOKEN, bearer, create_key
from .test_audit import all_events
from .test_dashboard import D, csrf_of, dash_app, sign_in


def star_app(tmp_path: Path) -> Flask:
    """An app whose ``oat`` verifier copies the scopes from the token text (``oat_a,b``), ``*`` included."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False
    )
    auth = GridAuth(app)
    app.register_blueprint(api_keys_blueprint)

    @auth.verifier("oat", prefix="oat_")
    def oauth(value: str) -> Principal | None:
        return Principal(kind="oat", id="mallory", owner="mallory", scopes=frozenset(value[4:].split(",")))

    @app.get("/anything")
    @require_scope("billing:refund")
    def anything() -> dict[str, Any]:
        return {"ok": True}

    return app


def test_app_verifier_cannot_make_a_superuser_with_star(tmp_path: Path) -> None:
    """A verifier returning scope "*" sees only its own owner's keys and gains no other scope."""
    app = star_app(tmp_path)
    create_key(app, ["read"], owner="alice")
    create_key(app, ["read"], owner="mallory", name="own")
    client = app.test_client()
    listed = client.get("/api-keys", headers=bearer("oat_*,admin"))
    assert listed.status_code == 200
    assert [k["owner"] for k in listed.get_json()["data"]] == ["mallory"]
    assert "*" not in client.get("/me", headers=bearer("oat_*,admin")).get_json()["scopes"]
    assert client.get("/anything", headers=bearer("oat_*")).status_code == 403
    everyone = client.get("/api-keys", headers=bearer(TOKEN)).get_json()["data"]
    assert sorted(k["owner"] for k in everyone) == ["alice", "mallory"]


def test_only_token_and_disabled_principals_are_superusers() -> None:
    """is_superuser needs the bootstrap token's (or disabled auth's) kind as well as "*"."""
    star = frozenset({"*"})
    assert Principal(kind="token", id="t", owner="o", scopes=star).is_superuser
    assert Principal(kind="disabled", id="a", owner="o", scopes=star).is_superuser
    assert not Principal(kind="oat", id="c", owner="o", scopes=star).is_superuser
    assert not Principal(kind="api_key", id="k", owner="o", scopes=star).is_superuser
    assert not Principal(kind="token", id="t", owner="o", scopes=frozenset({"admin"})).is_superuser


def test_raising_error_handler_falls_back_to_the_json_error(tmp_path: Path, caplog: Any) -> None:
    """An @auth.error_handler that raises: the default JSON 401/429 with owed headers; only its type is logged."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_FAILED_AUTH_LIMIT="2/minute"
    )
    auth = GridAuth(app)

    @auth.error_handler
    def broken(info: Any) -> Any:
        raise RuntimeError("leaked wrong-token-0123456789")

    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"ok": True}

    client = app.test_client()
    caplog.set_level("DEBUG", logger="flask_gridauth")
    first = client.get("/items", headers=bearer("wrong-token-0123456789"))
    assert first.status_code == 401 and first.is_json
    assert first.get_json()["code"] == "unauthorized" and first.headers["WWW-Authenticate"] == "Bearer"
    statuses = [client.get("/items", headers=bearer("wrong-token-0123456789")) for _ in range(3)]
    limited = statuses[-1]
    assert limited.status_code == 429 and limited.is_json and "Retry-After" in limited.headers
    assert "RuntimeError" in caplog.text
    assert "wrong-token-0123456789" not in caplog.text and "leaked" not in caplog.text


def test_any_method_under_our_routes_is_a_json_405(tmp_path: Path) -> None:
    """PROPFIND or a made-up method on a blueprint route: JSON 405 with Allow; OPTIONS and GET unchanged."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False
    )
    GridAuth(app)
    app.register_blueprint(api_keys_blueprint, url_prefix="/v1")
    client = app.test_client()
    for method in ("PROPFIND", "FOO"):
        response = client.open("/v1/api-keys", method=method, headers=bearer(TOKEN))
        assert response.status_code == 405 and response.is_json, method
        assert response.get_json()["code"] == "method_not_allowed"
        assert {"GET", "POST"} <= {m.strip() for m in response.headers["Allow"].split(",")}
        unknown = client.open("/v1/api-keys/nope/deeper/still", method=method, headers=bearer(TOKEN))
        assert unknown.status_code in (404, 405) and unknown.is_json
    assert client.get("/v1/api-keys", headers=bearer(TOKEN)).status_code == 200
    options = client.options("/v1/api-keys")
    assert {"GET", "POST"} <= {m.strip() for m in options.headers["Allow"].split(",")}


def test_a_raising_verifier_is_a_401_and_its_text_is_never_logged(tmp_path: Path, caplog: Any) -> None:
    """An app verifier's unexpected exception: JSON 401, only kind and type logged; Unavailable passes as 503."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False
    )
    auth = GridAuth(app)

    @auth.verifier("oat", prefix="oat_")
    def oauth(value: str) -> Principal | None:
        if value == "oat_down":
            raise Unavailable()
        raise ValueError(f"cannot parse {value}")

    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"ok": True}

    client = app.test_client()
    caplog.set_level("DEBUG", logger="flask_gridauth")
    response = client.get("/items", headers=bearer("oat_secret-credential-0123"))
    assert response.status_code == 401 and response.is_json
    assert response.get_json()["code"] == "unauthorized" and response.headers["WWW-Authenticate"] == "Bearer"
    assert "ValueError" in caplog.text and "oat" in caplog.text
    assert "secret-credential-0123" not in caplog.text
    down = client.get("/items", headers=bearer("oat_down"))
    assert down.status_code == 503 and down.get_json()["code"] == "unavailable"


def test_replayed_ended_dashboard_cookie_records_no_sign_out(tmp_path: Path) -> None:
    """Signing out records one event; replaying the ended session's cookie to /sign-out records none."""
    app = dash_app(tmp_path / "instance")
    client = app.test_client()
    assert sign_in(client).status_code == 303
    csrf = csrf_of(client.get(f"{D}/").text)
    cookie = client.get_cookie(COOKIE_NAME, path=D)
    assert cookie is not None
    old = cookie.value
    assert client.post(f"{D}/sign-out", data={"csrf_token": csrf}).status_code == 303
    for _ in range(3):
        replay = app.test_client()
        replay.set_cookie(COOKIE_NAME, old, path=D)
        assert replay.post(f"{D}/sign-out", data={"csrf_token": csrf}).status_code == 303
    signed_out = [e for e in all_events(app) if e["action"] == "dashboard.signed_out"]
    assert len(signed_out) == 1


def test_owner_limit_counts_an_app_kind(tmp_path: Path) -> None:
    """GRIDAUTH_RATELIMIT_OWNER counts an @auth.verifier kind's requests in its owner's shared budget."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True,
        GRIDAUTH_API_TOKEN=TOKEN,
        GRIDAUTH_STORAGE_URI="memory://",
        GRIDAUTH_RATELIMIT_OWNER="3/minute",
        GRIDAUTH_RATELIMIT_JWT="100/minute",
    )
    auth = GridAuth(app)

    @auth.verifier("device", header="X-Device-Key")
    def device(value: str) -> Principal | None:
        return Principal(kind="device", id=value, owner="fleet", scopes=frozenset({"read"}))

    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"ok": True}

    client = app.test_client()
    # Two devices of one owner: each under its own limit, together past the owner's.
    statuses = [client.get("/items", headers={"X-Device-Key": f"d{i % 2}"}).status_code for i in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert client.get("/items", headers=bearer(TOKEN)).status_code == 200


def _token_app(tmp_path: Path, **config: Any) -> Flask:
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(TESTING=True, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False, **config)
    return app


def test_a_kind_prefix_that_would_take_the_bootstrap_token_is_refused(tmp_path: Path) -> None:
    """A prefix the bootstrap token starts with, or one overlapping ``grd_``, is a ConfigurationError."""
    token = "oat_" + "Z" * 40
    app = _token_app(tmp_path, GRIDAUTH_API_TOKEN=token)
    auth = GridAuth(app)
    with pytest.raises(ConfigurationError):
        auth.verifier("oat", prefix="oat_")(lambda value: None)
    with pytest.raises(ConfigurationError):
        auth.verifier("grdx", prefix="grd_x")(lambda value: None)
    # Registered before init_app: refused there.
    early = GridAuth()
    early.verifier("oat", prefix="oat_Z")(lambda value: None)
    with pytest.raises(ConfigurationError):
        early.init_app(_token_app(tmp_path / "two", GRIDAUTH_API_TOKEN=token))
    # The token still authenticates as the bootstrap token, never reaching an app function.
    auth.verifier("other", prefix="zz_")(lambda value: None)
    assert app.test_client().get("/me", headers=bearer(token)).status_code in (200, 404)
    with app.test_request_context("/", headers=bearer(token)):
        assert app.extensions["gridauth"].authenticate().kind == "token"


def test_a_generated_token_never_starts_with_a_kind_prefix(tmp_path: Path) -> None:
    """With GRIDAUTH_TOKEN_PREFIX equal to a registered kind's prefix, generating a token is refused."""
    early = GridAuth()
    early.verifier("oat", prefix="oat_")(lambda value: None)
    with pytest.raises(ConfigurationError):
        early.init_app(_token_app(tmp_path, GRIDAUTH_TOKEN_PREFIX="oat_", GRIDAUTH_TOKEN_PERSIST=False))
    fine = GridAuth()
    fine.verifier("oat", prefix="oat_")(lambda value: None)
    app = _token_app(tmp_path / "two", GRIDAUTH_TOKEN_PREFIX="gt_", GRIDAUTH_TOKEN_PERSIST=False)
    fine.init_app(app)
    assert app.extensions["gridauth"].token_digest is not None
