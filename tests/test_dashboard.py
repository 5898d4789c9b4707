"""The key dashboard through Flask's test client: every form's errors, headers, session and secrets."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask

from flask_gridauth import ConfigurationError, GridAuthError, Principal, StorageError, dashboard_blueprint, get_state
from flask_gridauth.credentials.signature import load_public_key
from flask_gridauth.dashboard.session import COOKIE_NAME, DashboardSessionInterface
from flask_gridauth.records import utcnow

from .conftest import TOKEN, bearer, build_app, create_key

SECRET_KEY = "dashboard-tests-secret-key-0123456789abcdef"
D = "/dashboard"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
ONCE_RE = re.compile(r'name="once" value="([^"]+)"')
RAW_RE = re.compile(r'id="raw-key"[^>]*value="([^"]+)"')


def dash_app(instance: Path, **config: Any) -> Flask:
    """A test app with the dashboard at /dashboard."""
    config.setdefault("SECRET_KEY", SECRET_KEY)
    app = build_app(str(instance), **config)
    app.register_blueprint(dashboard_blueprint, url_prefix=D)
    return app


@pytest.fixture
def make_dash(tmp_path: Path) -> Callable[..., Flask]:
    """A factory of dashboard apps on memory storage; keyword arguments are config."""
    return lambda **config: dash_app(tmp_path / "instance", **config)


@pytest.fixture
def dapp(make_dash: Callable[..., Flask]) -> Flask:
    """A dashboard app on memory storage."""
    return make_dash()


@pytest.fixture
def dclient(dapp: Flask) -> Any:
    """A test client of ``dapp``."""
    return dapp.test_client()


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def once_of(html: str) -> str:
    """The single-use token of a key-revealing form."""
    match = ONCE_RE.search(html)
    assert match, "no single-use token on the page"
    return match.group(1)


def sign_in(client: Any, credential: str = TOKEN) -> Any:
    """Post the sign-in form; the response."""
    page = client.get(f"{D}/sign-in")
    return client.post(f"{D}/sign-in", data={"csrf_token": csrf_of(page.text), "credential": credential})


def post_form(client: Any, path: str, data: dict[str, Any]) -> Any:
    """GET the form at ``path``, then POST ``data`` with its CSRF (and single-use) token."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    fields = {"csrf_token": csrf_of(page.text), **data}
    once = ONCE_RE.search(page.text)
    if once:
        fields.setdefault("once", once.group(1))
    return client.post(path, data=fields)


def create(client: Any, **data: Any) -> Any:
    """Post the create form (defaults: name "ci", scope read)."""
    data.setdefault("name", "ci")
    data.setdefault("scopes", "read")
    return post_form(client, f"{D}/keys/new", data)


def raw_key_of(html: str) -> str:
    """The raw key shown on a created/rotated page."""
    match = RAW_RE.search(html)
    assert match, "no raw key on the page"
    return match.group(1)


def session_data(app: Flask, client: Any) -> dict[str, Any]:
    """The decoded dashboard session cookie of ``client``."""
    cookie = client.get_cookie(COOKIE_NAME, path=D)
    assert cookie is not None
    serializer = DashboardSessionInterface(D).get_signing_serializer(app)
    assert serializer is not None
    return dict(serializer.loads(cookie.value))


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


