"""Rate limits per credential, route limits, and failed-authentication throttling.

Every authenticated request counts against its credential (``api_key:<id>``,
``jwt:<sub>``, ``signature:<id>``, ``token``) and against any route limit of
its view; every failed authentication counts against the client address.

Why the hot path calls ``limits`` and not flask-limiter's ``Limiter``: the
``Limiter`` resolves its key function, limit managers and request context on
every request, which measured +95–115 µs per request on a bare route (issue
7), several times the whole cost of verifying an API key. The counters are
flask-limiter's own engine, ``limits``: its Redis storage (the same
``incr``-and-expire Lua script flask-limiter uses) and its fixed-window
semantics (``FixedWindowRateLimiter``). We call the storage's ``incr``
directly because the count it returns already gives
``X-RateLimit-Remaining``; the strategy's ``hit`` returns only a bool, and its
``get_window_stats`` costs two more storage calls. A window's end is learned
once per window and process (from the counter's first hit, else one
``get_expiry`` call), so a request costs one storage call per limit. In
memory, :class:`MemoryCounters` (:mod:`flask_gridauth.memory_counters`)
implements the ``limits`` storage interface without the timer thread of
``limits``' own memory storage. Limit strings are parsed once: at start-up,
when a route is decorated, and once per distinct ``rate_limit`` of a key
record. flask-limiter supplies the header names, so the headers are the ones
its users know.

With Redis storage and Redis counters, an API key's default limits are counted
by the key look-up itself (:meth:`~flask_gridauth.storage.Storage.find_counted`,
one script, the same counter keys and ``incr``-and-expire semantics), so the
request costs one round trip; :meth:`RateLimits.hit` then uses those counts
(:data:`G_PRECOUNTED`). A key with its own ``rate_limit``, a route limit, or
any other storage takes the ordinary path above.

Measured with ``test_client()`` on 2 vCPUs, medians of interleaved rounds:
flask-limiter alone (memory) +102 µs over a bare route; GridAuth API key plus
its per-key limit (memory) +37 µs in total; the limit's own share with Redis
counters is one ``EVALSHA`` round trip (+~90 µs on loopback).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, ParamSpec, TypeVar

from flask import Response, current_app, g
from flask_limiter.constants import HeaderNames
from limits import RateLimitItem, parse_many
from limits.errors import StorageError as LimitsStorageError
from limits.storage import Storage as LimitsStorage
from limits.strategies import RateLimiter

from . import config as c
from .counters import counter_storage, limiter_for
from .errors import ConfigurationError, RateLimited, Unavailable
from .memory_counters import MemoryCounters as MemoryCounters  # re-exported: the in-process counters
from .principal import Principal
from .storage import Storage

logger = logging.getLogger("flask_gridauth")

P = ParamSpec("P")
R = TypeVar("R")

#: Mark on a view: the route limits ``@auth.limit`` gave it.
ROUTE_LIMITS_ATTR = "_gridauth_route_limits"
#: Attribute of ``flask.g`` holding the request's window stats for the headers.
G_ATTR = "_gridauth_ratelimit"
#: Attribute of ``flask.g``: ``(identity, [(count, ms left), ...])`` the Redis key look-up already counted.
G_PRECOUNTED = "_gridauth_precounted"

HEADER_LIMIT = HeaderNames.LIMIT.value
HEADER_REMAINING = HeaderNames.REMAINING.value
HEADER_RESET = HeaderNames.RESET.value
HEADER_RETRY_AFTER = HeaderNames.RETRY_AFTER.value

#: Credential kinds that never count against ``GRIDAUTH_RATELIMIT_OWNER``; every other kind,
#: an app's own included, does.
NOT_OWNER_KINDS = frozenset({"token", "disabled"})
#: Most window ends and parsed ``rate_limit`` strings cached per process.
MAX_CACHED = 10_000


class Limit(NamedTuple):
    """One parsed limit, with what the hot path needs precomputed."""

    item: RateLimitItem
    amount: int
    expiry: int
    #: Appended to a counter's identity to make its storage key.
    suffix: str

    @classmethod
    def of(cls, item: RateLimitItem) -> Limit:
        """Precompute the amount, the window length and the key suffix of ``item``."""
        return cls(item, item.amount, item.get_expiry(), f"/{item.amount}/{item.multiples}/{item.GRANULARITY.name}")


class Stats(NamedTuple):
    """A window as the headers show it: the limit, what is left, and when it resets (epoch seconds)."""

    limit: int
    remaining: int
    reset: float

    def headers(self, now: float | None = None, *, retry_after: bool = False) -> dict[str, str]:
        """``X-RateLimit-*`` (``Reset`` in epoch seconds, as flask-limiter writes it), plus ``Retry-After``."""
        headers = {
            HEADER_LIMIT: str(self.limit),
            HEADER_REMAINING: str(self.remaining),
            HEADER_RESET: str(math.ceil(self.reset)),
        }
        if retry_after:
            wait = self.reset - (time.time() if now is None else now)
            headers[HEADER_RETRY_AFTER] = str(max(1, math.ceil(wait)))
        return headers


class Precount(NamedTuple):
    """How the key look-up counts an API key's default limits in the same round trip."""

    storage: Storage
    #: Counter keys are ``prefix + key id + limit suffix``, as ``limits`` names them.
    prefix: str
    #: ``(suffix, window seconds)`` of each default limit, flattened for the script.
    windows: tuple[str | int, ...]
    limits: tuple[Limit, ...]


