"""The key-management blueprint over HTTP, on every storage backend."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from itsdangerous import URLSafeTimedSerializer

from flask_gridauth import key_created, key_revoked, key_rotated
from flask_gridauth.blueprint import make_cursor, read_cursor
from flask_gridauth.errors import InvalidRequest
from flask_gridauth.scopes import view_requirement

from .conftest import TOKEN, bearer, build_app, create_key, storage_free

API = "/api/v1"
ADMIN = bearer(TOKEN)


def new_key(client: Any, headers: dict[str, str] = ADMIN, **body: Any) -> dict[str, Any]:
    """Create a key through the blueprint and return the 201 body."""
    body.setdefault("name", "test key")
    body.setdefault("scopes", ["read"])
    response = client.post(f"{API}/api-keys", headers=headers, json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()  # type: ignore[no-any-return]


def assert_error(response: Any, status: int, code: str, field: str | None = None) -> dict[str, Any]:
    """A JSON error body of the DESIGN.md shape."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert body["object"] == "error" and body["status"] == status and body["code"] == code
    if field is not None:
        assert body.get("field") == field
    return body  # type: ignore[no-any-return]


def ed25519_public_key() -> str:
    """Standard base64 of a fresh raw Ed25519 public key."""
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


@contextmanager
def received(signal: Any, app: Flask) -> Iterator[list[dict[str, Any]]]:
    """Collect the keyword arguments of every ``signal`` ``app`` sends."""
    calls: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        calls.append(kwargs)

    with signal.connected_to(receiver, app):
        yield calls


# -- /health, /me ----------------------------------------------------------------


def test_health_ok(client: Any) -> None:
    """/health is public and says ok while storage answers."""
    response = client.get(f"{API}/health")
    assert response.status_code == 200 and response.get_json() == {"status": "ok"}


def test_health_unavailable_when_redis_is_down(tmp_path: Any) -> None:
    """/health answers 503 {"status": "unavailable"} when Redis does not answer."""
    app = build_app(str(tmp_path), GRIDAUTH_STORAGE_URI="redis://127.0.0.1:1/0", GRIDAUTH_STORAGE_TIMEOUT=0.5)
    response = app.test_client().get(f"{API}/health")
    assert response.status_code == 503 and response.get_json() == {"status": "unavailable"}


def test_management_unavailable_when_redis_is_down(tmp_path: Any) -> None:
    """A management call that meets a dead storage is a JSON 503, never a 500."""
    app = build_app(str(tmp_path), GRIDAUTH_STORAGE_URI="redis://127.0.0.1:1/0", GRIDAUTH_STORAGE_TIMEOUT=0.5)
    client = app.test_client()
    assert_error(
        client.post(f"{API}/api-keys", headers=ADMIN, json={"name": "n", "scopes": ["read"]}), 503, "unavailable"
    )
    assert_error(client.get(f"{API}/api-keys", headers=ADMIN), 503, "unavailable")


@storage_free
def test_me_for_the_token(client: Any) -> None:
    """/me shows the bootstrap token's principal."""
    body = client.get(f"{API}/me", headers=ADMIN).get_json()
    assert body["kind"] == "token" and body["owner"] == "admin" and body["scopes"] == ["*"]


def test_me_needs_no_particular_scope(app: Flask) -> None:
    """/me answers a key whose only scope is holdings:write, with x-api-key too."""
    _, raw = create_key(app, ["holdings:write"], owner="carol")
    client = app.test_client()
    for headers in (bearer(raw), {"x-api-key": raw}):
        body = client.get(f"{API}/me", headers=headers).get_json()
        assert body["kind"] == "api_key" and body["owner"] == "carol"
        assert set(body["scopes"]) == {"holdings:write", "holdings:read"}


@storage_free
def test_me_without_a_credential_is_401(client: Any) -> None:
    """/me is not public."""
    response = client.get(f"{API}/me")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == "Bearer"


@storage_free
def test_me_is_marked_authenticated(app: Flask) -> None:
    """/me needs a credential but no scope, whatever the method default."""
    view = app.view_functions["gridauth.me"]
    assert view_requirement(view, "GET", {"GET": "read"}) == ((), ())


# -- create ----------------------------------------------------------------------


