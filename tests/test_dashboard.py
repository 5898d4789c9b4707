"""The key dashboard through Flask's test client: sign-in, the session, CSRF and headers."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import Principal, get_state
from flask_gridauth.dashboard.session import COOKIE_NAME, DashboardSessionInterface
from flask_gridauth.records import utcnow

from .conftest import TOKEN, create_key
from .dashboard_support import (
    CSRF_RE,
    ONCE_RE,
    RAW_RE,
    SECRET_KEY,
    D,
    create,
    csrf_of,
    dapp,
    dash_app,
    dclient,
    make_dash,
    once_of,
    post_form,
    raw_key_of,
    session_data,
    sign_in,
)

# Helpers and fixtures other test modules import from here (they live in dashboard_support).
__all__ = [
    "SECRET_KEY",
    "D",
    "CSRF_RE",
    "ONCE_RE",
    "RAW_RE",
    "dash_app",
    "make_dash",
    "dapp",
    "dclient",
    "csrf_of",
    "once_of",
    "sign_in",
    "post_form",
    "create",
    "raw_key_of",
    "session_data",
]


# -- sign-in ----------------------------------------------------------------------


def test_signed_out_index_redirects_to_sign_in(dclient: Any) -> None:
    """The key list sends a signed-out visitor to the sign-in page."""
    response = dclient.get(f"{D}/")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{D}/sign-in")


def test_sign_in_with_bootstrap_token(dclient: Any) -> None:
    """The bootstrap token signs in and shows the key list."""
    response = sign_in(dclient)
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{D}/")
    page = dclient.get(f"{D}/")
    assert page.status_code == 200
    assert "Your keys" in page.text and "bootstrap token" in page.text


def test_sign_in_wrong_token_is_refused_and_counted(dclient: Any, caplog: pytest.LogCaptureFixture) -> None:
    """A wrong token gets a 401 sign-in error, logged as a failed authentication without the value."""
    caplog.set_level(logging.DEBUG)
    response = sign_in(dclient, "wrong-token-" + "x" * 30)
    assert response.status_code == 401
    assert "was not accepted" in response.text
    assert "authentication failed" in caplog.text
    assert "wrong-token-" not in caplog.text
    assert dclient.get(f"{D}/").status_code == 303


@pytest.mark.parametrize("value", ["", "   ", "\n"])
def test_sign_in_empty_credential(dclient: Any, value: str) -> None:
    """An empty credential is a 422 form error."""
    response = sign_in(dclient, value)
    assert response.status_code == 422
    assert "Enter the bootstrap token" in response.text


@pytest.mark.parametrize("value", ["two words", "ünïcode", "x" * 5000])
def test_sign_in_malformed_credential(dclient: Any, value: str) -> None:
    """Malformed, non-ASCII or oversized credentials are a generic 401, never a 500."""
    response = sign_in(dclient, value)
    assert response.status_code == 401
    assert "was not accepted" in response.text


def test_sign_in_key_without_admin_is_forbidden(dapp: Flask, dclient: Any) -> None:
    """An API key without the admin scope cannot sign in (403)."""
    _, raw = create_key(dapp, ["write"], owner="alice")
    response = sign_in(dclient, raw)
    assert response.status_code == 403
    assert "admin scope" in response.text
    assert dclient.get(f"{D}/").status_code == 303


def test_sign_in_revoked_key_says_why(dapp: Flask, dclient: Any) -> None:
    """A revoked admin key is refused with a message its holder may read."""
    record, raw = create_key(dapp, ["admin"], owner="alice")
    with dapp.app_context():
        get_state(dapp).keys.revoke(record.id)
    response = sign_in(dclient, raw)
    assert response.status_code == 401
    assert "API key has been revoked" in response.text


def test_sign_in_is_rate_limited_after_failures(make_dash: Callable[..., Flask]) -> None:
    """Failed sign-ins count as failed authentications: past the limit a wrong one is 429, the right one signs in."""
    app = make_dash(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_FAILED_AUTH_LIMIT="2/minute")
    client = app.test_client()
    statuses = [sign_in(client, f"wrong-token-{i}-" + "y" * 30).status_code for i in range(4)]
    assert statuses == [401, 401, 429, 429]
    assert sign_in(client).status_code == 303


def test_sign_out_forgets_the_sign_in(dclient: Any) -> None:
    """Signing out clears the session; the list needs a new sign-in."""
    sign_in(dclient)
    page = dclient.get(f"{D}/")
    response = dclient.post(f"{D}/sign-out", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 303
    assert dclient.get(f"{D}/").status_code == 303
    assert "You are signed out" in dclient.get(f"{D}/sign-in").text


def test_signed_in_visitor_skips_the_form(dclient: Any) -> None:
    """The sign-in page redirects someone already signed in."""
    sign_in(dclient)
    assert dclient.get(f"{D}/sign-in").status_code == 303


# -- the session --------------------------------------------------------------------


def test_session_cookie_flags_over_http(dclient: Any) -> None:
    """The dashboard cookie is HttpOnly, SameSite=Strict, host-only, limited to the dashboard path."""
    response = dclient.get(f"{D}/sign-in")
    header = response.headers["Set-Cookie"]
    assert header.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in header
    assert "SameSite=Strict" in header
    assert f"Path={D};" in header or header.endswith(f"Path={D}")
    assert "Domain" not in header
    assert "Secure" not in header


def test_session_cookie_secure_over_https(dapp: Flask) -> None:
    """Over HTTPS the cookie is also Secure."""
    client = dapp.test_client()
    response = client.get(f"{D}/sign-in", base_url="https://localhost")
    assert "Secure" in response.headers["Set-Cookie"]


def test_app_session_settings_untouched(make_dash: Callable[..., Flask]) -> None:
    """The dashboard neither sets the app's own session cookie nor changes its settings."""
    app = make_dash(SESSION_COOKIE_SAMESITE="Lax")
    client = app.test_client()
    sign_in(client)
    assert client.get_cookie(app.config["SESSION_COOKIE_NAME"]) is None
    assert app.config["SESSION_COOKIE_SAMESITE"] == "Lax"
    assert app.config["SESSION_COOKIE_HTTPONLY"] is True


