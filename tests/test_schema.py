"""The one input schema: every caller (blueprint, dashboard, CLI, Python) meets the same rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import InvalidRequest, get_state
from flask_gridauth.cli import gridauth_cli
from flask_gridauth.dashboard import dashboard_blueprint
from flask_gridauth.schema import FIELDS, check_rate_limit, json_schema, parse_create, rate_limit_windows

from .conftest import TOKEN, bearer, build_app

API = "/api/v1"
ADMIN = bearer(TOKEN)

#: Owners the owner rule refuses, whoever names them.
BAD_OWNERS = ["", " bob\t", " bob", "bob ", "a\nb", "\u202eevil", "o" * 201]
#: Names the name rule refuses, whoever sends them.
BAD_NAMES = ["", "   ", "tab\there", "zero\u200bwidth", "bidi\u202eoverride", "x" * 201]


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    """An app on memory storage with the blueprint and the dashboard."""
    app = build_app(str(tmp_path), SECRET_KEY="schema-test-secret-" + "s" * 20)
    app.register_blueprint(dashboard_blueprint, url_prefix="/dashboard")
    return app


def cli(app: Flask, *args: str) -> Any:
    """Run ``flask gridauth <args>``."""
    return app.test_cli_runner().invoke(gridauth_cli, args=[*args])


@pytest.mark.parametrize("owner", BAD_OWNERS)
def test_cli_owner_rule_is_the_blueprints(app: Flask, owner: str) -> None:
    """``create-key --owner`` refuses what the blueprint refuses, naming --owner, and creates nothing."""
    result = cli(app, "create-key", "--name", "n", "--scopes", "read", "--owner", owner)
    assert result.exit_code == 1 and "--owner" in result.output and "Traceback" not in result.output
    response = app.test_client().post(
        f"{API}/api-keys", headers=ADMIN, json={"name": "n", "scopes": ["read"], "owner": owner}
    )
    assert response.status_code == 422 and response.get_json()["field"] == "owner"
    with app.app_context():
        assert get_state().keys.list() == []


@pytest.mark.parametrize("owner", BAD_OWNERS)
def test_python_api_owner_rule(app: Flask, owner: str) -> None:
    """``KeyManager.create(owner=...)`` from an app's own code applies the same owner rule."""
    with app.app_context(), pytest.raises(InvalidRequest) as caught:
        get_state().keys.create(name="n", scopes=["read"], owner=owner)
    assert caught.value.field == "owner"


@pytest.mark.parametrize("name", BAD_NAMES)
def test_name_rule_is_one_rule(app: Flask, name: str) -> None:
    """A bad name is refused alike by the blueprint (422), the CLI (exit 1) and the dashboard (form error)."""
    client = app.test_client()
    response = client.post(f"{API}/api-keys", headers=ADMIN, json={"name": name, "scopes": ["read"]})
    assert response.status_code == 422 and response.get_json()["field"] == "name"
    result = cli(app, "create-key", "--name", name or " ", "--scopes", "read")
    assert result.exit_code == 1 and "Traceback" not in result.output
    page = client.get("/dashboard/sign-in")
    csrf = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/dashboard/sign-in", data={"csrf_token": csrf, "credential": TOKEN})
    form = client.get("/dashboard/keys/new").text
    fields = {
        "csrf_token": form.split('name="csrf_token" value="')[1].split('"')[0],
        "once": form.split('name="once" value="')[1].split('"')[0],
        "name": name,
        "scopes": "read",
    }
    refused = client.post("/dashboard/keys/new", data=fields)
    assert refused.status_code == 422 and "name must be" in refused.text
    with app.app_context():
        assert get_state().keys.list() == []


def test_unicode_name_and_many_metadata_keys_are_accepted(app: Flask) -> None:
    """A name such as ``Clé de production ✓`` and 30 metadata keys are accepted (0.1's document refused them)."""
    body = {"name": "Clé de production ✓", "scopes": ["read"], "metadata": {f"k{i}": i for i in range(30)}}
    response = app.test_client().post(f"{API}/api-keys", headers=ADMIN, json=body)
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["name"] == "Clé de production ✓" and len(response.get_json()["metadata"]) == 30


@pytest.mark.parametrize(
    "value",
    [
        "1/99999999999999 year",
        "1/0 second",
        "99999999999999999999/second",
        "0/second",
        "1000000001/second",
        "1/2 years",
        "1/13 months",
        "1/31104001 seconds",
        "10/Minute",
        "10/minute;",
        "lots",
    ],
)
def test_rate_limit_bounds(app: Flask, value: str) -> None:
    """Amount 1..10^9 and window 1 second..1 year, else 422 naming rate_limit (create and PATCH)."""
    client = app.test_client()
    response = client.post(
        f"{API}/api-keys", headers=ADMIN, json={"name": "n", "scopes": ["read"], "rate_limit": value}
    )
    assert response.status_code == 422 and response.get_json()["field"] == "rate_limit"
    created = client.post(f"{API}/api-keys", headers=ADMIN, json={"name": "n", "scopes": ["read"]}).get_json()
    patched = client.patch(f"{API}/api-keys/{created['id']}", headers=ADMIN, json={"rate_limit": value})
    assert patched.status_code == 422 and patched.get_json()["field"] == "rate_limit"


@pytest.mark.parametrize(
    ("value", "windows"),
    [
        ("1000000000/second", [(10**9, 1)]),
        ("1/year", [(1, 31104000)]),
        ("5 per 10 seconds", [(5, 10)]),
        ("1/31104000 seconds", [(1, 31104000)]),
        ("10/second;1000/day", [(10, 1), (1000, 86400)]),
    ],
)
def test_rate_limit_edges_are_accepted(value: str, windows: list[tuple[int, int]]) -> None:
    """The largest amount and the longest window are accepted, and read back as (amount, seconds)."""
    assert check_rate_limit(value) == value
    assert rate_limit_windows(value) == windows


def test_body_guards_stay_in_front(app: Flask) -> None:
    """Duplicate fields, NaN and an unpaired surrogate escape are refused before the schema (field body)."""
    client = app.test_client()
    for data in (
        '{"name": "a", "name": "b", "scopes": ["read"]}',
        '{"name": "a", "scopes": ["read"], "expires_in": NaN}',
        '{"name": "a\\ud800", "scopes": ["read"]}',
    ):
        response = client.post(f"{API}/api-keys", headers=ADMIN, data=data, content_type="application/json")
        assert response.status_code == 422 and response.get_json()["field"] == "body", data


def test_every_field_is_in_one_table() -> None:
    """The create, update and rotate schemas are built from FIELDS alone, and parse_create agrees."""
    create = json_schema("create")
    api_key, signing = create["oneOf"]
    assert set(api_key["properties"]) | set(signing["properties"]) == {
        n for n, spec in FIELDS.items() if "create" in spec.operations
    }
    assert set(json_schema("update")["properties"]) == {
        "name",
        "scopes",
        "rate_limit",
        "metadata",
        "allowed_ips",
        "quota",
    }
    assert set(json_schema("rotate")["properties"]) == {"grace_period"}
    assert parse_create({"name": "n", "scopes": ["read", "read"], "expires_in": 60.0}).scopes == ("read",)
