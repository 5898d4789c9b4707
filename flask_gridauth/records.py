"""The stored form of a key: :class:`KeyRecord`, for API keys and signing keys alike."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

KeyType = Literal["api_key", "signing"]
KeyStatus = Literal["active", "expired", "revoked"]


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

    @property
    def fingerprint(self) -> str | None:
        """The public key's fingerprint, for signing keys."""
        return self.lookup if self.type == "signing" else None

    def status(self, now: datetime | None = None) -> KeyStatus:
        """``revoked``, ``expired`` or ``active`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
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
        }
        if self.type == "signing":
            data["fingerprint"] = self.lookup
            data["public_key"] = self.public_key
        return data
