"""The stored form of a key: :class:`KeyRecord`, for API keys and signing keys alike."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .errors import Unauthorized

KeyType = Literal["api_key", "signing"]
KeyStatus = Literal["active", "disabled", "expired", "revoked"]
RefillInterval = Literal["hour", "day", "month"]

#: Seconds in each quota refill interval. A month is 30 days: a fixed length, so every backend
#: (SQL, Lua, Python) computes refills with the same arithmetic.
REFILL_SECONDS: dict[str, int] = {"hour": 3600, "day": 86400, "month": 30 * 86400}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def isoformat(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, or ``None``."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_key_id() -> str:
    """A fresh, unguessable key id."""
    return "key_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Quota:
    """A key's usage quota: ``limit`` units, optionally refilled by ``refill_amount`` per interval.

    ``remaining`` and ``refilled_at`` are the stored counter as last read
    (``None`` when the read did not include it, as on the request hot path);
    they take no part in comparisons, because they change with every use.
    """

    limit: int
    refill_amount: int | None = None
    refill_interval: RefillInterval | None = None
    remaining: int | None = field(default=None, compare=False)
    refilled_at: datetime | None = field(default=None, compare=False)

    @property
    def refill_seconds(self) -> int | None:
        """Length of the refill interval in seconds, or ``None`` without refill."""
        return None if self.refill_interval is None else REFILL_SECONDS[self.refill_interval]

    def spec(self) -> dict[str, Any]:
        """The quota as the API takes it: ``{"limit", "refill": {"amount", "interval"} | None}``."""
        refill = None
        if self.refill_amount is not None and self.refill_interval is not None:
            refill = {"amount": self.refill_amount, "interval": self.refill_interval}
        return {"limit": self.limit, "refill": refill}

    def available(self, now: datetime | None = None) -> int | None:
        """Units left at ``now``, with the refills due since ``refilled_at`` (``None`` if not read)."""
        if self.remaining is None:
            return None
        return refilled(self, self.remaining, self.refilled_at, now or utcnow())[0]


def refilled(quota: Quota, remaining: int, refilled_at: datetime | None, now: datetime) -> tuple[int, datetime | None]:
    """``(remaining, refilled_at)`` after the refills due at ``now``: computed lazily, never by a job.

    Whole intervals since ``refilled_at`` each add ``refill_amount``, capped at
    ``limit``; ``refilled_at`` moves forward by those whole intervals.
    """
    seconds = quota.refill_seconds
    if seconds is None or not quota.refill_amount or refilled_at is None:
        return remaining, refilled_at
    periods = int((now - refilled_at).total_seconds() // seconds)
    if periods <= 0:
        return remaining, refilled_at
    return min(quota.limit, remaining + periods * quota.refill_amount), refilled_at + timedelta(
        seconds=periods * seconds
    )


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key as storage holds it: never the secret, only its SHA-256.

    ``lookup`` is what a request is matched by: the hex SHA-256 of an API key,
    or the fingerprint of a signing key's public key.
    """

    id: str
    name: str
    type: KeyType
    lookup: str = field(repr=False)
    prefix: str
    scopes: tuple[str, ...]
    environment: str
    owner: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    rate_limit: str | None = None
    public_key: str | None = field(default=None, repr=False)
    #: Creation order assigned by storage; breaks ties between equal ``created_at``.
    seq: int = 0
    #: When the key was switched off (reversibly, unlike ``revoked_at``); ``None`` while enabled.
    disabled_at: datetime | None = None
    #: CIDRs (normalised, IPv4 and IPv6) the key may be used from; empty means anywhere.
    allowed_ips: tuple[str, ...] = ()
    #: Usage quota, or ``None`` for none.
    quota: Quota | None = None
    #: A honeytoken: it never authorises anything, and each use raises an alarm.
    canary: bool = False

    @property
    def fingerprint(self) -> str | None:
        """The public key's fingerprint, for signing keys."""
        return self.lookup if self.type == "signing" else None

    def status(self, now: datetime | None = None) -> KeyStatus:
        """``revoked``, ``expired``, ``disabled`` or ``active`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        if self.disabled_at is not None:
            return "disabled"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        """The public key object: never the hash, never the secret."""
        data: dict[str, Any] = {
            "object": "api_key",
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "prefix": self.prefix,
            "scopes": list(self.scopes),
            "environment": self.environment,
            "owner": self.owner,
            "status": self.status(),
            "created_at": isoformat(self.created_at),
            "expires_at": isoformat(self.expires_at),
            "revoked_at": isoformat(self.revoked_at),
            "last_used_at": isoformat(self.last_used_at),
            "rate_limit": self.rate_limit,
            "metadata": dict(self.metadata),
            "disabled_at": isoformat(self.disabled_at),
            "allowed_ips": list(self.allowed_ips),
            "quota": _quota_object(self.quota),
            "canary": self.canary,
        }
        if self.type == "signing":
            data["fingerprint"] = self.lookup
            data["public_key"] = self.public_key
        return data


def _quota_object(quota: Quota | None) -> dict[str, Any] | None:
    if quota is None:
        return None
    return {**quota.spec(), "remaining": quota.available()}


def check_record(record: KeyRecord, now: datetime) -> None:
    """Refuse a revoked, expired or disabled key; only its holder ever reads why."""
    if record.revoked_at is not None:
        raise Unauthorized("API key has been revoked")
    if record.expires_at is not None and record.expires_at <= now:
        raise Unauthorized("API key has expired")
    if record.disabled_at is not None:
        raise Unauthorized("API key is disabled")
