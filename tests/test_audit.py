"""The audit log: one writer (the service layer), every action, owner-scoped reads, retention, no secrets."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask

from flask_gridauth import get_state
from flask_gridauth.activity import ACTIONS, Actor
from flask_gridauth.audit import AuditLog
from flask_gridauth.errors import ConfigurationError, StorageError
from flask_gridauth.records import utcnow
from flask_gridauth.storage import MemoryStorage

from .conftest import TOKEN, bearer, build_app, create_key
from .test_dashboard import D, csrf_of, dash_app, post_form, sign_in

API = "/api/v1"


def public_key_b64() -> str:
    """A fresh Ed25519 public key, standard base64 of its 32 raw bytes."""
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def all_events(app: Flask) -> list[dict[str, Any]]:
    """Every stored event of every owner, newest first, as the API shows them."""
    with app.app_context():
        return [e.to_dict() for e in get_state(app).audit.list(owner=None, limit=1000)]


def assert_no_secret(events: list[dict[str, Any]], secrets: list[str]) -> None:
    """No event, anywhere in its JSON, holds a secret, its SHA-256 (hex) or its base64."""
    text = json.dumps(events)
    for secret in secrets:
        digest = hashlib.sha256(secret.encode()).hexdigest()
        for needle in (secret, digest, digest.upper(), base64.b64encode(secret.encode()).decode()):
            assert needle not in text


def test_blueprint_emits_every_key_action_without_secrets(make_app: Callable[..., Flask]) -> None:
    """Create, register, update, rotate and revoke through the blueprint each leave one event, on every backend."""
    app = make_app()
    client = app.test_client()
    token = bearer(TOKEN)
    created = client.post(f"{API}/api-keys", json={"name": "ci", "scopes": ["read", "write"]}, headers=token)
    assert created.status_code == 201
    key = created.get_json()
    signing = client.post(
        f"{API}/api-keys",
        json={"type": "signing", "name": "trader", "scopes": ["read"], "public_key": public_key_b64()},
        headers=token,
        environ_base={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert signing.status_code == 201
    assert client.patch(f"{API}/api-keys/{key['id']}", json={"scopes": ["read"]}, headers=token).status_code == 200
    assert client.post(f"{API}/api-keys/{key['id']}/disable", headers=token).status_code == 200
    assert client.post(f"{API}/api-keys/{key['id']}/enable", headers=token).status_code == 200
    rotated = client.post(f"{API}/api-keys/{key['id']}/rotate", json={"grace_period": 60}, headers=token)
    assert rotated.status_code == 201
    new = rotated.get_json()
    assert client.delete(f"{API}/api-keys/{new['id']}", headers=token).status_code == 200

    events = all_events(app)
    assert [e["action"] for e in events] == [
        "key.revoked",
        "key.rotated",
        "key.enabled",
        "key.disabled",
        "key.updated",
        "signing_key.registered",
        "key.created",
    ]
    revoked, rotation, enabled, disabled, update, registered, creation = events
    assert enabled["target_id"] == disabled["target_id"] == key["id"]
    assert creation["target_id"] == key["id"] and creation["owner"] == "admin"
    assert creation["actor"] == {"kind": "token", "id": "token", "owner": "admin"}
    assert creation["details"]["scopes"] == ["read", "write"] and creation["details"]["prefix"] == key["prefix"]
    assert registered["remote_addr"] == "10.1.2.3"
    assert update["details"]["scopes"] == {"from": ["read", "write"], "to": ["read"]}
    assert rotation["target_id"] == key["id"] and rotation["details"]["new_key_id"] == new["id"]
    assert rotation["details"]["grace_period"] == 60
    assert revoked["target_id"] == new["id"]
    for event in events:
        assert event["object"] == "audit_event" and event["id"].startswith("evt_")
        assert set(event) == {
            "object",
            "id",
            "action",
            "actor",
            "target_id",
            "owner",
            "remote_addr",
            "created_at",
            "details",
        }
        assert event["created_at"].endswith("Z")
    assert_no_secret(events, [key["raw_key"], new["raw_key"], TOKEN])
    listed = client.get(f"{API}/audit-events", headers=token)
    assert listed.status_code == 200
    assert_no_secret(listed.get_json()["data"], [key["raw_key"], new["raw_key"], TOKEN])


def test_api_key_actor_and_owner_scoping(tmp_path: Path) -> None:
    """An admin key's events name it as the actor; it reads only its owner's log, the token reads all."""
    app = build_app(str(tmp_path))
    _, alice_admin = create_key(app, ["admin"], owner="alice")
    _, bob_admin = create_key(app, ["admin"], owner="bob")
    client = app.test_client()
    made = client.post(f"{API}/api-keys", json={"name": "a", "scopes": ["read"]}, headers=bearer(alice_admin))
    assert made.status_code == 201
    alice_events = client.get(f"{API}/audit-events", headers=bearer(alice_admin)).get_json()["data"]
    assert {e["owner"] for e in alice_events} == {"alice"}
    assert alice_events[0]["target_id"] == made.get_json()["id"]
    assert alice_events[0]["actor"]["kind"] == "api_key" and alice_events[0]["actor"]["owner"] == "alice"
    # The two keys made by the Python API outside a request are the CLI-or-script actor's.
    assert alice_events[-1]["actor"]["kind"] == "cli"
    bob_events = client.get(f"{API}/audit-events", headers=bearer(bob_admin)).get_json()["data"]
    assert {e["owner"] for e in bob_events} == {"bob"} and len(bob_events) == 1
    everyone = client.get(f"{API}/audit-events", headers=bearer(TOKEN)).get_json()["data"]
    assert len(everyone) == 3
    only_bob = client.get(f"{API}/audit-events?owner=bob", headers=bearer(TOKEN)).get_json()["data"]
    assert [e["owner"] for e in only_bob] == ["bob"]
    refused = client.get(f"{API}/audit-events?owner=bob", headers=bearer(alice_admin))
    assert refused.status_code == 403
    # Another owner's key id as a filter shows nothing, not an error (no existence oracle).
    bob_key = bob_events[0]["target_id"]
    assert client.get(f"{API}/audit-events?target_id={bob_key}", headers=bearer(alice_admin)).get_json()["data"] == []


def test_an_empty_patch_changes_nothing_and_records_nothing(tmp_path: Path) -> None:
    """PATCH {} answers the key as it is, with no write and no key.updated event; a real change has one."""
    app = build_app(str(tmp_path))
    record, _ = create_key(app, ["read"], owner="alice")
    client = app.test_client()
    unchanged = client.patch(f"{API}/api-keys/{record.id}", json={}, headers=bearer(TOKEN))
    assert unchanged.status_code == 200 and unchanged.get_json()["name"] == record.name

    def updates() -> list[Any]:
        query = f"{API}/audit-events?action=key.updated&target_id={record.id}"
        return list(client.get(query, headers=bearer(TOKEN)).get_json()["data"])

    assert updates() == []
    assert client.patch(f"{API}/api-keys/{record.id}", json={"name": "n"}, headers=bearer(TOKEN)).status_code == 200
    assert [e["details"]["fields"] for e in updates()] == [["name"]]


def test_audit_route_needs_the_manage_scope(tmp_path: Path) -> None:
    """A key without admin gets 403; no credential gets 401; no method edits or deletes events."""
    app = build_app(str(tmp_path))
    _, reader = create_key(app, ["read", "write"])
    client = app.test_client()
    assert client.get(f"{API}/audit-events", headers=bearer(reader)).status_code == 403
    assert client.get(f"{API}/audit-events").status_code == 401
    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(f"{API}/audit-events", headers=bearer(TOKEN))
        assert response.status_code == 405 and response.get_json()["object"] == "error"


def test_filters_and_cursor_pages(tmp_path: Path) -> None:
    """?action and ?target_id filter, ?limit and ?cursor page newest first without gaps or repeats."""
    app = build_app(str(tmp_path))
    records = [create_key(app, ["read"], name=f"k{i}")[0] for i in range(5)]
    with app.app_context():
        keys = get_state(app).keys
        keys.revoke(records[1].id)
        keys.update(records[1].id, name="renamed")
    client = app.test_client()
    token = bearer(TOKEN)
    revoked = client.get(f"{API}/audit-events?action=key.revoked", headers=token).get_json()
    assert [e["target_id"] for e in revoked["data"]] == [records[1].id]
    about = client.get(f"{API}/audit-events?target_id={records[1].id}", headers=token).get_json()["data"]
    assert [e["action"] for e in about] == ["key.updated", "key.revoked", "key.created"]
    seen: list[str] = []
    url = f"{API}/audit-events?limit=3"
    for _ in range(5):
        page = client.get(url, headers=token).get_json()
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            assert page["next_cursor"] is None
            break
        url = f"{API}/audit-events?limit=3&cursor={page['next_cursor']}"
    everything = client.get(f"{API}/audit-events?limit=100", headers=token).get_json()["data"]
    assert seen == [e["id"] for e in everything] and len(seen) == 7
    created = [e["created_at"] for e in everything]
    assert created == sorted(created, reverse=True)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("action=key.deleted", "action"),
        ("target_id=" + "x" * 101, "target_id"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("cursor=forged", "cursor"),
    ],
)
def test_bad_queries_are_422(tmp_path: Path, query: str, field: str) -> None:
    """A bad filter, limit or cursor is a 422 naming the field."""
    client = build_app(str(tmp_path)).test_client()
    response = client.get(f"{API}/audit-events?{query}", headers=bearer(TOKEN))
    assert response.status_code == 422
    assert response.get_json()["field"] == field


def test_cursor_of_another_owner_is_refused(tmp_path: Path) -> None:
    """A cursor made for the bootstrap token's view cannot page an owner's log."""
    app = build_app(str(tmp_path))
    for i in range(3):
        create_key(app, ["read"], name=f"k{i}")
    _, alice_admin = create_key(app, ["admin"], owner="alice")
    client = app.test_client()
    page = client.get(f"{API}/audit-events?limit=1", headers=bearer(TOKEN)).get_json()
    response = client.get(f"{API}/audit-events?cursor={page['next_cursor']}", headers=bearer(alice_admin))
    assert response.status_code == 422


def test_dashboard_emits_sign_in_create_revoke_sign_out(tmp_path: Path) -> None:
    """The dashboard's sign-in, create, revoke and sign-out each leave an event from the signed-in principal."""
    app = dash_app(tmp_path / "instance")
    client = app.test_client()
    assert sign_in(client).status_code == 303
    created = post_form(client, f"{D}/keys/new", {"name": "from dashboard", "scopes": "read"})
    assert created.status_code == 201
    with app.app_context():
        record = get_state(app).keys.list(owner=None, limit=1)[0]
    assert post_form(client, f"{D}/keys/{record.id}/revoke", {}).status_code == 303
    page = client.get(f"{D}/")
    assert client.post(f"{D}/sign-out", data={"csrf_token": csrf_of(page.text)}).status_code == 303
    events = all_events(app)
    actions = ["dashboard.signed_out", "key.revoked", "key.created", "dashboard.signed_in"]
    assert [e["action"] for e in events] == actions
    for event in events:
        assert event["actor"] == {"kind": "token", "id": "token", "owner": "admin"}
        assert event["remote_addr"] == "127.0.0.1"
    assert_no_secret(events, [TOKEN])


