"""Regression tests for issue 14 (the outside security review): each one failed before its fix."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

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
