"""Key records as rows of the SQLite backend's ``gridauth_keys`` table, and back."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..records import KeyRecord, Quota
from .values import from_epoch, quota_state

_COLUMNS = (
    "seq, id, lookup, name, type, prefix, scopes, environment, owner,"
    " created_at, expires_at, revoked_at, last_used_at, metadata, rate_limit, public_key,"
    " disabled_at, allowed_ips, canary, quota_limit, quota_refill_amount, quota_refill_interval"
)
#: The record's columns plus the quota counter, which the hot path does not read (it changes on every use).
_FULL_COLUMNS = _COLUMNS + ", quota_remaining, quota_refilled_at"
_TIME_FIELDS = frozenset({"expires_at", "revoked_at", "disabled_at"})
_JSON_FIELDS = frozenset({"scopes", "metadata", "allowed_ips"})


def _record(row: tuple[Any, ...]) -> KeyRecord:
    quota = None
    if row[19] is not None:
        quota = Quota(
            row[19],
            row[20],
            row[21],
            remaining=row[22] if len(row) > 22 else None,
            refilled_at=from_epoch(row[23]) if len(row) > 23 else None,
        )
    return KeyRecord(
        seq=row[0],
        id=row[1],
        lookup=row[2],
        name=row[3],
        type=row[4],
        prefix=row[5],
        scopes=tuple(json.loads(row[6])),
        environment=row[7],
        owner=row[8],
        created_at=datetime.fromtimestamp(row[9], UTC),
        expires_at=from_epoch(row[10]),
        revoked_at=from_epoch(row[11]),
        last_used_at=from_epoch(row[12]),
        metadata=json.loads(row[13]),
        rate_limit=row[14],
        public_key=row[15],
        disabled_at=from_epoch(row[16]),
        allowed_ips=tuple(json.loads(row[17])) if row[17] else (),
        canary=bool(row[18]),
        quota=quota,
    )


def _quota_columns(quota: Quota | None, since: datetime) -> dict[str, Any]:
    """The quota columns of a new or re-set quota, counter included."""
    remaining, refilled_at = quota_state(quota, since)
    return {
        "quota_limit": None if quota is None else quota.limit,
        "quota_refill_amount": None if quota is None else quota.refill_amount,
        "quota_refill_interval": None if quota is None else quota.refill_interval,
        "quota_remaining": remaining,
        "quota_refilled_at": refilled_at,
    }
