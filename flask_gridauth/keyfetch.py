"""Public keys fetched from a URL: within a deadline, cached, refetched only when allowed.

Shared by the JWKS cache of JWT issuers and the GitHub secret-scanning keys.
What differs between them is only how a fetched body becomes keys (a parser
function); the rules below are the same for both:

- a URL is HTTPS, or plain HTTP to a loopback host only (:func:`check_key_url`);
- a fetch has a total deadline and a size cap; it never follows a redirect;
- a fetched set is trusted for ``ttl`` seconds, then refreshed; a refresh that
  fails (down, timeout, HTML, no usable key) keeps the last good keys;
- a key id the set does not hold triggers a refetch at most once per
  ``cooldown`` (the initial fetch and the scheduled refreshes do not count), so
  random key ids cannot hammer the provider;
- one fetch at a time per URL: a thread that waited for another's fetch uses
  its result instead of fetching again, and a thread that finds a stale set
  being refreshed keeps using the stale set.
"""

from __future__ import annotations

import http.client
import logging
import math
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar
from urllib.parse import urlsplit

from .errors import ConfigurationError, Unauthorized, Unavailable

logger = logging.getLogger("flask_gridauth")

#: Hosts a key URL may reach over plain HTTP (local development and tests).
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
#: Largest body read; real key documents are a few kilobytes.
MAX_BODY_BYTES = 256 * 1024
#: Seconds between two fetch attempts after a failure (never more than the cooldown),
#: so an unreachable provider costs one timeout per interval, not one per request.
FAILURE_BACKOFF = 5.0

K = TypeVar("K")


class KeyFetchError(Exception):
    """Keys could not be fetched, or the body held no usable key; the message holds no secret."""


def check_key_url(value: object, name: str) -> str:
    """``value`` if it is an ``https://`` URL, or ``http://`` to a loopback host.

    Raises :class:`~flask_gridauth.errors.ConfigurationError` whose message
    starts with ``name`` (``"GRIDAUTH_X: 'jwks_url'"``) otherwise.
    """
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be an https:// URL")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigurationError(f"{name} is not a valid URL") from None
    if not parts.hostname or parts.scheme not in ("https", "http"):
        raise ConfigurationError(f"{name} must be an https:// URL")
    if parts.scheme == "http" and parts.hostname not in LOOPBACK_HOSTS:
        raise ConfigurationError(f"{name} must use https (plain http only reaches localhost)")
    return value