def test_create_key(client: Any) -> None:
    """POST /api-keys: 201, the key object, its raw key once, and a Location."""
    response = client.post(
        f"{API}/api-keys",
        headers=ADMIN,
        json={
            "name": "CI/CD Pipeline",
            "scopes": ["read", "write"],
            "expires_in": 3600,
            "environment": "test",
            "rate_limit": "100/minute",
            "metadata": {"team": "ops"},
        },
    )
    assert response.status_code == 201
    body = response.get_json()
    assert body["object"] == "api_key" and body["name"] == "CI/CD Pipeline" and body["type"] == "api_key"
    assert body["scopes"] == ["read", "write"] and body["environment"] == "test" and body["owner"] == "admin"
    assert body["raw_key"].startswith("grd_test_") and body["raw_key"].startswith(body["prefix"])
    assert body["expires_at"] is not None and body["rate_limit"] == "100/minute"
    assert body["metadata"] == {"team": "ops"}
    assert response.headers["Location"] == f"{API}/api-keys/{body['id']}"
    assert "lookup" not in body and "hash" not in body
    # The new key works.
    assert client.get("/items", headers=bearer(body["raw_key"])).status_code == 200


def test_create_with_expires_at(client: Any) -> None:
    """expires_at is accepted as an ISO 8601 time."""
    body = new_key(client, expires_at="2030-01-01T00:00:00Z")
    assert body["expires_at"].startswith("2030-01-01T00:00:00")


def test_token_creates_for_a_named_owner(client: Any) -> None:
    """The bootstrap token may create a key for any owner."""
    body = new_key(client, owner="dave")
    assert body["owner"] == "dave"
    assert client.get(f"{API}/me", headers=bearer(body["raw_key"])).get_json()["owner"] == "dave"


def test_key_creates_for_its_own_owner(app: Flask, client: Any) -> None:
    """An admin key's new keys belong to its owner; naming that owner is fine, another is 403."""
    _, admin = create_key(app, ["admin"], owner="alice")
    assert new_key(client, bearer(admin))["owner"] == "alice"
    assert new_key(client, bearer(admin), owner="alice")["owner"] == "alice"
    response = client.post(
        f"{API}/api-keys", headers=bearer(admin), json={"name": "n", "scopes": ["read"], "owner": "bob"}
    )
    assert_error(response, 403, "forbidden")


def test_register_signing_key(client: Any) -> None:
    """ "type": "signing" registers an Ed25519 key: 201 with its fingerprint and no raw key."""
    public_key = ed25519_public_key()
    body = new_key(client, type="signing", public_key=public_key, scopes=["orders:write"])
    raw = base64.b64decode(public_key)
    assert body["type"] == "signing" and "raw_key" not in body
    assert body["fingerprint"] == base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")
    assert client.get(f"{API}/api-keys/{body['id']}", headers=ADMIN).get_json()["fingerprint"] == body["fingerprint"]


# -- raw keys never come back ----------------------------------------------------


def test_raw_key_never_appears_again(app: Flask, client: Any) -> None:
    """After the 201, no response (get, list, patch, rotate, revoke) holds the raw key or its hash."""
    created = new_key(client, scopes=["read", "write"])
    raw = created["raw_key"]
    digest = hashlib.sha256(raw.encode()).hexdigest()
    key_url = f"{API}/api-keys/{created['id']}"
    responses = [
        client.get(key_url, headers=ADMIN),
        client.get(f"{API}/api-keys", headers=ADMIN),
        client.patch(key_url, headers=ADMIN, json={"name": "renamed"}),
        client.get(f"{API}/me", headers=bearer(raw)),
    ]
    rotated = client.post(f"{key_url}/rotate", headers=ADMIN, json={"grace_period": 60})
    assert rotated.status_code == 201 and rotated.get_json()["raw_key"] != raw
    responses += [client.delete(key_url, headers=ADMIN), client.get(f"{API}/api-keys", headers=ADMIN)]
    for response in responses:
        text = response.get_data(as_text=True)
        assert raw not in text and digest not in text
        assert "raw_key" not in text


# -- list and pagination -----------------------------------------------------------


