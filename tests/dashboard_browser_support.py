"""Fixtures of the dashboard browser tests: the example app on a real loopback server, and headless Chromium.

Uses Debian's ``/usr/bin/chromium`` through Playwright (never a downloaded
browser). Outside CI the tests skip when it is missing; with ``CI=true`` a
missing Chromium is a failure. Screenshots of every page go to a temporary
folder, or to ``GRIDAUTH_SCREENSHOT_DIR`` when set (the docs use
``docs/_static/screenshots``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from flask_gridauth import get_state
from flask_gridauth.activity import HOUR, UsageCount, hour_of

from .conftest import TOKEN, bearer, load_example

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
