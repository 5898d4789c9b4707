"""Row <-> record conversion for the PostgreSQL backend's ``gridauth_keys`` table."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from ..records import KeyRecord, Quota
from .values import from_epoch, quota_state


def _record(row: tuple[Any, ...]) -> KeyRecord:
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
        created_at=row[9],
        expires_at=row[10],
        revoked_at=row[11],
        last_used_at=row[12],
        metadata=json.loads(row[13]),
        rate_limit=row[14],
        public_key=row[15],
        disabled_at=row[16],
        allowed_ips=tuple(json.loads(row[17])) if row[17] else (),
        canary=bool(row[18]),
        quota=_quota(row),
    )


def _quota(row: tuple[Any, ...]) -> Quota | None:
    if row[19] is None:
        return None
    full = len(row) > 22
    return Quota(
        int(row[19]),
        None if row[20] is None else int(row[20]),
        row[21],
        remaining=int(row[22]) if full and row[22] is not None else None,
        refilled_at=from_epoch(row[23]) if full else None,
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