def test_session_holds_no_credential(dapp: Flask, dclient: Any) -> None:
    """After an admin key signs in, the cookie holds kind, id and owner, never the key or its hash."""
    record, raw = create_key(dapp, ["admin"], owner="bob")
    sign_in(dclient, raw)
    data = session_data(dapp, dclient)
    assert data["principal"]["kind"] == "api_key"
    assert data["principal"]["id"] == record.id
    assert data["principal"]["owner"] == "bob"
    cookie = dclient.get_cookie(COOKIE_NAME, path=D).value
    for secret in (raw, hashlib.sha256(raw.encode()).hexdigest(), raw[-20:]):
        assert secret not in repr(data)
        assert secret not in cookie


def test_token_session_holds_no_token(dapp: Flask, dclient: Any) -> None:
    """A bootstrap-token session holds a binding, never the token or its digest."""
    sign_in(dclient)
    data = session_data(dapp, dclient)
    assert data["principal"]["kind"] == "token"
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    assert TOKEN not in repr(data) and digest not in repr(data)


def test_session_ends_when_the_key_is_revoked(dapp: Flask, dclient: Any) -> None:
    """Revoking the signed-in key ends the session on the next request."""
    record, raw = create_key(dapp, ["admin"], owner="bob")
    sign_in(dclient, raw)
    assert dclient.get(f"{D}/").status_code == 200
    with dapp.app_context():
        get_state(dapp).keys.revoke(record.id)
    response = dclient.get(f"{D}/")
    assert response.status_code == 303
    assert "revoked" in dclient.get(f"{D}/sign-in").text


def test_session_ends_when_admin_is_taken_away(dapp: Flask, dclient: Any) -> None:
    """Narrowing the signed-in key's scopes below admin ends the session."""
    record, raw = create_key(dapp, ["admin", "read"], owner="bob")
    sign_in(dclient, raw)
    with dapp.app_context():
        get_state(dapp).keys.update(record.id, scopes=["read"])
    assert dclient.get(f"{D}/").status_code == 303


def test_session_ends_when_the_key_expires(dapp: Flask, dclient: Any) -> None:
    """An expired signed-in key ends the session."""
    record, raw = create_key(dapp, ["admin"], owner="bob")
    sign_in(dclient, raw)
    with dapp.app_context():
        get_state(dapp).storage.update(record.id, {"expires_at": utcnow() - timedelta(seconds=1)})
    assert dclient.get(f"{D}/").status_code == 303
    assert "expired" in dclient.get(f"{D}/sign-in").text


def test_session_ends_when_the_bootstrap_token_changes(tmp_path: Path) -> None:
    """A token session carried to an app with another bootstrap token is not accepted."""
    old = dash_app(tmp_path / "a")
    new = dash_app(tmp_path / "b", GRIDAUTH_API_TOKEN="another-bootstrap-token-0123456789")
    client = old.test_client()
    sign_in(client)
    cookie = client.get_cookie(COOKIE_NAME, path=D).value
    other = new.test_client()
    other.set_cookie(COOKIE_NAME, cookie, path=D)
    assert other.get(f"{D}/").status_code == 303


def test_session_expires_after_max_age(dapp: Flask) -> None:
    """A sign-in older than the session lifetime is refused even with a valid signature."""
    from flask_gridauth.dashboard.auth import SESSION_MAX_AGE

    client = dapp.test_client()
    sign_in(client)
    data = session_data(dapp, client)
    data["principal"]["t"] = int(time.time()) - SESSION_MAX_AGE - 60
    serializer = DashboardSessionInterface(D).get_signing_serializer(dapp)
    assert serializer is not None
    client.set_cookie(COOKIE_NAME, serializer.dumps(data), path=D)
    assert client.get(f"{D}/").status_code == 303


def test_forged_session_cookie_is_ignored(dapp: Flask) -> None:
    """A session signed with another secret key signs nobody in."""
    other = dash_app(Path(dapp.instance_path).parent / "other", SECRET_KEY="some-other-secret-key-0123456789")
    client = other.test_client()
    sign_in(client)
    forged = client.get_cookie(COOKIE_NAME, path=D).value
    victim = dapp.test_client()
    victim.set_cookie(COOKIE_NAME, forged, path=D)
    assert victim.get(f"{D}/").status_code == 303


