"""What keys did, as storage holds it: audit events and hourly usage counts.

Flask-free data only; :mod:`flask_gridauth.audit` writes the events and
:mod:`flask_gridauth.usage` counts the requests.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .records import isoformat

#: Every action an audit event may record.
ACTIONS = (
    "key.created",
    "key.updated",
    "key.rotated",
    "key.revoked",
    "key.disabled",
    "key.enabled",
    "key.leaked",
    "key.canary_used",
    "signing_key.registered",
    "owner.limit_updated",
    "dashboard.signed_in",
    "dashboard.signed_out",
)

#: Seconds in one usage bucket.
HOUR = 3600


def new_event_id() -> str:
    """A fresh, unguessable audit event id."""
    return "evt_" + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a principal's ``kind``, ``id`` and ``owner``, or ``cli`` / ``system``."""

    kind: str
    id: str
    owner: str | None

    def to_dict(self) -> dict[str, Any]:
        """The ``actor`` object of an event."""
        return {"kind": self.kind, "id": self.id, "owner": self.owner}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One audit event: never a secret, never a hash.

    ``seq`` is the append order storage assigns (newest first = highest
    ``seq``); ``owner`` is the owner of the target, the one whose log it is in.
    """

    id: str
    action: str
    actor: Actor
    target_id: str | None
    owner: str | None
    remote_addr: str | None
    created_at: datetime
    details: Mapping[str, Any] = field(default_factory=dict)
    seq: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The public ``audit_event`` object."""
        return {
            "object": "audit_event",
            "id": self.id,
            "action": self.action,
            "actor": self.actor.to_dict(),
            "target_id": self.target_id,
            "owner": self.owner,
            "remote_addr": self.remote_addr,
            "created_at": isoformat(self.created_at),
            "details": dict(self.details),
        }

    def to_row(self) -> dict[str, Any]:
        """A JSON-ready form for backends that store a document (epoch seconds for the time)."""
        return {
            "seq": self.seq,
            "id": self.id,
            "action": self.action,
            "actor": self.actor.to_dict(),
            "target_id": self.target_id,
            "owner": self.owner,
            "remote_addr": self.remote_addr,
            "created_at": self.created_at.timestamp(),
            "details": dict(self.details),
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AuditEvent:
        """The inverse of :meth:`to_row`."""
        actor = row["actor"]
        return cls(
            seq=int(row["seq"]),
            id=row["id"],
            action=row["action"],
            actor=Actor(kind=actor["kind"], id=actor["id"], owner=actor["owner"]),
            target_id=row["target_id"],
            owner=row["owner"],
            remote_addr=row["remote_addr"],
            created_at=datetime.fromtimestamp(float(row["created_at"]), UTC),
            details=row["details"],
        )


@dataclass(frozen=True, slots=True)
class UsageCount:
    """Requests of one key in one hour: allowed, forbidden (403) and rate-limited (429).

    ``hour`` is the bucket's start in epoch seconds (a multiple of 3600);
    ``scopes`` counts, per scope name, the allowed requests that needed it.
    Storage adds counts to what it holds (:meth:`~flask_gridauth.storage.Storage.add_usage`).
    """

    key_id: str
    hour: int
    allowed: int = 0
    forbidden: int = 0
    rate_limited: int = 0
    scopes: Mapping[str, int] = field(default_factory=dict)

    @property
    def start(self) -> datetime:
        """The bucket's first instant."""
        return datetime.fromtimestamp(self.hour, UTC)


def hour_of(epoch: float) -> int:
    """The start (epoch seconds) of the hour that holds ``epoch``."""
    return int(epoch) // HOUR * HOUR
