"""Rotation is atomic: of concurrent rotations of one key exactly one succeeds (issue 14, L1/L2)."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from flask import Flask

from flask_gridauth import GridAuth, StorageError, api_keys_blueprint
from flask_gridauth.records import KeyRecord
from flask_gridauth.storage.memory import MemoryStorage

from .conftest import TOKEN, bearer

API = "/api/v1"
ADMIN = bearer(TOKEN)


def _new_key(client: Any, name: str) -> dict[str, Any]:
    response = client.post(f"{API}/api-keys", headers=ADMIN, json={"name": name, "scopes": ["read"]})
    assert response.status_code == 201
    body: dict[str, Any] = response.get_json()
    return body


def _rotate(client: Any, key_id: str, grace: int) -> Any:
    return client.post(f"{API}/api-keys/{key_id}/rotate", headers=ADMIN, json={"grace_period": grace})


def test_concurrent_rotations_have_one_winner(app: Flask) -> None:
    """20 rotations of one key at once: exactly one 201, the other 19 are 409 conflict, one successor works."""
    created = _new_key(app.test_client(), "raced")
    barrier = threading.Barrier(20)
    answers: list[tuple[int, dict[str, Any]]] = []
    lock = threading.Lock()

    def rotate() -> None:
        client = app.test_client()
        barrier.wait()
        response = _rotate(client, created["id"], 0)
        with lock:
            answers.append((response.status_code, response.get_json()))

    threads = [threading.Thread(target=rotate) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * 19
    assert all(body["code"] == "conflict" for status, body in answers if status == 409)
    winner = next(body for status, body in answers if status == 201)
    client = app.test_client()
    assert client.get("/items", headers=bearer(winner["raw_key"])).status_code == 200
    assert client.get("/items", headers=bearer(created["raw_key"])).status_code == 401


def test_rotating_a_key_in_its_grace_period_again_is_409(client: Any) -> None:
    """A key rotated with a 60 s grace still works, but rotating it a second time is 409 conflict."""
    created = _new_key(client, "twice")
    first = _rotate(client, created["id"], 60)
    assert first.status_code == 201
    assert client.get("/items", headers=bearer(created["raw_key"])).status_code == 200
    second = _rotate(client, created["id"], 60)
    assert second.status_code == 409 and second.get_json()["code"] == "conflict"
    # The successor itself is a fresh key and can be rotated in turn.
    assert _rotate(client, first.get_json()["id"], 0).status_code == 201


def test_rotating_a_revoked_key_is_409(client: Any) -> None:
    """A revoked key cannot be rotated: 409 conflict, and no new secret is handed out."""
    created = _new_key(client, "gone")
    assert client.delete(f"{API}/api-keys/{created['id']}", headers=ADMIN).status_code == 200
    response = _rotate(client, created["id"], 60)
    assert response.status_code == 409 and response.get_json()["code"] == "conflict"
    assert "raw_key" not in response.get_json()


class _FlakyStorage(MemoryStorage):
    """Memory storage whose ``add`` fails, or whose rotation claim is lost, when a test says so."""

    fail_add = False
    lose_claim = False

    def add(self, record: KeyRecord) -> KeyRecord:
        """Fail like a storage that went away, when asked to."""
        if self.fail_add:
            raise StorageError("FlakyStorage failed: ConnectionError")
        return super().add(record)

    def mark_rotated(self, key_id: str, *, expires_at: datetime | None, rotated_at: datetime) -> bool:
        """Lose the claim (as to a concurrent rotation), when asked to."""
        if self.lose_claim:
            return False
        return super().mark_rotated(key_id, expires_at=expires_at, rotated_at=rotated_at)


def _flaky_app(tmp_path: Any) -> tuple[Flask, _FlakyStorage]:
    storage = _FlakyStorage()
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_RATELIMIT_ENABLED=False)
    GridAuth(app, storage=lambda _: storage)
    app.register_blueprint(api_keys_blueprint, url_prefix=API)

    @app.get("/items")
    def items() -> dict[str, bool]:
        return {"ok": True}

    return app, storage


def test_failed_successor_add_leaves_the_old_key_usable_and_rotatable(tmp_path: Any) -> None:
    """When storing the new key fails, the rotation is 503 and the old key keeps working, unmarked."""
    app, storage = _flaky_app(tmp_path)
    client = app.test_client()
    created = _new_key(client, "flaky")
    storage.fail_add = True
    assert _rotate(client, created["id"], 0).status_code == 503
    storage.fail_add = False
    assert client.get("/items", headers=bearer(created["raw_key"])).status_code == 200
    assert client.get(f"{API}/api-keys/{created['id']}", headers=ADMIN).get_json()["status"] == "active"
    assert len(client.get(f"{API}/api-keys", headers=ADMIN).get_json()["data"]) == 1  # no successor left behind
    retried = _rotate(client, created["id"], 0)  # not marked rotated: a second attempt succeeds
    assert retried.status_code == 201
    assert client.get("/items", headers=bearer(retried.get_json()["raw_key"])).status_code == 200
    assert client.get("/items", headers=bearer(created["raw_key"])).status_code == 401


def test_lost_claim_revokes_the_unused_successor(tmp_path: Any) -> None:
    """A rotation that loses its claim is 409, the old key is untouched and the stored successor is revoked."""
    app, storage = _flaky_app(tmp_path)
    client = app.test_client()
    created = _new_key(client, "lost")
    storage.lose_claim = True
    answer = _rotate(client, created["id"], 0)
    assert answer.status_code == 409 and "raw_key" not in answer.get_json()
    keys = {k["id"]: k for k in client.get(f"{API}/api-keys", headers=ADMIN).get_json()["data"]}
    assert keys.pop(created["id"])["status"] == "active"
    assert [k["status"] for k in keys.values()] == ["revoked"]
    assert client.get("/items", headers=bearer(created["raw_key"])).status_code == 200