def test_cli_emits_with_the_shell_user_and_prints_the_log(tmp_path: Path) -> None:
    """CLI changes are audited with a ``cli`` actor, and ``flask gridauth audit`` prints them, filtered."""
    app = build_app(str(tmp_path))
    runner = app.test_cli_runner()
    made = runner.invoke(args=["gridauth", "create-key", "--name", "cron", "--scopes", "read", "-q"])
    assert made.exit_code == 0
    raw_key = made.output.strip()
    with app.app_context():
        record = get_state(app).keys.list(owner=None, limit=1)[0]
    assert runner.invoke(args=["gridauth", "rotate", record.id, "-q"]).exit_code == 0
    assert runner.invoke(args=["gridauth", "revoke", record.id]).exit_code == 0
    events = all_events(app)
    assert [e["action"] for e in events] == ["key.revoked", "key.rotated", "key.created"]
    assert {e["actor"]["kind"] for e in events} == {"cli"} and {e["remote_addr"] for e in events} == {None}
    table = runner.invoke(args=["gridauth", "audit"])
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split()[:3] == ["TIME", "ACTION", "ACTOR"]
    assert [line.split()[1] for line in lines[1:]] == ["key.revoked", "key.rotated", "key.created"]
    as_json = runner.invoke(args=["gridauth", "audit", "--json", "--action", "key.rotated"])
    assert [json.loads(line)["action"] for line in as_json.output.splitlines()] == ["key.rotated"]
    assert runner.invoke(args=["gridauth", "audit", "--action", "key.nope"]).exit_code == 2
    one = runner.invoke(args=["gridauth", "audit", "--limit", "1", "--target-id", record.id])
    assert len(one.output.splitlines()) == 2
    assert raw_key not in table.output and hashlib.sha256(raw_key.encode()).hexdigest() not in table.output


