"""Rate-limit counters on any ``limits`` storage URI, with each ``GRIDAUTH_RATELIMIT_STRATEGY``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from flask_gridauth.errors import ConfigurationError

from .conftest import bearer, build_app, create_key

STRATEGIES = ("fixed-window", "sliding-window-counter", "moving-window")


def _statuses(app: Flask, raw: str, n: int) -> list[int]:
    client = app.test_client()
    return [client.get("/items", headers=bearer(raw)).status_code for _ in range(n)]


@pytest.fixture
def limited(tmp_path: Any) -> Callable[..., Flask]:
    """An app factory with a 3/minute API-key limit; keyword arguments are config."""

    def factory(**config: Any) -> Flask:
        config.setdefault("GRIDAUTH_STORAGE_URI", "memory://")
        return build_app(
            str(tmp_path / "instance"), GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY="3/minute", **config
        )

    return factory


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_in_memory(limited: Callable[..., Flask], strategy: str) -> None:
    """Each strategy lets the limit through and refuses the next, with the rate-limit headers."""
    app = limited(GRIDAUTH_RATELIMIT_STRATEGY=strategy)
    _, raw = create_key(app)
    client = app.test_client()
    remaining = [client.get("/items", headers=bearer(raw)).headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    refused = client.get("/items", headers=bearer(raw))
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
    assert refused.headers["X-RateLimit-Limit"] == "3"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_on_redis_shared_and_with_ttl(
    limited: Callable[..., Flask], redis_uri: str, strategy: str
) -> None:
    """On Redis two apps share one count, whatever the strategy, and every counter key has a TTL."""
    first = limited(GRIDAUTH_STORAGE_URI=redis_uri, GRIDAUTH_RATELIMIT_STRATEGY=strategy)
    second = limited(GRIDAUTH_STORAGE_URI=redis_uri, GRIDAUTH_RATELIMIT_STRATEGY=strategy)
    _, raw = create_key(first)
    assert _statuses(first, raw, 2) + _statuses(second, raw, 2) == [200, 200, 200, 429]
    server, prefix = redis_uri.split("?key_prefix=")
    client = redis.Redis.from_url(server)
    mine = list(client.scan_iter(match=f"{prefix}:ratelimit*"))
    assert mine
    assert all(client.pttl(k) > 0 for k in mine)
    client.close()


@pytest.mark.parametrize("strategy", ("sliding-window-counter", "moving-window"))
def test_strategy_with_explicit_redis_counters(limited: Callable[..., Flask], redis_uri: str, strategy: str) -> None:
    """An explicit GRIDAUTH_RATELIMIT_STORAGE_URI counts there with the chosen strategy."""
    app = limited(GRIDAUTH_RATELIMIT_STORAGE_URI=redis_uri, GRIDAUTH_RATELIMIT_STRATEGY=strategy)
    _, raw = create_key(app)
    assert _statuses(app, raw, 4) == [200, 200, 200, 429]


def test_only_fixed_window_counts_in_the_key_look_up(limited: Callable[..., Flask], redis_uri: str) -> None:
    """The one-round-trip Redis look-up counts fixed windows only; another strategy counts on its own."""
    fixed = limited(GRIDAUTH_STORAGE_URI=redis_uri)
    moving = limited(GRIDAUTH_STORAGE_URI=redis_uri, GRIDAUTH_RATELIMIT_STRATEGY="moving-window")
    fixed_limits, moving_limits = (app.extensions["gridauth"].ratelimit for app in (fixed, moving))
    assert fixed_limits.precount("items") is not None and fixed_limits.limiter is None
    assert moving_limits.precount("items") is None and moving_limits.limiter is not None


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"GRIDAUTH_RATELIMIT_STRATEGY": "token-bucket"}, "GRIDAUTH_RATELIMIT_STRATEGY"),
        ({"GRIDAUTH_RATELIMIT_STORAGE_URI": "nosuch://host"}, "GRIDAUTH_RATELIMIT_STORAGE_URI"),
        ({"GRIDAUTH_RATELIMIT_STORAGE_URI": "async+redis://localhost"}, "async"),
        ({"GRIDAUTH_RATELIMIT_STORAGE_URI": 42}, "GRIDAUTH_RATELIMIT_STORAGE_URI"),
    ],
)
def test_bad_counter_configuration_refused_at_start_up(
    limited: Callable[..., Flask], config: dict[str, Any], message: str
) -> None:
    """An unknown strategy or an unusable counter URI is a ConfigurationError when the app starts."""
    with pytest.raises(ConfigurationError, match=message):
        limited(**config)


def test_counter_storage_that_lacks_the_strategy_refused(
    limited: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A counter storage without moving-window support is refused for that strategy at start-up."""
    from flask_gridauth import counters
    from flask_gridauth.memory_counters import MemoryCounters

    monkeypatch.setattr(counters, "MemoryStorage", MemoryCounters)  # a storage that only has fixed windows
    with pytest.raises(ConfigurationError, match="moving-window"):
        limited(GRIDAUTH_RATELIMIT_STRATEGY="moving-window")


def test_counter_storage_down_is_503(limited: Callable[..., Flask]) -> None:
    """Counters on an unreachable server: the app starts, and a limited request gets 503, never through."""
    app = limited(GRIDAUTH_RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0", GRIDAUTH_STORAGE_TIMEOUT=0.3)
    _, raw = create_key(app)
    response = app.test_client().get("/items", headers=bearer(raw))
    assert response.status_code == 503 and response.get_json()["code"] == "unavailable"
