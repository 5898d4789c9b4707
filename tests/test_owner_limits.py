"""Per-owner overrides of GRIDAUTH_RATELIMIT_OWNER: the CLI, KeyManager, the audit event and the rate limiter."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
from flask import Flask

from flask_gridauth import Principal, get_state
from flask_gridauth.cli import gridauth_cli
from flask_gridauth.errors import Forbidden, InvalidRequest
from flask_gridauth.owner_limits import OVERRIDE_TTL, OwnerLimits

from .conftest import TOKEN, bearer, create_key

ADMIN = bearer(TOKEN)
SECRET = "owner-override-test-secret-0123456789abcdef"
ISSUER = "https://idp.example.test"
JWT_ISSUERS = [{"issuer": ISSUER, "secret": SECRET, "algorithms": ["HS256"], "all_scopes": True}]


def run(app: Flask, *args: str) -> Any:
    """Invoke ``flask gridauth <args>`` on ``app``."""
    return app.test_cli_runner().invoke(gridauth_cli, args=[*args])


def owners_of(app: Flask) -> OwnerLimits:
    """The app's owner-wide limits (rate limits must be on)."""
    limits = get_state(app).ratelimit
    assert limits is not None and limits.owners is not None
    return limits.owners


def statuses(client: Any, credential: str, n: int) -> list[int]:
    """The status of ``n`` requests to /items with ``credential``."""
    return [client.get("/items", headers=bearer(credential)).status_code for _ in range(n)]