def test_retention_purges_old_events_lazily_in_batches() -> None:
    """Events past the retention go with later writes, a batch at a time; newer ones stay."""
    now = [utcnow()]
    storage = MemoryStorage()
    log = AuditLog(storage, retention_days=90, clock=lambda: now[0])
    actor = Actor(kind="system", id="test", owner=None)
    for _ in range(3):
        log.record("key.created", target_id="key_old", owner="alice", by=actor)
    now[0] += timedelta(days=91)
    assert len(log.list(owner=None, limit=10)) == 3  # nothing runs in the background
    log._purge_at = 0.0  # the hourly purge is due
    log.record("key.revoked", target_id="key_new", owner="alice", by=actor)
    assert [e.target_id for e in log.list(owner=None, limit=10)] == ["key_new"]


def test_retention_config_is_checked(tmp_path: Path) -> None:
    """GRIDAUTH_AUDIT_RETENTION_DAYS must be a positive whole number."""
    for bad in (0, -1, 1.5, True, "90"):
        with pytest.raises(ConfigurationError, match="GRIDAUTH_AUDIT_RETENTION_DAYS"):
            build_app(str(tmp_path), GRIDAUTH_AUDIT_RETENTION_DAYS=bad)
    app = build_app(str(tmp_path), GRIDAUTH_AUDIT_RETENTION_DAYS=7)
    assert get_state(app).audit.retention == timedelta(days=7)


