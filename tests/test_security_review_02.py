"""Regression tests for issue 14 (the outside security review): each one failed before its fix."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask

from flask_gridauth import ConfigurationError, RateLimited, Unauthorized, get_state
from flask_gridauth.keys import generate_key

from .conftest import TOKEN, bearer, build_app, create_key

# -- L5: a method the method table does not list needs write (fail closed) ------------------------------------------


def _method_app(tmp_path: Any, **config: Any) -> tuple[Flask, list[str]]:
    """A test app with an undecorated route that serves methods outside the default table."""
    app = build_app(str(tmp_path / "instance"), **config)
    ran: list[str] = []

    @app.route("/dav", methods=["GET", "PROPFIND", "PURGE", "OPTIONS"])
    def dav() -> dict[str, str]:
        from flask import request

        ran.append(request.method)
        return {"method": request.method}

    return app, ran


@pytest.mark.parametrize("method", ["PROPFIND", "PURGE", "OPTIONS"])
def test_unlisted_method_needs_write(tmp_path: Any, method: str) -> None:
    """A read-only key reaching an undecorated route with a method the table omits gets 403, a writer gets in."""
    app, ran = _method_app(tmp_path)
    client = app.test_client()
    _, reader = create_key(app, ["read"])
    response = client.open("/dav", method=method, headers=bearer(reader))
    assert response.status_code == 403
    assert response.get_json()["message"] == "Missing required scope: write"
    assert ran == []
    _, writer = create_key(app, ["write"])
    assert client.open("/dav", method=method, headers=bearer(writer)).status_code == 200
    assert ran == [method]
    assert client.get("/dav", headers=bearer(reader)).status_code == 200


def test_unlisted_method_needs_write_under_a_custom_table(tmp_path: Any) -> None:
    """A table naming only GET makes POST and DELETE need write, not nothing; HEAD follows GET."""
    app, ran = _method_app(tmp_path, GRIDAUTH_METHOD_SCOPES={"GET": "reports:read"})
    client = app.test_client()
    _, reporter = create_key(app, ["reports:read"])
    assert client.get("/items", headers=bearer(reporter)).status_code == 200
    assert client.head("/items", headers=bearer(reporter)).status_code == 200
    for method in ("POST", "DELETE", "PATCH"):
        assert client.open("/items", method=method, headers=bearer(reporter)).status_code == 403
    assert client.open("/dav", method="PURGE", headers=bearer(TOKEN)).status_code == 200


def test_method_table_none_still_turns_the_default_off(tmp_path: Any) -> None:
    """``GRIDAUTH_METHOD_SCOPES = None`` keeps its documented meaning: any credential, no scope."""
    app, _ = _method_app(tmp_path, GRIDAUTH_METHOD_SCOPES=None)
    _, outsider = create_key(app, ["billing:read"])
    assert app.test_client().open("/dav", method="PURGE", headers=bearer(outsider)).status_code == 200


# -- i1: the failed-authentication throttle never refuses a valid credential ----------------------------------------


@pytest.fixture
def throttled(make_app: Callable[..., Flask]) -> Flask:
    """An app on the current backend whose failed-authentication limit is 3 a minute."""
    return make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_FAILED_AUTH_LIMIT="3/minute")


def test_valid_key_from_a_throttled_address_is_served(throttled: Flask) -> None:
    """Behind one NAT, an attacker's failures past the limit get 429, but a valid key from that address gets 200."""
    _, good = create_key(throttled)
    client = throttled.test_client()
    statuses = [client.get("/items", headers=bearer(generate_key("grd"))).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert client.get("/items", headers=bearer(good)).status_code == 200
    assert client.get("/items", headers=bearer(TOKEN)).status_code == 200
    refused = client.get("/items", headers=bearer(generate_key("grd")))
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/items", headers=bearer(good)).status_code == 200


def test_malformed_credentials_past_the_limit_get_429_and_valid_ones_pass(throttled: Flask) -> None:
    """Malformed credentials count too; past the limit they are 429, and a valid key still passes."""
    _, good = create_key(throttled)
    client = throttled.test_client()
    statuses = [client.get("/items", headers=bearer("not a token")).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert client.get("/items", headers=bearer(good)).status_code == 200


def test_dashboard_sign_in_with_a_valid_key_from_a_throttled_address(throttled: Flask) -> None:
    """The verify_bearer path (dashboard sign-in) also serves a valid credential from a throttled address."""
    _, good = create_key(throttled, ["admin"])
    state = get_state(throttled)
    with throttled.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.9"}):
        for _ in range(3):
            with pytest.raises(Unauthorized):
                state.verify_bearer(generate_key("grd"))
        with pytest.raises(RateLimited):
            state.verify_bearer(generate_key("grd"))
        assert state.verify_bearer(good).owner == "alice"


# -- i2: JWT issuers whose sub values collide --------------------------------------------------------------------------

ISSUER_A = "https://a.issuer.test"
ISSUER_B = "https://b.issuer.test"
SECRET_A = "issuer-a-secret-" + "a" * 32
SECRET_B = "issuer-b-secret-" + "b" * 32


def _issuer(name: str, secret: str, **extra: Any) -> dict[str, Any]:
    """An all-scopes HS256 issuer entry."""
    return {"issuer": name, "secret": secret, "algorithms": ["HS256"], "all_scopes": True, **extra}


def _jwt(issuer: str, secret: str, sub: str) -> str:
    """A valid HS256 token of ``issuer`` for ``sub``."""
    return pyjwt.encode({"iss": issuer, "sub": sub, "exp": int(time.time()) + 600}, secret, algorithm="HS256")


def test_owner_prefix_keeps_colliding_subjects_apart(tmp_path: Any) -> None:
    """The same sub from two issuers is two owners once one issuer has an owner_prefix: no shared keys."""
    app = build_app(
        str(tmp_path / "instance"),
        GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix="clerk:"), _issuer(ISSUER_B, SECRET_B)],
    )
    client = app.test_client()
    a_user = bearer(_jwt(ISSUER_A, SECRET_A, "user_1"))
    b_user = bearer(_jwt(ISSUER_B, SECRET_B, "user_1"))
    assert client.get("/api/v1/me", headers=a_user).get_json()["owner"] == "clerk:user_1"
    assert client.get("/api/v1/me", headers=b_user).get_json()["owner"] == "user_1"
    created = client.post("/api/v1/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=a_user)
    assert created.status_code == 201
    assert created.get_json()["owner"] == "clerk:user_1"
    key_id = created.get_json()["id"]
    assert client.get("/api/v1/api-keys", headers=b_user).get_json()["data"] == []
    assert client.get(f"/api/v1/api-keys/{key_id}", headers=b_user).status_code == 404
    assert client.get(f"/api/v1/api-keys/{key_id}", headers=a_user).status_code == 200


def test_owner_prefix_separates_rate_limit_counters(tmp_path: Any) -> None:
    """Two issuers' users with one sub count against separate JWT limits when one issuer has a prefix."""
    app = build_app(
        str(tmp_path / "instance"),
        GRIDAUTH_RATELIMIT_ENABLED=True,
        GRIDAUTH_RATELIMIT_JWT="2/minute",
        GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix="clerk:"), _issuer(ISSUER_B, SECRET_B)],
    )
    client = app.test_client()
    a_user = bearer(_jwt(ISSUER_A, SECRET_A, "user_1"))
    b_user = bearer(_jwt(ISSUER_B, SECRET_B, "user_1"))
    assert [client.get("/items", headers=a_user).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/items", headers=b_user).status_code == 200


def test_two_issuers_in_one_sub_namespace_warn_at_start_up(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Two issuers without owner_prefix (or with the same one) log a warning naming both; distinct prefixes do not."""
    with caplog.at_level(logging.WARNING, logger="flask_gridauth"):
        build_app(
            str(tmp_path / "one"), GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A), _issuer(ISSUER_B, SECRET_B)]
        )
    shared = [r for r in caplog.records if r.name == "flask_gridauth" and "owner_prefix" in r.getMessage()]
    assert len(shared) == 1
    assert ISSUER_A in shared[0].getMessage() and ISSUER_B in shared[0].getMessage()
    assert SECRET_A not in caplog.text and SECRET_B not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_gridauth"):
        build_app(
            str(tmp_path / "two"),
            GRIDAUTH_JWT_ISSUERS=[
                _issuer(ISSUER_A, SECRET_A, owner_prefix="a:"),
                _issuer(ISSUER_B, SECRET_B, owner_prefix="a:"),
            ],
        )
    assert any("owner_prefix" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_gridauth"):
        build_app(
            str(tmp_path / "three"),
            GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix="a:"), _issuer(ISSUER_B, SECRET_B)],
        )
        build_app(str(tmp_path / "four"), GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A)])
    assert not any("owner_prefix" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("prefix", ["", " x:", "x: ", 7, "a" * 65, "tab\t:"])
def test_owner_prefix_must_be_a_short_printable_string(tmp_path: Any, prefix: object) -> None:
    """An owner_prefix that is empty, padded, not a string, too long or unprintable is refused at start-up."""
    with pytest.raises(ConfigurationError, match="owner_prefix"):
        build_app(str(tmp_path / "instance"), GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix=prefix)])


def test_owner_prefix_applies_to_the_reserved_owner_check(tmp_path: Any) -> None:
    """A prefixed owner is checked against GRIDAUTH_TOKEN_OWNER as a whole: 'admin' with prefix 'x:' is fine."""
    app = build_app(str(tmp_path / "instance"), GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix="x:")])
    response = app.test_client().get("/api/v1/me", headers=bearer(_jwt(ISSUER_A, SECRET_A, "admin")))
    assert response.status_code == 200
    assert response.get_json()["owner"] == "x:admin"
