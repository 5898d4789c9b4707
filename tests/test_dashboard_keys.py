"""The dashboard pages' headers and labels, the create form, the scope catalog and the key list (test client)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import ConfigurationError, StorageError, get_state
from flask_gridauth.records import utcnow

from .conftest import bearer, create_key
from .dashboard_support import (
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
    sign_in,
)

__all__ = ["dapp", "dclient", "make_dash"]  # fixtures from dashboard_support


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