def test_record_refuses_unknown_actions_and_secret_like_details() -> None:
    """Only the listed actions are recorded, and details that look like a key or a digest are refused."""
    log = AuditLog(MemoryStorage())
    actor = Actor(kind="system", id="test", owner=None)
    with pytest.raises(ValueError, match="unknown audit action"):
        log.record("key.deleted", target_id=None, owner=None, by=actor)
    raw = "grd_live_" + "ab" * 24
    for details in ({"raw": raw}, {"hash": hashlib.sha256(b"x").hexdigest()}, {"nested": [{"k": raw}]}):
        with pytest.raises(ValueError, match="secret"):
            log.record("key.leaked", target_id="key_1", owner="alice", by=actor, details=details)
    assert log.list(owner=None, limit=10) == []
    assert set(ACTIONS) >= {"key.leaked", "key.canary_used", "dashboard.signed_in"}


def test_other_engineers_call_record_for_leaks_and_canaries(tmp_path: Path) -> None:
    """``get_state().audit.record`` takes an explicit actor and address for events that are not key changes."""
    app = build_app(str(tmp_path))
    record, _ = create_key(app, ["read"])
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.7"}):
        event = get_state(app).audit.record(
            "key.canary_used", target_id=record.id, owner=record.owner, details={"path": "/boards"}
        )
    assert event is not None and event.remote_addr == "192.0.2.7" and event.actor.kind == "anonymous"
    with app.app_context():
        leak = get_state(app).audit.record(
            "key.leaked",
            target_id=record.id,
            owner=record.owner,
            by=Actor(kind="secret_scanning", id="github", owner=None),
            details={"url": "https://github.com/o/r/blob/x"},
        )
    assert leak is not None and leak.to_dict()["actor"] == {"kind": "secret_scanning", "id": "github", "owner": None}


class _FailingAudit(MemoryStorage):
    """Memory storage whose audit writes fail."""

    def add_audit_event(self, event: Any) -> Any:
        """Always fail."""
        raise StorageError("audit table unavailable")


def test_a_failed_audit_write_never_undoes_the_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The key is created and returned; the lost event is logged as an error."""
    from flask_gridauth import GridAuth

    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_RATELIMIT_ENABLED=False)
    GridAuth(app, storage=lambda app: _FailingAudit())
    with app.app_context():
        record, raw = get_state(app).keys.create(name="n", scopes=["read"], owner="alice")
        assert get_state(app).keys.get(record.id) == record
    assert "audit event not recorded: action=key.created" in caplog.text
    assert raw not in caplog.text


def test_event_times_are_utc(tmp_path: Path) -> None:
    """created_at is an aware UTC time close to now."""
    app = build_app(str(tmp_path))
    create_key(app, ["read"])
    with app.app_context():
        event = get_state(app).audit.list(owner=None, limit=1)[0]
    assert isinstance(event.created_at, datetime) and event.created_at.utcoffset() == timedelta(0)
    assert abs((utcnow() - event.created_at).total_seconds()) < 300
