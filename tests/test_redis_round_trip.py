"""An API key with Redis storage and Redis rate limits costs one round trip per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from redis.connection import Connection

from flask_gridauth import get_state
from flask_gridauth.ratelimit import RateLimits

from .conftest import bearer, build_app, create_key


class RoundTrips:
    """Every command batch redis-py writes to a socket, by command name (a pipeline is one batch)."""

    def __init__(self) -> None:
        self.sent: list[str] = []

    def names(self, packed: Any) -> str:
        """The command name(s) of one packed write."""
        data = b"".join(packed) if isinstance(packed, list | tuple) else bytes(packed)
        parts = data.split(b"\r\n")
        return parts[2].decode() if len(parts) > 2 else "?"


@pytest.fixture
def round_trips(monkeypatch: pytest.MonkeyPatch) -> Iterator[RoundTrips]:
    """Record each write redis-py makes, through the real connection (nothing is faked)."""
    trips = RoundTrips()
    original = Connection.send_packed_command

    def recording(self: Connection, command: Any, check_health: bool = True) -> None:
        trips.sent.append(trips.names(command))
        original(self, command, check_health)

    monkeypatch.setattr(Connection, "send_packed_command", recording)
    yield trips


def limited_app(tmp_path: Any, redis_uri: str, **config: Any) -> Flask:
    """A test app on Redis with rate limits on (counters in the same Redis)."""
    config.setdefault("GRIDAUTH_RATELIMIT_API_KEY", "5/minute")
    return build_app(str(tmp_path), GRIDAUTH_STORAGE_URI=redis_uri, GRIDAUTH_RATELIMIT_ENABLED=True, **config)


def limits_of(app: Flask) -> RateLimits:
    """The app's rate limits."""
    limits = get_state(app).ratelimit
    assert limits is not None
    return limits


def test_each_api_key_request_is_one_round_trip_and_n_plus_1_is_429(
    tmp_path: Any, redis_uri: str, round_trips: RoundTrips
) -> None:
    """Look-up, last_used_at and the counter in one command per request, from a key's first use; 429 at N+1."""
    app = limited_app(tmp_path, redis_uri)
    _, warm = create_key(app, owner="warm")
    record, raw = create_key(app)
    client = app.test_client()
    assert client.get("/items", headers=bearer(warm)).status_code == 200  # connects and loads the script
    per_request = []
    responses = []
    for _ in range(7):
        before = len(round_trips.sent)
        responses.append(client.get("/items", headers=bearer(raw)))
        per_request.append(round_trips.sent[before:])
    assert [r.status_code for r in responses] == [200] * 5 + [429] * 2
    assert per_request == [["EVALSHA"]] * 7
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["4", "3", "2", "1", "0", "0", "0"]
    assert responses[5].json["code"] == "rate_limited"
    assert int(responses[5].headers["Retry-After"]) >= 1
    with app.app_context():
        assert get_state(app).keys.get(record.id).last_used_at is not None


def test_the_script_counts_in_the_counter_limits_reads(tmp_path: Any, redis_uri: str) -> None:
    """The counter the script increments is the one ``limits`` (and so every other path) names and reads."""
    app = limited_app(tmp_path, redis_uri)
    record, raw = create_key(app)
    client = app.test_client()
    for _ in range(3):
        assert client.get("/items", headers=bearer(raw)).status_code == 200
    limits = limits_of(app)
    assert limits.precount("items") is not None
    (limit,) = limits.defaults["api_key"] or ()
    assert limits.counters.get(f"api_key:{record.id}{limit.suffix}") == 3
    assert limits.counters.get_expiry(f"api_key:{record.id}{limit.suffix}") > 0


def test_last_used_is_written_once_a_minute_by_the_script(tmp_path: Any, redis_uri: str) -> None:
    """The first use sets last_used_at; a second use within the minute leaves it as it was."""
    app = limited_app(tmp_path, redis_uri, GRIDAUTH_RATELIMIT_API_KEY="100/minute")
    record, raw = create_key(app)
    client = app.test_client()
    keys = get_state(app).keys
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    with app.app_context():
        first = keys.get(record.id).last_used_at
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    with app.app_context():
        assert first is not None and keys.get(record.id).last_used_at == first


