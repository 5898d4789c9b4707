"""Key records as rows of the SQL backends' ``gridauth_keys`` table, and back: one mapping for SQLite and PostgreSQL.

The two differ only in how a time is stored (epoch seconds in SQLite, ``timestamptz``
in PostgreSQL) and how JSON is bound; :class:`~flask_gridauth.storage.sql.SQLStorage`
passes those as hooks. A row is read in the order of :data:`COLUMNS`, with the quota
counter (``quota_remaining``, ``quota_refilled_at``) after it when the query asked for it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ..records import REFILL_SECONDS, KeyRecord, Quota
from .values import from_epoch, quota_state

#: The columns of a record, in the order :func:`record_from_row` reads them (the quota counter excluded:
#: the hot path does not read it, it changes on every use). A backend may wrap some in casts.
COLUMNS = (
    "seq", "id", "lookup", "name", "type", "prefix", "scopes", "environment", "owner",
    "created_at", "expires_at", "revoked_at", "last_used_at", "metadata", "rate_limit", "public_key",
    "disabled_at", "allowed_ips", "canary", "quota_limit", "quota_refill_amount", "quota_refill_interval",
)  # fmt: skip
#: The quota counter's columns, read after :data:`COLUMNS` by every query but the hot path's.
COUNTER_COLUMNS = ", quota_remaining, quota_refilled_at"
#: The columns :meth:`SQLStorage.add <flask_gridauth.storage.sql.SQLStorage.add>` writes, in order.
INSERT_COLUMNS = ", ".join(COLUMNS[1:]) + COUNTER_COLUMNS
#: Fields stored as times (epoch seconds or ``timestamptz``), lists and objects (JSON).
TIME_FIELDS = frozenset({"expires_at", "revoked_at", "disabled_at"})
LIST_FIELDS = frozenset({"scopes", "allowed_ips"})
#: SQL of the seconds in the row's quota refill interval (``NULL`` without one).
INTERVAL_SECONDS = (
    "(CASE quota_refill_interval "
    + " ".join(f"WHEN '{name}' THEN {seconds}" for name, seconds in REFILL_SECONDS.items())
    + " END)"
)


def record_from_row(row: tuple[Any, ...], time: Callable[[Any], Any]) -> KeyRecord:
    """The record of ``row``; ``time`` reads a stored time (``None`` stays ``None``)."""
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
        created_at=time(row[9]),
        expires_at=time(row[10]),
        revoked_at=time(row[11]),
        last_used_at=time(row[12]),
        metadata=json.loads(row[13]),
        rate_limit=row[14],
        public_key=row[15],
        disabled_at=time(row[16]),
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


def quota_columns(quota: Quota | None, since: datetime) -> dict[str, Any]:
    """The quota columns of a new or re-set quota, counter included."""
    remaining, refilled_at = quota_state(quota, since)
    return {
        "quota_limit": None if quota is None else quota.limit,
        "quota_refill_amount": None if quota is None else quota.refill_amount,
        "quota_refill_interval": None if quota is None else quota.refill_interval,
        "quota_remaining": remaining,
        "quota_refilled_at": refilled_at,
    }
