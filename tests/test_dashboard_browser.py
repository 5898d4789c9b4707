"""The key dashboard in headless Chromium (Debian's /usr/bin/chromium through Playwright): key lifecycle and forms.

See :mod:`tests.dashboard_browser_support` for the server, the browser and where screenshots go.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from flask_gridauth import get_state

from .conftest import TOKEN, bearer
from .dashboard_browser_support import (
    Site,
    chromium,
    page,
    shot,
    sign_in,
    site,
    submit,
)

pytestmark = pytest.mark.browser
__all__ = ["chromium", "page", "site"]  # fixtures from dashboard_browser_support


def test_full_key_lifecycle(site: Site, page: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Sign in, create a key shown once, use it, rotate with a grace, revoke it: the API follows."""
    caplog.set_level(logging.DEBUG)
    page.goto(site.dashboard + "/")
    assert page.url.endswith("/dashboard/sign-in")
    shot(site, page, "sign-in")
    assert sign_in(site, page, TOKEN).status == 303
    assert page.url.endswith("/dashboard/")
    site.create_key(["read"], "admin", "reporting script")

    page.click("text=Create a key")
    page.fill("#name", "CI deploy job")
    page.fill("#scopes", "read write")
    page.fill("#expires_in_days", "90")
    shot(site, page, "create")
    response = submit(page)
    assert response.status == 201
    assert response.headers["cache-control"] == "no-store"
    raw = page.input_value("#raw-key")
    assert raw.startswith("grd_live_")
    assert page.is_visible("text=It will not be shown again")
    assert page.is_visible("#copy-key"), "copy.js did not run under the CSP"
    page.click("#copy-key")
    page.wait_for_selector("#copy-status:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == raw
    shot(site, page, "key-created")
    assert raw not in page.url

    reloaded = page.reload()
    assert reloaded is not None and reloaded.status == 409
    assert raw not in page.content()
    page.goto(site.dashboard + "/")
    assert raw not in page.content()
    assert page.is_visible(f"text={raw[:17]}…")
    assert site.api(raw) == 200
    page.reload()
    shot(site, page, "keys")

    row = page.locator("tr.key-row", has_text="CI deploy job")
    row.locator("a", has_text="Rotate").click()
    page.select_option("#grace_period", str(3600))
    shot(site, page, "rotate")
    assert submit(page).status == 201
    new_raw = page.input_value("#raw-key")
    assert new_raw != raw and page.is_visible("text=keeps working until")
    shot(site, page, "key-rotated")
    assert site.api(new_raw) == 200
    assert site.api(raw) == 200, "the old key must work through the grace period"

    page.goto(site.dashboard + "/")
    rows = page.locator("tr.key-row", has_text="CI deploy job")
    assert rows.count() == 2
    rows.first.locator("a", has_text="Revoke").click()
    assert page.is_visible("text=This cannot be undone")
    shot(site, page, "revoke")
    assert site.api(new_raw) == 200
    assert submit(page).status == 303
    assert page.is_visible("text=Revoked the key")
    assert site.api(new_raw) == 401
    assert page.locator("tr.key-row", has_text="CI deploy job").first.locator(".status").inner_text() == "revoked"
    shot(site, page, "keys-after-revoke")

    for secret in (raw, new_raw, TOKEN):
        assert secret not in caplog.text
    cookies = page.context.cookies()
    assert all(raw not in c["value"] and new_raw not in c["value"] for c in cookies)
    dashboard_cookie = next(c for c in cookies if c["name"] == "gridauth_dashboard")
    assert dashboard_cookie["httpOnly"] and dashboard_cookie["sameSite"] == "Strict"
    assert dashboard_cookie["path"] == "/dashboard"


def test_wrong_token_gets_a_sign_in_error(site: Site, page: Any) -> None:
    """A wrong token shows an error on the sign-in page and signs nobody in."""
    response = sign_in(site, page, "not-the-token-" + "z" * 30)
    assert response.status == 401
    assert page.is_visible("text=That token or key was not accepted")
    assert page.get_attribute("#credential", "aria-invalid") == "true"
    shot(site, page, "sign-in-error")
    page.goto(site.dashboard + "/")
    assert page.url.endswith("/dashboard/sign-in")


def test_forms_without_or_with_forged_csrf_are_refused(site: Site, page: Any) -> None:
    """The create form posted with its CSRF token removed, or forged, is refused and creates nothing."""
    sign_in(site, page, TOKEN)
    before = requests.get(site.base + "/api/v1/me", headers=bearer(TOKEN), timeout=10).status_code
    assert before == 200
    with site.app.app_context():
        count = len(get_state(site.app).keys.list(limit=100))

    page.goto(site.dashboard + "/keys/new")
    page.fill("#name", "no csrf")
    page.fill("#scopes", "read")
    page.locator("main input[name=csrf_token]").evaluate("e => e.remove()")
    response = submit(page)
    assert response.status == 400
    assert page.is_visible("text=Form refused")
    shot(site, page, "csrf-refused")

    page.goto(site.dashboard + "/keys/new")
    page.fill("#name", "forged csrf")
    page.fill("#scopes", "read")
    page.locator("main input[name=csrf_token]").evaluate("e => e.value = 'forged.' + e.value.slice(7)")
    assert submit(page).status == 400

    with site.app.app_context():
        assert len(get_state(site.app).keys.list(limit=100)) == count


def test_second_owner_sees_only_their_keys(site: Site, page: Any) -> None:
    """An admin key of owner bob sees bob's keys only, and another owner's key pages are 404."""
    alice_key, _ = site.create_key(["read"], "alice", "alice private key")
    site.create_key(["read"], "bob", "bob build key")
    _, bob_admin = site.create_key(["admin"], "bob", "bob admin")
    assert sign_in(site, page, bob_admin).status == 303
    names = page.locator("tr.key-row th").all_inner_texts()
    assert "bob build key" in names and "bob admin" in names
    assert "alice private key" not in names and "CI deploy job" not in names
    assert page.is_visible("text=Signed in as bob")
    shot(site, page, "keys-second-owner")
    response = page.goto(f"{site.dashboard}/keys/{alice_key.id}/revoke")
    assert response is not None and response.status == 404
    assert page.is_visible("text=API key not found")


def test_signing_key_form(site: Site, page: Any) -> None:
    """The signing-key form reports a bad public key, then registers a good one and shows its fingerprint."""
    sign_in(site, page, TOKEN)
    page.click("text=Register a signing key")
    page.fill("#name", "trading bot")
    page.fill("#public_key", "this is not a public key")
    page.fill("#scopes", "trade")
    response = submit(page)
    assert response.status == 422
    assert page.is_visible("#form-error")
    assert page.get_attribute("#public_key", "aria-invalid") == "true"
    shot(site, page, "signing-key")

    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    page.fill("#public_key", base64.b64encode(public).decode())
    assert submit(page).status == 201
    fingerprint = base64.b64encode(hashlib.sha256(public).digest()).decode().rstrip("=")
    assert page.inner_text("#fingerprint") == fingerprint
    shot(site, page, "signing-key-registered")
    page.goto(site.dashboard + "/")
    assert page.locator("tr.key-row", has_text="trading bot").locator(".fingerprint").inner_text() == fingerprint


def test_keyboard_only_sign_in_and_create(site: Site, page: Any) -> None:
    """Sign-in and the create form work with the keyboard alone."""
    page.goto(site.dashboard + "/sign-in")
    page.keyboard.press("Tab")  # the skip link
    page.keyboard.press("Tab")  # the brand link
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "credential"
    page.keyboard.type(TOKEN)
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.url.endswith("/dashboard/")
    page.goto(site.dashboard + "/keys/new")
    page.focus("#name")
    page.keyboard.type("keyboard key")
    page.keyboard.press("Tab")
    page.keyboard.type("read")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.keyboard.press("Enter")
    assert posted.value.status == 201
    page.wait_for_load_state()
    assert page.input_value("#raw-key").startswith("grd_live_")


def test_readable_without_css(site: Site, page: Any) -> None:
    """With the stylesheet blocked, the list still shows every key's name and status as text."""
    page.route("**/*.css", lambda route: route.abort())
    sign_in(site, page, TOKEN)
    text = page.inner_text("main")
    assert "Your keys" in text and "CI deploy job" in text and "revoked" in text
    assert page.locator("table caption").inner_text().startswith("Keys")
