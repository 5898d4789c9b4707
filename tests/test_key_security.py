"""Issue 14 for key management: rate-limit ceilings (M1), opaque cursors (i3)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import ConfigurationError, get_state

from .conftest import TOKEN, bearer, build_app

API = "/api/v1"
ADMIN = bearer(TOKEN)


def limited_app(tmp_path: Path, **config: Any) -> Flask:
    """An app on memory storage with per-credential limits on (the API key default is 60/minute)."""
    return build_app(str(tmp_path), GRIDAUTH_RATELIMIT_ENABLED=True, **config)


def admin_key(app: Flask, rate_limit: str | None = None) -> dict[str, str]:
    """Headers of a fresh admin key of alice, with its own ``rate_limit`` if given."""
    with app.app_context():
        _, raw = get_state().keys.create(name="admin", scopes=["admin"], owner="alice", rate_limit=rate_limit)
    return bearer(raw)


def create(client: Any, headers: dict[str, str], **body: Any) -> Any:
    """POST /api-keys with a small key body."""
    return client.post(f"{API}/api-keys", headers=headers, json={"name": "child", "scopes": ["read"], **body})


# -- M1: rate-limit ceilings -----------------------------------------------------------


def test_key_cannot_raise_its_own_limit(tmp_path: Path) -> None:
    """An admin key (60/minute by default) cannot PATCH itself to 100000/second: 403."""
    app = limited_app(tmp_path)
    client = app.test_client()
    headers = admin_key(app)
    me = client.get(f"{API}/me", headers=headers).get_json()
    response = client.patch(f"{API}/api-keys/{me['id']}", headers=headers, json={"rate_limit": "100000/second"})
    assert response.status_code == 403 and response.get_json()["code"] == "forbidden"
    with app.app_context():
        assert get_state().keys.get(me["id"]).rate_limit is None


@pytest.mark.parametrize(
    ("own", "child", "status"),
    [
        (None, "100000/second", 403),
        (None, "2/second", 403),
        (None, "1/second", 201),  # 60/minute: exactly its own
        (None, None, 201),  # the default, the same as its own
        ("10/minute", None, 201),  # the default 60/minute is more than its own: the child inherits 10/minute
        ("10/minute", "10/minute", 201),
        ("10/minute", "1/second;5/hour", 201),  # the strictest window counts: 5/hour is below 10/minute
        ("10/minute", "1/second;5000/hour", 403),
        ("1000/second", "500/second", 201),
    ],
)
def test_child_key_ceiling(tmp_path: Path, own: str | None, child: str | None, status: int) -> None:
    """A key creates children with at most its own effective limit (per second, strictest window)."""
    client = (app := limited_app(tmp_path)).test_client()
    body = {} if child is None else {"rate_limit": child}
    response = create(client, admin_key(app, own), **body)
    assert response.status_code == status, response.get_json()
    if status == 201:
        assert response.get_json()["rate_limit"] == (child or (own if own == "10/minute" else None))


def test_rotation_is_capped(tmp_path: Path) -> None:
    """Rotating a key whose limit is above the caller's own is 403 (the new secret would carry it)."""
    client = (app := limited_app(tmp_path)).test_client()
    fast = create(client, ADMIN, rate_limit="1000/second", owner="alice").get_json()
    response = client.post(f"{API}/api-keys/{fast['id']}/rotate", headers=admin_key(app))
    assert response.status_code == 403
    assert client.post(f"{API}/api-keys/{fast['id']}/rotate", headers=ADMIN).status_code == 201


def test_ratelimit_max_caps_all_but_token_and_cli(tmp_path: Path) -> None:
    """GRIDAUTH_RATELIMIT_MAX caps a fast key; the bootstrap token and the CLI are above it."""
    app = limited_app(tmp_path, GRIDAUTH_RATELIMIT_MAX="10/minute")
    client = app.test_client()
    fast = admin_key(app, "1000/minute")
    assert create(client, fast, rate_limit="100/minute").status_code == 403
    assert create(client, fast, rate_limit="10/minute").status_code == 201
    assert create(client, ADMIN, rate_limit="1000/second").status_code == 201
    result = app.test_cli_runner().invoke(
        args=["gridauth", "create-key", "--name", "n", "--scopes", "read", "--rate-limit", "1000/second"]
    )
    assert result.exit_code == 0, result.output


def test_key_without_limit_never_exceeds_its_giver(tmp_path: Path) -> None:
    """A slow caller's child without a rate_limit (and a PATCH to null) gets the caller's limit, not the default."""
    client = (app := limited_app(tmp_path, GRIDAUTH_RATELIMIT_JWT="10/minute")).test_client()
    slow = admin_key(app, "5/minute")
    child = create(client, slow).get_json()
    assert child["rate_limit"] == "5/minute"
    reset = client.patch(f"{API}/api-keys/{child['id']}", headers=slow, json={"rate_limit": None})
    assert reset.status_code == 200 and reset.get_json()["rate_limit"] == "5/minute"
    assert create(client, admin_key(app)).get_json()["rate_limit"] is None  # default 60/minute == its own


def test_ratelimit_max_must_be_a_limit(tmp_path: Path) -> None:
    """A GRIDAUTH_RATELIMIT_MAX that is no limit string is a ConfigurationError at start-up."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_RATELIMIT_MAX"):
        limited_app(tmp_path, GRIDAUTH_RATELIMIT_MAX="lots")


# -- i3: opaque cursors ------------------------------------------------------------------


def _decodings(cursor: str) -> list[bytes]:
    """Every way a reader might decode a cursor's parts (base64 and base64url, padded)."""
    out = [cursor.encode()]
    for part in cursor.split("."):
        for decode in (base64.urlsafe_b64decode, base64.b64decode):
            try:
                out.append(decode(part + "=" * (-len(part) % 4)))
            except (binascii.Error, ValueError):
                pass
    return out


def test_cursor_reveals_nothing(tmp_path: Path) -> None:
    """A cursor holds neither the owner's name nor a position, and two cursors for one page differ."""
    client = build_app(str(tmp_path)).test_client()
    for i in range(3):
        create(client, ADMIN, owner="alice-secret-owner", name=f"k{i}")
    url, query = f"{API}/api-keys", {"limit": "1", "owner": "alice-secret-owner"}
    first = client.get(url, headers=ADMIN, query_string=query).get_json()["next_cursor"]
    second = client.get(url, headers=ADMIN, query_string=query).get_json()["next_cursor"]
    assert first != second
    for blob in _decodings(first):
        assert b"alice" not in blob and b"seq" not in blob and b"owner" not in blob
    page = client.get(url, headers=ADMIN, query_string={**query, "cursor": first})
    assert page.status_code == 200 and len(page.get_json()["data"]) == 1


def test_cursor_of_another_owner_looks_forged(tmp_path: Path) -> None:
    """Another owner's cursor gets the very same 422 as garbage: no existence oracle."""
    app = build_app(str(tmp_path))
    client = app.test_client()
    for i in range(3):
        create(client, ADMIN, owner="alice", name=f"k{i}")
    alice_cursor = client.get(f"{API}/api-keys?limit=1&owner=alice", headers=ADMIN).get_json()["next_cursor"]
    with app.app_context():
        _, bob = get_state().keys.create(name="b", scopes=["admin"], owner="bob")
    foreign = client.get(f"{API}/api-keys", headers=bearer(bob), query_string={"cursor": alice_cursor})
    garbage = client.get(f"{API}/api-keys", headers=bearer(bob), query_string={"cursor": "A" * 60})
    assert foreign.status_code == garbage.status_code == 422
    assert foreign.get_json() == garbage.get_json()
