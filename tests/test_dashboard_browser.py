"""The key dashboard in headless Chromium against the example app on a real loopback server.

Uses Debian's ``/usr/bin/chromium`` through Playwright (never a downloaded
browser). Outside CI the tests skip when it is missing; with ``CI=true`` a
missing Chromium is a failure. Screenshots of every page go to a temporary
folder, or to ``GRIDAUTH_SCREENSHOT_DIR`` when set (the docs use
``docs/_static/screenshots``).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from werkzeug.serving import make_server

from flask_gridauth import get_state
from flask_gridauth.activity import HOUR, UsageCount, hour_of

from .conftest import TOKEN, bearer, load_example

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1180, "height": 760}
#: Where screenshots go. Read at import: conftest's isolation removes every GRIDAUTH_* variable before fixtures run.
SCREENSHOT_DIR = os.environ.get("GRIDAUTH_SCREENSHOT_DIR")


class Site:
    """The example app served on 127.0.0.1, and where screenshots go."""

    def __init__(self, app: Flask, base: str, shots: Path) -> None:
        self.app = app
        self.base = base
        self.dashboard = base + "/dashboard"
        self.shots = shots

    def create_key(self, scopes: list[str], owner: str, name: str) -> tuple[Any, str]:
        """Create a key through the Python API."""
        with self.app.app_context():
            return get_state(self.app).keys.create(name=name, scopes=scopes, owner=owner)

    def api(self, raw_key: str) -> int:
        """Status of ``GET /boards`` with ``raw_key``."""
        return requests.get(self.base + "/boards", headers=bearer(raw_key), timeout=10).status_code


class ClosingResponses:
    """WSGI middleware: read each response whole and close the app's iterable before the server writes it.

    werkzeug's development server skips ``close()`` on a response when the client resets the
    connection (Chromium does when a context closes with the favicon request in flight), which left
    the favicon file that ``send_file`` opened to the garbage collector: a ``ResourceWarning`` at a
    later test's teardown. Bodies here are small pages, so buffering them costs nothing.
    """

    def __init__(self, app: Flask) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """Call the app, join its body, and close its iterable whatever happens."""
        iterable = self.app(environ, start_response)
        try:
            return [b"".join(iterable)]
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright; skipped (or failed under CI) when absent."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is required in CI: apt-get install chromium chromium-driver")
        pytest.skip(f"no {CHROMIUM}: install Debian's chromium and chromium-driver to run the browser tests")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("the playwright package is required in CI (the test extra installs it)")
        pytest.skip("the playwright package is not installed: pip install -e '.[test]'")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """The example app on a free loopback port, with SQLite storage in a temporary folder."""
    folder = tmp_path_factory.mktemp("dashboard-browser")
    app = load_example("quickstart").create_app(
        {
            "GRIDAUTH_API_TOKEN": TOKEN,
            "GRIDAUTH_STORAGE_URI": f"sqlite:///{folder / 'gridauth.db'}",
            "GRIDAUTH_TOKEN_FILE": str(folder / "token.json"),
        }
    )
    server = make_server("127.0.0.1", 0, ClosingResponses(app), threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="dashboard-test-server", daemon=True)
    thread.start()
    shots = Path(SCREENSHOT_DIR or folder / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    try:
        yield Site(app, f"http://127.0.0.1:{server.server_port}", shots)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) with clipboard access, and its page."""
    context = chromium.new_context(viewport=VIEWPORT, permissions=["clipboard-read", "clipboard-write"])
    context.set_default_timeout(15_000)
    try:
        yield context.new_page()
    finally:
        context.close()


def shot(site: Site, page: Any, name: str) -> None:
    """Save a full-page screenshot of the current page."""
    page.screenshot(path=str(site.shots / f"{name}.png"), full_page=True)


def sign_in(site: Site, page: Any, credential: str) -> Any:
    """Fill and submit the sign-in form; the response to the POST."""
    page.goto(site.dashboard + "/sign-in")
    page.fill("#credential", credential)
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("main button[type=submit]")
    page.wait_for_load_state()
    return posted.value


def submit(page: Any) -> Any:
    """Submit the main form of the page; the response to the POST."""
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("main form button[type=submit]")
    page.wait_for_load_state()
    return posted.value


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


def csp_watch(page: Any) -> list[str]:
    """Collect the page's console errors and page errors (Chromium reports each CSP violation there)."""
    seen: list[str] = []
    page.on("console", lambda message: seen.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: seen.append(str(error)))
    return seen


def seed_usage(site: Site, key_id: str, hours_ago: int, **counts: int) -> None:
    """Usage counts of ``key_id`` in the hour ``hours_ago`` hours before this one, as if flushed by a worker."""
    with site.app.app_context():
        hour = hour_of(time.time()) - hours_ago * HOUR
        get_state(site.app).storage.add_usage([UsageCount(key_id, hour, **counts)])


