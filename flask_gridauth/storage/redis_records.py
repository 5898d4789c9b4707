"""Key records as the Redis backends store them: ``d`` (JSON) and the quota counter ``q``/``qt``.

Shared by :mod:`flask_gridauth.storage.redis` and :mod:`flask_gridauth.storage.cluster`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from ..records import KeyRecord, Quota
from .values import from_epoch, quota_state, to_epoch


def _dump(record: KeyRecord) -> str:
    """The JSON of ``d``: every field but ``last_used_at``."""
    return json.dumps(
        {
            "seq": record.seq,
            "id": record.id,
            "name": record.name,
            "type": record.type,
            "lookup": record.lookup,
            "prefix": record.prefix,
            "scopes": list(record.scopes),
            "environment": record.environment,
            "owner": record.owner,
            "created_at": to_epoch(record.created_at),
            "expires_at": to_epoch(record.expires_at),
            "revoked_at": to_epoch(record.revoked_at),
            "metadata": record.metadata,
            "rate_limit": record.rate_limit,
            "public_key": record.public_key,
            "disabled_at": to_epoch(record.disabled_at),
            "allowed_ips": list(record.allowed_ips),
            "canary": record.canary,
            "quota": None if record.quota is None else _quota_dump(record.quota),
        }
    )


def _quota_dump(quota: Quota) -> dict[str, Any]:
    return {"limit": quota.limit, "refill_amount": quota.refill_amount, "refill_interval": quota.refill_interval}


def _quota_counter(quota: Quota | None, since: datetime) -> tuple[str, str]:
    """``q`` and ``qt`` of a new or re-set quota as script arguments; ``('-', '')`` for none."""
    remaining, refilled_at = quota_state(quota, since)
    if remaining is None or refilled_at is None:
        return "-", ""
    return str(remaining), f"{refilled_at:.6f}"


def _load(pair: list[bytes | None] | None) -> KeyRecord | None:
    """A record from ``[d, u]`` (or ``[d, u, q, qt]``, with the quota counter) as HMGET returns them.

    Fields added in 0.2 take their defaults in a record written by 0.1.
    """
    if not pair or pair[0] is None:
        return None
    data = json.loads(pair[0])
    used = pair[1]
    quota = None
    spec = data.get("quota")
    if spec:
        left = pair[2] if len(pair) > 2 else None
        at = pair[3] if len(pair) > 3 else None
        quota = Quota(
            spec["limit"],
            spec["refill_amount"],
            spec["refill_interval"],
            remaining=None if left is None else int(left),
            refilled_at=None if at is None else datetime.fromtimestamp(float(at), UTC),
        )
    return KeyRecord(
        seq=data["seq"],
        id=data["id"],
        name=data["name"],
        type=data["type"],
        lookup=data["lookup"],
        prefix=data["prefix"],
        scopes=tuple(data["scopes"]),
        environment=data["environment"],
        owner=data["owner"],
        created_at=datetime.fromtimestamp(data["created_at"], UTC),
        expires_at=from_epoch(data["expires_at"]),
        revoked_at=from_epoch(data["revoked_at"]),
        last_used_at=None if used is None else datetime.fromtimestamp(float(used), UTC),
        metadata=data["metadata"],
        rate_limit=data["rate_limit"],
        public_key=data["public_key"],
        disabled_at=from_epoch(data.get("disabled_at")),
        allowed_ips=tuple(data.get("allowed_ips") or ()),
        canary=bool(data.get("canary", False)),
        quota=quota,
    )
