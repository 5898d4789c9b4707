"""A key's own settings through HTTP on every backend: environments, Sunset, address allowlists, canary keys."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from werkzeug.http import http_date
from werkzeug.middleware.proxy_fix import ProxyFix

from flask_gridauth import signals
from flask_gridauth.records import utcnow

from .conftest import TOKEN, bearer, create_key

ADMIN = bearer(TOKEN)


def _from(address: str) -> dict[str, Any]:
    return {"environ_base": {"REMOTE_ADDR": address}}


# -- environments -----------------------------------------------------------------------------


def test_me_shows_the_environment(app: Flask, client: Any) -> None:
    """/me shows "live" or "test" for an API key and null for the bootstrap token."""
    _, live = create_key(app, ["read"])
    _, test = create_key(app, ["read"], environment="test")
    assert client.get("/api/v1/me", headers=bearer(live)).json["environment"] == "live"
    assert client.get("/api/v1/me", headers=bearer(test)).json["environment"] == "test"
    assert client.get("/api/v1/me", headers=ADMIN).json["environment"] is None


def test_server_refuses_other_environments(make_app: Any) -> None:
    """GRIDAUTH_ENVIRONMENTS=("live",) refuses test keys with 401 (the reason only for the holder)."""
    app = make_app(GRIDAUTH_ENVIRONMENTS=("live",), GRIDAUTH_RATELIMIT_ENABLED=True)
    client = app.test_client()
    _, live = create_key(app, ["read"])
    _, test = create_key(app, ["read"], environment="test")
    assert client.get("/items", headers=bearer(live)).status_code == 200
    refused = client.get("/items", headers=bearer(test))
    assert refused.status_code == 401
    assert refused.json["message"] == "API key environment 'test' is not accepted here"
    assert "X-RateLimit-Limit" not in refused.headers  # a refused key is never counted


def test_environments_config_checked_at_start(make_app: Any) -> None:
    """An environment other than live or test is a configuration error at start-up."""
    from flask_gridauth import ConfigurationError

    with pytest.raises(ConfigurationError, match="GRIDAUTH_ENVIRONMENTS"):
        make_app(GRIDAUTH_ENVIRONMENTS=("prod",))


# -- expiry warning ---------------------------------------------------------------------------


def test_sunset_header_for_a_key_expiring_soon(app: Flask, client: Any) -> None:
    """A key expiring within a week gets Sunset: <HTTP-date>; one expiring later does not."""
    soon, soon_raw = create_key(app, ["read"], expires_in=3 * 86400)
    _, later_raw = create_key(app, ["read"], expires_in=30 * 86400)
    response = client.get("/items", headers=bearer(soon_raw))
    assert response.status_code == 200
    assert response.headers["Sunset"] == http_date(soon.expires_at)
    assert "Sunset" not in client.get("/items", headers=bearer(later_raw)).headers
    assert "Sunset" not in client.get("/items", headers=ADMIN).headers


def test_expiry_warning_window_configurable(make_app: Any) -> None:
    """GRIDAUTH_EXPIRY_WARNING widens the window; None turns the header off."""
    wide = make_app(GRIDAUTH_EXPIRY_WARNING=60 * 86400)
    _, raw = create_key(wide, ["read"], expires_in=30 * 86400)
    assert "Sunset" in wide.test_client().get("/items", headers=bearer(raw)).headers
    off = make_app(GRIDAUTH_EXPIRY_WARNING=None)
    _, raw = create_key(off, ["read"], expires_in=60)
    assert "Sunset" not in off.test_client().get("/items", headers=bearer(raw)).headers


def test_key_expiring_signal_once_per_key(app: Flask, client: Any) -> None:
    """key_expiring is sent on the first warned request of a key, not on the next ones."""
    record, raw = create_key(app, ["read"], expires_in=3600)
    seen: list[str] = []

    def on_expiring(sender: Any, key: Any) -> None:
        seen.append(key.id)

    with signals.key_expiring.connected_to(on_expiring, app):
        for _ in range(3):
            assert client.get("/items", headers=bearer(raw)).status_code == 200
    assert seen == [record.id]


def test_cli_expiring_lists_keys_soonest_first(app: Flask) -> None:
    """flask gridauth expiring --within 7d lists usable keys expiring within the window, soonest first."""
    second, _ = create_key(app, ["read"], name="second", expires_in=5 * 86400)
    first, _ = create_key(app, ["read"], name="first", expires_in=3600)
    create_key(app, ["read"], name="later", expires_in=30 * 86400)
    create_key(app, ["read"], name="forever")
    revoked, _ = create_key(app, ["read"], name="gone", expires_in=60)
    with app.app_context():
        app.extensions["gridauth"].keys.revoke(revoked.id)
    result = app.test_cli_runner().invoke(args=["gridauth", "expiring", "--within", "7d"])
    assert result.exit_code == 0, result.output
    assert result.output.index(first.id) < result.output.index(second.id)
    for name in ("later", "forever", "gone"):
        assert name not in result.output
    quiet = app.test_cli_runner().invoke(args=["gridauth", "expiring", "--within", "1m"])
    assert "No key expires within 1m" in quiet.output
    bad = app.test_cli_runner().invoke(args=["gridauth", "expiring", "--within", "soon"])
    assert bad.exit_code != 0


# -- address allowlists -----------------------------------------------------------------------


def test_allowed_ips_normalised_on_create_and_patch(app: Flask, client: Any) -> None:
    """CIDRs are kept as normalised networks (host bits cleared); PATCH replaces the list."""
    response = client.post(
        "/api/v1/api-keys",
        headers=ADMIN,
        json={"name": "fenced", "scopes": ["read"], "allowed_ips": ["10.1.2.3/8", "2001:DB8::1", "192.0.2.7"]},
    )
    assert response.status_code == 201, response.json
    assert response.json["allowed_ips"] == ["10.0.0.0/8", "2001:db8::1/128", "192.0.2.7/32"]
    patched = client.patch(f"/api/v1/api-keys/{response.json['id']}", headers=ADMIN, json={"allowed_ips": []})
    assert patched.status_code == 200 and patched.json["allowed_ips"] == []


@pytest.mark.parametrize(
    "value", ["10.0.0.0/8", ["not an address"], ["10.0.0.0/33"], [42], ["10.0.0.0/8"] * 101, ["::1/129"]]
)
def test_bad_allowed_ips_is_422(client: Any, value: Any) -> None:
    """Anything but a list of up to 100 IPv4/IPv6 CIDRs is 422 naming allowed_ips."""
    response = client.post(
        "/api/v1/api-keys", headers=ADMIN, json={"name": "k", "scopes": ["read"], "allowed_ips": value}
    )
    assert response.status_code == 422
    assert response.json["field"] == "allowed_ips"


def test_request_from_outside_the_allowlist_is_403(app: Flask, client: Any) -> None:
    """From inside the list: 200; from anywhere else (IPv4 or IPv6): 403 forbidden."""
    _, raw = create_key(app, ["read"], allowed_ips=["203.0.113.0/24", "2001:db8::/32"])
    assert client.get("/items", headers=bearer(raw), **_from("203.0.113.9")).status_code == 200
    assert client.get("/items", headers=bearer(raw), **_from("2001:db8::5")).status_code == 200
    assert client.get("/items", headers=bearer(raw), **_from("::ffff:203.0.113.9")).status_code == 200
    for outside in ("198.51.100.1", "2001:db9::1", "127.0.0.1"):
        refused = client.get("/items", headers=bearer(raw), **_from(outside))
        assert refused.status_code == 403, outside
        assert refused.json["code"] == "forbidden"


def test_allowlist_behind_proxyfix(make_app: Any) -> None:
    """Behind the app's ProxyFix, the address checked is the client's from X-Forwarded-For."""
    app = make_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    _, raw = create_key(app, ["read"], allowed_ips=["203.0.113.0/24"])
    client = app.test_client()
    proxied = {"environ_base": {"REMOTE_ADDR": "10.0.0.2"}}
    allowed = client.get("/items", headers={**bearer(raw), "X-Forwarded-For": "203.0.113.50"}, **proxied)
    assert allowed.status_code == 200
    refused = client.get("/items", headers={**bearer(raw), "X-Forwarded-For": "198.51.100.1"}, **proxied)
    assert refused.status_code == 403
    # Without the header, the proxy's own address is what is checked: outside the list.
    assert client.get("/items", headers=bearer(raw), **proxied).status_code == 403


def test_refused_address_is_not_counted(make_app: Any) -> None:
    """A request refused for its address does not count against the key's rate limit."""
    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY="2/minute")
    _, raw = create_key(app, ["read"], allowed_ips=["203.0.113.0/24"])
    client = app.test_client()
    for _ in range(3):
        assert client.get("/items", headers=bearer(raw), **_from("198.51.100.1")).status_code == 403
    assert client.get("/items", headers=bearer(raw), **_from("203.0.113.1")).status_code == 200
    assert client.get("/items", headers=bearer(raw), **_from("203.0.113.1")).status_code == 200
    assert client.get("/items", headers=bearer(raw), **_from("203.0.113.1")).status_code == 429