def test_pagination_walks_newest_first(client: Any) -> None:
    """7 keys, 3 at a time: 3 + 3 + 1, newest first, then no cursor."""
    ids = [new_key(client, name=f"key {i}")["id"] for i in range(7)]
    seen: list[str] = []
    url = f"{API}/api-keys?limit=3"
    pages = []
    for _ in range(5):  # bounded walk
        body = client.get(url, headers=ADMIN).get_json()
        assert body["object"] == "list"
        pages.append(len(body["data"]))
        seen += [k["id"] for k in body["data"]]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            break
        url = f"{API}/api-keys?limit=3&cursor={body['next_cursor']}"
    assert pages == [3, 3, 1]
    assert seen == list(reversed(ids))


def test_list_default_limit_is_20(client: Any) -> None:
    """Without ?limit a page holds 20 keys."""
    for i in range(21):
        new_key(client, name=f"k{i}")
    body = client.get(f"{API}/api-keys", headers=ADMIN).get_json()
    assert len(body["data"]) == 20 and body["has_more"] is True


def test_forged_cursors_are_422(app: Flask, client: Any) -> None:
    """A made-up, tampered, foreign-secret or other owner's cursor is a JSON 422, never a 500."""
    for i in range(3):
        new_key(client, name=f"k{i}", owner="alice")
    good = client.get(f"{API}/api-keys?limit=1", headers=ADMIN).get_json()["next_cursor"]
    foreign = URLSafeTimedSerializer("not the secret", salt="flask_gridauth.cursor").dumps({"seq": 1, "owner": None})
    tampered = good[:-2] + ("AA" if not good.endswith("AA") else "BB")
    for cursor in ("garbage", "", "a.b.c", tampered, foreign, "x" * 600, good + "%00"):
        response = client.get(f"{API}/api-keys", headers=ADMIN, query_string={"cursor": cursor})
        assert_error(response, 422, "invalid_request", "cursor")
    # A cursor issued for every owner does not page through alice's keys for her own key.
    _, alice = create_key(app, ["admin"], owner="alice")
    response = client.get(f"{API}/api-keys", headers=bearer(alice), query_string={"cursor": good})
    assert_error(response, 422, "invalid_request", "cursor")


@storage_free
def test_cursor_payload_is_checked(app: Flask) -> None:
    """A validly signed cursor with a bad payload is still refused."""
    with app.test_request_context():
        assert read_cursor(make_cursor(5, "alice"), "alice") == 5
        with pytest.raises(InvalidRequest):
            read_cursor(make_cursor(5, "alice"), "bob")
        with pytest.raises(InvalidRequest):
            read_cursor(make_cursor(-1, None), None)


@storage_free
def test_cursor_secret_is_the_app_secret_key(make_app: Callable[..., Flask]) -> None:
    """With SECRET_KEY set cursors are signed with it, and a different key refuses them."""
    one, two = make_app(SECRET_KEY="one"), make_app(SECRET_KEY="two")
    with one.test_request_context():
        cursor = make_cursor(3, None)
    with two.test_request_context(), pytest.raises(InvalidRequest):
        read_cursor(cursor, None)


@pytest.mark.parametrize("shared", ["sqlite", "redis"])
def test_other_workers_accept_cursors(shared: str, tmp_path: Any, request: pytest.FixtureRequest) -> None:
    """Two apps with the same token and storage (two workers) accept each other's cursors."""
    uri = f"sqlite:///{tmp_path}/shared.db" if shared == "sqlite" else str(request.getfixturevalue("redis_uri"))
    one, two = (build_app(str(tmp_path / name), GRIDAUTH_STORAGE_URI=uri) for name in ("one", "two"))
    for i in range(3):
        new_key(one.test_client(), name=f"k{i}")
    first = one.test_client().get(f"{API}/api-keys?limit=2", headers=ADMIN).get_json()
    second = two.test_client().get(f"{API}/api-keys?limit=2&cursor={first['next_cursor']}", headers=ADMIN)
    assert second.status_code == 200 and len(second.get_json()["data"]) == 1


@storage_free
@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5", "", "١", "9" * 50])
def test_bad_limit_is_422(client: Any, limit: str) -> None:
    """limit outside 1-100 or not a number is 422 naming limit."""
    assert_error(
        client.get(f"{API}/api-keys", headers=ADMIN, query_string={"limit": limit}), 422, "invalid_request", "limit"
    )


