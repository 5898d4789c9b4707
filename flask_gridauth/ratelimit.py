"""Rate limiting, a step after authentication: a principal in, a decision out.

Every authenticated request counts against its credential (``api_key:<id>``,
``jwt:<sub>``, ``signature:<id>``, ``token``), against any route limit of its
view and, with ``GRIDAUTH_RATELIMIT_OWNER``, against its owner; every failed
authentication counts against the client address
(:mod:`flask_gridauth.failed_auth`). :meth:`RateLimits.hit` takes the
principal and returns a :class:`~flask_gridauth.ratelimit_items.Decision`
(the window the headers show, and whether the request is refused); it
reads and writes no request state (the request hook keeps that, under the
names of :mod:`flask_gridauth.context`).

The parts: limits as values (:mod:`flask_gridauth.ratelimit_items`), hitting
the counters (:mod:`flask_gridauth.ratelimit_counting`), where the counters
live (:mod:`flask_gridauth.counters`).

Where the key storage offers it (:attr:`~flask_gridauth.storage.Storage.counts_in_lookup`,
with the counters on its own server), an API key's default limits are counted
by the key look-up itself (:meth:`~flask_gridauth.storage.Storage.find_counted`,
the same counter keys and ``incr``-and-expire semantics), so the request
costs one round trip. The request hook asks :meth:`RateLimits.precount` for
the plan and passes what the look-up counted to :meth:`RateLimits.hit` as a
value. A key with its own ``rate_limit``, a route limit, or any other storage
takes the ordinary path.

Measured with ``test_client()`` on 2 vCPUs, medians of interleaved rounds:
flask-limiter alone (memory) +102 µs over a bare route; GridAuth API key plus
its per-key limit (memory) +37 µs in total; the limit's own share with Redis
counters is one ``EVALSHA`` round trip (+~90 µs on loopback).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from flask import current_app
from limits.storage import Storage as LimitsStorage
from limits.strategies import RateLimiter

from . import config as c
from .counters import batch_size, counter_storage, limiter_for
from .failed_auth import address_bucket as address_bucket  # re-exported
from .failed_auth import record_failure
from .memory_counters import MemoryCounters as MemoryCounters  # re-exported: the in-process counters
from .owner_limits import OwnerLimits
from .principal import Principal
from .ratelimit_counting import MAX_CACHED, Counting, counted_results, unavailable
from .ratelimit_items import ROUTE_LIMITS_ATTR, Decision, Limit, Result, Stats, config_limits, decide, parse_limits
from .ratelimit_items import mark_route_limit as mark_route_limit  # re-exported
from .ratelimit_leases import Leases
from .storage import Storage

logger = logging.getLogger("flask_gridauth")

__all__ = [
    "ROUTE_LIMITS_ATTR",
    "Decision",
    "Limit",
    "MemoryCounters",
    "Precount",
    "RateLimits",
    "Stats",
    "address_bucket",
    "mark_route_limit",
    "parse_limits",
]

#: Credential kinds that never count against ``GRIDAUTH_RATELIMIT_OWNER``; every other kind,
#: an app's own included, does.
NOT_OWNER_KINDS = frozenset({"token", "disabled"})


class Precount(NamedTuple):
    """How the key look-up counts an API key's default limits in the same round trip."""

    storage: Storage
    #: Counter keys are ``prefix + key id + limit suffix``, as ``limits`` names them.
    prefix: str
    #: ``(suffix, window seconds)`` of each default limit, flattened for the look-up.
    windows: tuple[str | int, ...]
    limits: tuple[Limit, ...]


