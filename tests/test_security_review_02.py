"""Regression tests for issue 14 (the outside security review): each one failed before its fix."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import RateLimited, Unauthorized, get_state
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
