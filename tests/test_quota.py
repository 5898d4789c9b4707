"""Usage quotas and owner-wide limits through HTTP on every backend."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from flask import Flask

from flask_gridauth import GridAuth, QuotaExceeded, RateLimited
from flask_gridauth.keypolicy import cost

from .conftest import TOKEN, bearer, create_key

ADMIN = bearer(TOKEN)
SECRET = "owner-limit-test-secret-0123456789abcdef"
ISSUER = "https://idp.example.test"


def _with_routes(app: Flask) -> Flask:
    auth: GridAuth = app.extensions["gridauth"].extension

    @app.get("/report")
    @auth.cost(5)
    def report() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/free")
    @cost(0)
    def free() -> dict[str, Any]:
        return {"ok": True}

    return app


@pytest.fixture
def qapp(make_app: Any) -> Flask:
    """A test app with a route costing 5 units and a free one."""
    return _with_routes(make_app())


def test_quota_counts_every_request_and_shows_headers(qapp: Flask) -> None:
    """Each request uses one unit; X-Quota-* on every response; at zero, 429 quota_exceeded."""
    client = qapp.test_client()
    _, raw = create_key(qapp, ["read"], quota={"limit": 3, "refill": None})
    remaining = []
    for _ in range(3):
        response = client.get("/items", headers=bearer(raw))
        assert response.status_code == 200
        assert response.headers["X-Quota-Limit"] == "3"
        remaining.append(response.headers["X-Quota-Remaining"])
    assert remaining == ["2", "1", "0"]
    refused = client.get("/items", headers=bearer(raw))
    assert refused.status_code == 429
    assert refused.json["code"] == "quota_exceeded"
    assert (refused.headers["X-Quota-Limit"], refused.headers["X-Quota-Remaining"]) == ("3", "0")


def test_route_cost_and_free_routes(qapp: Flask) -> None:
    """@auth.cost(5) uses five units; a cost of 0 uses none; too few units left is 429 and takes nothing."""
    client = qapp.test_client()
    record, raw = create_key(qapp, ["read"], quota={"limit": 7})
    assert client.get("/report", headers=bearer(raw)).headers["X-Quota-Remaining"] == "2"
    free = client.get("/free", headers=bearer(raw))
    assert free.status_code == 200 and free.headers["X-Quota-Remaining"] == "2"
    refused = client.get("/report", headers=bearer(raw))
    assert refused.status_code == 429 and refused.headers["X-Quota-Remaining"] == "2"
    assert client.get("/items", headers=bearer(raw)).headers["X-Quota-Remaining"] == "1"
    shown = client.get(f"/api/v1/api-keys/{record.id}", headers=ADMIN).json
    assert shown["quota"] == {"limit": 7, "refill": None, "remaining": 1}


def test_quota_on_create_patch_and_key_object(client: Any) -> None:
    """quota is set on create and PATCH (which starts it afresh), shown with remaining, removed with null."""
    body = {"name": "plan", "scopes": ["read"], "quota": {"limit": 100, "refill": {"amount": 10, "interval": "day"}}}
    created = client.post("/api/v1/api-keys", headers=ADMIN, json=body)
    assert created.status_code == 201
    assert created.json["quota"] == {"limit": 100, "refill": {"amount": 10, "interval": "day"}, "remaining": 100}
    key_id, raw = created.json["id"], created.json["raw_key"]
    client.get("/items", headers=bearer(raw))
    assert client.get(f"/api/v1/api-keys/{key_id}", headers=ADMIN).json["quota"]["remaining"] == 99
    patched = client.patch(f"/api/v1/api-keys/{key_id}", headers=ADMIN, json={"quota": {"limit": 5}})
    assert patched.json["quota"] == {"limit": 5, "refill": None, "remaining": 5}
    cleared = client.patch(f"/api/v1/api-keys/{key_id}", headers=ADMIN, json={"quota": None})
    assert cleared.json["quota"] is None
    assert "X-Quota-Limit" not in client.get("/items", headers=bearer(raw)).headers


@pytest.mark.parametrize(
    "quota",
    [
        {"limit": 0},
        {"limit": -1},
        {"limit": "5"},
        {"limit": True},
        {"refill": None},
        {"limit": 5, "refill": {"amount": 1, "interval": "week"}},
        {"limit": 5, "refill": {"amount": 6, "interval": "day"}},
        {"limit": 5, "refill": {"amount": 1}},
        {"limit": 5, "other": 1},
        5,
    ],
)
def test_bad_quota_is_422(client: Any, quota: Any) -> None:
    """Anything but a valid quota object is 422 naming quota."""
    response = client.post("/api/v1/api-keys", headers=ADMIN, json={"name": "k", "scopes": ["read"], "quota": quota})
    assert response.status_code == 422
    assert response.json["field"] == "quota"


def test_cannot_grant_a_quota_larger_than_its_own(app: Flask, client: Any) -> None:
    """A caller with a quota may only give keys what is left of it, without refill, never none."""
    _, admin = create_key(app, ["admin"], quota={"limit": 100, "refill": {"amount": 10, "interval": "day"}})

    def create(quota: Any) -> int:
        body: dict[str, Any] = {"name": "child", "scopes": ["read"]}
        if quota != "absent":
            body["quota"] = quota
        return int(client.post("/api/v1/api-keys", headers=bearer(admin), json=body).status_code)

    assert create({"limit": 50}) == 201  # one request and 50 given: 49 of the 100 are left
    assert create({"limit": 101}) == 403  # each refused request still pays its unit: 48 left
    assert create({"limit": 5, "refill": {"amount": 1, "interval": "day"}}) == 403  # a refill makes units; 47
    assert create(None) == 403  # 46
    assert create("absent") == 403  # 45
    child = client.post("/api/v1/api-keys", headers=ADMIN, json={"name": "c", "scopes": ["read"]}).json
    patched = client.patch(f"/api/v1/api-keys/{child['id']}", headers=bearer(admin), json={"quota": {"limit": 500}})
    assert patched.status_code in (403, 404)  # another owner's key is 404; the owner's own with 500 is 403; 44
    assert create({"limit": 44}) == 403  # this request leaves 43: 44 is too many
    assert create({"limit": 42}) == 201  # this one leaves 42, all given
    _, other = create_key(app, ["read"], owner="alice")
    del other


def test_refill_is_lazy(qapp: Flask) -> None:
    """A spent quota refills when the next request comes after a whole interval, with no background job."""
    record, raw = create_key(qapp, ["read"], quota={"limit": 2, "refill": {"amount": 1, "interval": "hour"}})
    client = qapp.test_client()
    client.get("/items", headers=bearer(raw))
    client.get("/items", headers=bearer(raw))
    assert client.get("/items", headers=bearer(raw)).status_code == 429
    storage = qapp.extensions["gridauth"].storage
    from datetime import timedelta

    from flask_gridauth.records import Quota, utcnow

    # Move the counter's last refill two hours back, as if two hours had passed.
    storage.update(
        record.id,
        {"quota": Quota(2, 1, "hour", remaining=0, refilled_at=utcnow() - timedelta(hours=2, minutes=1))},
    )
    response = client.get("/items", headers=bearer(raw))
    assert response.status_code == 200 and response.headers["X-Quota-Remaining"] == "1"


def test_rate_limited_request_uses_no_quota(make_app: Any) -> None:
    """A request refused by the rate limit costs nothing and still shows the quota headers."""
    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY="2/minute")
    _, raw = create_key(app, ["read"], quota={"limit": 10})
    client = app.test_client()
    assert client.get("/items", headers=bearer(raw)).headers["X-Quota-Remaining"] == "9"
    assert client.get("/items", headers=bearer(raw)).headers["X-Quota-Remaining"] == "8"
    limited = client.get("/items", headers=bearer(raw))
    assert limited.status_code == 429 and limited.json["code"] == "rate_limited"
    assert limited.headers["X-Quota-Remaining"] == "8"


def test_quota_exceeded_is_a_rate_limited_429() -> None:
    """QuotaExceeded derives from RateLimited (429), so handlers for either see it."""
    assert issubclass(QuotaExceeded, RateLimited)
    assert QuotaExceeded().code == 429 and QuotaExceeded().error_code == "quota_exceeded"


def test_rotation_keeps_the_quota_counter(app: Flask, client: Any) -> None:
    """A rotated key continues its quota: rotating never refills it."""
    record, raw = create_key(app, ["read"], quota={"limit": 3})
    client.get("/items", headers=bearer(raw))
    rotated = client.post(f"/api/v1/api-keys/{record.id}/rotate", headers=ADMIN).json
    assert rotated["quota"]["remaining"] == 2


# -- owner-wide limits -----------------------------------------------------------------------


def test_owner_limit_shared_by_keys_and_jwts(make_app: Any) -> None:
    """GRIDAUTH_RATELIMIT_OWNER is one budget for all of an owner's keys and JWTs; other owners are apart."""
    app = make_app(
        GRIDAUTH_RATELIMIT_ENABLED=True,
        GRIDAUTH_RATELIMIT_OWNER="4/minute",
        GRIDAUTH_JWT_ISSUERS=[{"issuer": ISSUER, "secret": SECRET, "algorithms": ["HS256"], "all_scopes": True}],
    )
    client = app.test_client()
    _, first = create_key(app, ["read"], owner="acme")
    _, second = create_key(app, ["read"], owner="acme")
    _, other = create_key(app, ["read"], owner="globex")
    token = jwt.encode({"iss": ISSUER, "sub": "acme", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    statuses = [
        client.get("/items", headers=bearer(credential)).status_code
        for credential in (first, second, token, first, second)
    ]
    assert statuses == [200, 200, 200, 200, 429]
    assert client.get("/items", headers=bearer(token)).status_code == 429
    assert client.get("/items", headers=bearer(other)).status_code == 200
    assert client.get("/items", headers=ADMIN).status_code == 200  # the bootstrap token is not an owner's


def test_owner_limit_off_by_default(make_app: Any) -> None:
    """Without GRIDAUTH_RATELIMIT_OWNER, only each key's own limit applies."""
    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY="3/minute")
    client = app.test_client()
    keys = [create_key(app, ["read"], owner="acme")[1] for _ in range(3)]
    assert all(client.get("/items", headers=bearer(k)).status_code == 200 for k in keys for _ in range(3))
