"""Usage per key and hour: counted in memory, written in batches, reported with the unused scopes."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import get_state
from flask_gridauth.activity import HOUR, UsageCount, hour_of
from flask_gridauth.errors import ConfigurationError, StorageError
from flask_gridauth.scopes import expand_scopes
from flask_gridauth.storage import MemoryStorage
from flask_gridauth.usage import unused_scopes

from .conftest import TOKEN, bearer, build_app, create_key

API = "/api/v1"
#: A fixed instant in the middle of an hour, so a test never straddles two buckets.
NOW = 1_790_000_000 // HOUR * HOUR + 1800


def usage(client: Any, key_id: str, days: int = 1, credential: str = TOKEN) -> dict[str, Any]:
    """The usage object of ``key_id`` through the route."""
    response = client.get(f"{API}/api-keys/{key_id}/usage?days={days}", headers=bearer(credential))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.get_json()
    return body


def totals(body: dict[str, Any]) -> tuple[int, int, int]:
    """Allowed, forbidden and rate-limited over every bucket."""
    buckets = body["buckets"]
    return (
        sum(b["allowed"] for b in buckets),
        sum(b["forbidden"] for b in buckets),
        sum(b["rate_limited"] for b in buckets),
    )


def test_counts_allowed_forbidden_and_rate_limited(make_app: Callable[..., Flask]) -> None:
    """Each outcome is counted in the key's current hour, on every backend, and reported with the scopes."""
    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY="4/minute")
    get_state(app).usage.clock = lambda: float(NOW)
    record, raw = create_key(app, ["read", "write"])
    other, other_raw = create_key(app, ["read"])
    client = app.test_client()
    statuses = [client.get("/items", headers=bearer(raw)).status_code for _ in range(3)]
    statuses.append(client.get("/admin-only", headers=bearer(raw)).status_code)
    statuses += [client.get("/items", headers=bearer(raw)).status_code for _ in range(2)]
    assert statuses == [200, 200, 200, 403, 429, 429]
    assert client.get("/items", headers=bearer(other_raw)).status_code == 200
    assert client.get("/items", headers=bearer(TOKEN)).status_code == 200  # the token has no key: not counted
    with app.app_context():
        report = get_state(app).usage.report(record, days=1, expand=get_state(app).expand)
    assert totals(report) == (3, 1, 2)
    hour = [b for b in report["buckets"] if b["allowed"]]
    assert len(hour) == 1 and hour[0]["start"] == time.strftime("%Y-%m-%dT%H:00:00.000Z", time.gmtime(NOW))
    assert report["scopes_held"] == ["read", "write"]
    assert report["scopes_used"] == ["read"] and report["unused_scopes"] == ["write"]
    with app.app_context():
        assert totals(get_state(app).usage.report(other, days=1, expand=get_state(app).expand)) == (1, 0, 0)


def test_route_reports_every_hour_of_the_window(tmp_path: Path) -> None:
    """?days=N gives N*24 hourly buckets, oldest first, ending with the current hour."""
    app = build_app(str(tmp_path))
    record, raw = create_key(app, ["read"])
    client = app.test_client()
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    body = usage(client, record.id, days=7)
    assert body["object"] == "usage" and body["key_id"] == record.id
    assert len(body["buckets"]) == 7 * 24
    starts = [b["start"] for b in body["buckets"]]
    assert starts == sorted(starts)
    assert body["buckets"][-1]["allowed"] == 1 and totals(body) == (1, 0, 0)
    assert set(body) == {"object", "key_id", "buckets", "scopes_held", "scopes_used", "unused_scopes"}
    default = client.get(f"{API}/api-keys/{record.id}/usage", headers=bearer(TOKEN)).get_json()
    assert len(default["buckets"]) == 7 * 24


def test_route_is_owner_scoped_and_needs_the_manage_scope(tmp_path: Path) -> None:
    """Another owner's key is 404 like a missing one; a key without admin is 403; bad ?days is 422."""
    app = build_app(str(tmp_path))
    record, _ = create_key(app, ["read"], owner="alice")
    _, bob_admin = create_key(app, ["admin"], owner="bob")
    _, alice_reader = create_key(app, ["read"], owner="alice")
    client = app.test_client()
    assert client.get(f"{API}/api-keys/{record.id}/usage", headers=bearer(bob_admin)).status_code == 404
    assert client.get(f"{API}/api-keys/key_missing/usage", headers=bearer(TOKEN)).status_code == 404
    assert client.get(f"{API}/api-keys/{record.id}/usage", headers=bearer(alice_reader)).status_code == 403
    for bad in ("0", "91", "x", "7.5", "-1"):
        response = client.get(f"{API}/api-keys/{record.id}/usage?days={bad}", headers=bearer(TOKEN))
        assert response.status_code == 422 and response.get_json()["field"] == "days"
    assert client.delete(f"{API}/api-keys/{record.id}/usage", headers=bearer(TOKEN)).status_code == 405


