"""A record's values as the backends store them: times as epoch seconds, and quota counters."""

from __future__ import annotations

from datetime import UTC, datetime

from ..records import Quota


def to_epoch(value: datetime | None) -> float | None:
    """A time as the backends store it: epoch seconds, or ``None``."""
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    """A stored epoch-seconds time back as an aware UTC datetime, or ``None``."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


def quota_state(quota: Quota | None, created: datetime) -> tuple[int | None, float | None]:
    """The counter a new or re-set quota starts with: ``(remaining, refilled_at)`` in epoch seconds.

    ``quota.remaining`` / ``quota.refilled_at`` when given, else the full limit from ``created``.
    """
    if quota is None:
        return None, None
    remaining = quota.limit if quota.remaining is None else quota.remaining
    return remaining, (quota.refilled_at or created).timestamp()


def refill_now(
    limit: int, amount: int | None, seconds: int | None, remaining: int, refilled_at: float, now: float
) -> tuple[int, float]:
    """:func:`~flask_gridauth.records.refilled` in epoch seconds, for backends that count in Python."""
    if not amount or not seconds:
        return remaining, refilled_at
    periods = int((now - refilled_at) // seconds)
    if periods <= 0:
        return remaining, refilled_at
    return min(limit, remaining + periods * amount), refilled_at + periods * seconds


def bare_quota(quota: Quota | None) -> Quota | None:
    """``quota`` without its counter: what a record found on the hot path carries."""
    if quota is None or (quota.remaining is None and quota.refilled_at is None):
        return quota
    return Quota(quota.limit, quota.refill_amount, quota.refill_interval)
