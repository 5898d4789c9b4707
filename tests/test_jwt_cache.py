"""The verified-token cache of the JWT verifier: what it skips, and what it never keeps."""

from __future__ import annotations

import time
from typing import Any

import jwt as pyjwt
import pytest
from flask import Flask

from flask_gridauth import GridAuth
from flask_gridauth.credentials.jwt_cache import MAX_ENTRIES, VerifiedTokens
from flask_gridauth.principal import Principal

ISSUER = "https://idp.cache.test"
SECRET = "cache-test-secret-" + "x" * 32


def _app(tmp_path: Any, **config: Any) -> Flask:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(
        GRIDAUTH_API_TOKEN=False,
        GRIDAUTH_STORAGE_URI="memory://",
        GRIDAUTH_RATELIMIT_ENABLED=False,
        GRIDAUTH_JWT_ISSUERS=[{"issuer": ISSUER, "secret": SECRET, "algorithms": ["HS256"]}],
        **config,
    )
    GridAuth(app)

    @app.get("/items")
    def items() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def _token(exp_in: float = 300, **claims: Any) -> str:
    payload = {"iss": ISSUER, "sub": "user_1", "exp": int(time.time() + exp_in), "permissions": ["read"], **claims}
    return pyjwt.encode(payload, SECRET, algorithm="HS256")


def _count_decodes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    from flask_gridauth.credentials import jwt as jwtmod

    calls = [0]
    original = jwtmod._DECODER.decode_complete

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(jwtmod._DECODER, "decode_complete", counting)
    return calls


def test_same_token_is_decoded_once(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three requests with one token cost one PyJWT decode; a second token costs its own."""
    calls = _count_decodes(monkeypatch)
    client = _app(tmp_path).test_client()
    token = _token()
    assert [client.get("/items", headers={"Authorization": f"Bearer {token}"}).status_code for _ in range(3)] == [
        200
    ] * 3
    assert calls[0] == 1
    assert client.get("/items", headers={"Authorization": f"Bearer {_token(sub='user_2')}"}).status_code == 200
    assert calls[0] == 2


def test_refused_tokens_are_never_remembered(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A token with a bad signature is decoded (and refused) on every request."""
    calls = _count_decodes(monkeypatch)
    client = _app(tmp_path).test_client()
    forged = pyjwt.encode(
        {"iss": ISSUER, "sub": "u", "exp": int(time.time()) + 300}, "another-secret-" + "y" * 32, algorithm="HS256"
    )
    assert [client.get("/items", headers={"Authorization": f"Bearer {forged}"}).status_code for _ in range(3)] == [
        401
    ] * 3
    assert calls[0] == 3


def test_zero_turns_the_cache_off(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """GRIDAUTH_JWT_CACHE_TTL = 0 decodes every request."""
    calls = _count_decodes(monkeypatch)
    client = _app(tmp_path, GRIDAUTH_JWT_CACHE_TTL=0).test_client()
    token = _token()
    for _ in range(3):
        assert client.get("/items", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert calls[0] == 3


def test_entry_never_outlives_the_token_or_the_ttl() -> None:
    """An entry ends at the token's exp or after ttl seconds, whichever is first, on an injected clock."""
    now = [1000.0]
    cache = VerifiedTokens(30, clock=lambda: now[0])
    principal = Principal(kind="jwt", id="u", owner="u", scopes=frozenset({"read"}))
    short, long = cache.digest("a.b.c"), cache.digest("d.e.f")
    cache.put(short, principal, exp=1010)
    cache.put(long, principal, exp=5000)
    now[0] = 1009.9
    assert cache.get(short) is principal and cache.get(long) is principal
    now[0] = 1010
    assert cache.get(short) is None and cache.get(long) is principal
    now[0] = 1030
    assert cache.get(long) is None
    cache.put(short, principal, exp=999)  # already expired: not kept
    assert cache.get(short) is None


def test_cache_is_bounded() -> None:
    """Past MAX_ENTRIES the oldest entries make room; the map never grows beyond the bound."""
    cache = VerifiedTokens(30, clock=lambda: 0.0)
    principal = Principal(kind="jwt", id="u", owner="u", scopes=frozenset())
    for i in range(MAX_ENTRIES + 5):
        cache.put(cache.digest(f"t.{i}.x"), principal, exp=100)
    assert len(cache.entries) == MAX_ENTRIES
    assert cache.get(cache.digest("t.0.x")) is None
    assert cache.get(cache.digest(f"t.{MAX_ENTRIES + 4}.x")) is principal


def test_bad_setting_is_a_configuration_error(tmp_path: Any) -> None:
    """A negative GRIDAUTH_JWT_CACHE_TTL fails at start-up, naming the key."""
    from flask_gridauth import ConfigurationError

    with pytest.raises(ConfigurationError, match="GRIDAUTH_JWT_CACHE_TTL"):
        _app(tmp_path, GRIDAUTH_JWT_CACHE_TTL=-1)
