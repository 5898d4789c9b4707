"""Disable and enable: reversible, unlike revoke, through HTTP, the CLI, the dashboard and every backend."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask

from flask_gridauth import signals

from .conftest import TOKEN, bearer, create_key
from .test_dashboard import D, csrf_of, dash_app, sign_in

ADMIN = bearer(TOKEN)


def test_disable_then_enable_through_http(app: Flask, client: Any) -> None:
    """A disabled key is refused with 401 until it is enabled; the key object shows disabled_at."""
    record, raw = create_key(app, ["read"])
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    response = client.post(f"/api/v1/api-keys/{record.id}/disable", headers=ADMIN)
    assert response.status_code == 200
    assert response.json["disabled_at"] is not None and response.json["status"] == "disabled"
    refused = client.get("/items", headers=bearer(raw))
    assert refused.status_code == 401
    assert refused.json["message"] == "API key is disabled"
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    shown = client.get(f"/api/v1/api-keys/{record.id}", headers=ADMIN).json
    assert shown["disabled_at"] == response.json["disabled_at"]
    enabled = client.post(f"/api/v1/api-keys/{record.id}/enable", headers=ADMIN)
    assert enabled.status_code == 200 and enabled.json["disabled_at"] is None
    assert enabled.json["status"] == "active"
    assert client.get("/items", headers=bearer(raw)).status_code == 200


def test_disable_is_idempotent_and_keeps_revocation(app: Flask, client: Any) -> None:
    """Disabling twice keeps the first time; enabling a revoked key leaves it revoked."""
    record, raw = create_key(app, ["read"])
    first = client.post(f"/api/v1/api-keys/{record.id}/disable", headers=ADMIN).json
    second = client.post(f"/api/v1/api-keys/{record.id}/disable", headers=ADMIN).json
    assert first["disabled_at"] == second["disabled_at"]
    assert client.delete(f"/api/v1/api-keys/{record.id}", headers=ADMIN).status_code == 200
    enabled = client.post(f"/api/v1/api-keys/{record.id}/enable", headers=ADMIN).json
    assert enabled["status"] == "revoked"
    assert client.get("/items", headers=bearer(raw)).status_code == 401


def test_disabled_message_only_for_the_holder(app: Flask, client: Any) -> None:
    """Someone without the real key never learns that a key is disabled."""
    record, raw = create_key(app, ["read"])
    client.post(f"/api/v1/api-keys/{record.id}/disable", headers=ADMIN)
    tampered = raw[:-9] + ("0" if raw[-9] != "0" else "1") + raw[-8:]
    refused = client.get("/items", headers=bearer(tampered))
    assert refused.status_code == 401 and refused.json["message"] == "Authentication required"


def test_disable_is_owner_scoped_and_needs_admin(app: Flask, client: Any) -> None:
    """Another owner's key is 404 and a key without admin gets 403."""
    record, _ = create_key(app, ["read"], owner="bob")
    _, admin = create_key(app, ["admin"], owner="alice")
    _, reader = create_key(app, ["read"], owner="bob")
    assert client.post(f"/api/v1/api-keys/{record.id}/disable", headers=bearer(admin)).status_code == 404
    assert client.post(f"/api/v1/api-keys/{record.id}/disable", headers=bearer(reader)).status_code == 403
    assert client.post("/api/v1/api-keys/key_missing/enable", headers=ADMIN).status_code == 404


def test_disable_and_enable_send_signals(app: Flask, client: Any) -> None:
    """key_disabled and key_enabled carry the key, never a secret."""
    record, _ = create_key(app, ["read"])
    seen: list[tuple[str, str]] = []

    def on_disabled(sender: Any, key: Any) -> None:
        seen.append(("disabled", key.id))

    def on_enabled(sender: Any, key: Any) -> None:
        seen.append(("enabled", key.id))

    with signals.key_disabled.connected_to(on_disabled, app), signals.key_enabled.connected_to(on_enabled, app):
        client.post(f"/api/v1/api-keys/{record.id}/disable", headers=ADMIN)
        client.post(f"/api/v1/api-keys/{record.id}/enable", headers=ADMIN)
    assert seen == [("disabled", record.id), ("enabled", record.id)]


def test_disable_reaches_a_second_app_on_the_same_storage(make_app: Any, backend: str) -> None:
    """On shared storage (SQLite, Redis), a key disabled through one app is refused by another at once."""
    if backend == "memory":
        pytest.skip("memory storage is private to one app")
    first, second = make_app(), make_app()
    record, raw = create_key(first, ["read"])
    assert second.test_client().get("/items", headers=bearer(raw)).status_code == 200
    first.test_client().post(f"/api/v1/api-keys/{record.id}/disable", headers=ADMIN)
    assert second.test_client().get("/items", headers=bearer(raw)).status_code == 401


def test_disabled_signing_key_is_refused(app: Flask, client: Any) -> None:
    """A disabled signing key's signatures are refused with 401, and accepted again once enabled."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from flask_gridauth.client import sign_request

    from .test_signature import register

    private = Ed25519PrivateKey.generate()
    record = register(app, private, ["read"])

    calls = iter(range(10))

    def call() -> Any:
        path = f"/items?n={next(calls)}"  # a new signed string each time: never a replay
        return client.get(path, headers=sign_request(private, "GET", "http://localhost" + path))

    assert call().status_code == 200
    client.post(f"/api/v1/api-keys/{record.id}/disable", headers=ADMIN)
    refused = call()
    assert refused.status_code == 401 and refused.json["message"] == "API key is disabled"
    client.post(f"/api/v1/api-keys/{record.id}/enable", headers=ADMIN)
    assert call().status_code == 200


def test_cli_disable_and_enable(app: Flask) -> None:
    """flask gridauth disable ID / enable ID switch the key and print its id."""
    record, raw = create_key(app, ["read"])
    runner = app.test_cli_runner()
    result = runner.invoke(args=["gridauth", "disable", record.id])
    assert result.exit_code == 0 and f"Disabled {record.id}" in result.output
    assert app.test_client().get("/items", headers=bearer(raw)).status_code == 401
    result = runner.invoke(args=["gridauth", "enable", record.id])
    assert result.exit_code == 0 and f"Enabled {record.id}" in result.output
    assert app.test_client().get("/items", headers=bearer(raw)).status_code == 200
    missing = runner.invoke(args=["gridauth", "disable", "key_missing"])
    assert missing.exit_code == 1 and "Error:" in missing.output


def test_dashboard_disable_and_enable_buttons(tmp_path: Any) -> None:
    """The key list has Disable, then Enable, each a CSRF-protected POST."""
    dapp = dash_app(tmp_path / "instance")
    record, raw = create_key(dapp, ["read"], owner="admin", name="pausable")
    client = dapp.test_client()
    sign_in(client)
    page = client.get(f"{D}/").text
    assert f"/keys/{record.id}/disable" in page and f"/keys/{record.id}/enable" not in page
    assert client.post(f"{D}/keys/{record.id}/disable", data={}).status_code == 400  # no CSRF token
    response = client.post(f"{D}/keys/{record.id}/disable", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    page = client.get(f"{D}/").text
    assert "Disabled the key “pausable”" in page and "status-disabled" in page
    assert f"/keys/{record.id}/enable" in page
    assert dapp.test_client().get("/items", headers=bearer(raw)).status_code == 401
    client.post(f"{D}/keys/{record.id}/enable", data={"csrf_token": csrf_of(page)})
    assert dapp.test_client().get("/items", headers=bearer(raw)).status_code == 200
