"""Rate limits as values: a parsed :class:`Limit`, a window's :class:`Stats` and the headers it shows.

Limit strings are parsed once: at start-up (``GRIDAUTH_RATELIMIT_*``), when a
route is decorated (:func:`mark_route_limit`), and once per distinct
``rate_limit`` of a key record or owner override. flask-limiter supplies the
header names, so the headers are the ones its users know.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, ParamSpec, TypeVar

from flask_limiter.constants import HeaderNames
from limits import RateLimitItem, parse_many

from .errors import ConfigurationError, RateLimited

P = ParamSpec("P")
R = TypeVar("R")

#: Mark on a view: the route limits ``@auth.limit`` gave it.
ROUTE_LIMITS_ATTR = "_gridauth_route_limits"

HEADER_LIMIT = HeaderNames.LIMIT.value
HEADER_REMAINING = HeaderNames.REMAINING.value
HEADER_RESET = HeaderNames.RESET.value
HEADER_RETRY_AFTER = HeaderNames.RETRY_AFTER.value


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


def window_header_items(limit: int, remaining: int, reset: float) -> list[tuple[str, str]]:
    """``X-RateLimit-*`` as ``(name, value)`` pairs (``Reset`` in epoch seconds, as flask-limiter writes it)."""
    return [
        (HEADER_LIMIT, str(limit)),
        (HEADER_REMAINING, str(remaining)),
        (HEADER_RESET, str(math.ceil(reset))),
    ]


class Stats(NamedTuple):
    """A window as the headers show it: the limit, what is left, and when it resets (epoch seconds)."""

    limit: int
    remaining: int
    reset: float

    def header_items(self) -> list[tuple[str, str]]:
        """``X-RateLimit-*`` as ``(name, value)`` pairs (see :func:`window_header_items`)."""
        return window_header_items(self.limit, self.remaining, self.reset)

    def headers(self, now: float | None = None, *, retry_after: bool = False) -> dict[str, str]:
        """:meth:`header_items` as a dict, plus ``Retry-After``."""
        headers = dict(self.header_items())
        if retry_after:
            wait = self.reset - (time.time() if now is None else now)
            headers[HEADER_RETRY_AFTER] = str(max(1, math.ceil(wait)))
        return headers


#: One limit's outcome: its amount, what is left, when its window resets (epoch seconds), and whether
#: this request went over it. A plain tuple: :func:`decide` builds the request's one named tuple.
Result = tuple[int, int, float, bool]


class Decision(NamedTuple):
    """What the rate-limit step decided for one request: the window the headers show, and whether it is refused.

    The window's fields sit here rather than in a :class:`Stats` (see :attr:`stats`): a named tuple costs
    ~3,000 instructions to build (callgrind), and a limited request built two, this one and its window's.
    """

    limit: int
    remaining: int
    #: When the window resets (epoch seconds).
    reset: float
    exceeded: bool
    #: When it was counted (epoch seconds), for ``Retry-After``.
    now: float

    @property
    def stats(self) -> Stats:
        """The window the headers show."""
        return Stats(self.limit, self.remaining, self.reset)

    def header_items(self) -> list[tuple[str, str]]:
        """The window's ``X-RateLimit-*`` as ``(name, value)`` pairs (see :func:`window_header_items`)."""
        return window_header_items(self.limit, self.remaining, self.reset)

    def error(self) -> RateLimited:
        """The 429 for a refused request, with ``Retry-After`` and the window's headers."""
        return RateLimited(headers=self.stats.headers(self.now, retry_after=True))


def parse_limits(value: str) -> tuple[Limit, ...]:
    """Parse ``"10/minute"`` or ``"10/minute;100/hour"``; ``ValueError`` if it is not a limit."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ValueError("not a rate limit string")
    items = parse_many(value)
    if not items:
        raise ValueError("not a rate limit string")
    return tuple(Limit.of(item) for item in items)


def config_limits(config: Mapping[str, Any], key: str) -> tuple[Limit, ...] | None:
    """The limits of config ``key`` (``None``: no limit); a string that is not a limit fails at start-up."""
    value = config.get(key)
    if value is None:
        return None
    try:
        return parse_limits(value)
    except ValueError:
        raise ConfigurationError(f"{key} must be a limit such as '60/minute' (or None for no limit)") from None


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


def decide(results: list[Result], now: float) -> Decision:
    """The decision of several limits' results: refused if any was exceeded.

    The headers show the exceeded limit that frees up last, else the one
    closest to running out.
    """
    if len(results) == 1:
        return Decision(*results[0], now)
    over = [r for r in results if r[3]]
    if over:
        return Decision(*max(over, key=lambda r: r[2]), now)
    return Decision(*min(results, key=lambda r: r[1]), now)
