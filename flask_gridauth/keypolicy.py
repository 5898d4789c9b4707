"""What a key's own settings ask of each request: environment, address allowlist, quota, expiry warning.

Built once per app by ``init_app`` (:class:`KeyPolicy`) and called by the
request hook around the checks every credential gets:

1. while verifying an API key: its environment must be one of
   ``GRIDAUTH_ENVIRONMENTS`` (else 401, like any unusable key); a canary key is
   reported and refused (:func:`report_canary`);
2. once authenticated: the client address must be inside the key's
   ``allowed_ips`` (else 403 ``forbidden``);
3. after the rate limits: the key's quota pays for the request (one unit, or
   the route's :func:`cost`), atomically in storage (else 429
   ``quota_exceeded``);
4. on the response: ``X-Quota-Limit`` / ``X-Quota-Remaining`` for a key with a
   quota, and ``Sunset`` (RFC 8594) for a key that expires within
   ``GRIDAUTH_EXPIRY_WARNING`` seconds, with the ``key_expiring`` signal sent
   once per key and process.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from flask import Response, current_app, has_request_context, request
from werkzeug.http import http_date

from . import config as c
from . import signals
from .bounded_cache import BoundedCache, MakeCache
from .errors import ConfigurationError, Forbidden, QuotaExceeded, RateLimited, Unauthorized
from .keys import ENVIRONMENTS
from .principal import Principal
from .records import KeyRecord, check_record, utcnow
from .schema import normalise_cidrs
from .storage import Storage
from .storage.base import QuotaUse

logger = logging.getLogger("flask_gridauth")

P = ParamSpec("P")
R = TypeVar("R")

#: Mark on a view: the quota units one request to it uses (see :func:`cost`).
COST_ATTR = "_gridauth_cost"
#: Most (allowlist, address) answers an app keeps.
MAX_CACHED_ADDRESSES = 4096
#: Most key ids one process remembers as already warned about (then it starts over).
MAX_WARNED = 100_000

HEADER_QUOTA_LIMIT = "X-Quota-Limit"
HEADER_QUOTA_REMAINING = "X-Quota-Remaining"


def cost(units: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """A request to this view uses ``units`` of the key's quota instead of one (0 makes it free)."""
    if isinstance(units, bool) or not isinstance(units, int) or not 0 <= units <= 10**9:
        raise ValueError("a route's cost is a whole number of quota units from 0 to 10**9")

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        setattr(view, COST_ATTR, units)
        return view

    return decorator


def address_allowed(cidrs: tuple[str, ...], remote_addr: str | None) -> bool:
    """Whether ``remote_addr`` is inside one of ``cidrs`` (an IPv4-mapped IPv6 address counts as IPv4)."""
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(cidr, strict=False) for cidr in cidrs)


def report_canary(record: KeyRecord) -> None:
    """A canary key was presented: a WARNING line, the ``canary_used`` signal (never the key itself)."""
    remote = request.remote_addr if has_request_context() else None
    agent = request.user_agent.string[:200] if has_request_context() else None
    logger.warning(
        "CANARY KEY USED: id=%s prefix=%s owner=%s remote=%s user_agent=%r",
        record.id,
        record.prefix,
        record.owner,
        remote,
        agent,
    )
    app = current_app._get_current_object() if has_request_context() else None  # type: ignore[attr-defined]
    signals.canary_used.send(app, key=record, remote_addr=remote, user_agent=agent)
    state = app.extensions.get("gridauth") if app is not None else None
    if state is not None:
        details = {"name": record.name, "prefix": record.prefix, "user_agent": agent}
        try:
            state.keys.audit.record(
                "key.canary_used", target_id=record.id, owner=record.owner, details=details, remote_addr=remote
            )
        except ValueError:
            # The user agent is the caller's to choose: one shaped like a secret is not kept.
            details["user_agent"] = "[withheld: looked like a secret]"
            state.keys.audit.record(
                "key.canary_used", target_id=record.id, owner=record.owner, details=details, remote_addr=remote
            )