def parse_limits(value: str) -> tuple[Limit, ...]:
    """Parse ``"10/minute"`` or ``"10/minute;100/hour"``; ``ValueError`` if it is not a limit."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ValueError("not a rate limit string")
    items = parse_many(value)
    if not items:
        raise ValueError("not a rate limit string")
    return tuple(Limit.of(item) for item in items)


def mark_route_limit(*limits: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Give a view route limits, counted per credential; stacked decorators add up.

    Only marks the view (no wrapper), so it stacks with the scope decorators in
    any order. A bad limit string fails here, at import time.
    """
    if not limits:
        raise TypeError("name at least one limit, such as '10/minute'")
    parsed: tuple[Limit, ...] = ()
    for text in limits:
        try:
            parsed += parse_limits(text)
        except ValueError:
            raise ValueError(f"not a rate limit: {text!r} (use a string such as '10/minute')") from None

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        setattr(view, ROUTE_LIMITS_ATTR, getattr(view, ROUTE_LIMITS_ATTR, ()) + parsed)
        return view

    return decorator


@functools.lru_cache(maxsize=4096)
def _ipv6_bucket(address: str) -> str:
    # One IPv6 host usually holds a whole /64: count the network, or an attacker rotates through it.
    try:
        ip = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return address[:64]
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


def address_bucket(remote_addr: str | None) -> str:
    """What failed authentications are counted by: the IPv4 address, or the IPv6 /64."""
    if not remote_addr:
        return "unknown"
    if ":" in remote_addr:
        return _ipv6_bucket(remote_addr)
    return remote_addr[:64]


def _config_limits(config: Mapping[str, Any], key: str) -> tuple[Limit, ...] | None:
    value = config.get(key)
    if value is None:
        return None
    try:
        return parse_limits(value)
    except ValueError:
        raise ConfigurationError(f"{key} must be a limit such as '60/minute' (or None for no limit)") from None


