"""A key bound by a quota can neither refill its own quota nor hand out more than it has left.

What it gives another key is paid from its own balance: a grant moves units, it never makes them.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask

from flask_gridauth import Principal, get_state

from .conftest import TOKEN, bearer, create_key

ADMIN = bearer(TOKEN)
KEYS = "/api/v1/api-keys"


def _remaining(client: Any, key_id: str) -> int:
    """What is left of a key's quota, as the bootstrap token reads it."""
    return int(client.get(f"{KEYS}/{key_id}", headers=ADMIN).json["quota"]["remaining"])


def test_key_cannot_refill_its_own_quota(app: Flask, client: Any) -> None:
    """A key with quota 5 and 3 uses cannot PATCH itself back to 5 (403); its balance keeps falling."""
    record, raw = create_key(app, ["admin"], quota={"limit": 5, "refill": None})
    for _ in range(3):
        assert client.get("/items", headers=bearer(raw)).status_code == 200
    response = client.patch(f"{KEYS}/{record.id}", headers=bearer(raw), json={"quota": {"limit": 5, "refill": None}})
    assert response.status_code == 403
    assert response.json["code"] == "forbidden"
    assert _remaining(client, record.id) == 1  # three uses and the refused PATCH
    removed = client.patch(f"{KEYS}/{record.id}", headers=bearer(raw), json={"quota": None})
    assert removed.status_code == 403
    assert _remaining(client, record.id) == 0


def test_key_with_a_quota_may_still_rename_itself(app: Flask, client: Any) -> None:
    """Only the quota is out of reach: the key may change its own other fields."""
    record, raw = create_key(app, ["admin"], quota={"limit": 5, "refill": None})
    response = client.patch(f"{KEYS}/{record.id}", headers=bearer(raw), json={"name": "renamed"})
    assert response.status_code == 200
    assert response.json["name"] == "renamed"


def test_bootstrap_token_may_reset_a_quota(app: Flask, client: Any) -> None:
    """A caller without a quota (the bootstrap token) still sets a key's quota, which starts full."""
    record, raw = create_key(app, ["admin"], quota={"limit": 5, "refill": None})
    for _ in range(3):
        client.get("/items", headers=bearer(raw))
    response = client.patch(f"{KEYS}/{record.id}", headers=ADMIN, json={"quota": {"limit": 5, "refill": None}})
    assert response.status_code == 200
    assert response.json["quota"]["remaining"] == 5


def test_child_quota_is_bounded_by_the_remaining_balance(app: Flask, client: Any) -> None:
    """A child's quota may not exceed what is left of the caller's quota (not the caller's limit)."""
    record, raw = create_key(app, ["admin"], quota={"limit": 10, "refill": None})
    for _ in range(5):
        client.get("/items", headers=bearer(raw))

    def create(limit: int) -> Any:
        body = {"name": "child", "scopes": ["read"], "quota": {"limit": limit, "refill": None}}
        return client.post(KEYS, headers=bearer(raw), json=body)

    refused = create(5)  # each request pays first: this one leaves 4
    assert refused.status_code == 403
    assert "left" in refused.json["message"]
    assert create(10).status_code == 403  # 3 left
    assert create(3).status_code == 403  # 2 left
    made = create(1)  # 1 left, then given away
    assert made.status_code == 201
    assert made.json["quota"]["limit"] == 1
    assert _remaining(client, record.id) == 0


def test_patching_another_key_is_bounded_by_the_balance(app: Flask, client: Any) -> None:
    """A caller with a quota cannot raise another key's quota above its own remaining balance."""
    _, raw = create_key(app, ["admin"], quota={"limit": 4, "refill": None})
    sibling, _ = create_key(app, ["read"], name="sibling", quota={"limit": 1, "refill": None})
    path = f"{KEYS}/{sibling.id}"
    assert client.patch(path, headers=bearer(raw), json={"quota": {"limit": 4, "refill": None}}).status_code == 403
    assert client.patch(path, headers=bearer(raw), json={"quota": {"limit": 2, "refill": None}}).status_code == 200
    # 4 - 2 requests - 2 given: nothing left, so the next request is refused before it can grant.
    refused = client.patch(path, headers=bearer(raw), json={"quota": {"limit": 1, "refill": None}})
    assert refused.status_code == 429 and refused.json["code"] == "quota_exceeded"