class RateLimits:
    """Per-credential limits, route limits, owner-wide limits and failed-authentication throttling for one app.

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
        owners: OwnerLimits | None = None,
        batch: int = 1,
    ) -> None:
        self.counting = Counting(counters, limiter)
        #: Counts a request's own, route and owner limits: exactly, or from this process's leases.
        self._count = self.counting.count if batch == 1 else Leases(self.counting, batch).count
        #: Owner-wide limits (``GRIDAUTH_RATELIMIT_OWNER`` and its per-owner overrides), beside each credential's own.
        self.owners = owners
        self._precount = precount
        #: Whether the key look-up may count (:meth:`precount` can return a plan): checked before the endpoint is read.
        self.precounts = precount is not None
        self.defaults: dict[str, tuple[Limit, ...] | None] = dict(defaults)
        self.failed = failed
        self._parsed: dict[str, tuple[Limit, ...] | None] = {}
        self._routes: dict[str | None, tuple[Limit, ...]] = {}

    @property
    def counters(self) -> LimitsStorage:
        """The ``limits`` storage the counters live in."""
        return self.counting.counters

    @property
    def limiter(self) -> RateLimiter | None:
        """The ``limits`` strategy for a sliding or moving window; ``None``: fixed windows, counted directly."""
        return self.counting.limiter

    @classmethod
    def from_config(cls, config: Mapping[str, Any], storage: Storage) -> RateLimits:
        """Build from ``GRIDAUTH_RATELIMIT_*``; every limit string is checked here, at start-up."""
        defaults = {
            "api_key": config_limits(config, c.RATELIMIT_API_KEY),
            "jwt": config_limits(config, c.RATELIMIT_JWT),
            "signature": config_limits(config, c.RATELIMIT_SIGNATURE),
            "token": config_limits(config, c.RATELIMIT_TOKEN),
        }
        failed = config_limits(config, c.FAILED_AUTH_LIMIT)
        counters = counter_storage(config, storage)
        limiter = limiter_for(config, counters)
        precount = None
        api_key = defaults["api_key"]
        shared = storage.shared_counters() if storage.counts_in_lookup and limiter is None else None
        if api_key and shared is not None and config.get(c.RATELIMIT_STORAGE_URI) is None:
            # The counters live on the key storage's own server (counter_storage): one look-up can do both.
            windows = tuple(v for limit in api_key for v in (limit.suffix, limit.expiry))
            precount = Precount(storage, shared[1] + "api_key:", windows, api_key)
        owners = OwnerLimits(storage, config_limits(config, c.RATELIMIT_OWNER))
        return cls(
            counters,
            defaults=defaults,
            failed=failed,
            precount=precount,
            limiter=limiter,
            owners=owners,
            batch=batch_size(config),
        )

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

    def owner_limits(self, principal: Principal) -> tuple[Limit, ...] | None:
        """The owner-wide limits ``principal``'s requests count against: its owner's override, else the default."""
        owners = self.owners
        if owners is None or principal.kind in NOT_OWNER_KINDS:
            return None
        return owners.for_owner(principal.owner)

    def owner_limited(self) -> bool:
        """Whether an owner-wide limit may refuse a request after its credential's own limits passed."""
        return self.owners is not None and self.owners.any()

    # -- counting ------------------------------------------------------------

    def precount(self, endpoint: str | None) -> Precount | None:
        """How the key look-up may count this request, or ``None`` where :meth:`hit` must count.

        Never for a request no route matched: it is not counted at all.
        """
        return None if endpoint is None else self._precount

    def hit(
        self, principal: Principal, endpoint: str | None, counted: list[tuple[int, int]] | None = None
    ) -> Decision | None:
        """Count one request of ``principal`` on ``endpoint`` and decide: ``None`` when it is not limited at all.

        ``counted`` is what the key look-up of :meth:`precount`'s plan already
        counted of the principal's own limits (``(count, ms left)`` each).
        Every limit is counted, even past one that is exceeded, so each keeps
        an honest count of the requests made. A refused request's 429 is
        :meth:`Decision.error <flask_gridauth.ratelimit_items.Decision.error>`.
        """
        found = self.limits_for(principal)
        if found is None:
            return None
        identity, limits = found
        route = self.route_limits(endpoint)
        owner = self.owner_limits(principal)
        if not limits and not route and not owner:
            return None
        now = time.time()
        results: list[Result] = []
        count = self._count
        plan = self._precount
        try:
            if route:
                count(f"route:{endpoint}:{identity}", route, now, results)
            if counted is not None and plan is not None and limits is plan.limits:
                counted_results(limits, counted, now, results)  # one round trip: the look-up counted them
            elif limits:
                count(identity, limits, now, results)
            if owner:
                # Shared by every key and JWT of the owner (not counted by the key look-up: one more call).
                count("owner:" + principal.owner, owner, now, results)
        except self.counting.errors as exc:
            raise unavailable(exc) from None
        return decide(results, now)

    # -- failed authentications ----------------------------------------------

    def record_failure(self, remote_addr: str | None) -> None:
        """Count a failed authentication against the client address; 429 once it is past the limit.

        See :mod:`flask_gridauth.failed_auth`: a valid credential is never
        refused by this limit.
        """
        if self.failed is not None:
            record_failure(self.counting, self.failed, remote_addr)