class RateLimits:
    """Per-credential limits, route limits and failed-authentication throttling for one app.

    Built by ``init_app`` when ``GRIDAUTH_RATELIMIT_ENABLED`` is true. A storage
    error of the counters is a 503, never a request let through.
    """

    def __init__(
        self,
        counters: LimitsStorage,
        *,
        defaults: Mapping[str, tuple[Limit, ...] | None],
        failed: tuple[Limit, ...] | None,
        precount: Precount | None = None,
        limiter: RateLimiter | None = None,
        owner: tuple[Limit, ...] | None = None,
    ) -> None:
        self.counters = counters
        #: ``GRIDAUTH_RATELIMIT_OWNER``: one budget per owner, beside each credential's own limits.
        self.owner = owner
        #: The ``limits`` strategy for a sliding or moving window; ``None``: fixed windows, counted directly.
        self.limiter = limiter
        self._precount = precount
        self.defaults: dict[str, tuple[Limit, ...] | None] = dict(defaults)
        self.failed = failed
        self._errors: tuple[type[Exception], ...] = (LimitsStorageError, *_as_tuple(counters.base_exceptions))
        self._resets: dict[str, float] = {}
        self._parsed: dict[str, tuple[Limit, ...] | None] = {}
        self._routes: dict[str | None, tuple[Limit, ...]] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], storage: Storage) -> RateLimits:
        """Build from ``GRIDAUTH_RATELIMIT_*``; every limit string is checked here, at start-up."""
        defaults = {
            "api_key": _config_limits(config, c.RATELIMIT_API_KEY),
            "jwt": _config_limits(config, c.RATELIMIT_JWT),
            "signature": _config_limits(config, c.RATELIMIT_SIGNATURE),
            "token": _config_limits(config, c.RATELIMIT_TOKEN),
        }
        failed = _config_limits(config, c.FAILED_AUTH_LIMIT)
        counters = counter_storage(config, storage)
        limiter = limiter_for(config, counters)
        precount = None
        api_key = defaults["api_key"]
        shared = storage.shared_counters() if storage.counts_in_lookup and limiter is None else None
        if api_key and shared is not None and config.get(c.RATELIMIT_STORAGE_URI) is None:
            # The counters live on the key storage's own server (counter_storage): one look-up can do both.
            windows = tuple(v for limit in api_key for v in (limit.suffix, limit.expiry))
            precount = Precount(storage, shared[1] + "api_key:", windows, api_key)
        owner = _config_limits(config, c.RATELIMIT_OWNER)
        return cls(counters, defaults=defaults, failed=failed, precount=precount, limiter=limiter, owner=owner)

    # -- what a request counts against ---------------------------------------

    def limits_for(self, principal: Principal) -> tuple[str, tuple[Limit, ...]] | None:
        """The principal's counter identity and its own limits; ``None`` when it is exempt.

        A key record's ``rate_limit`` replaces the default of its kind. The
        bootstrap token is exempt from every limit unless
        ``GRIDAUTH_RATELIMIT_TOKEN`` is set. An app's own kind (``@auth.verifier``)
        is counted per principal id at the JWT default, the other kind whose
        principals come from outside.
        """
        kind = principal.kind
        if kind == "token":
            limits = self.defaults["token"]
            return None if limits is None else ("token", limits)
        default = self.defaults[kind] if kind in self.defaults else self.defaults.get("jwt")
        record = principal.key
        if record is not None and record.rate_limit:
            own = self._record_limits(record.rate_limit)
            if own is not None:
                default = own
        return f"{kind}:{principal.id}", default or ()

    def _record_limits(self, text: str) -> tuple[Limit, ...] | None:
        try:
            return self._parsed[text]
        except KeyError:
            pass
        try:
            parsed: tuple[Limit, ...] | None = parse_limits(text)
        except ValueError:
            # KeyManager validates on write; a hand-edited record keeps its kind's default, loudly.
            logger.error("ignoring an unparsable rate_limit on a key record; using the default of its kind")
            parsed = None
        if len(self._parsed) >= MAX_CACHED:
            self._parsed.clear()
        self._parsed[text] = parsed
        return parsed

    def route_limits(self, endpoint: str | None) -> tuple[Limit, ...]:
        """The ``@auth.limit`` limits of an endpoint's view, cached per endpoint."""
        try:
            return self._routes[endpoint]
        except KeyError:
            pass
        view = current_app.view_functions.get(endpoint) if endpoint is not None else None
        limits: tuple[Limit, ...] = getattr(view, ROUTE_LIMITS_ATTR, ())
        self._routes[endpoint] = limits
        return limits

    # -- counting ------------------------------------------------------------

    def precount(self, endpoint: str | None) -> Precount | None:
        """How the Redis key look-up may count this request, or ``None`` where :meth:`hit` must count.

        Never for a request no route matched: it is not counted at all.
        """
        return None if endpoint is None else self._precount

    def note_counted(self, principal: Principal, counts: list[tuple[int, int]]) -> None:
        """Keep what the key look-up counted for ``principal``, for :meth:`hit` to use instead of counting."""
        setattr(g, G_PRECOUNTED, (f"{principal.kind}:{principal.id}", counts))

    def _reset_of(self, key: str, limit: Limit, count: int, now: float) -> float:
        """When ``key``'s window ends: known from its first hit, else asked once per window."""
        if count == 1:
            reset = now + limit.expiry
        else:
            reset = self._resets.get(key, 0.0)
            if reset > now:
                return reset
            # Redis answers in whole seconds: never show a window that has already ended.
            reset = max(self.counters.get_expiry(key), now + 1.0)
        if len(self._resets) >= MAX_CACHED:
            self._resets.clear()
        self._resets[key] = reset
        return reset

    def _count(self, key: str, limits: tuple[Limit, ...], now: float, out: list[tuple[Stats, bool]]) -> None:
        """Hit every limit of ``key`` once (one storage call each), appending ``(stats, exceeded)``."""
        if self.limiter is not None:
            self._count_with_strategy(self.limiter, key, limits, out)
            return
        incr = self.counters.incr
        for limit in limits:
            name = key + limit.suffix
            count = incr(name, limit.expiry)
            reset = self._reset_of(name, limit, count, now)
            out.append((Stats(limit.amount, max(0, limit.amount - count), reset), count > limit.amount))

    @staticmethod
    def _count_with_strategy(
        limiter: RateLimiter, key: str, limits: tuple[Limit, ...], out: list[tuple[Stats, bool]]
    ) -> None:
        """A sliding or moving window through ``limits``' strategy: a hit, then the window's stats."""
        for limit in limits:
            allowed = limiter.hit(limit.item, key)
            reset, remaining = limiter.get_window_stats(limit.item, key)
            out.append((Stats(limit.amount, remaining, max(reset, time.time() + 1.0)), not allowed))

    def hit(self, principal: Principal, endpoint: str | None) -> None:
        """Count one request of ``principal`` on ``endpoint``; 429 with ``Retry-After`` past a limit.

        Every limit is counted, even past one that is exceeded, so each keeps
        an honest count of the requests made.
        """
        found = self.limits_for(principal)
        if found is None:
            return
        identity, limits = found
        route = self.route_limits(endpoint)
        owner = self.owner if principal.kind not in NOT_OWNER_KINDS else None
        if not limits and not route and not owner:
            return
        now = time.time()
        results: list[tuple[Stats, bool]] = []
        plan = self._precount
        counted = g.pop(G_PRECOUNTED, None) if plan is not None else None
        try:
            if route:
                self._count(f"route:{endpoint}:{identity}", route, now, results)
            if counted is not None and plan is not None and counted[0] == identity and limits is plan.limits:
                # The key look-up counted these already (one round trip): use its counts.
                for limit, (count, left_ms) in zip(limits, counted[1], strict=True):
                    # A window's first hit opened it now; else Redis says how long it has left.
                    reset = now + limit.expiry if count == 1 else now + max(left_ms / 1000, 1.0)
                    results.append((Stats(limit.amount, max(0, limit.amount - count), reset), count > limit.amount))
            elif limits:
                self._count(identity, limits, now, results)
            if owner:
                # Shared by every key and JWT of the owner (on Redis one more call: not in the look-up script).
                self._count("owner:" + principal.owner, owner, now, results)
        except self._errors as exc:
            raise _unavailable(exc) from None
        if len(results) == 1:
            stats, exceeded = results[0]
        else:
            over = [s for s, o in results if o]
            exceeded = bool(over)
            # Show the exceeded limit that frees up last, else the one closest to running out.
            stats = (
                max(over, key=lambda s: s.reset) if over else min((s for s, _ in results), key=lambda s: s.remaining)
            )
        setattr(g, G_ATTR, stats)
        if exceeded:
            raise RateLimited(headers=stats.headers(now, retry_after=True))

    def add_headers(self, response: Response) -> None:
        """``X-RateLimit-*`` on every response to a limited credential (the 429 too)."""
        stats: Stats | None = g.get(G_ATTR)
        if stats is not None:
            response.headers.update(stats.headers())

    # -- failed authentications ----------------------------------------------

    def record_failure(self, remote_addr: str | None) -> None:
        """Count a failed authentication against the client address; 429 once it is past the limit.

        Called only after a credential failed, so a valid credential is never
        refused by this limit, whoever else shares the address (a NAT, an office
        proxy): only the failures past the limit get 429 instead of 401. One
        counter call per failure, none for a request that authenticates.
        """
        if self.failed is None:
            return
        bucket = address_bucket(remote_addr)
        now = time.time()
        worst: float | None = None
        first = False
        try:
            for limit in self.failed:
                key = "failed:" + bucket + limit.suffix
                count = self.counters.incr(key, limit.expiry)
                reset = self._reset_of(key, limit, count, now)
                if count > limit.amount:
                    worst = reset if worst is None else max(worst, reset)
                    first = first or count == limit.amount + 1
        except self._errors as exc:
            raise _unavailable(exc) from None
        if worst is None:
            return
        if first:
            logger.warning(
                "failed-authentication limit reached: remote=%s; its failures get 429 until the window ends", bucket
            )
        raise RateLimited(
            "Too many failed authentications from this address",
            headers=Stats(self.failed[0].amount, 0, worst).headers(now, retry_after=True),
        )


def _unavailable(exc: Exception) -> Unavailable:
    # Only the exception's type: a driver's message may hold the counter storage's URI.
    logger.error("rate-limit storage unavailable: %s", type(exc).__name__)
    return Unavailable()


def _as_tuple(value: type[Exception] | tuple[type[Exception], ...]) -> tuple[type[Exception], ...]:
    return value if isinstance(value, tuple) else (value,)