class CountingStorage(MemoryStorage):
    """Memory storage that counts ``add_usage`` calls and can be made to fail them."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.failing = False

    def add_usage(self, counts: Any) -> None:
        """Count the write, or fail it."""
        if self.failing:
            raise StorageError("usage table unavailable")
        self.writes += 1
        super().add_usage(counts)


def counting_app(tmp_path: Path, storage: CountingStorage, **config: Any) -> Flask:
    """A test app on ``storage`` whose flusher waits an hour (the test flushes by hand)."""
    from flask_gridauth import GridAuth, api_keys_blueprint

    app = Flask(__name__, instance_path=str(tmp_path))
    config.setdefault("GRIDAUTH_USAGE_FLUSH_INTERVAL", 3600)
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_RATELIMIT_ENABLED=False, **config)
    GridAuth(app, storage=lambda _app: storage)
    app.register_blueprint(api_keys_blueprint, url_prefix=API)

    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"ok": True}

    return app


def test_no_storage_write_per_request(tmp_path: Path) -> None:
    """A hundred requests write nothing; one flush writes them all in one call."""
    storage = CountingStorage()
    app = counting_app(tmp_path, storage)
    record, raw = create_key(app, ["read"])
    client = app.test_client()
    for _ in range(100):
        assert client.get("/items", headers=bearer(raw)).status_code == 200
    assert storage.writes == 0
    assert sum(c.allowed for c in get_state(app).usage.pending()) == 100
    get_state(app).usage.flush()
    assert storage.writes == 1
    assert sum(c.allowed for c in storage.list_usage(record.id, since_hour=0)) == 100
    assert get_state(app).usage.pending() == []


def test_a_failed_flush_keeps_the_counts_and_never_fails_a_request(tmp_path: Path) -> None:
    """While storage refuses, requests still succeed and counts wait; the next flush writes them exactly once."""
    storage = CountingStorage()
    app = counting_app(tmp_path, storage)
    record, raw = create_key(app, ["read"])
    client = app.test_client()
    storage.failing = True
    for _ in range(5):
        assert client.get("/items", headers=bearer(raw)).status_code == 200
    counter = get_state(app).usage
    assert counter.flush_quietly() is False
    with pytest.raises(StorageError):
        counter.flush()
    for _ in range(2):
        assert client.get("/items", headers=bearer(raw)).status_code == 200
    storage.failing = False
    assert counter.flush_quietly() is True
    assert sum(c.allowed for c in storage.list_usage(record.id, since_hour=0)) == 7
    assert counter.flush_quietly() is True
    assert sum(c.allowed for c in storage.list_usage(record.id, since_hour=0)) == 7


def test_the_flusher_thread_writes_within_the_interval(tmp_path: Path) -> None:
    """With a short interval, counts reach storage without any flush call (polled, generous deadline)."""
    storage = CountingStorage()
    app = counting_app(tmp_path, storage, GRIDAUTH_USAGE_FLUSH_INTERVAL=0.05)
    record, raw = create_key(app, ["read"])
    client = app.test_client()
    for _ in range(3):
        assert client.get("/items", headers=bearer(raw)).status_code == 200
    deadline = time.monotonic() + 30
    while sum(c.allowed for c in storage.list_usage(record.id, since_hour=0)) < 3:
        assert time.monotonic() < deadline, "the flusher thread never wrote the counts"
        time.sleep(0.02)
    assert sum(c.allowed for c in storage.list_usage(record.id, since_hour=0)) == 3


def test_usage_off_counts_nothing(tmp_path: Path) -> None:
    """GRIDAUTH_USAGE=False registers no counting step; the route still answers from storage."""
    app = build_app(str(tmp_path), GRIDAUTH_USAGE=False)
    record, raw = create_key(app, ["read"])
    client = app.test_client()
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    assert get_state(app).usage.pending() == []
    assert totals(usage(client, record.id)) == (0, 0, 0)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("GRIDAUTH_USAGE_FLUSH_INTERVAL", 0),
        ("GRIDAUTH_USAGE_FLUSH_INTERVAL", "5"),
        ("GRIDAUTH_USAGE_FLUSH_INTERVAL", True),
        ("GRIDAUTH_USAGE_RETENTION_DAYS", 0),
        ("GRIDAUTH_USAGE_RETENTION_DAYS", 2.5),
    ],
)
def test_config_is_checked(tmp_path: Path, key: str, value: Any) -> None:
    """A non-positive or non-numeric interval or retention is a configuration error naming the key."""
    with pytest.raises(ConfigurationError, match=key):
        build_app(str(tmp_path), **{key: value})


def test_signing_keys_are_counted_like_api_keys(tmp_path: Path) -> None:
    """A signed request counts against its signing key."""
    import base64

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from flask_gridauth.client import sign_request

    app = build_app(str(tmp_path))
    private = Ed25519PrivateKey.generate()
    public = base64.b64encode(private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode()
    with app.app_context():
        record = get_state(app).keys.register_signing_key(name="s", public_key=public, scopes=["read"], owner="a")
    headers = sign_request(private, "GET", "http://localhost/items")
    assert app.test_client().get("/items", headers=headers).status_code == 200
    assert totals(usage(app.test_client(), record.id)) == (1, 0, 0)


def test_an_exiting_process_flushes(tmp_path: Path) -> None:
    """A process that counted and exits writes its counts (atexit), though its flusher would wait an hour."""
    db = tmp_path / "exit.db"
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).resolve().parents[1])!r})
        from tests.conftest import build_app, bearer, create_key
        app = build_app({str(tmp_path)!r}, GRIDAUTH_STORAGE_URI="sqlite:///{db}", GRIDAUTH_USAGE_FLUSH_INTERVAL=3600)
        record, raw = create_key(app, ["read"])
        client = app.test_client()
        for _ in range(4):
            assert client.get("/items", headers=bearer(raw)).status_code == 200
        print(record.id)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    key_id = done.stdout.strip()
    from flask_gridauth.storage import storage_from_uri

    storage = storage_from_uri(f"sqlite:///{db}", instance_path=str(tmp_path))
    try:
        assert [(c.allowed, dict(c.scopes)) for c in storage.list_usage(key_id, since_hour=0)] == [(4, {"read": 4})]
    finally:
        storage.close()


def test_any_of_routes_credit_the_scope_held() -> None:
    """A @require_any_scope route credits the first listed scope the key holds."""
    from flask_gridauth.usage import _used_scopes

    assert _used_scopes((("read",), ("billing:read", "reports:read")), frozenset({"read", "reports:read"})) == (
        "read",
        "reports:read",
    )
    assert _used_scopes(((), ()), frozenset()) == ()
    assert _used_scopes(None, None) == ()


@pytest.mark.parametrize(
    ("held", "used", "unused"),
    [
        (["read", "write"], ["read"], ["write"]),
        (["read", "write"], [], ["read", "write"]),
        (["admin", "write"], ["read"], ["admin"]),
        (["write"], ["read"], []),
        (["admin"], ["write", "read"], []),
        (["reports:*", "read"], ["reports:read"], ["read"]),
        (["read", "holdings:write"], ["holdings:read", "read"], []),
        (["read", "holdings:write", "billing:read"], ["read"], ["holdings:write", "billing:read"]),
    ],
)
def test_unused_scopes(held: list[str], used: list[str], unused: list[str]) -> None:
    """A used scope is credited to the narrowest held scopes granting it; the rest are unused."""
    implications = {"admin": ["write"], "write": ["read"]}
    assert unused_scopes(held, used, lambda s: expand_scopes(s, implications)) == unused


def test_old_buckets_are_purged_by_a_later_flush() -> None:
    """Buckets past the retention go with a flush; no thread is needed for it."""
    from flask_gridauth.usage import UsageCounter

    storage = MemoryStorage()
    now = [float(NOW)]
    counter = UsageCounter(storage, lambda e, m: None, retention_days=2, clock=lambda: now[0])
    storage.add_usage([UsageCount("key_a", hour_of(NOW) - 3 * 24 * HOUR, allowed=1)])
    storage.add_usage([UsageCount("key_a", hour_of(NOW), allowed=1)])
    counter.flush()
    assert [c.hour for c in storage.list_usage("key_a", since_hour=0)] == [hour_of(NOW)]