def test_no_secret_key_is_a_clear_503(make_dash: Callable[..., Flask]) -> None:
    """Without SECRET_KEY the dashboard explains itself instead of failing with a 500."""
    app = make_dash(SECRET_KEY=None)
    response = app.test_client().get(f"{D}/sign-in")
    assert response.status_code == 503
    assert "SECRET_KEY" in response.text


def test_app_supplied_principal(make_dash: Callable[..., Flask]) -> None:
    """GRIDAUTH_DASHBOARD_PRINCIPAL signs in the app's own user, who sees only their keys."""
    carol = Principal(kind="jwt", id="carol", owner="carol", scopes=frozenset({"admin", "write", "read"}))
    app = make_dash(GRIDAUTH_DASHBOARD_PRINCIPAL=lambda: carol)
    create_key(app, ["read"], owner="carol", name="carol-key")
    create_key(app, ["read"], owner="dave", name="dave-key")
    client = app.test_client()
    page = client.get(f"{D}/")
    assert page.status_code == 200
    assert "carol-key" in page.text and "dave-key" not in page.text
    assert "Sign out" not in page.text
    response = create(client, name="from-jwt")
    assert response.status_code == 201
    with app.app_context():
        owners = {r.name: r.owner for r in get_state(app).keys.list(limit=100)}
    assert owners["from-jwt"] == "carol"


def test_app_supplied_principal_none_falls_back_to_the_form(make_dash: Callable[..., Flask]) -> None:
    """When the app's callable returns None, the dashboard's own sign-in applies."""
    app = make_dash(GRIDAUTH_DASHBOARD_PRINCIPAL=lambda: None)
    client = app.test_client()
    assert client.get(f"{D}/").status_code == 303
    sign_in(client)
    assert client.get(f"{D}/").status_code == 200


def test_app_supplied_principal_needs_admin(make_dash: Callable[..., Flask]) -> None:
    """An app-supplied principal without admin gets a 403 page, like the API."""
    reader = Principal(kind="jwt", id="erin", owner="erin", scopes=frozenset({"read"}))
    app = make_dash(GRIDAUTH_DASHBOARD_PRINCIPAL=lambda: reader)
    response = app.test_client().get(f"{D}/")
    assert response.status_code == 403
    assert "admin scope" in response.text


def test_disabled_auth_shows_a_banner(tmp_path: Path) -> None:
    """With authentication off the dashboard is open, and says so loudly."""
    app = dash_app(tmp_path / "instance", GRIDAUTH_ENABLED=False)
    page = app.test_client().get(f"{D}/")
    assert page.status_code == 200
    assert "Authentication is disabled" in page.text


# -- CSRF -----------------------------------------------------------------------------


def test_post_without_csrf_is_refused(dclient: Any) -> None:
    """A form without its CSRF token is a 400 page and does nothing."""
    sign_in(dclient)
    response = dclient.post(f"{D}/keys/new", data={"name": "x", "scopes": "read"})
    assert response.status_code == 400
    assert "Form refused" in response.text


def test_post_with_forged_csrf_is_refused(dclient: Any) -> None:
    """A forged or tampered CSRF token is refused."""
    sign_in(dclient)
    token = csrf_of(dclient.get(f"{D}/keys/new").text)
    for forged in ("forged", token[:-2] + ("AA" if not token.endswith("AA") else "BB"), "x" * 500):
        response = dclient.post(f"{D}/keys/new", data={"csrf_token": forged, "name": "x", "scopes": "read"})
        assert response.status_code == 400


def test_csrf_token_of_another_session_is_refused(dapp: Flask) -> None:
    """A valid token lifted from one session does not work in another."""
    mallory = dapp.test_client()
    stolen = csrf_of(mallory.get(f"{D}/sign-in").text)
    victim = dapp.test_client()
    sign_in(victim)
    response = victim.post(f"{D}/keys/new", data={"csrf_token": stolen, "name": "x", "scopes": "read"})
    assert response.status_code == 400


def test_sign_in_needs_csrf(dclient: Any) -> None:
    """The sign-in form itself is CSRF-protected (no login CSRF)."""
    response = dclient.post(f"{D}/sign-in", data={"credential": TOKEN})
    assert response.status_code == 400
    assert dclient.get(f"{D}/").status_code == 303


def test_sign_out_needs_csrf(dclient: Any) -> None:
    """Sign-out is a POST with a CSRF token; without it nothing happens."""
    sign_in(dclient)
    assert dclient.post(f"{D}/sign-out").status_code == 400
    assert dclient.get(f"{D}/").status_code == 200


def test_csrf_tokens_renewed_at_sign_in(dclient: Any) -> None:
    """A token issued before sign-in no longer works after it."""
    before = csrf_of(dclient.get(f"{D}/sign-in").text)
    sign_in(dclient)
    response = dclient.post(f"{D}/sign-out", data={"csrf_token": before})
    assert response.status_code == 400