def test_token_can_filter_by_owner(client: Any) -> None:
    """The bootstrap token sees every owner, or one with ?owner=."""
    new_key(client, owner="alice")
    new_key(client, owner="bob")
    everyone = client.get(f"{API}/api-keys", headers=ADMIN).get_json()["data"]
    only_bob = client.get(f"{API}/api-keys?owner=bob", headers=ADMIN).get_json()["data"]
    assert {k["owner"] for k in everyone} == {"alice", "bob"}
    assert [k["owner"] for k in only_bob] == ["bob"]


# -- owner isolation and escalation -------------------------------------------------


def test_owner_isolation(app: Flask, client: Any) -> None:
    """Bob's admin key cannot see or touch Alice's key: 404 exactly like a missing one."""
    _, alice_admin = create_key(app, ["admin"], owner="alice")
    _, bob_admin = create_key(app, ["admin"], owner="bob")
    alice_key = new_key(client, bearer(alice_admin), name="alice's")
    bob = bearer(bob_admin)
    url = f"{API}/api-keys/{alice_key['id']}"
    missing = client.get(f"{API}/api-keys/key_doesnotexist", headers=bob).get_json()
    for response in (
        client.get(url, headers=bob),
        client.patch(url, headers=bob, json={"name": "mine now"}),
        client.delete(url, headers=bob),
        client.post(f"{url}/rotate", headers=bob),
    ):
        assert response.get_json() == missing
        assert_error(response, 404, "not_found")
    listed = client.get(f"{API}/api-keys", headers=bob).get_json()["data"]
    assert alice_key["id"] not in {k["id"] for k in listed}
    assert {k["owner"] for k in listed} == {"bob"}
    assert_error(client.get(f"{API}/api-keys?owner=alice", headers=bob), 403, "forbidden")
    # Alice's key is untouched and still works.
    alice_view = client.get(url, headers=bearer(alice_admin)).get_json()
    assert alice_view["name"] == "alice's" and alice_view["status"] == "active"


def test_privilege_escalation_refused(app: Flask, client: Any) -> None:
    """A caller can never grant a scope it lacks, by create or rotate."""
    _, admin = create_key(app, ["admin"], owner="alice")
    headers = bearer(admin)
    response = client.post(f"{API}/api-keys", headers=headers, json={"name": "n", "scopes": ["billing:read"]})
    assert_error(response, 403, "forbidden")
    # "*" is reserved for the bootstrap token: not a scope name a body may carry at all.
    response = client.post(f"{API}/api-keys", headers=headers, json={"name": "n", "scopes": ["*"]})
    assert_error(response, 422, "invalid_request")
    assert new_key(client, headers, scopes=["admin", "read"])["scopes"] == ["admin", "read"]
    # A key holding billing:read that Alice's admin key cannot re-issue by rotation.
    billing, _ = create_key(app, ["billing:read"], owner="alice")
    assert_error(client.post(f"{API}/api-keys/{billing.id}/rotate", headers=headers), 403, "forbidden")


def test_management_needs_admin(app: Flask, client: Any) -> None:
    """A write key cannot use any /api-keys route."""
    record, raw = create_key(app, ["write"], owner="alice")
    headers = bearer(raw)
    for response in (
        client.get(f"{API}/api-keys", headers=headers),
        client.post(f"{API}/api-keys", headers=headers, json={"name": "n", "scopes": ["read"]}),
        client.get(f"{API}/api-keys/{record.id}", headers=headers),
        client.delete(f"{API}/api-keys/{record.id}", headers=headers),
    ):
        body = assert_error(response, 403, "forbidden")
        assert body["message"] == "Missing required scope: admin"


# -- get, patch, delete ----------------------------------------------------------------


def test_get_key(client: Any) -> None:
    """GET /api-keys/<id> returns the key object."""
    created = new_key(client)
    body = client.get(f"{API}/api-keys/{created['id']}", headers=ADMIN).get_json()
    assert body == {k: v for k, v in created.items() if k != "raw_key"}


