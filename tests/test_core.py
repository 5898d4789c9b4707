"""The request hook through the test client: credentials, errors, scopes and storage failures."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import GridAuth, current_principal
from flask_gridauth.errors import ConfigurationError
from flask_gridauth.records import utcnow

from .conftest import TOKEN, bearer, build_app, create_key, storage_free

GENERIC_401 = {"object": "error", "status": 401, "code": "unauthorized", "message": "Authentication required"}


def assert_401(response: Any) -> None:
    """A generic, JSON, Bearer-challenging 401."""
    assert response.status_code == 401
    assert response.is_json and response.get_json() == GENERIC_401
    assert response.headers["WWW-Authenticate"] == "Bearer"


# -- credentials ---------------------------------------------------------------


@storage_free
def test_no_credential_is_401(client: Any) -> None:
    """A private route without any credential is a generic JSON 401."""
    assert_401(client.get("/items"))


def test_api_key_bearer_and_header(app: Flask, client: Any) -> None:
    """An API key works as a bearer token and as x-api-key; the principal carries its owner."""
    record, raw = create_key(app, ["read"], owner="alice")
    for headers in (bearer(raw), {"x-api-key": raw}, {"Authorization": f"bEaReR {raw}"}):
        response = client.get("/items", headers=headers)
        assert response.status_code == 200, headers
        assert response.get_json() == {"owner": "alice", "kind": "api_key", "method": "GET"}


@storage_free
def test_bootstrap_token_has_every_scope(client: Any) -> None:
    """The bootstrap token reaches any route, whatever scope it needs."""
    for path in ("/items", "/admin-only", "/both", "/either"):
        assert client.get(path, headers=bearer(TOKEN)).status_code == 200
    assert client.post("/holdings", headers=bearer(TOKEN)).status_code == 200


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda k: k[:-1] + ("0" if k[-1] != "0" else "1"), id="checksum-typo"),
        pytest.param(lambda k: k[:20] + ("a" if k[20] != "a" else "b") + k[21:], id="body-typo"),
        pytest.param(lambda k: k.upper(), id="uppercase"),
        pytest.param(lambda k: k[:-2], id="truncated"),
        pytest.param(lambda k: k + "0", id="too-long"),
        pytest.param(lambda k: k.replace("_live_", "_test_"), id="other-environment"),
        pytest.param(lambda k: "xyz" + k[3:], id="other-prefix"),
    ],
)
def test_mangled_key_is_401(app: Flask, client: Any, mutate: Callable[[str], str]) -> None:
    """Any change to a real key is refused with the generic 401."""
    _, raw = create_key(app)
    assert_401(client.get("/items", headers=bearer(mutate(raw))))


def test_made_up_key_with_valid_checksum_is_401(client: Any) -> None:
    """A well-formed key that was never issued is refused like any other."""
    from flask_gridauth.keys import generate_key

    assert_401(client.get("/items", headers=bearer(generate_key("grd"))))


@storage_free
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Authorization": "Bearer"}, id="empty-bearer"),
        pytest.param({"Authorization": "Bearer "}, id="blank-bearer"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, id="basic"),
        pytest.param({"Authorization": "Token abc"}, id="other-scheme"),
        pytest.param({"Authorization": f"Bearer {TOKEN} extra"}, id="two-words"),
        pytest.param({"Authorization": f"Bearer{TOKEN}"}, id="no-space"),
        pytest.param({"Authorization": "Bearer " + "a" * 5000}, id="oversized"),
        pytest.param({"Authorization": "Bearer tökén"}, id="non-ascii"),
        pytest.param({"Authorization": "Bearer a\tb"}, id="tab"),
        pytest.param({"Authorization": "Bearer eyJ.not.a.jwt!"}, id="bad-jwt-shape"),
        pytest.param({"x-api-key": ""}, id="empty-x-api-key"),
        pytest.param({"x-api-key": TOKEN}, id="token-in-x-api-key"),
        pytest.param({"x-api-key": "grd_live_" + "é" * 48}, id="non-ascii-key"),
        pytest.param({"Authorization": "Bearer grd_live_zz"}, id="short-key"),
    ],
)
def test_malformed_credentials_are_401(client: Any, headers: dict[str, str]) -> None:
    """Malformed, oversized or non-ASCII credentials get the generic 401, never a 500."""
    assert_401(client.get("/items", headers=headers))


def test_two_authorization_headers_are_401(app: Flask, client: Any) -> None:
    """Two Authorization headers are ambiguous, even when both are valid."""
    _, raw = create_key(app)
    assert_401(client.get("/items", headers=[("Authorization", f"Bearer {raw}"), ("Authorization", f"Bearer {raw}")]))


def test_bearer_and_different_x_api_key_are_401(app: Flask, client: Any) -> None:
    """A bearer key and a different x-api-key are refused, even if both are valid."""
    _, first = create_key(app)
    _, second = create_key(app)
    assert_401(client.get("/items", headers={**bearer(first), "x-api-key": second}))
    assert client.get("/items", headers={**bearer(first), "x-api-key": first}).status_code == 200


def test_bad_credential_beside_good_one_is_401(app: Flask, client: Any) -> None:
    """A failing credential never falls through to another one."""
    _, raw = create_key(app)
    assert_401(client.get("/items", headers={**bearer("wrong-token-value"), "x-api-key": raw}))
    assert_401(client.get("/items", headers={**bearer(raw), "X-Grid-Signature": "abc"}))


def test_query_string_credentials_ignored(app: Flask, client: Any) -> None:
    """Credentials in the query string are never read."""
    _, raw = create_key(app)
    for name in ("api_key", "access_token", "token", "x-api-key"):
        assert_401(client.get(f"/items?{name}={raw}"))


@storage_free
def test_wrong_bootstrap_token_is_401(client: Any) -> None:
    """A token that is not the bootstrap token is refused."""
    assert_401(client.get("/items", headers=bearer(TOKEN + "x")))


def test_revoked_and_expired_named_only_to_holder(app: Flask, client: Any) -> None:
    """Revoked and expired keys are 401 at once, and only their holder reads why."""
    record, raw = create_key(app)
    with app.app_context():
        app.extensions["gridauth"].keys.revoke(record.id)
    response = client.get("/items", headers=bearer(raw))
    assert response.status_code == 401
    assert response.get_json()["message"] == "API key has been revoked"

    record, raw = create_key(app, expires_in=60)
    app.extensions["gridauth"].storage.update(record.id, {"expires_at": utcnow() - timedelta(seconds=1)})
    response = client.get("/items", headers=bearer(raw))
    assert response.status_code == 401
    assert response.get_json()["message"] == "API key has expired"


@pytest.mark.parametrize("shared", ["sqlite", "redis"])
def test_revocation_seen_by_second_app_on_shared_storage(shared: str, request: Any, tmp_path: Any) -> None:
    """A key revoked through one app is refused at once by another app on the same SQLite file or Redis."""
    from .conftest import storage_uri_for

    uri = storage_uri_for(shared, request, tmp_path)
    first = build_app(str(tmp_path / "a"), GRIDAUTH_STORAGE_URI=uri)
    second = build_app(str(tmp_path / "b"), GRIDAUTH_STORAGE_URI=uri)
    record, raw = create_key(first)
    assert second.test_client().get("/items", headers=bearer(raw)).status_code == 200
    with first.app_context():
        first.extensions["gridauth"].keys.revoke(record.id)
    assert second.test_client().get("/items", headers=bearer(raw)).status_code == 401


# -- scopes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scopes", "method", "path", "status"),
    [
        (["read"], "GET", "/items", 200),
        (["read"], "HEAD", "/items", 200),
        (["read"], "POST", "/items", 403),
        (["read"], "DELETE", "/items", 403),
        (["write"], "POST", "/items", 200),
        (["write"], "GET", "/items", 200),
        (["admin"], "PATCH", "/items", 200),
        (["admin"], "GET", "/admin-only", 200),
        (["write"], "GET", "/admin-only", 403),
        (["read_admin"], "GET", "/admin-only", 403),
        (["holdings:write"], "POST", "/holdings", 200),
        (["holdings:read"], "POST", "/holdings", 403),
        (["holdings:*"], "POST", "/holdings", 200),
        (["holdings:admin"], "POST", "/holdings", 200),
        (["admin"], "POST", "/holdings", 403),
        (["other:*"], "POST", "/holdings", 403),
        (["read", "reports:read"], "GET", "/both", 200),
        (["read"], "GET", "/both", 403),
        (["reports:write"], "GET", "/either", 200),
        (["billing:read"], "GET", "/either", 200),
        (["read"], "GET", "/either", 403),
    ],
)
def test_scope_rules(app: Flask, client: Any, scopes: list[str], method: str, path: str, status: int) -> None:
    """Hierarchy, namespaces, wildcards, exact matching and method defaults decide access."""
    _, raw = create_key(app, scopes)
    response = client.open(path, method=method, headers=bearer(raw))
    assert response.status_code == status
    if status == 403:
        body = response.get_json()
        assert body["code"] == "forbidden" and body["message"].startswith("Missing required scope: ")


def test_forbidden_names_missing_scope(app: Flask, client: Any) -> None:
    """A 403 names the scope that is missing."""
    _, raw = create_key(app, ["read"])
    response = client.post("/items", headers=bearer(raw))
    assert response.get_json() == {
        "object": "error",
        "status": 403,
        "code": "forbidden",
        "message": "Missing required scope: write",
    }


def test_method_scopes_configurable_and_off(make_app: Callable[..., Flask]) -> None:
    """GRIDAUTH_METHOD_SCOPES can be changed, or turned off with None."""
    app = make_app(GRIDAUTH_METHOD_SCOPES={"GET": "items:list"})
    _, raw = create_key(app, ["read"])
    assert app.test_client().get("/items", headers=bearer(raw)).status_code == 403
    app = make_app(GRIDAUTH_METHOD_SCOPES=None)
    _, raw = create_key(app, ["nothing:much"])
    assert app.test_client().delete("/items", headers=bearer(raw)).status_code == 200


def test_scope_implications_configurable(make_app: Callable[..., Flask]) -> None:
    """A custom implication table replaces admin > write > read."""
    app = make_app(GRIDAUTH_SCOPE_IMPLICATIONS={"owner": ["write", "read"]})
    _, raw = create_key(app, ["owner"])
    assert app.test_client().post("/items", headers=bearer(raw)).status_code == 200
    _, admin = create_key(app, ["admin"])
    assert app.test_client().post("/items", headers=bearer(admin)).status_code == 403


def test_public_options_and_static(tmp_path: Any) -> None:
    """Public routes, OPTIONS preflights and static files need no credential."""
    static = tmp_path / "static"
    static.mkdir()
    (static / "app.css").write_text("body{}")
    app = Flask(__name__, instance_path=str(tmp_path / "i"), static_folder=str(static))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False)
    GridAuth(app)

    @app.get("/private")
    def private() -> str:
        return "secret"

    client = app.test_client()
    with client.get("/static/app.css") as response:
        assert response.status_code == 200
    assert client.options("/private").status_code == 200
    assert client.get("/private").status_code == 401


@storage_free
def test_public_route(client: Any) -> None:
    """A @public route answers without any credential, and ignores a bad one."""
    assert client.get("/open").get_json() == {"public": True}
    for headers in (
        {"Authorization": "Bearer not-a-real-token-0123456789"},
        {"x-api-key": "grd_live_" + "0" * 48},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ):
        response = client.get("/open", headers=headers)
        assert response.status_code == 200 and response.get_json() == {"public": True}


def test_unknown_route_needs_credential(app: Flask, client: Any) -> None:
    """Unknown paths are 401 before authentication and 404 after, so routes cannot be probed."""
    assert client.get("/no-such-route").status_code == 401
    _, raw = create_key(app)
    assert client.get("/no-such-route", headers=bearer(raw)).status_code == 404


def test_decorator_without_extension_refuses(tmp_path: Any) -> None:
    """A scope-decorated view on an app without GridAuth raises instead of running open."""
    from flask_gridauth import require_scope

    app = Flask(__name__)

    @app.get("/x")
    @require_scope("read")
    def view() -> str:
        return "ran"

    app.config["PROPAGATE_EXCEPTIONS"] = True
    with pytest.raises(RuntimeError, match="init_app"):
        app.test_client().get("/x")


def test_current_principal_outside_request_explains() -> None:
    """current_principal outside an authenticated request says what is wrong."""
    app = Flask(__name__)
    with app.test_request_context(), pytest.raises(RuntimeError, match="GridAuth"):
        _ = current_principal.owner


# -- storage failures ------------------------------------------------------------


def test_storage_down_is_503_never_through(tmp_path: Any) -> None:
    """With Redis unreachable, key requests get 503 and /health reports it."""
    app = build_app(str(tmp_path), GRIDAUTH_STORAGE_URI="redis://127.0.0.1:1/0", GRIDAUTH_STORAGE_TIMEOUT=0.3)
    client = app.test_client()
    from flask_gridauth.keys import generate_key

    response = client.get("/items", headers=bearer(generate_key("grd")))
    assert response.status_code == 503
    assert response.get_json() == {
        "object": "error",
        "status": 503,
        "code": "unavailable",
        "message": "Service temporarily unavailable",
    }
    health = client.get("/api/v1/health")
    assert health.status_code == 503 and health.get_json()["status"] == "unavailable"
    assert client.get("/items", headers=bearer(TOKEN)).status_code == 200  # the token needs no storage


def test_storage_recovers_without_restart(tmp_path: Any) -> None:
    """An app that started while its storage was locked serves again once it is free."""
    import sqlite3

    db = tmp_path / "g.db"
    app = build_app(str(tmp_path), GRIDAUTH_STORAGE_URI=f"sqlite:///{db}", GRIDAUTH_STORAGE_TIMEOUT=0.2)
    _, raw = create_key(app)
    client = app.test_client()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        assert client.get("/items", headers=bearer(raw)).status_code == 503
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.get("/items", headers=bearer(raw)).status_code == 200


# -- configuration and disabled mode -----------------------------------------------


def test_init_app_twice_refused(tmp_path: Any) -> None:
    """Registering GridAuth twice on one app is an error."""
    app = build_app(str(tmp_path))
    with pytest.raises(RuntimeError, match="already"):
        GridAuth(app)


def test_two_apps_never_share_storage(tmp_path: Any) -> None:
    """One GridAuth object on two apps keeps two separate memory stores."""
    auth = GridAuth()
    apps = []
    for name in ("one", "two"):
        app = Flask(name, instance_path=str(tmp_path / name))
        app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://")
        auth.init_app(app)
        apps.append(app)
    assert auth.storage(apps[0]) is not auth.storage(apps[1])
    from flask_gridauth.keys import hash_key

    _, raw = create_key(apps[0])
    assert apps[0].extensions["gridauth"].storage.find(hash_key(raw)) is not None
    assert apps[1].extensions["gridauth"].storage.find(hash_key(raw)) is None


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        ("GRIDAUTH_STORAGE_URI", "mongodb://x", "mongodb"),
        ("GRIDAUTH_KEY_PREFIX", "Bad_Prefix", "GRIDAUTH_KEY_PREFIX"),
        ("GRIDAUTH_METHOD_SCOPES", ["read"], "GRIDAUTH_METHOD_SCOPES"),
        ("GRIDAUTH_SCOPE_IMPLICATIONS", {"admin": "write"}, "GRIDAUTH_SCOPE_IMPLICATIONS"),
        ("GRIDAUTH_STORAGE_TIMEOUT", -1, "GRIDAUTH_STORAGE_TIMEOUT"),
        ("GRIDAUTH_API_TOKEN", "has space", "GRIDAUTH_API_TOKEN"),
    ],
)
def test_bad_config_fails_at_start(tmp_path: Any, key: str, value: Any, match: str) -> None:
    """Bad configuration is a clear error at start-up, naming the key."""
    with pytest.raises(ConfigurationError, match=match):
        build_app(str(tmp_path), **{key: value})


def test_custom_prefix(tmp_path: Any) -> None:
    """GRIDAUTH_KEY_PREFIX changes the first part of every key."""
    app = build_app(str(tmp_path), GRIDAUTH_KEY_PREFIX="acme")
    _, raw = create_key(app)
    assert raw.startswith("acme_live_")
    assert app.test_client().get("/items", headers=bearer(raw)).status_code == 200


def test_disabled_mode_warns_and_lets_through(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any) -> None:
    """GRIDAUTH_AUTH=disabled turns authentication off with a loud warning on start."""
    monkeypatch.setenv("GRIDAUTH_AUTH", "disabled")
    app = build_app(str(tmp_path))
    assert any("DISABLED" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert app.test_client().post("/holdings").status_code == 200
    assert app.config["GRIDAUTH_ENABLED"] is False


def test_disabled_by_config_warns(tmp_path: Any, caplog: Any) -> None:
    """GRIDAUTH_ENABLED=False warns the same way."""
    app = build_app(str(tmp_path), GRIDAUTH_ENABLED=False)
    assert any("DISABLED" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)
    assert app.test_client().get("/items").status_code == 200


# -- usage timestamps and concurrency ---------------------------------------------------


def test_last_used_written_once_a_minute(app: Flask, client: Any) -> None:
    """The first use is recorded at once; later uses within a minute do not write."""
    record, raw = create_key(app)
    storage = app.extensions["gridauth"].storage
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    first = storage.get(record.id).last_used_at
    assert first is not None
    client.get("/items", headers=bearer(raw))
    assert storage.get(record.id).last_used_at == first
    storage.touch(record, first - timedelta(seconds=61))
    client.get("/items", headers=bearer(raw))
    assert storage.get(record.id).last_used_at > first - timedelta(seconds=61)


def test_forty_keys_eight_threads(app: Flask) -> None:
    """Forty keys created and used concurrently from eight threads all authenticate as themselves."""
    errors: list[str] = []

    def work(n: int) -> None:
        client = app.test_client()
        for i in range(5):
            _, raw = create_key(app, owner=f"owner-{n}-{i}")
            response = client.get("/items", headers=bearer(raw))
            if response.status_code != 200 or response.get_json()["owner"] != f"owner-{n}-{i}":
                errors.append(f"{n}-{i}: {response.status_code}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with app.app_context():
        assert len(app.extensions["gridauth"].keys.list(limit=100)) == 40


# -- secrets never leak ---------------------------------------------------------


def test_no_secret_in_logs(app: Flask, client: Any, caplog: Any) -> None:
    """No raw key, key hash or token reaches a log record through create, use, failure and revoke."""
    caplog.set_level("DEBUG")
    record, raw = create_key(app)
    client.get("/items", headers=bearer(raw))
    client.get("/items", headers=bearer(raw[:-1] + "0"))
    client.get("/items", headers=bearer(TOKEN + "nope"))
    client.get("/items", headers=bearer(TOKEN))
    with app.app_context():
        app.extensions["gridauth"].keys.revoke(record.id)
        _, rotated_raw = create_key(app)
    client.get("/items", headers=bearer(raw))
    text = "\n".join(r.getMessage() + " " + repr(r.args) for r in caplog.records)
    assert "key created" in text and "authentication failed" in text
    for secret in (raw, raw[:-1] + "0", record.lookup, TOKEN, rotated_raw, raw[9:]):
        assert secret not in text
    assert raw not in repr(record)
    assert record.lookup not in repr(record)


@storage_free
def test_error_bodies_never_echo_input(client: Any) -> None:
    """Whatever a caller sends, the error body is one of our fixed messages."""
    fixed = {"Authentication required", "Rate limit exceeded"}
    probes = [
        {"x-api-key": "grd_live_" + "ab" * 24},
        {"Authorization": "Bearer grd_test_" + "cd" * 24},
        {"Authorization": "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJlY2hvLW1lIn0.c2ln"},
        {"Authorization": "Bearer echo-me-if-you-can-0123456789"},
        {"Authorization": "Bearer <script>alert(1)</script>"},
        {"Authorization": "Digest echo-me-if-you-can"},
        {"X-Grid-Signature": "echo-me", "X-Grid-Timestamp": "99999999999", "X-Grid-Fingerprint": "echo-me-too"},
    ]
    for headers in probes:
        response = client.get("/items", headers=headers)
        body = response.get_data(as_text=True)
        assert response.status_code in (401, 429) and response.get_json()["message"] in fixed
        for sent in headers.values():
            assert sent not in body


@storage_free
def test_wrong_method_under_blueprint_is_json_405(client: Any) -> None:
    """A method the blueprint does not serve answers JSON 405 with Allow, never Flask's HTML page."""
    response = client.put("/api/v1/api-keys", headers=bearer(TOKEN))
    assert response.status_code == 405 and response.is_json
    assert response.get_json()["code"] == "method_not_allowed"
    assert "POST" in response.headers["Allow"]
    assert client.put("/api/v1/api-keys").status_code == 401  # unauthenticated callers learn nothing


@storage_free
def test_unknown_path_under_blueprint_is_json_404(client: Any) -> None:
    """An unknown path under the blueprint's prefix is a JSON 404; elsewhere the app's own 404 stands."""
    response = client.get("/api/v1/api-keys/key_x/nothing-here", headers=bearer(TOKEN))
    assert response.status_code == 404 and response.get_json()["code"] == "not_found"
    assert not client.get("/elsewhere", headers=bearer(TOKEN)).is_json


@storage_free
def test_expires_at_more_than_ten_years_refused(app: Flask) -> None:
    """An expires_at beyond ten years is a 422 naming the field, like expires_in."""
    from flask_gridauth.errors import InvalidRequest

    with pytest.raises(InvalidRequest) as info:
        create_key(app, expires_at="2099-01-01T00:00:00Z")
    assert info.value.field == "expires_at"
