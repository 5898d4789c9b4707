"""An app's own credential kinds (@auth.verifier) and @require_kind, through HTTP."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask

from flask_gridauth import GridAuth, Principal, Unauthorized, current_principal, require_kind, require_scope
from flask_gridauth.cli import gridauth_cli
from flask_gridauth.client import generate_keypair, sign_request
from flask_gridauth.credentials.registry import CredentialVerifier

from .conftest import EXAMPLES, TOKEN, bearer, create_key

PARTNERS = {"partner-secret-0123456789": "acme"}


def make(tmp_path: Path, **config: Any) -> tuple[Flask, GridAuth]:
    """An app with a header kind (``partner``), a prefix kind (``oat``) and kind-restricted routes."""
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(
        TESTING=True, GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False
    )
    app.config.update(config)
    auth = GridAuth(app)

    @auth.verifier("partner", header="X-Partner-Token")
    def partner(value: str) -> Principal | None:
        owner = PARTNERS.get(value)
        return None if owner is None else Principal(kind="partner", id=owner, owner=owner, scopes=frozenset({"admin"}))

    @auth.verifier("oat", prefix="oat_")
    def oauth(value: str) -> Principal | None:
        if value == "oat_refused":
            raise Unauthorized()
        if value != "oat_good":
            return None
        # A verifier cannot claim another kind: the registered kind wins.
        return Principal(kind="token", id="client-1", owner="bob", scopes=frozenset({"reports:write", "read"}))

    @app.get("/items")
    def items() -> dict[str, Any]:
        p = current_principal
        return {"kind": p.kind, "id": p.id, "owner": p.owner, "scopes": sorted(p.scopes)}

    @app.get("/reports")
    @require_scope("reports:read")
    def reports() -> dict[str, Any]:
        return {"ok": True}

    @app.post("/orders")
    @require_kind("signature", "partner")
    def orders() -> dict[str, Any]:
        return {"kind": current_principal.kind}

    @app.get("/signed-admin")
    @require_scope("admin")
    @require_kind("signature")
    def signed_admin() -> dict[str, Any]:
        return {"ok": True}

    return app, auth


def test_header_kind_authenticates_and_keeps_expanded_scopes(tmp_path: Path) -> None:
    """A registered header's value goes to its function; the principal's scopes are expanded."""
    app, _ = make(tmp_path)
    response = app.test_client().get("/items", headers={"X-Partner-Token": "partner-secret-0123456789"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["kind"] == "partner" and body["owner"] == "acme"
    assert {"admin", "write", "read"} <= set(body["scopes"])


def test_prefix_kind_takes_bearer_and_x_api_key(tmp_path: Path) -> None:
    """A prefixed token works as Bearer and as x-api-key; the kind is the registered one, scopes expanded."""
    app, _ = make(tmp_path)
    client = app.test_client()
    for headers in (bearer("oat_good"), {"x-api-key": "oat_good"}):
        response = client.get("/reports", headers=headers)
        assert response.status_code == 200, headers
    body = client.get("/items", headers=bearer("oat_good")).get_json()
    assert body["kind"] == "oat" and body["owner"] == "bob"
    assert {"reports:write", "reports:read"} <= set(body["scopes"])


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Partner-Token": "wrong"},
        {"X-Partner-Token": "partner-secret-0123456789 extra"},
        {"X-Partner-Token": "partner-secret-0123456789", "Authorization": f"Bearer {TOKEN}"},
        {"X-Partner-Token": "partner-secret-0123456789", "x-api-key": "oat_good"},
        {"Authorization": "Bearer oat_unknown"},
        {"Authorization": "Bearer oat_refused"},
        {"Authorization": "Bearer oat_good", "x-api-key": "oat_other"},
    ],
)
def test_failing_or_doubled_custom_credentials_are_401(tmp_path: Path, headers: dict[str, str]) -> None:
    """None, Unauthorized, a bad value, or a custom credential beside another is a 401 that never falls through."""
    app, _ = make(tmp_path)
    response = app.test_client().get("/items", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_custom_kind_meets_the_same_scope_checks(tmp_path: Path) -> None:
    """A custom principal without the route's scope gets 403 like any other kind."""
    app, _ = make(tmp_path)
    response = app.test_client().post("/orders", headers=bearer("oat_good"))
    assert response.status_code == 403  # oat is not among the kinds /orders accepts
    app2, _ = make(tmp_path / "two")
    response = app2.test_client().get("/signed-admin", headers=bearer("oat_good"))
    assert response.status_code == 403