def test_patch_key(client: Any) -> None:
    """PATCH changes name, metadata and rate limit, and narrows scopes."""
    created = new_key(client, scopes=["read", "write"])
    url = f"{API}/api-keys/{created['id']}"
    response = client.patch(
        url, headers=ADMIN, json={"name": "new", "metadata": {"a": 1}, "rate_limit": "5/second", "scopes": ["read"]}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert (body["name"], body["metadata"], body["rate_limit"], body["scopes"]) == (
        "new",
        {"a": 1},
        "5/second",
        ["read"],
    )
    assert client.get(url, headers=ADMIN).get_json()["scopes"] == ["read"]
    # The narrowed key lost write.
    assert_error(client.post("/items", headers=bearer(created["raw_key"])), 403, "forbidden")


def test_patch_cannot_widen_scopes(client: Any) -> None:
    """PATCH scopes may only shrink: adding one is 403."""
    created = new_key(client, scopes=["read"])
    response = client.patch(f"{API}/api-keys/{created['id']}", headers=ADMIN, json={"scopes": ["read", "write"]})
    assert_error(response, 403, "forbidden")


def test_revoke_is_immediate_and_idempotent(client: Any) -> None:
    """DELETE revokes at once (200 with the key); a second DELETE is fine."""
    created = new_key(client)
    url = f"{API}/api-keys/{created['id']}"
    first = client.delete(url, headers=ADMIN)
    assert first.status_code == 200 and first.get_json()["status"] == "revoked"
    second = client.delete(url, headers=ADMIN)
    assert second.status_code == 200 and second.get_json()["revoked_at"] == first.get_json()["revoked_at"]
    assert_error(client.get("/items", headers=bearer(created["raw_key"])), 401, "unauthorized")


def test_missing_key_is_404(client: Any) -> None:
    """Every /api-keys/<id> route answers 404 for an unknown id, and for an absurdly long one."""
    for key_id in ("key_missing", "k" * 300):
        url = f"{API}/api-keys/{key_id}"
        for response in (
            client.get(url, headers=ADMIN),
            client.patch(url, headers=ADMIN, json={"name": "x"}),
            client.delete(url, headers=ADMIN),
            client.post(f"{url}/rotate", headers=ADMIN),
        ):
            assert_error(response, 404, "not_found")


# -- rotation ------------------------------------------------------------------------------


def test_rotate_with_grace_period(client: Any) -> None:
    """With a 3 s grace both keys work, then only the new one."""
    created = new_key(client, scopes=["read", "write"], name="rolling")
    # 3 s, not 1: "both keys work" must survive a stall of a loaded machine between rotate and the first use.
    response = client.post(f"{API}/api-keys/{created['id']}/rotate", headers=ADMIN, json={"grace_period": 3})
    assert response.status_code == 201
    rotated = response.get_json()
    assert rotated["id"] != created["id"] and rotated["rotated_from"] == created["id"]
    assert (rotated["name"], rotated["scopes"], rotated["owner"]) == ("rolling", ["read", "write"], "admin")
    old, new = bearer(created["raw_key"]), bearer(rotated["raw_key"])
    assert client.get("/items", headers=old).status_code == 200
    assert client.get("/items", headers=new).status_code == 200
    for _ in range(100):  # wait (bounded) for the grace period to end
        if client.get("/items", headers=old).status_code == 401:
            break
        time.sleep(0.1)
    assert_error(client.get("/items", headers=old), 401, "unauthorized")
    assert client.get("/items", headers=new).status_code == 200


def test_rotate_without_grace_retires_at_once(client: Any) -> None:
    """An empty rotate body means grace 0: the old key stops at once."""
    created = new_key(client)
    response = client.post(f"{API}/api-keys/{created['id']}/rotate", headers=ADMIN)
    assert response.status_code == 201
    assert_error(client.get("/items", headers=bearer(created["raw_key"])), 401, "unauthorized")
    assert client.get("/items", headers=bearer(response.get_json()["raw_key"])).status_code == 200


def test_rotate_revoked_or_signing_key_is_409(client: Any) -> None:
    """Only an active API key can be rotated."""
    created = new_key(client)
    client.delete(f"{API}/api-keys/{created['id']}", headers=ADMIN)
    assert_error(client.post(f"{API}/api-keys/{created['id']}/rotate", headers=ADMIN), 409, "conflict")
    signing = new_key(client, type="signing", public_key=ed25519_public_key())
    assert_error(client.post(f"{API}/api-keys/{signing['id']}/rotate", headers=ADMIN), 409, "conflict")


# -- several processes ------------------------------------------------------------------


@pytest.mark.parametrize("shared", ["sqlite", "redis"])
def test_revocation_seen_by_a_second_app(shared: str, tmp_path: Any, request: pytest.FixtureRequest) -> None:
    """A key revoked through one app is refused at once by another app on the same storage."""
    uri = f"sqlite:///{tmp_path}/shared.db" if shared == "sqlite" else str(request.getfixturevalue("redis_uri"))
    one = build_app(str(tmp_path / "one"), GRIDAUTH_STORAGE_URI=uri).test_client()
    two = build_app(str(tmp_path / "two"), GRIDAUTH_STORAGE_URI=uri).test_client()
    created = new_key(one)
    assert two.get("/items", headers=bearer(created["raw_key"])).status_code == 200
    assert one.delete(f"{API}/api-keys/{created['id']}", headers=ADMIN).status_code == 200
    assert_error(two.get("/items", headers=bearer(created["raw_key"])), 401, "unauthorized")
    assert two.get(f"{API}/api-keys/{created['id']}", headers=ADMIN).get_json()["status"] == "revoked"


# -- validation ------------------------------------------------------------------------------

BAD_CREATE_BODIES = [
    ({"scopes": ["read"]}, "name"),
    ({"name": "", "scopes": ["read"]}, "name"),
    ({"name": "x" * 201, "scopes": ["read"]}, "name"),
    ({"name": 5, "scopes": ["read"]}, "name"),
    ({"name": "   ", "scopes": ["read"]}, "name"),
    ({"name": "a\nb", "scopes": ["read"]}, "name"),
    ({"name": "n"}, "scopes"),
    ({"name": "n", "scopes": []}, "scopes"),
    ({"name": "n", "scopes": "read"}, "scopes"),
    ({"name": "n", "scopes": [1]}, "scopes"),
    ({"name": "n", "scopes": ["read write"]}, "scopes"),
    ({"name": "n", "scopes": ["x" * 300]}, "scopes"),
    ({"name": "n", "scopes": ["read"] * 51}, "scopes"),
    ({"name": "n", "scopes": ["read"], "expires_in": -1}, "expires_in"),
    ({"name": "n", "scopes": ["read"], "expires_in": 0}, "expires_in"),
    ({"name": "n", "scopes": ["read"], "expires_in": "3600"}, "expires_in"),
    ({"name": "n", "scopes": ["read"], "expires_in": True}, "expires_in"),
    ({"name": "n", "scopes": ["read"], "expires_in": 1.5}, "expires_in"),
    ({"name": "n", "scopes": ["read"], "expires_in": 10**30}, "expires_in"),
    ({"name": "n", "scopes": ["read"], "expires_at": "yesterday"}, "expires_at"),
    ({"name": "n", "scopes": ["read"], "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
    ({"name": "n", "scopes": ["read"], "expires_at": "9999-12-31T23:59:59-23:59"}, "expires_at"),
    ({"name": "n", "scopes": ["read"], "expires_at": 12}, "expires_at"),
    ({"name": "n", "scopes": ["read"], "expires_in": 60, "expires_at": "2099-01-01T00:00:00Z"}, "expires_in"),
    ({"name": "n", "scopes": ["read"], "environment": "prod"}, "environment"),
    ({"name": "n", "scopes": ["read"], "environment": ["live"]}, "environment"),
    ({"name": "n", "scopes": ["read"], "environment": None}, "environment"),
    ({"name": "n", "scopes": ["read"], "rate_limit": "lots"}, "rate_limit"),
    ({"name": "n", "scopes": ["read"], "rate_limit": 100}, "rate_limit"),
    ({"name": "n", "scopes": ["read"], "rate_limit": "1/minute" * 50}, "rate_limit"),
    ({"name": "n", "scopes": ["read"], "metadata": [1]}, "metadata"),
    ({"name": "n", "scopes": ["read"], "metadata": "x"}, "metadata"),
    ({"name": "n", "scopes": ["read"], "metadata": {"big": "x" * 5000}}, "metadata"),
    ({"name": "n", "scopes": ["read"], "owner": 7}, "owner"),
    ({"name": "n", "scopes": ["read"], "owner": ""}, "owner"),
    ({"name": "n", "scopes": ["read"], "owner": "o" * 201}, "owner"),
    ({"name": "n", "scopes": ["read"], "owner": " padded "}, "owner"),
    ({"name": "n", "scopes": ["read"], "type": "password"}, "type"),
    ({"name": "n", "scopes": ["read"], "public_key": "AAAA"}, "public_key"),
    ({"name": "n", "scopes": ["read"], "type": "signing"}, "public_key"),
    ({"name": "n", "scopes": ["read"], "type": "signing", "public_key": "not base64!"}, "public_key"),
    ({"name": "n", "scopes": ["read"], "type": "signing", "public_key": 5}, "public_key"),
    ({"name": "n", "scopes": ["read"], "type": "signing", "public_key": "A" * 5000}, "public_key"),
    ({"name": "n", "scopes": ["read"], "bogus": 1}, "bogus"),
    ({"name": "n", "scopes": ["read"], "raw_key": "grd_live_x"}, "raw_key"),
    ({"name": "n", "scopes": ["read"], "<script>": 1}, "body"),
    ([], "body"),
    ("just a string", "body"),
    (None, "body"),
    (42, "body"),
]


@pytest.mark.parametrize(("body", "field"), BAD_CREATE_BODIES)
def test_create_validation(client: Any, body: Any, field: str) -> None:
    """Every bad create body is a JSON 422 naming the field, and creates nothing."""
    response = client.post(f"{API}/api-keys", headers=ADMIN, data=json.dumps(body), content_type="application/json")
    assert_error(response, 422, "invalid_request", field)
    assert client.get(f"{API}/api-keys", headers=ADMIN).get_json()["data"] == []


@storage_free
@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        ("not json", "application/json"),
        ('{"name": "n", "scopes": ["read"]', "application/json"),
        ('{"name": "n", "name": "m", "scopes": ["read"]}', "application/json"),
        ('{"name": "n", "scopes": ["read"], "expires_in": NaN}', "application/json"),
        ("[" * 20000 + "]" * 20000, "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        ("", "application/json"),
        ('{"name": "n", "scopes": ["read"]}', "text/plain"),
        ("name=n&scopes=read", "application/x-www-form-urlencoded"),
    ],
)
def test_create_rejects_non_json(client: Any, data: Any, content_type: str) -> None:
    """A body that is not one clean JSON object is 422 (field body), never 400 HTML or 500."""
    response = client.post(f"{API}/api-keys", headers=ADMIN, data=data, content_type=content_type)
    assert_error(response, 422, "invalid_request", "body")


@storage_free
def test_oversize_body_is_413(client: Any) -> None:
    """A body over the blueprint's limit is a JSON 413."""
    body = json.dumps({"name": "n", "scopes": ["read"], "metadata": {"x": "y" * 70000}})
    response = client.post(f"{API}/api-keys", headers=ADMIN, data=body, content_type="application/json")
    assert_error(response, 413, "payload_too_large")


@storage_free
def test_max_content_length_is_json_413(make_app: Callable[..., Flask]) -> None:
    """werkzeug's own 413 (MAX_CONTENT_LENGTH) comes back as the JSON error too."""
    client = make_app(MAX_CONTENT_LENGTH=100).test_client()
    body = json.dumps({"name": "n" * 150, "scopes": ["read"]})
    response = client.post(f"{API}/api-keys", headers=ADMIN, data=body, content_type="application/json")
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": None}, "name"),
        ({"scopes": []}, "scopes"),
        ({"metadata": 3}, "metadata"),
        ({"rate_limit": "often"}, "rate_limit"),
        ({"owner": "bob"}, "owner"),
        ({"expires_in": 60}, "expires_in"),
        ([1], "body"),
    ],
)
def test_patch_validation(client: Any, body: Any, field: str) -> None:
    """Every bad PATCH body is a JSON 422 naming the field."""
    created = new_key(client)
    response = client.patch(f"{API}/api-keys/{created['id']}", headers=ADMIN, json=body)
    assert_error(response, 422, "invalid_request", field)


