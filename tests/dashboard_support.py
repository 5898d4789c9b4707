"""The dashboard test helpers: an app with the dashboard, its fixtures, and form helpers shared by the tests."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import dashboard_blueprint
from flask_gridauth.dashboard.session import COOKIE_NAME, DashboardSessionInterface

from .conftest import TOKEN, build_app

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