def test_require_kind_refuses_other_kinds_with_403(tmp_path: Path) -> None:
    """@require_kind("signature", "partner"): the bootstrap token and API keys get 403 forbidden."""
    app, _ = make(tmp_path)
    _, raw = create_key(app, ["admin"])
    client = app.test_client()
    for headers in (bearer(TOKEN), bearer(raw)):
        response = client.post("/orders", headers=headers)
        assert response.status_code == 403 and response.get_json()["code"] == "forbidden"
    assert client.post("/orders").status_code == 401
    ok = client.post("/orders", headers={"X-Partner-Token": "partner-secret-0123456789"})
    assert ok.status_code == 200 and ok.get_json() == {"kind": "partner"}


def test_require_kind_lets_a_signed_request_through(tmp_path: Path) -> None:
    """A signed request reaches a route that accepts only signatures; the bootstrap token does not."""
    app, _ = make(tmp_path)
    pair = generate_keypair()
    with app.app_context():
        app.extensions["gridauth"].keys.register_signing_key(
            name="signer", public_key=pair.public_key, scopes=["admin"], owner="alice"
        )
    client = app.test_client()
    signed = client.get("/signed-admin", headers=sign_request(pair.private_key, "GET", "http://localhost/signed-admin"))
    assert signed.status_code == 200
    assert client.get("/signed-admin", headers=bearer(TOKEN)).status_code == 403


def test_custom_kind_is_rate_limited_at_the_jwt_default(tmp_path: Path) -> None:
    """An app's kind is counted per principal at GRIDAUTH_RATELIMIT_JWT, with the usual headers."""
    app, _ = make(tmp_path, GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_JWT="2/minute")
    client = app.test_client()
    headers = {"X-Partner-Token": "partner-secret-0123456789"}
    assert client.get("/items", headers=headers).headers["X-RateLimit-Limit"] == "2"
    assert client.get("/items", headers=headers).status_code == 200
    refused = client.get("/items", headers=headers)
    assert refused.status_code == 429 and "Retry-After" in refused.headers


def test_verifier_registered_after_init_and_for_several_apps(tmp_path: Path) -> None:
    """@auth.verifier applies to every app of the GridAuth, initialised before or after it."""
    auth = GridAuth()
    apps = []
    for name in ("one", "two"):
        app = Flask(name, instance_path=str(tmp_path / name))
        app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False)
        app.add_url_rule("/who", "who", lambda: {"kind": current_principal.kind})
        apps.append(app)
    auth.init_app(apps[0])

    @auth.verifier("device", header="X-Device-Key")
    def device(value: str) -> Principal | None:
        return Principal(kind="device", id=value, owner="fleet", scopes=frozenset({"read"})) if value == "d1" else None

    auth.init_app(apps[1])
    for app in apps:
        response = app.test_client().get("/who", headers={"X-Device-Key": "d1"})
        assert response.get_json() == {"kind": "device"}


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("token", {"header": "X-T"}),
        ("Bad-Kind", {"header": "X-T"}),
        ("ok", {}),
        ("ok", {"header": "Authorization"}),
        ("ok", {"header": "x-api-key"}),
        ("ok", {"prefix": "grd_"}),
        ("ok", {"prefix": "eyJ"}),
        ("ok", {"prefix": "has space"}),
    ],
)
def test_bad_registrations_fail_at_once(tmp_path: Path, kind: str, options: dict[str, str]) -> None:
    """A built-in kind name, a reserved header or a prefix that matches API keys or JWTs is refused."""
    _, auth = make(tmp_path)
    with pytest.raises((ValueError, TypeError)):
        auth.verifier(kind, **options)(lambda value: None)


def test_require_kind_shows_in_flask_gridauth_routes(tmp_path: Path) -> None:
    """`flask gridauth routes` names the kinds a route accepts."""
    app, _ = make(tmp_path)
    result: Result = app.test_cli_runner().invoke(gridauth_cli, args=["routes"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("/orders"))
    assert "kinds: partner, signature" in line


def test_builtin_kinds_follow_the_protocol(tmp_path: Path) -> None:
    """The request hook finds every kind, ours and the app's, in one registry of one protocol."""
    app, _ = make(tmp_path)
    registry = app.extensions["gridauth"].verifiers
    assert {"api_key", "signature", "token", "partner", "oat"} <= registry.kinds
    for kind in registry.kinds:
        assert isinstance(registry.get(kind), CredentialVerifier)


def test_custom_verifier_example_runs() -> None:
    """examples/custom_verifier.py (OAuth token introspection against a loopback server) runs and checks itself."""
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "custom_verifier.py")], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "custom verifier example: ok" in result.stdout
