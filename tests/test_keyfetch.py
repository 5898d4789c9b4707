"""The generic key-fetch cache shared by JWKS issuers and secret scanning, with a parser of its own."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from flask_gridauth.errors import ConfigurationError, Unauthorized, Unavailable
from flask_gridauth.keyfetch import KeyFetchCache, KeyFetchError, check_key_url

from .jwks_server import JWKSServer


def _by_kid(body: bytes) -> dict[str | None, dict[str, Any]]:
    """A parser of the test server's document that keeps every entry by its kid."""
    try:
        entries = json.loads(body)["keys"]
    except (ValueError, KeyError, TypeError):
        raise KeyFetchError("not a key document") from None
    if not entries:
        raise KeyFetchError("no key")
    return {entry["kid"]: entry for entry in entries}


@pytest.fixture
def server() -> Iterator[JWKSServer]:
    """A loopback endpoint serving two entries."""
    with JWKSServer({"kid": "a", "n": 1}, {"kid": "b", "n": 2}) as running:
        yield running


def _cache(url: str, **overrides: float) -> KeyFetchCache[dict[str, Any]]:
    options = {"timeout": 2.0, "ttl": 300.0, "cooldown": 30.0, **overrides}
    return KeyFetchCache(url, parse=_by_kid, label="Test keys", source="the test", **options)


def test_keys_by_id_and_one_fetch(server: JWKSServer) -> None:
    """Keys are found by id with one fetch; a request without id is refused when the set holds two."""
    cache = _cache(server.url)
    assert cache.key("a")["n"] == 1
    assert cache.key("b")["n"] == 2
    assert server.fetches == 1
    with pytest.raises(Unauthorized):
        cache.key(None)


def test_unknown_id_refetches_once_per_cooldown(server: JWKSServer) -> None:
    """An unknown id causes one refetch; more unknown ids inside the cooldown fetch nothing."""
    cache = _cache(server.url)
    cache.key("a")
    server.set_keys({"kid": "c", "n": 3})
    assert cache.key("c")["n"] == 3
    assert server.fetches == 2
    for _ in range(50):
        with pytest.raises(Unauthorized):
            cache.key("zz")
    assert server.fetches == 2


def test_failed_refetch_keeps_last_good_keys(server: JWKSServer) -> None:
    """A refetch that gets a body the parser refuses keeps the keys fetched before."""
    cache = _cache(server.url, cooldown=0.0)
    cache.key("a")
    server.mode = "html"
    with pytest.raises(Unauthorized):
        cache.key("new")
    assert server.fetches == 2
    assert cache.key("a")["n"] == 1


def test_never_fetched_is_unavailable(server: JWKSServer) -> None:
    """While no set could ever be fetched, a look-up is 503, not 401."""
    server.mode = "error"
    with pytest.raises(Unavailable):
        _cache(server.url).key("a")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://keys.example.com/keys", None),
        ("http://127.0.0.1:8080/keys", None),
        ("http://localhost/keys", None),
        ("http://[::1]:9/keys", None),
        ("http://keys.example.com/keys", "must use https"),
        ("ftp://keys.example.com/keys", "must be an https:// URL"),
        ("keys.example.com/keys", "must be an https:// URL"),
        ("https://keys.example.com:port/keys", "is not a valid URL"),
        (42, "must be an https:// URL"),
    ],
)
def test_key_urls_are_https_or_loopback(url: object, message: str | None) -> None:
    """HTTPS anywhere, plain HTTP to a loopback host only; the message names the setting."""
    if message is None:
        assert check_key_url(url, "SETTING") == url
    else:
        with pytest.raises(ConfigurationError, match=f"^SETTING {message}"):
            check_key_url(url, "SETTING")