def test_revoked_and_expired_keys_are_neither_counted_nor_touched(tmp_path: Any, redis_uri: str) -> None:
    """A refused key gets 401 and leaves its counter and last_used_at alone."""
    app = limited_app(tmp_path, redis_uri)
    record, raw = create_key(app)
    with app.app_context():
        get_state(app).keys.revoke(record.id)
    client = app.test_client()
    assert client.get("/items", headers=bearer(raw)).status_code == 401
    (limit,) = limits_of(app).defaults["api_key"] or ()
    assert limits_of(app).counters.get(f"api_key:{record.id}{limit.suffix}") == 0
    with app.app_context():
        assert get_state(app).keys.get(record.id).last_used_at is None


def test_a_keys_own_rate_limit_takes_the_ordinary_path(tmp_path: Any, redis_uri: str, round_trips: RoundTrips) -> None:
    """A key with its own rate_limit is counted by the ordinary path, still exactly at N+1."""
    app = limited_app(tmp_path, redis_uri)
    _, warm = create_key(app, owner="warm")
    _, raw = create_key(app, rate_limit="2/minute")
    client = app.test_client()
    assert client.get("/items", headers=bearer(warm)).status_code == 200
    before = len(round_trips.sent)
    statuses = [client.get("/items", headers=bearer(raw)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert "EVALSHA" in round_trips.sent[before:]


def test_route_limit_and_precounted_key_limit_both_hold(tmp_path: Any, redis_uri: str) -> None:
    """A route limit is counted beside the key limit the script counted; the lower one refuses first."""
    app = limited_app(tmp_path, redis_uri)
    from flask_gridauth import GridAuth

    @app.get("/limited")
    @GridAuth().limit("2/minute")
    def limited() -> dict[str, bool]:
        return {"ok": True}

    _, raw = create_key(app)
    client = app.test_client()
    statuses = [client.get("/limited", headers=bearer(raw)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    # The key limit (5/minute) counted all three: two requests left on other routes.
    assert [client.get("/items", headers=bearer(raw)).status_code for _ in range(3)] == [200, 200, 429]


def test_a_key_with_a_quota_is_still_one_round_trip(tmp_path: Any, redis_uri: str, round_trips: RoundTrips) -> None:
    """Look-up, counter and quota in one EVALSHA per request, the quota_exceeded 429 included."""
    app = limited_app(tmp_path, redis_uri)
    _, warm = create_key(app, owner="warm")
    _, raw = create_key(app, quota={"limit": 3})
    client = app.test_client()
    assert client.get("/items", headers=bearer(warm)).status_code == 200  # connects and loads the script
    per_request = []
    responses = []
    for _ in range(4):
        before = len(round_trips.sent)
        responses.append(client.get("/items", headers=bearer(raw)))
        per_request.append(round_trips.sent[before:])
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    assert per_request == [["EVALSHA"]] * 4
    assert [r.headers["X-Quota-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    assert responses[3].json["code"] == "quota_exceeded"
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["4", "3", "2", "1"]


def test_an_owner_override_is_not_read_per_request(tmp_path: Any, redis_uri: str, round_trips: RoundTrips) -> None:
    """With an owner's override, each request is the look-up plus the owner counter; the overrides are not read."""
    app = limited_app(tmp_path, redis_uri)
    _, warm = create_key(app, owner="warm")
    _, raw = create_key(app, owner="acme")
    with app.app_context():
        get_state(app).keys.set_owner_limit("acme", "3/minute")
    client = app.test_client()
    assert client.get("/items", headers=bearer(warm)).status_code == 200  # connects, reads the overrides once
    per_request = []
    statuses = []
    for _ in range(4):
        before = len(round_trips.sent)
        statuses.append(client.get("/items", headers=bearer(raw)).status_code)
        per_request.append(round_trips.sent[before:])
    assert statuses == [200, 200, 200, 429]
    assert per_request == [["EVALSHA", "EVALSHA"]] * 4  # the key's script, then the owner counter's incr script
