"""Rate-limit ceilings: no caller gives a key more requests per second than it has itself.

A caller's own effective limit is its key's ``rate_limit``, else the default of
its credential kind; ``GRIDAUTH_RATELIMIT_MAX`` caps it further. The bootstrap
token and the operator (the CLI, ``by=None``) have no ceiling. A key's
effective limit is its ``rate_limit``, else the default of its type. Limits are
compared as sustained requests per second (the strictest window of a string
such as ``10/second;1000/day``), exactly, with fractions.

An explicit ``rate_limit`` above the caller's ceiling is 403. A key given none
gets the default of its type, unless that default is above the caller's ceiling:
then it gets the caller's own limit, so no key ever allows more than its giver.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from limits import parse_many

from . import config as c
from .errors import ConfigurationError, Forbidden
from .principal import Principal

#: Principals with no ceiling: the bootstrap token, and everyone when authentication is off.
UNCAPPED_KINDS = frozenset({"token", "disabled"})


def limit_rate(text: str | None) -> Fraction | None:
    """Sustained requests per second a limit string allows (``None``: no limit, or not a limit)."""
    if not text:
        return None
    try:
        items = parse_many(text)
    except ValueError:
        return None
    return min((Fraction(item.amount, item.get_expiry()) for item in items), default=None)


@dataclass(frozen=True, slots=True)
class RateCeilings:
    """The limits a ceiling check needs, read once from the app's configuration."""

    #: Whether per-credential limits apply at all (``GRIDAUTH_RATELIMIT_ENABLED``).
    enabled: bool = False
    #: Default limit string per credential kind (``api_key``, ``jwt``, ``signature``).
    defaults: Mapping[str, str | None] = field(default_factory=dict)
    #: ``GRIDAUTH_RATELIMIT_MAX``: the most any capped caller may give.
    maximum: str | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RateCeilings:
        """Read ``GRIDAUTH_RATELIMIT_*``; a ``GRIDAUTH_RATELIMIT_MAX`` that is not a limit is refused."""
        maximum = config.get(c.RATELIMIT_MAX)
        if maximum is not None and (not isinstance(maximum, str) or limit_rate(maximum) is None):
            raise ConfigurationError("GRIDAUTH_RATELIMIT_MAX must be a limit such as '100/second' (or None)")
        return cls(
            enabled=bool(config.get(c.RATELIMIT_ENABLED)),
            defaults={
                "api_key": config.get(c.RATELIMIT_API_KEY),
                "jwt": config.get(c.RATELIMIT_JWT),
                "signature": config.get(c.RATELIMIT_SIGNATURE),
            },
            maximum=maximum,
        )

    def cap(self, by: Principal | None) -> tuple[Fraction, str] | None:
        """The most requests per second ``by`` may give a key, with its limit string; ``None``: no ceiling."""
        if by is None or by.kind in UNCAPPED_KINDS:
            return None
        candidates: list[str | None] = [self.maximum]
        if self.enabled:
            record = by.key
            candidates.append(record.rate_limit if record is not None and record.rate_limit else None)
            if candidates[-1] is None or limit_rate(candidates[-1]) is None:
                candidates[-1] = self.defaults.get(by.kind)
        rated = [(rate, text) for text in candidates if text and (rate := limit_rate(text)) is not None]
        return min(rated, key=lambda pair: pair[0]) if rated else None

    def key_rate(self, rate_limit: str | None, key_type: str) -> Fraction | None:
        """The requests per second a key would allow (``None``: unlimited)."""
        if rate_limit:
            return limit_rate(rate_limit)
        if not self.enabled:
            return None
        return limit_rate(self.defaults.get("signature" if key_type == "signing" else "api_key"))

    def apply(self, by: Principal | None, rate_limit: str | None, key_type: str) -> str | None:
        """The ``rate_limit`` a key ``by`` gives gets: 403 if an explicit one is above ``by``'s ceiling."""
        capped = self.cap(by)
        if capped is None:
            return rate_limit
        cap, text = capped
        if rate_limit is not None:
            rate = limit_rate(rate_limit)
            if rate is None or rate > cap:
                raise Forbidden("Cannot give a key a rate_limit above your own (per second)")
            return rate_limit
        default = self.key_rate(None, key_type)
        return text if default is None or default > cap else None
