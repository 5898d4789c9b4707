"""Rate limits. PLACEHOLDER until the rate-limit issue lands."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from flask import Response

from .principal import Principal
from .storage import Storage

P = ParamSpec("P")
R = TypeVar("R")


def mark_route_limit(*limits: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a view with route limits."""

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        return view

    return decorator


class RateLimits:
    """Per-credential limits and failed-authentication throttling for one app."""

    @classmethod
    def from_config(cls, config: Mapping[str, Any], storage: Storage) -> RateLimits | None:
        """Build from ``GRIDAUTH_RATELIMIT_*``."""
        return None

    def check_address(self, remote_addr: str | None) -> None:
        """429 if this address failed too often."""

    def record_failure(self, remote_addr: str | None) -> None:
        """Count a failed authentication."""

    def hit(self, principal: Principal, endpoint: str | None) -> None:
        """Count a request; 429 past the limit."""

    def add_headers(self, response: Response) -> None:
        """Add X-RateLimit-* headers."""
