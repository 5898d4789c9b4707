"""A key bound by a quota can neither refill its own quota nor hand out more than it has left."""

from __future__ import annotations

from typing import Any

from flask import Flask

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
    made = create(1)  # 1 left
    assert made.status_code == 201
    assert made.json["quota"]["limit"] == 1
    assert _remaining(client, record.id) == 1


def test_patching_another_key_is_bounded_by_the_balance(app: Flask, client: Any) -> None:
    """A caller with a quota cannot raise another key's quota above its own remaining balance."""
    _, raw = create_key(app, ["admin"], quota={"limit": 4, "refill": None})
    sibling, _ = create_key(app, ["read"], name="sibling", quota={"limit": 1, "refill": None})
    path = f"{KEYS}/{sibling.id}"
    assert client.patch(path, headers=bearer(raw), json={"quota": {"limit": 4, "refill": None}}).status_code == 403
    assert client.patch(path, headers=bearer(raw), json={"quota": {"limit": 2, "refill": None}}).status_code == 200
    assert client.patch(path, headers=bearer(raw), json={"quota": {"limit": 2, "refill": None}}).status_code == 403