def test_child_keys_cannot_multiply_units(app: Flask, client: Any) -> None:
    """Children made one after another hold, together with the requests made, no more than the caller had."""
    record, raw = create_key(app, ["admin"], quota={"limit": 10, "refill": None})
    statuses, given = [], []
    for _ in range(5):
        body = {"name": "child", "scopes": ["read"], "quota": {"limit": 3, "refill": None}}
        response = client.post(KEYS, headers=bearer(raw), json=body)
        statuses.append(response.status_code)
        if response.status_code == 201:
            given.append(response.json["quota"]["remaining"])
    # 10 -1 -3 -1 -3 = 2; -1 leaves 1 (refused), -1 leaves 0 (refused); then the request itself is refused.
    assert statuses == [201, 201, 403, 403, 429]
    assert sum(given) + 4 == 10  # the two children hold 6, four requests used 4: nothing was made
    assert _remaining(client, record.id) == 0


def test_a_quota_bound_caller_gives_no_refill_and_no_unlimited_key(app: Flask, client: Any) -> None:
    """A refill makes units every interval for every key given one: a quota-bound caller cannot give it."""
    _, raw = create_key(app, ["admin"], quota={"limit": 100, "refill": {"amount": 10, "interval": "day"}})
    refill = {"limit": 5, "refill": {"amount": 1, "interval": "day"}}
    refused = client.post(KEYS, headers=bearer(raw), json={"name": "c", "scopes": ["read"], "quota": refill})
    assert refused.status_code == 403 and "refill" in refused.json["message"]
    assert client.post(KEYS, headers=bearer(raw), json={"name": "c", "scopes": ["read"]}).status_code == 403


def test_concurrent_grants_spend_the_balance_once(app: Flask) -> None:
    """Eight threads granting 2 units each from a balance of 10: exactly five grants succeed, none overdraws."""
    record, _ = create_key(app, ["admin"], quota={"limit": 10, "refill": None})
    state = get_state(app)
    by = Principal(kind="api_key", id=record.id, owner=record.owner, scopes=state.expand(["admin", "read"]), key=record)
    keys = state.keys
    outcomes: list[int] = []
    barrier = threading.Barrier(8)

    def grant() -> None:
        barrier.wait()
        with app.app_context():
            try:
                keys.create(name="child", scopes=["read"], by=by, quota={"limit": 2})
                outcomes.append(201)
            except Exception as exc:  # noqa: BLE001 - the status is what the test compares
                outcomes.append(getattr(exc, "code", 500))

    threads = [threading.Thread(target=grant) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == [201] * 5 + [403] * 3
    with app.app_context():
        assert keys.get(record.id).quota.available() == 0


def test_quota_bound_caller_cannot_rotate_a_key_without_a_quota(app: Flask, client: Any) -> None:
    """Rotating hands the caller a new secret: a quota-bound caller may not get one of an unlimited key."""
    _, raw = create_key(app, ["admin"], quota={"limit": 10, "refill": None})
    unlimited, _ = create_key(app, ["read"])
    response = client.post(f"{KEYS}/{unlimited.id}/rotate", headers=bearer(raw), json={})
    assert response.status_code == 403
    assert response.json["code"] == "forbidden"
    assert client.get(f"{KEYS}/{unlimited.id}", headers=ADMIN).json["status"] == "active"


def test_quota_bound_caller_pays_for_rotating_another_key(app: Flask, client: Any) -> None:
    """Rotating another key with a quota spends that quota's limit from the caller's own balance."""
    record, raw = create_key(app, ["admin"], quota={"limit": 10, "refill": None})
    other, _ = create_key(app, ["read"], quota={"limit": 4, "refill": None})
    response = client.post(f"{KEYS}/{other.id}/rotate", headers=bearer(raw), json={})
    assert response.status_code == 201
    assert _remaining(client, record.id) == 5  # 10, one for the rotate request, four paid
    too_big, _ = create_key(app, ["read"], quota={"limit": 9, "refill": None})
    assert client.post(f"{KEYS}/{too_big.id}/rotate", headers=bearer(raw), json={}).status_code == 403


def test_key_with_a_quota_rotates_without_a_grace_period(app: Flask, client: Any) -> None:
    """A grace period would let the old and the new secret each spend the one balance: 422, nothing changes."""
    record, _ = create_key(app, ["read"], quota={"limit": 5, "refill": None})
    response = client.post(f"{KEYS}/{record.id}/rotate", headers=ADMIN, json={"grace_period": 60})
    assert response.status_code == 422
    assert response.json["field"] == "grace_period"
    assert client.get(f"{KEYS}/{record.id}", headers=ADMIN).json["status"] == "active"
    rotated = client.post(f"{KEYS}/{record.id}/rotate", headers=ADMIN, json={})
    assert rotated.status_code == 201
    assert rotated.json["quota"]["remaining"] == 5
    assert client.get("/items", headers=bearer(rotated.json["raw_key"])).status_code == 200