# -- canary keys ------------------------------------------------------------------------------


def test_canary_key_never_authorises_and_raises_the_alarm(
    app: Flask, client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A canary key's use is a generic 401, a WARNING without the key, and the canary_used signal."""
    response = client.post(
        "/api/v1/api-keys", headers=ADMIN, json={"name": "bait", "scopes": ["admin"], "canary": True}
    )
    assert response.status_code == 201 and response.json["canary"] is True
    raw, key_id = response.json["raw_key"], response.json["id"]
    seen: list[tuple[str, Any, Any]] = []

    def on_canary(sender: Any, key: Any, remote_addr: Any, user_agent: Any) -> None:
        seen.append((key.id, remote_addr, user_agent))

    with caplog.at_level(logging.INFO, logger="flask_gridauth"), signals.canary_used.connected_to(on_canary, app):
        refused = client.get("/api/v1/me", headers={**bearer(raw), "User-Agent": "curl/8.0"}, **_from("198.51.100.23"))
    assert refused.status_code == 401
    assert refused.json["message"] == "Authentication required"
    assert seen == [(key_id, "198.51.100.23", "curl/8.0")]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "CANARY" in r.getMessage()]
    assert len(warnings) == 1 and key_id in warnings[0].getMessage()
    assert all(raw not in r.getMessage() for r in caplog.records)
    assert raw not in refused.get_data(as_text=True)
    events = client.get(f"/api/v1/audit-events?action=key.canary_used&target_id={key_id}", headers=ADMIN).json
    assert len(events["data"]) == 1
    event = events["data"][0]
    assert event["remote_addr"] == "198.51.100.23" and event["details"]["user_agent"] == "curl/8.0"
    assert raw not in str(event)


