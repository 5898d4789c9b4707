"""The dashboard's rotate, revoke and signing-key forms, and raw keys never leaving their page."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask

from flask_gridauth import GridAuthError, get_state
from flask_gridauth.credentials.signature import load_public_key
from flask_gridauth.dashboard.session import COOKIE_NAME
from flask_gridauth.records import utcnow

from .conftest import TOKEN, bearer, create_key
from .dashboard_support import (
    D,
    create,
    csrf_of,
    dapp,
    dclient,
    make_dash,
    once_of,
    post_form,
    raw_key_of,
    session_data,
    sign_in,
)

__all__ = ["dapp", "dclient", "make_dash"]  # fixtures from dashboard_support


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


def test_key_with_a_quota_is_rotated_at_once(dapp: Flask, dclient: Any) -> None:
    """A key with a quota has no grace choice: its form rotates at once and the balance moves on."""
    record, old_raw = create_key(dapp, ["read"], owner="admin", quota={"limit": 5, "refill": None})
    sign_in(dclient)
    confirm = dclient.get(f"{D}/keys/{record.id}/rotate")
    assert '<select id="grace_period"' not in confirm.text and "rotated at once" in confirm.text
    response = post_form(dclient, f"{D}/keys/{record.id}/rotate", {"grace_period": "0"})
    assert response.status_code == 201
    api = dapp.test_client()
    assert api.get("/items", headers=bearer(old_raw)).status_code == 401
    assert api.get("/items", headers=bearer(raw_key_of(response.text))).status_code == 200
    other, other_raw = create_key(dapp, ["read"], owner="admin", quota={"limit": 5, "refill": None})
    forged = post_form(dclient, f"{D}/keys/{other.id}/rotate", {"grace_period": "3600"})
    assert forged.status_code == 422 and "without a grace period" in forged.text
    assert api.get("/items", headers=bearer(other_raw)).status_code == 200  # nothing changed


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