def check_seconds(value: object, name: str, *, allow_zero: bool) -> float:
    """``value`` as seconds if it is a finite number above zero (or zero, when allowed), else a start-up error."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a number of seconds")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigurationError(f"{name} must be {'zero or more' if allow_zero else 'more than zero'} seconds")
    return float(value)


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise KeyFetchError("timed out")
    return left


def fetch_url(url: str, timeout: float, *, max_bytes: int = MAX_BODY_BYTES) -> bytes:
    """The body of ``GET url`` (status 200 only), read within ``timeout`` seconds in total.

    The socket timeout is reset to the time left before every step, so a
    server that answers slowly, or trickles its answer, is cut off at the
    deadline. Redirects are refused; the body is capped at ``max_bytes``.
    """
    deadline = time.monotonic() + timeout
    parts = urlsplit(url)
    host = parts.hostname or ""
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(host, parts.port, timeout=timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.connect()
        sock = conn.sock  # kept: http.client drops its own reference once the response owns the socket
        sock.settimeout(_remaining(deadline))
        conn.request("GET", target, headers={"Accept": "application/json", "User-Agent": "flask-gridauth"})
        sock.settimeout(_remaining(deadline))
        response = conn.getresponse()
        if response.status != 200:
            raise KeyFetchError(f"HTTP status {response.status}")
        body = bytearray()
        while True:
            sock.settimeout(_remaining(deadline))
            chunk = response.read1(65536)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > max_bytes:
                raise KeyFetchError("the response is too large")
    except TimeoutError:
        raise KeyFetchError("timed out") from None
    except (OSError, http.client.HTTPException) as exc:
        raise KeyFetchError(f"connection failed ({type(exc).__name__})") from None
    finally:
        conn.close()


class KeyFetchCache(Generic[K]):
    """The keys served at one URL, kept by key id.

    ``parse`` turns a fetched body into keys by id (raising
    :class:`KeyFetchError` when it holds none); ``label`` and ``source`` only
    name the set in log lines (``"JWKS fetch failed for issuer X: ..."``).
    Nothing is fetched until the first key is asked for, so an app starts
    while the provider is unreachable. ``clock`` (monotonic seconds) decides
    when keys are stale; tests inject their own.
    """

    def __init__(
        self,
        url: str,
        *,
        parse: Callable[[bytes], Mapping[str | None, K]],
        label: str,
        source: str,
        timeout: float,
        ttl: float,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.ttl = ttl
        self.cooldown = cooldown
        self._parse = parse
        self._clock = clock
        self._label = label
        self._source = source
        self._backoff = min(cooldown, FAILURE_BACKOFF)
        self._lock = threading.Lock()
        # One snapshot swapped as a whole, so readers never see new keys with an old expiry.
        self._snapshot: tuple[Mapping[str | None, K] | None, float] = (None, float("-inf"))
        self._attempts = 0
        self._next_attempt = float("-inf")
        self._next_kid_refetch = float("-inf")

    def key(self, kid: str | None) -> K:
        """The key named ``kid`` (or the only key when ``kid`` is ``None``).

        Raises :class:`~flask_gridauth.errors.Unauthorized` for a ``kid`` the
        set does not hold, and :class:`~flask_gridauth.errors.Unavailable`
        (503) while no key set could ever be fetched.
        """
        keys, fresh_until = self._snapshot
        if keys is not None and self._clock() < fresh_until:
            found = _select(keys, kid)
            if found is not None:
                return found
            if self._clock() < self._next_kid_refetch:
                raise Unauthorized()
        # Never fetched, stale, or an unknown kid with a refetch allowed. A stale
        # set is refreshed by one thread while the others keep using it.
        self._refresh(kid, wait=keys is None or self._clock() < fresh_until)
        keys, _ = self._snapshot
        if keys is None:
            raise Unavailable()
        found = _select(keys, kid)
        if found is None:
            raise Unauthorized()
        return found

    def _refresh(self, kid: str | None, *, wait: bool) -> None:
        seen = self._attempts
        # A waiting thread gives up a little after the fetch in progress must have ended.
        if not self._lock.acquire(blocking=wait, timeout=self.timeout + 0.5 if wait else -1):
            return
        try:
            if self._attempts != seen:
                return  # another thread fetched while this one waited: use its result
            now = self._clock()
            keys, fresh_until = self._snapshot
            if now < self._next_attempt:
                return  # backing off after a failed fetch
            if keys is not None and now < fresh_until:
                if _select(keys, kid) is not None or now < self._next_kid_refetch:
                    return
                self._next_kid_refetch = now + self.cooldown
            self._fetch()
        finally:
            self._lock.release()

    def _fetch(self) -> None:
        """Fetch and swap in a new set; on failure keep the old one and back off."""
        self._attempts += 1
        try:
            keys = self._parse(fetch_url(self.url, self.timeout))
        except KeyFetchError as exc:
            self._next_attempt = self._clock() + self._backoff
            kept = "keeping the last good keys" if self._snapshot[0] is not None else "no keys yet"
            logger.warning("%s fetch failed for %s: %s (%s)", self._label, self._source, exc, kept)
            return
        self._snapshot = (keys, self._clock() + self.ttl)
        logger.info("%s fetched for %s: %d key(s)", self._label, self._source, len(keys))


def _select(keys: Mapping[str | None, K], kid: str | None) -> K | None:
    if kid is None:
        # A request without a key id is only accepted when the set leaves no choice.
        if len(keys) == 1:
            return next(iter(keys.values()))
        return None
    return keys.get(kid)