@pytest.mark.parametrize(
    ("body", "field"),
    [({"grace_period": -1}, "grace_period"), ({"grace_period": "1h"}, "grace_period"), ({"x": 1}, "x")],
)
def test_rotate_validation(client: Any, body: Any, field: str) -> None:
    """A bad rotate body is a JSON 422 naming the field, and rotates nothing."""
    created = new_key(client)
    response = client.post(f"{API}/api-keys/{created['id']}/rotate", headers=ADMIN, json=body)
    assert_error(response, 422, "invalid_request", field)
    assert client.get("/items", headers=bearer(created["raw_key"])).status_code == 200


# -- events ------------------------------------------------------------------------------------


def test_signals_and_logs_never_hold_the_secret(app: Flask, client: Any, caplog: pytest.LogCaptureFixture) -> None:
    """create, rotate and revoke send their signals with the key and log its id, never the raw key."""
    caplog.set_level(logging.DEBUG, logger="flask_gridauth")
    with received(key_created, app) as created_calls, received(key_rotated, app) as rotated_calls:
        with received(key_revoked, app) as revoked_calls:
            created = new_key(client)
            rotated = client.post(f"{API}/api-keys/{created['id']}/rotate", headers=ADMIN).get_json()
            client.delete(f"{API}/api-keys/{rotated['id']}", headers=ADMIN)
    assert [c["key"].id for c in created_calls] == [created["id"]]
    assert rotated_calls[0]["key"].id == rotated["id"] and rotated_calls[0]["old_key"].id == created["id"]
    assert [c["key"].id for c in revoked_calls] == [rotated["id"]]
    for calls in (created_calls, rotated_calls, revoked_calls):
        for call in calls:
            assert created["raw_key"] not in repr(call) and rotated["raw_key"] not in repr(call)
    assert created["id"] in caplog.text and rotated["id"] in caplog.text
    for secret in (created["raw_key"], rotated["raw_key"], TOKEN):
        assert secret not in caplog.text
        assert hashlib.sha256(secret.encode()).hexdigest() not in caplog.text