def test_canary_audit_withholds_a_secret_shaped_user_agent(app: Flask, client: Any) -> None:
    """A user agent that looks like a key is not kept in the audit event, and the answer is still a 401."""
    _, raw = create_key(app, ["read"], canary=True)
    _, other = create_key(app, ["read"])
    refused = client.get("/items", headers={**bearer(raw), "User-Agent": other})
    assert refused.status_code == 401
    events = client.get("/api/v1/audit-events?action=key.canary_used", headers=ADMIN).json["data"]
    assert events and other not in str(events)


def test_canary_is_for_api_keys_only(client: Any) -> None:
    """canary on a signing key is 422; canary cannot be changed by PATCH."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    public = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    body = {"name": "s", "scopes": ["read"], "type": "signing", "public_key": base64.b64encode(public).decode()}
    response = client.post("/api/v1/api-keys", headers=ADMIN, json={**body, "canary": True})
    assert response.status_code == 422 and response.json["field"] == "canary"
    created = client.post("/api/v1/api-keys", headers=ADMIN, json={"name": "k", "scopes": ["read"]}).json
    patched = client.patch(f"/api/v1/api-keys/{created['id']}", headers=ADMIN, json={"canary": True})
    assert patched.status_code == 422 and patched.json["field"] == "canary"


def test_dashboard_marks_canary_keys(tmp_path: Any) -> None:
    """The key list marks a canary key and offers no Rotate or Disable for it."""
    from .test_dashboard import D, dash_app, sign_in

    dapp = dash_app(tmp_path / "instance")
    record, _ = create_key(dapp, ["read"], owner="admin", name="bait", canary=True)
    client = dapp.test_client()
    sign_in(client)
    page = client.get(f"{D}/").text
    assert "status-canary" in page
    assert f"/keys/{record.id}/rotate" not in page and f"/keys/{record.id}/disable" not in page


def test_expiry_is_measured_now(app: Flask, client: Any) -> None:
    """An already-expired key gets 401, not a Sunset header."""
    record, raw = create_key(app, ["read"], expires_in=1)
    with app.app_context():
        app.extensions["gridauth"].storage.update(record.id, {"expires_at": utcnow() - timedelta(seconds=1)})
    response = client.get("/items", headers=bearer(raw))
    assert response.status_code == 401 and "Sunset" not in response.headers