# -- headers --------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/sign-in", "/", "/keys/new", "/signing-keys/new", "/keys/missing/revoke"])
def test_security_headers_on_pages(dclient: Any, path: str) -> None:
    """Every dashboard page carries CSP, frame, referrer, nosniff and no-store headers."""
    sign_in(dclient)
    response = dclient.get(D + path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_no_inline_script_or_style(dclient: Any) -> None:
    """Pages hold no inline script or style attribute (the CSP would block them)."""
    sign_in(dclient)
    for path in ("/", "/keys/new", "/signing-keys/new"):
        html = dclient.get(D + path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert " style=" not in html and "<style" not in html and "onclick" not in html
    html = create(dclient).text
    assert re.search(r'<script src="[^"]+copy\.js" defer>', html)


def test_static_files_served_with_headers(dclient: Any) -> None:
    """The stylesheet and script are served by the blueprint with nosniff."""
    for name, kind in (("dashboard.css", "text/css"), ("copy.js", "javascript")):
        response = dclient.get(f"{D}/static/{name}")
        assert response.status_code == 200
        assert kind in response.headers["Content-Type"]
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        response.close()


def test_labels_match_inputs(dclient: Any) -> None:
    """Every form control has a label pointing at its id."""
    sign_in(dclient)
    for path in ("/keys/new", "/signing-keys/new"):
        html = dclient.get(D + path).text
        ids = re.findall(r'<(?:input|select|textarea)(?![^>]*type="hidden")[^>]*\bid="([^"]+)"', html)
        assert ids
        for control in ids:
            assert f'<label for="{control}"' in html, control


# -- create -------------------------------------------------------------------------------


def test_create_shows_the_raw_key_once(dapp: Flask, dclient: Any) -> None:
    """Create answers 201 with the raw key and no-store; the key works; a repost is refused."""
    sign_in(dclient)
    page = dclient.get(f"{D}/keys/new")
    data = {"csrf_token": csrf_of(page.text), "once": once_of(page.text), "name": "ci", "scopes": "read write"}
    response = dclient.post(f"{D}/keys/new", data=data)
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    assert "will not be shown again" in response.text
    raw = raw_key_of(response.text)
    assert raw.startswith("grd_live_")
    api = dapp.test_client().get("/items", headers=bearer(raw))
    assert api.status_code == 200
    assert api.get_json()["owner"] == "admin"
    again = dclient.post(f"{D}/keys/new", data=data)
    assert again.status_code == 409
    assert raw not in again.text
    listing = dclient.get(f"{D}/")
    assert raw not in listing.text
    assert raw[:17] in listing.text  # the display prefix


def test_create_test_environment_and_expiry(dapp: Flask, dclient: Any) -> None:
    """The form's environment and expiry in days reach the key."""
    sign_in(dclient)
    response = create(dclient, environment="test", expires_in_days="30")
    assert response.status_code == 201
    assert raw_key_of(response.text).startswith("grd_test_")
    with dapp.app_context():
        record = get_state(dapp).keys.list(limit=1)[0]
    assert record.environment == "test"
    assert record.expires_at is not None
    assert timedelta(days=29) < record.expires_at - utcnow() <= timedelta(days=30)


@pytest.mark.parametrize(
    ("data", "status", "field", "text"),
    [
        ({"name": ""}, 422, "name", "name must be"),
        ({"name": "x" * 201}, 422, "name", "name must be"),
        ({"name": "tab\there"}, 422, "name", "name must be"),
        ({"scopes": ""}, 422, "scopes", "scopes must be"),
        ({"scopes": "read bad!scope"}, 422, "scopes", "invalid scope"),
        ({"scopes": " ".join(f"s{i}" for i in range(51))}, 422, "scopes", "scopes must be"),
        ({"expires_in_days": "abc"}, 422, "expires_in_days", "days"),
        ({"expires_in_days": "0"}, 422, "expires_in_days", "days"),
        ({"expires_in_days": "99999"}, 422, "expires_in_days", "days"),
        ({"expires_in_days": "-3"}, 422, "expires_in_days", "days"),
        ({"environment": "prod"}, 422, "environment", "environment must be"),
    ],
)
def test_create_validation_errors(
    dapp: Flask, dclient: Any, data: dict[str, str], status: int, field: str, text: str
) -> None:
    """Each bad field re-shows the form with the KeyManager's message, the field marked, and no key."""
    sign_in(dclient)
    response = create(dclient, **data)
    assert response.status_code == status
    assert text in response.text
    assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', response.text) or re.search(
        rf'<fieldset[^>]*aria-invalid="true"[^>]*>\s*<legend>{field.capitalize()}', response.text
    )
    assert 'id="raw-key"' not in response.text
    assert once_of(response.text)  # a fresh single-use token to try again
    with dapp.app_context():
        assert get_state(dapp).keys.list(limit=10) == []


def test_create_keeps_what_was_typed(dclient: Any) -> None:
    """A refused form keeps the name and scopes the user typed (escaped)."""
    sign_in(dclient)
    response = create(dclient, name="<b>mine</b>", scopes="read nope!")
    assert response.status_code == 422
    assert 'value="&lt;b&gt;mine&lt;/b&gt;"' in response.text
    assert 'value="read nope!"' in response.text


def test_create_cannot_escalate(dapp: Flask, dclient: Any) -> None:
    """An admin key cannot grant a scope it does not hold (403 from the KeyManager)."""
    _, raw = create_key(dapp, ["admin"], owner="bob")
    sign_in(dclient, raw)
    response = create(dclient, scopes="read billing:read")
    assert response.status_code == 403
    assert "Cannot grant a scope you do not hold: billing:read" in response.text


def test_create_reuse_of_form_is_refused(dclient: Any) -> None:
    """A key-revealing form's single-use token cannot be posted twice or invented."""
    sign_in(dclient)
    page = dclient.get(f"{D}/keys/new")
    base = {"csrf_token": csrf_of(page.text), "name": "ci", "scopes": "read"}
    assert dclient.post(f"{D}/keys/new", data={**base, "once": "0" * 32}).status_code == 409
    assert dclient.post(f"{D}/keys/new", data=base).status_code == 409


def test_key_names_are_escaped(dapp: Flask, dclient: Any) -> None:
    """Names are HTML-escaped everywhere they appear."""
    create_key(dapp, ["read"], owner="admin", name="<script>alert(1)</script>")
    sign_in(dclient)
    html = dclient.get(f"{D}/").text
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# -- scope catalog -----------------------------------------------------------------------------


def test_catalog_checkboxes(make_dash: Callable[..., Flask]) -> None:
    """With GRIDAUTH_SCOPE_CATALOG the form offers checkboxes, and ticked ones reach the key."""
    app = make_dash(GRIDAUTH_SCOPE_CATALOG={"read": "Read boards", "write": "Change boards", "billing:read": "Bills"})
    client = app.test_client()
    sign_in(client)
    html = client.get(f"{D}/keys/new").text
    assert html.count('type="checkbox" id="scope-') == 3
    assert "Read boards" in html
    response = post_form(client, f"{D}/keys/new", {"name": "ci", "scopes": ["read", "billing:read"]})
    assert response.status_code == 201
    with app.app_context():
        assert get_state(app).keys.list(limit=1)[0].scopes == ("read", "billing:read")


def test_catalog_refuses_other_scopes(make_dash: Callable[..., Flask]) -> None:
    """A posted scope outside the catalog is a 422 on the scopes field."""
    app = make_dash(GRIDAUTH_SCOPE_CATALOG=["read", "write"])
    client = app.test_client()
    sign_in(client)
    response = post_form(client, f"{D}/keys/new", {"name": "ci", "scopes": ["read", "admin"]})
    assert response.status_code == 422
    assert "chosen from the list" in response.text
    assert post_form(client, f"{D}/keys/new", {"name": "ci"}).status_code == 422


def test_catalog_disables_unheld_scopes(make_dash: Callable[..., Flask]) -> None:
    """A scope the signed-in key does not hold is shown disabled."""
    app = make_dash(GRIDAUTH_SCOPE_CATALOG=["read", "billing:read"])
    _, raw = create_key(app, ["admin"], owner="bob")
    client = app.test_client()
    sign_in(client, raw)
    html = client.get(f"{D}/keys/new").text
    assert re.search(r'value="billing:read"[^>]*disabled', html)
    assert not re.search(r'value="read"[^>]*disabled', html)


@pytest.mark.parametrize("catalog", [[], "read write", ["bad scope!"], {"read": 3}])
def test_bad_catalog_fails_at_registration(tmp_path: Path, catalog: object) -> None:
    """A malformed catalog is a ConfigurationError when the blueprint is registered."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_SCOPE_CATALOG"):
        dash_app(tmp_path / "instance", GRIDAUTH_SCOPE_CATALOG=catalog)


# -- the list ----------------------------------------------------------------------------------


def test_list_shows_columns_and_status(dapp: Flask, dclient: Any) -> None:
    """The list shows name, prefix, type, scopes, environment, dates and status."""
    active, _ = create_key(dapp, ["read", "write"], owner="admin", name="active-key", environment="test")
    revoked, _ = create_key(dapp, ["read"], owner="admin", name="revoked-key")
    expired, _ = create_key(dapp, ["read"], owner="admin", name="expired-key")
    with dapp.app_context():
        state = get_state(dapp)
        state.keys.revoke(revoked.id)
        state.storage.update(expired.id, {"expires_at": utcnow() - timedelta(seconds=5)})
    sign_in(dclient)
    html = dclient.get(f"{D}/").text
    for heading in ("Name", "Prefix", "Type", "Scopes", "Environment", "Created", "Last used", "Expires", "Status"):
        assert f">{heading}" in html
    rows = {
        m.group(1): m.group(0) for m in re.finditer(r'<tr class="key-row" data-key-id="([^"]+)">.*?</tr>', html, re.S)
    }
    assert "status-active" in rows[active.id] and "Rotate" in rows[active.id]
    assert "<code>write</code>" in rows[active.id] and ">test<" in rows[active.id]
    assert "status-revoked" in rows[revoked.id] and "Revoke" not in rows[revoked.id]
    assert "status-expired" in rows[expired.id] and "Rotate" not in rows[expired.id]
    assert html.index("expired-key") < html.index("revoked-key") < html.index("active-key")


def test_list_pages_newest_first(dapp: Flask, dclient: Any) -> None:
    """More than a page of keys pages with ?before=, newest first, without repeats."""
    for i in range(25):
        create_key(dapp, ["read"], owner="admin", name=f"key-{i:02d}")
    sign_in(dclient)
    first = dclient.get(f"{D}/").text
    names = re.findall(r'<th scope="row"><a href="[^"]+">(key-\d\d)</a></th>', first)
    assert names == [f"key-{i:02d}" for i in range(24, 4, -1)]
    older = re.search(r'href="([^"]+\?before=\d+)" rel="next"', first)
    assert older
    second = dclient.get(older.group(1)).text
    row = r'<th scope="row"><a href="[^"]+">(key-\d\d)</a></th>'
    assert re.findall(row, second) == [f"key-{i:02d}" for i in range(4, -1, -1)]
    assert 'rel="next"' not in second and "Newest keys" in second


@pytest.mark.parametrize("before", ["abc", "-1", "1" * 30, "1.5"])
def test_list_bad_page_is_400(dclient: Any, before: str) -> None:
    """A malformed page marker is a 400 page, never a 500."""
    sign_in(dclient)
    assert dclient.get(f"{D}/", query_string={"before": before}).status_code == 400


def test_owners_are_isolated(dapp: Flask) -> None:
    """An admin key sees and touches only its owner's keys; others' are 404."""
    alice_key, _ = create_key(dapp, ["read"], owner="alice", name="alice-secret-project")
    _, bob_admin = create_key(dapp, ["admin"], owner="bob", name="bob-admin")
    client = dapp.test_client()
    sign_in(client, bob_admin)
    html = client.get(f"{D}/").text
    assert "bob-admin" in html and "alice-secret-project" not in html
    for action in ("rotate", "revoke"):
        assert client.get(f"{D}/keys/{alice_key.id}/{action}").status_code == 404
    page = client.get(f"{D}/")
    response = client.post(f"{D}/keys/{alice_key.id}/revoke", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 404
    with dapp.app_context():
        assert get_state(dapp).keys.get(alice_key.id).revoked_at is None


def test_token_sees_every_owner(dapp: Flask, dclient: Any) -> None:
    """The bootstrap token sees every owner's keys, with an owner column."""
    create_key(dapp, ["read"], owner="alice", name="alice-key")
    create_key(dapp, ["read"], owner="bob", name="bob-key")
    sign_in(dclient)
    html = dclient.get(f"{D}/").text
    assert "alice-key" in html and "bob-key" in html and ">Owner<" in html


def test_storage_down_is_a_503_page(make_dash: Callable[..., Flask]) -> None:
    """With the storage unreachable a sign-in (its session is stored) answers a 503 page, not a 500."""
    app = make_dash(GRIDAUTH_STORAGE_URI="redis://127.0.0.1:1/0", GRIDAUTH_STORAGE_TIMEOUT=0.5)
    client = app.test_client()
    response = sign_in(client)
    assert response.status_code == 503
    assert "Storage unavailable" in response.text
    assert client.get(f"{D}/").status_code == 303  # nobody was signed in


def test_storage_down_after_sign_in_is_a_503_page(make_dash: Callable[..., Flask]) -> None:
    """A signed-in list whose storage stops answering is a 503 page, not a 500 and not a session let through."""
    app = make_dash()
    client = app.test_client()
    sign_in(client)
    storage = get_state(app).storage

    def down(session_id: str) -> None:
        raise StorageError("storage down")

    storage.session_subject = down  # type: ignore[assignment,method-assign]
    response = client.get(f"{D}/")
    assert response.status_code == 503
    assert "Storage unavailable" in response.text


# -- rotate and revoke ---------------------------------------------------------------------------


def test_rotate_with_grace(dapp: Flask, dclient: Any) -> None:
    """Rotation shows the new key once; the old one keeps working through the grace period."""
    record, old_raw = create_key(dapp, ["read"], owner="admin", name="rotating")
    sign_in(dclient)
    confirm = dclient.get(f"{D}/keys/{record.id}/rotate")
    assert confirm.status_code == 200 and 'name="grace_period"' in confirm.text
    response = post_form(dclient, f"{D}/keys/{record.id}/rotate", {"grace_period": "3600"})
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    new_raw = raw_key_of(response.text)
    assert new_raw != old_raw
    assert "keeps working until" in response.text
    api = dapp.test_client()
    assert api.get("/items", headers=bearer(new_raw)).status_code == 200
    assert api.get("/items", headers=bearer(old_raw)).status_code == 200
    with dapp.app_context():
        old = get_state(dapp).keys.get(record.id)
    assert old.expires_at is not None
    assert timedelta(minutes=59) < old.expires_at - utcnow() <= timedelta(hours=1)


def test_rotate_without_grace_stops_the_old_key(dapp: Flask, dclient: Any) -> None:
    """A zero grace period retires the old key at once."""
    record, old_raw = create_key(dapp, ["read"], owner="admin")
    sign_in(dclient)
    response = post_form(dclient, f"{D}/keys/{record.id}/rotate", {"grace_period": "0"})
    assert response.status_code == 201
    assert "no longer works" in response.text
    assert dapp.test_client().get("/items", headers=bearer(old_raw)).status_code == 401


@pytest.mark.parametrize(
    ("grace", "text"),
    [("abc", "grace period must be"), ("-5", "grace period must be"), ("999999999", "grace_period must be")],
)
def test_rotate_validation_errors(dapp: Flask, dclient: Any, grace: str, text: str) -> None:
    """A bad grace period re-shows the confirmation with the error and no key."""
    record, _ = create_key(dapp, ["read"], owner="admin")
    sign_in(dclient)
    response = post_form(dclient, f"{D}/keys/{record.id}/rotate", {"grace_period": grace})
    assert response.status_code == 422
    assert text in response.text
    assert 'id="raw-key"' not in response.text
    assert re.search(r'id="grace_period"[^>]*aria-invalid="true"', response.text)


def test_rotate_revoked_key_is_refused(dapp: Flask, dclient: Any) -> None:
    """Only an active key can be rotated (the KeyManager's 409)."""
    record, _ = create_key(dapp, ["read"], owner="admin")
    sign_in(dclient)
    page = dclient.get(f"{D}/keys/{record.id}/rotate")
    with dapp.app_context():
        get_state(dapp).keys.revoke(record.id)
    response = dclient.post(
        f"{D}/keys/{record.id}/rotate",
        data={"csrf_token": csrf_of(page.text), "once": once_of(page.text), "grace_period": "0"},
    )
    assert response.status_code == 409
    assert "Only an active key can be rotated" in response.text


def test_rotate_cannot_escalate(dapp: Flask) -> None:
    """An admin key cannot rotate (and so re-issue) a key holding scopes it lacks."""
    target, _ = create_key(dapp, ["billing:read"], owner="bob")
    _, raw = create_key(dapp, ["admin"], owner="bob")
    client = dapp.test_client()
    sign_in(client, raw)
    response = post_form(client, f"{D}/keys/{target.id}/rotate", {"grace_period": "0"})
    assert response.status_code == 403
    assert 'id="raw-key"' not in response.text


def test_rotate_repost_is_refused(dapp: Flask, dclient: Any) -> None:
    """Reloading the page that showed a rotated key does not rotate again."""
    record, _ = create_key(dapp, ["read"], owner="admin")
    sign_in(dclient)
    page = dclient.get(f"{D}/keys/{record.id}/rotate")
    data = {"csrf_token": csrf_of(page.text), "once": once_of(page.text), "grace_period": "3600"}
    assert dclient.post(f"{D}/keys/{record.id}/rotate", data=data).status_code == 201
    assert dclient.post(f"{D}/keys/{record.id}/rotate", data=data).status_code == 409


def test_unknown_key_pages_are_404(dclient: Any) -> None:
    """Rotate and revoke pages of a missing key are 404 pages."""
    sign_in(dclient)
    for path in ("/keys/key_nope/rotate", "/keys/key_nope/revoke", "/keys/" + "k" * 300 + "/revoke"):
        response = dclient.get(D + path)
        assert response.status_code == 404
        assert "API key not found" in response.text


def test_revoke_needs_confirmation_then_revokes(dapp: Flask, dclient: Any) -> None:
    """GET only asks; the confirming POST revokes at once and the API refuses the key."""
    record, raw = create_key(dapp, ["read"], owner="admin", name="doomed")
    sign_in(dclient)
    confirm = dclient.get(f"{D}/keys/{record.id}/revoke")
    assert confirm.status_code == 200 and "cannot be undone" in confirm.text
    assert dapp.test_client().get("/items", headers=bearer(raw)).status_code == 200
    response = dclient.post(f"{D}/keys/{record.id}/revoke", data={"csrf_token": csrf_of(confirm.text)})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{D}/")
    assert "Revoked the key “doomed”" in dclient.get(f"{D}/").text
    assert dapp.test_client().get("/items", headers=bearer(raw)).status_code == 401


# -- signing keys ----------------------------------------------------------------------------------


def _public_key_b64() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize("public_key", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_signing_key_validation_errors(dclient: Any, public_key: str) -> None:
    """A bad public key is a 422 form error naming the problem."""
    sign_in(dclient)
    response = post_form(dclient, f"{D}/signing-keys/new", {"name": "bot", "scopes": "read", "public_key": public_key})
    assert response.status_code == 422
    assert 'class="error"' in response.text
    assert "Fingerprint" not in response.text


def test_signing_key_form_errors_for_name_and_scopes(dclient: Any) -> None:
    """The signing-key form reports name and scope errors like the create form."""
    sign_in(dclient)
    key = _public_key_b64()
    response = post_form(dclient, f"{D}/signing-keys/new", {"name": "", "scopes": "read", "public_key": key})
    assert response.status_code == 422 and "name must be" in response.text
    response = post_form(dclient, f"{D}/signing-keys/new", {"name": "bot", "scopes": "", "public_key": key})
    assert response.status_code == 422 and "scopes must be" in response.text


def test_signing_key_registration(dapp: Flask, dclient: Any) -> None:
    """A valid public key is registered and its fingerprint shown (or the verifier's 422 until it lands)."""
    key = _public_key_b64()
    sign_in(dclient)
    response = post_form(dclient, f"{D}/signing-keys/new", {"name": "bot", "scopes": "read", "public_key": key})
    try:
        _, fingerprint = load_public_key(key)
    except GridAuthError as exc:
        assert response.status_code == exc.code
        assert exc.message in response.text
        return
    assert response.status_code == 201
    assert fingerprint in response.text
    expected = base64.b64encode(hashlib.sha256(base64.b64decode(key)).digest()).decode().rstrip("=")
    assert fingerprint == expected
    assert fingerprint in dclient.get(f"{D}/").text


# -- secrets never leak ------------------------------------------------------------------------------


def test_raw_keys_never_leave_the_page(dapp: Flask, dclient: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Created and rotated raw keys appear in no cookie, no Location header and no log line."""
    caplog.set_level(logging.DEBUG)
    sign_in(dclient)
    seen: list[str] = []
    headers: list[str] = []
    created = create(dclient, name="leak-check", scopes="read")
    seen.append(raw_key_of(created.text))
    headers.append(str(created.headers))
    with dapp.app_context():
        record = get_state(dapp).keys.list(limit=1)[0]
    rotated = post_form(dclient, f"{D}/keys/{record.id}/rotate", {"grace_period": "60"})
    seen.append(raw_key_of(rotated.text))
    headers.append(str(rotated.headers))
    for response in (dclient.get(f"{D}/"), dclient.get(f"{D}/keys/{record.id}/revoke")):
        headers.append(str(response.headers))
        assert all(raw not in response.text for raw in seen)
    cookie = dclient.get_cookie(COOKIE_NAME, path=D).value
    data = repr(session_data(dapp, dclient))
    for raw in seen:
        assert raw not in cookie and raw not in data
        assert all(raw not in h for h in headers)
        assert raw not in caplog.text
        assert raw[len("grd_live_") + 8 :] not in caplog.text
    assert TOKEN not in caplog.text
    assert "key created" in caplog.text and "key rotated" in caplog.text