@storage_free
def test_werkzeug_errors_in_blueprint_views_are_json(app: Flask) -> None:
    """werkzeug's own HTTP errors (400, 405, 500) from a blueprint view render as the JSON error shape."""
    from werkzeug.exceptions import BadRequest, InternalServerError, MethodNotAllowed

    from flask_gridauth.blueprint import _internal_error
    from flask_gridauth.responses import render_error

    with app.test_request_context(f"{API}/api-keys", method="POST"):
        cases = (
            (BadRequest(), 400, "bad_request", "Bad Request"),
            (MethodNotAllowed(), 405, "method_not_allowed", None),
        )
        for exc, status, code, message in cases:
            response = app.make_response(render_error(exc))
            assert response.status_code == status and response.mimetype == "application/json"
            body = response.get_json()
            assert body["object"] == "error" and body["status"] == status and body["code"] == code
            assert message is None or body["message"] == message
        response = app.make_response(_internal_error(InternalServerError()))
        assert response.status_code == 500 and response.get_json()["code"] == "internal_error"
        assert "Traceback" not in response.get_data(as_text=True)


# -- the OpenAPI route -----------------------------------------------------------------------


@storage_free
def test_openapi_is_public_and_names_its_mount_point(client: Any) -> None:
    """GET <prefix>/openapi.json needs no credential and lists the prefix as its server."""
    response = client.get(f"{API}/openapi.json")
    assert response.status_code == 200
    body = response.get_json()
    assert body["openapi"].startswith("3.1") and body["servers"] == [{"url": API}]


def test_routes_doc_snippet_runs() -> None:
    """The Python example of docs/reference/routes.rst runs as written."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "reference" / "routes.rst").read_text()
    blocks = re.findall(r"\.\. code-block:: python\n\n((?:   .*\n|\n)+)", text)
    assert blocks
    for block in blocks:
        exec(compile(textwrap.dedent(block), "routes.rst", "exec"), {"__name__": "routes_doc"})  # noqa: S102