def test_cli_sets_shows_and_clears_an_override(app: Flask) -> None:
    """owner-limit OWNER LIMIT... sets (several limits allowed), OWNER alone shows, --clear removes."""
    assert "no override" in run(app, "owner-limit", "acme").output
    result = run(app, "owner-limit", "acme", "100/minute", "1000/day")
    assert result.exit_code == 0, result.output
    assert "acme: 100/minute;1000/day" in result.output and f"within {OVERRIDE_TTL:g} s" in result.output
    assert run(app, "owner-limit", "acme").output.strip() == "acme: 100/minute;1000/day (override)"
    assert run(app, "owner-limit", "acme", "5/second,50/hour").exit_code == 0  # joined as the config joins them
    with app.app_context():
        assert get_state(app).keys.get_owner_limit("acme") == "5/second;50/hour"
    cleared = run(app, "owner-limit", "acme", "--clear")
    assert cleared.exit_code == 0 and "GRIDAUTH_RATELIMIT_OWNER" in cleared.output
    assert "no override" in run(app, "owner-limit", "acme").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["acme", "0/minute"], "limit must be"),
        (["acme", "10/2 years"], "limit must be"),
        (["acme", "1000000001/second"], "limit must be"),
        (["acme", "lots"], "limit must be"),
        ([" acme\t", "10/minute"], "owner must be"),
        (["", "10/minute"], "owner must be"),
    ],
)
def test_cli_refuses_what_the_schema_refuses(app: Flask, args: list[str], message: str) -> None:
    """Limits outside 1..10^9 per 1 s..1 year, and owners the schema refuses, are one clean Error line."""
    result = run(app, "owner-limit", *args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ") and message in result.output
    assert "Traceback" not in result.output
    with app.app_context():
        assert get_state(app).storage.owner_limits() == {}


def test_cli_refuses_limits_with_clear(app: Flask) -> None:
    """Limits and --clear together are a usage error that changes nothing."""
    assert run(app, "owner-limit", "acme", "10/minute", "--clear").exit_code == 2
    with app.app_context():
        assert get_state(app).keys.get_owner_limit("acme") is None


def test_a_change_is_audited_without_secrets(app: Flask) -> None:
    """Setting and clearing are owner.limit_updated events with the owner, the actor and old and new limits."""
    run(app, "owner-limit", "acme", "10/minute")
    run(app, "owner-limit", "acme", "--clear")
    with app.app_context():
        events = get_state(app).audit.list(owner="acme", limit=10)
    assert [e.action for e in events] == ["owner.limit_updated"] * 2
    assert events[0].details == {"limit": None, "previous": "10/minute"}
    assert events[1].details == {"limit": "10/minute", "previous": None}
    assert events[1].actor.kind == "cli" and events[1].owner == "acme" and events[1].target_id is None


def test_only_the_operator_and_the_bootstrap_token_change_an_override(app: Flask) -> None:
    """A key of the owner cannot raise its own owner-wide budget; it may read its own override, not another's."""
    record, _ = create_key(app, ["admin"], owner="acme")
    by = Principal(kind="api_key", id=record.id, owner="acme", scopes=frozenset({"admin"}), key=record)
    keys = get_state(app).keys
    with app.app_context():
        with pytest.raises(Forbidden):
            keys.set_owner_limit("acme", "1000000/second", by=by)
        with pytest.raises(Forbidden):
            keys.clear_owner_limit("acme", by=by)
        keys.set_owner_limit("acme", "10/minute", by=get_state(app).token_principal)
        assert keys.get_owner_limit("acme", by=by) == "10/minute"
        with pytest.raises(Forbidden):
            keys.get_owner_limit("globex", by=by)
        with pytest.raises(InvalidRequest):
            keys.set_owner_limit("acme", None)  # type: ignore[arg-type]


def test_the_override_replaces_the_default_for_keys_and_jwts(make_app: Any) -> None:
    """With GRIDAUTH_RATELIMIT_OWNER 4/minute and acme overridden to 2/minute, acme's keys and JWTs share 2."""
    app = make_app(
        GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_OWNER="4/minute", GRIDAUTH_JWT_ISSUERS=JWT_ISSUERS
    )
    with app.app_context():
        get_state(app).keys.set_owner_limit("acme", "2/minute")
    client = app.test_client()
    _, key = create_key(app, owner="acme")
    _, other = create_key(app, owner="globex")
    token = jwt.encode({"iss": ISSUER, "sub": "acme", "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    assert [*statuses(client, key, 1), *statuses(client, token, 2)] == [200, 200, 429]
    refused = client.get("/items", headers=bearer(key))
    assert refused.status_code == 429 and refused.headers["X-RateLimit-Limit"] == "2"
    assert statuses(client, other, 5) == [200] * 4 + [429]  # everyone else keeps the default


def test_an_override_applies_without_a_default_and_clearing_restores_it(make_app: Any) -> None:
    """With no GRIDAUTH_RATELIMIT_OWNER, only an overridden owner is limited; cleared, it is not."""
    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY="100/minute")
    client = app.test_client()
    _, first = create_key(app, owner="acme")
    _, second = create_key(app, owner="acme")
    _, other = create_key(app, owner="globex")
    assert run(app, "owner-limit", "acme", "3/minute").exit_code == 0
    assert [*statuses(client, first, 2), *statuses(client, second, 2)] == [200, 200, 200, 429]
    assert statuses(client, other, 5) == [200] * 5
    assert run(app, "owner-limit", "acme", "--clear").exit_code == 0
    assert statuses(client, second, 3) == [200] * 3


def test_overrides_are_read_once_per_ttl_not_per_request(make_app: Any) -> None:
    """Twenty requests read the overrides from storage once; a change made elsewhere shows after the TTL."""
    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_OWNER="100/minute")
    owners = owners_of(app)
    now = [1000.0]
    owners.clock = lambda: now[0]
    storage = get_state(app).storage
    reads = []
    original = storage.owner_limits

    def counting() -> dict[str, str]:
        reads.append(1)
        return original()

    storage.owner_limits = counting  # type: ignore[method-assign]
    _, key = create_key(app, owner="acme")
    client = app.test_client()
    assert statuses(client, key, 20) == [200] * 20
    assert len(reads) == 1
    storage.set_owner_limit("acme", "1/minute")  # as another process would: this one is not told
    assert statuses(client, key, 2) == [200, 200]  # still the overrides read before
    now[0] += OVERRIDE_TTL
    assert statuses(client, key, 2) == [200, 429]  # read again: a new limit counts from its own first request
    assert len(reads) == 2


def test_a_change_through_this_app_applies_at_once(make_app: Any) -> None:
    """KeyManager tells this process's rate limits, so the next request uses the new override."""
    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_OWNER="100/minute")
    owners_of(app).clock = lambda: 0.0  # the TTL never passes
    _, key = create_key(app, owner="acme")
    client = app.test_client()
    assert statuses(client, key, 2) == [200, 200]
    with app.app_context():
        get_state(app).keys.set_owner_limit("acme", "2/minute")
    assert statuses(client, key, 3) == [200, 200, 429]  # a new limit counts from its own first request


def test_storage_down_keeps_the_last_overrides_and_fails_closed_before_any(make_app: Any) -> None:
    """A failed re-read keeps the overrides last read; with none read yet the request is a 503."""
    from flask_gridauth.errors import StorageError

    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_OWNER="100/minute")
    owners = owners_of(app)
    now = [0.0]
    owners.clock = lambda: now[0]
    storage = get_state(app).storage
    _, key = create_key(app, owner="acme")
    with app.app_context():
        get_state(app).keys.set_owner_limit("acme", "2/minute")
    healthy = storage.owner_limits

    def broken() -> dict[str, str]:
        raise StorageError("down")

    client = app.test_client()
    storage.owner_limits = broken  # type: ignore[method-assign]
    assert statuses(client, key, 1) == [503]  # nothing read yet: fail closed
    storage.owner_limits = healthy  # type: ignore[method-assign]
    assert statuses(client, key, 2) == [200, 200]
    storage.owner_limits = broken  # type: ignore[method-assign]
    now[0] += OVERRIDE_TTL
    assert statuses(client, key, 1) == [429]  # the override last read still holds