def test_usage_chart_and_narrowing_in_chromium(site: Site, page: Any) -> None:
    """The key page's SVG chart renders its bars to scale under the CSP, and "Narrow to used scopes" works."""
    errors = csp_watch(page)
    record, raw = site.create_key(["read", "holdings:write"], "carol", "chart key")
    seed_usage(site, record.id, 3, allowed=12, forbidden=3, rate_limited=5)
    for _ in range(4):
        assert site.api(raw) == 200
    assert requests.post(site.base + "/orders", headers=bearer(raw), json={}, timeout=10).status_code == 403
    sign_in(site, page, TOKEN)
    response = page.goto(f"{site.dashboard}/keys/{record.id}?days=1")
    assert response is not None and response.status == 200
    assert "unsafe-inline" not in response.headers["content-security-policy"]

    chart = page.locator("#usage-chart")
    assert chart.get_attribute("role") == "img"
    assert page.text_content("#usage-chart-title") == "Requests per hour over the last 24 hours"
    assert page.locator("#usage-chart g.bucket").count() == 24
    bars = page.eval_on_selector_all(
        "#usage-chart rect.bar",
        """rects => rects.map(r => ({
            series: r.dataset.series, value: Number(r.dataset.value),
            height: r.getBoundingClientRect().height, width: r.getBoundingClientRect().width,
            fill: getComputedStyle(r).fill}))""",
    )
    # The seeded hour (12, 3, 5) and this hour's real requests (4 allowed, 1 forbidden): five segments.
    assert sorted((b["series"], b["value"]) for b in bars) == [
        ("allowed", 4),
        ("allowed", 12),
        ("forbidden", 1),
        ("forbidden", 3),
        ("rate_limited", 5),
    ]
    assert all(b["width"] > 5 and b["height"] > 1 for b in bars), bars
    # Drawn to scale in rendered pixels: 12 allowed stand 12/5 as tall as 5 rate-limited.
    height = {(b["series"], b["value"]): b["height"] for b in bars}
    assert height[("allowed", 12)] / height[("rate_limited", 5)] == pytest.approx(12 / 5, rel=0.02)
    assert height[("allowed", 12)] / height[("allowed", 4)] == pytest.approx(3, rel=0.02)
    assert {b["fill"] for b in bars if b["series"] == "allowed"} == {"rgb(30, 122, 60)"}
    assert page.inner_text("#usage-summary").startswith("Over the last 24 hours: 25 requests, 16 allowed")
    page.locator("figure.chart").screenshot(path=str(site.shots / "usage-chart.png"))
    page.screenshot(path=str(site.shots / "key-page.png"), clip={"x": 0, "y": 0, "width": 900, "height": 440})

    assert "This key never used holdings:write in the last 24 hours." in page.inner_text("#never-used")
    page.locator(".least-privilege").screenshot(path=str(site.shots / "least-privilege.png"))
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#narrow-scopes")
    assert posted.value.status == 303
    page.wait_for_selector("text=Narrowed the key")
    assert page.inner_text("#scopes-held") == "read"
    assert site.api(raw) == 200
    assert errors == [], errors


def test_audit_page_in_chromium(site: Site, page: Any) -> None:
    """The audit page lists a key's events newest first, filters them, and reports no CSP violation."""
    errors = csp_watch(page)
    record, _ = site.create_key(["read"], "dave", "audited key")
    with site.app.app_context():
        keys = get_state(site.app).keys
        keys.disable(record.id, owner="dave")
        keys.enable(record.id, owner="dave")
    sign_in(site, page, TOKEN)
    with page.expect_navigation():
        page.click("nav >> text=Audit log")
    assert page.url.endswith("/dashboard/audit")
    assert page.locator("tr.audit-row").count() >= 4
    page.fill("#key", record.id)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    actions = page.eval_on_selector_all("tr.audit-row", "rows => rows.map(r => r.dataset.action)")
    assert actions == ["key.enabled", "key.disabled", "key.created"]
    assert "dave" in page.inner_text("table.audit")
    page.set_viewport_size({"width": 1000, "height": 600})
    page.locator("main").screenshot(path=str(site.shots / "audit.png"))
    page.select_option("#action", "key.disabled")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert page.eval_on_selector_all("tr.audit-row", "rows => rows.map(r => r.dataset.action)") == ["key.disabled"]
    assert errors == [], errors
    # The watch does see a violation: an inline style injected now is refused and reported.
    page.evaluate(
        "() => { const s = document.createElement('style'); s.textContent = 'body{}'; document.head.append(s); }"
    )
    page.wait_for_timeout(200)
    assert any("Content Security Policy" in e for e in errors), errors