class KeyPolicy:
    """One app's environment, allowlist, quota and expiry-warning checks (see the module docstring)."""

    def __init__(
        self,
        storage: Storage,
        *,
        environments: Iterable[str],
        expiry_warning: float,
        make_cache: MakeCache = BoundedCache,
    ) -> None:
        self.storage = storage
        # (allowed_ips, remote address) -> allowed. Kept: an API key with a two-CIDR allowlist costs
        # 1,018,951 instructions per request with it and 1,115,008 without (callgrind, a case of
        # api_key_memory with allowed_ips, no usage counting): -96,057, 8.6%. It replaced two
        # process-wide lru_caches; the second (the parsed networks of an allowlist) only helps a key
        # used from many addresses, which no bench case shows, so it went.
        self._allowed: BoundedCache[tuple[tuple[str, ...], str | None], bool] = make_cache(
            "address_allowed", MAX_CACHED_ADDRESSES
        )
        self.environments = frozenset(environments)
        self.expiry_warning = timedelta(seconds=expiry_warning)
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._costs: dict[str | None, int] = {}
        self._script_costs: dict[str | None, int] = {}

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], storage: Storage, *, make_cache: MakeCache = BoundedCache
    ) -> KeyPolicy:
        """Build from ``GRIDAUTH_ENVIRONMENTS`` and ``GRIDAUTH_EXPIRY_WARNING``, checked here, at start-up."""
        environments = config.get(c.ENVIRONMENTS)
        if (
            isinstance(environments, str)
            or not isinstance(environments, Iterable)
            or not all(e in ENVIRONMENTS for e in environments)
        ):
            raise ConfigurationError("GRIDAUTH_ENVIRONMENTS must be a list of 'live' and/or 'test'")
        warning = config.get(c.EXPIRY_WARNING)
        if warning is None:
            warning = 0
        if isinstance(warning, bool) or not isinstance(warning, int | float) or warning < 0:
            raise ConfigurationError("GRIDAUTH_EXPIRY_WARNING must be a number of seconds (or None for no warning)")
        return cls(storage, environments=environments, expiry_warning=float(warning), make_cache=make_cache)

    # -- while verifying -----------------------------------------------------

    def check_environment(self, record: KeyRecord) -> None:
        """401 for an API key of an environment this server does not accept (only its holder reads why)."""
        if record.environment not in self.environments:
            raise Unauthorized(f"API key environment '{record.environment}' is not accepted here")

    def check_restored(self, record: KeyRecord, remote_addr: str | None) -> None:
        """Every key-policy check, for a principal rebuilt from a stored id instead of a presented key.

        A revoked, expired, disabled or canary key, one of an environment not
        accepted here, or a request from outside its ``allowed_ips`` is refused
        (401, or 403 for the address): what the request hook would refuse.
        """
        if record.canary:
            raise Unauthorized("API key is a canary key")
        check_record(record, utcnow())
        self.check_environment(record)
        if record.allowed_ips and not address_allowed(record.allowed_ips, remote_addr):
            raise Forbidden("This key may not be used from this address")

    # -- once authenticated --------------------------------------------------

    def check_address(self, principal: Principal, remote_addr: str | None) -> None:
        """403 when the key has an allowlist and the request comes from outside it."""
        record = principal.key
        if record is None or not record.allowed_ips:
            return
        allowed = self._allowed.get((record.allowed_ips, remote_addr))
        if allowed is None:
            allowed = self._allowed.put(
                (record.allowed_ips, remote_addr), address_allowed(record.allowed_ips, remote_addr)
            )
        if not allowed:
            raise Forbidden("This key may not be used from this address")

    def cost_of(self, endpoint: str | None) -> int:
        """The quota units one request to ``endpoint`` uses: its :func:`cost`, else 1."""
        try:
            return self._costs[endpoint]
        except KeyError:
            pass
        view = current_app.view_functions.get(endpoint) if endpoint is not None else None
        units: int = getattr(view, COST_ATTR, 1)
        self._costs[endpoint] = units
        return units

    def script_cost(self, endpoint: str | None, *, owner_limit: bool) -> int:
        """The units a Redis look-up script may take for ``endpoint``: its cost, or 0 to leave it to :meth:`spend`.

        0 when a limit the script does not count (a route limit, the owner-wide
        limit) could still refuse the request after the quota was paid.
        """
        if owner_limit:
            return 0
        try:
            return self._script_costs[endpoint]
        except KeyError:
            pass
        from .ratelimit import ROUTE_LIMITS_ATTR

        view = current_app.view_functions.get(endpoint) if endpoint is not None else None
        units = 0 if getattr(view, ROUTE_LIMITS_ATTR, ()) else self.cost_of(endpoint)
        self._script_costs[endpoint] = units
        return units

    def spend(self, principal: Principal, endpoint: str | None, paid: QuotaUse | None = None) -> QuotaUse | None:
        """Pay for the request from the key's quota: what is left (``allowed`` false when too little was).

        ``paid`` is what the key look-up already paid (one round trip), passed
        on as it is. ``None`` for a key without a quota. A refused payment's
        429 is :meth:`exceeded`.
        """
        record = principal.key
        if record is None or record.quota is None:
            return None
        if paid is not None:
            return paid
        units = self.cost_of(endpoint)
        return self.storage.spend_quota(record, units, utcnow()) if units else self.peek(record)

    def exceeded(self, principal: Principal, use: QuotaUse) -> QuotaExceeded:
        """The 429 ``quota_exceeded`` for a payment :meth:`spend` refused, with the quota headers."""
        return QuotaExceeded(headers=self._quota_headers(principal.key, use))

    def peek(self, record: KeyRecord) -> QuotaUse | None:
        """What is left of the key's quota, taking nothing (for the headers of a free or refused request)."""
        current = self.storage.get(record.id)
        if current is None or current.quota is None:
            return None
        remaining = current.quota.available()
        return None if remaining is None else QuotaUse(True, remaining)

    def note_refused(self, principal: Principal, paid: QuotaUse | None = None) -> QuotaUse | None:
        """A rate limit refused the request before the quota was asked: what is left, for the headers."""
        record = principal.key
        if record is None or record.quota is None:
            return None
        return paid if paid is not None else self.peek(record)

    @staticmethod
    def _quota_headers(record: KeyRecord | None, use: QuotaUse) -> dict[str, str]:
        return dict(KeyPolicy.quota_header_items(record, use))

    @staticmethod
    def quota_header_items(record: KeyRecord | None, use: QuotaUse) -> list[tuple[str, str]]:
        """``X-Quota-Limit`` / ``X-Quota-Remaining`` as ``(name, value)`` pairs (what is left: never below 0)."""
        limit = record.quota.limit if record is not None and record.quota is not None else 0
        remaining = use.remaining
        # A conditional, not max(0, ...): a builtin call with its argument parsing costs ~10 times more.
        return [(HEADER_QUOTA_LIMIT, str(limit)), (HEADER_QUOTA_REMAINING, str(remaining if remaining > 0 else 0))]

    # -- the response --------------------------------------------------------

    def add_sunset(self, response: Response, record: KeyRecord) -> None:
        """``Sunset`` (RFC 8594) when the key expires within ``GRIDAUTH_EXPIRY_WARNING``; ``key_expiring`` once."""
        expires = record.expires_at
        if expires is not None and self.expiry_warning and expires - utcnow() <= self.expiry_warning:
            response.headers["Sunset"] = http_date(expires)
            self._warn(record, expires)

    def _warn(self, record: KeyRecord, expires: datetime) -> None:
        """The ``key_expiring`` signal, once per key and process (workers each send their own)."""
        if record.id in self._warned:
            return
        with self._lock:
            if record.id in self._warned:
                return
            if len(self._warned) >= MAX_WARNED:
                self._warned.clear()
            self._warned.add(record.id)
        logger.info(
            "key expiring soon: id=%s prefix=%s owner=%s expires_at=%s",
            record.id,
            record.prefix,
            record.owner,
            expires.isoformat(),
        )
        signals.key_expiring.send(current_app._get_current_object(), key=record)  # type: ignore[attr-defined]


__all__ = ["KeyPolicy", "QuotaExceeded", "RateLimited", "address_allowed", "cost", "normalise_cidrs", "report_canary"]
