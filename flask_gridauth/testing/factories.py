"""Fresh records for tests: an API key record and an audit event, each unique, with fields to override."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..activity import Actor, AuditEvent, new_event_id
from ..keys import hash_key
from ..records import KeyRecord, new_key_id, utcnow


def make_record(owner: str = "alice", **changes: Any) -> KeyRecord:
    """A fresh API key record with a unique id and lookup; ``changes`` replace fields."""
    key_id = new_key_id()
    record = KeyRecord(
        id=key_id,
        name="contract",
        type="api_key",
        lookup=hash_key(key_id),
        prefix="grd_live_00000000",
        scopes=("read", "holdings:write"),
        environment="live",
        owner=owner,
        created_at=utcnow().replace(microsecond=0),
        metadata={"team": "ops"},
    )
    return dataclasses.replace(record, **changes)


def make_event(owner: str = "alice", **changes: Any) -> AuditEvent:
    """A fresh audit event of ``owner``."""
    event = AuditEvent(
        id=new_event_id(),
        action="key.created",
        actor=Actor(kind="token", id="token", owner="admin"),
        target_id="key_x",
        owner=owner,
        remote_addr="127.0.0.1",
        created_at=utcnow().replace(microsecond=0),
        details={},
    )
    return dataclasses.replace(event, **changes)
