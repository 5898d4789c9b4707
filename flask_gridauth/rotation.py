"""Rotating an API key in storage: the successor's record, and the order of the storage steps.

:meth:`~flask_gridauth.management.KeyManager.rotate` checks who may rotate
what; this module does the rotation itself. The claim on the old key
(:meth:`~flask_gridauth.storage.Storage.mark_rotated`) is atomic, so of
concurrent rotations of one key exactly one wins.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from .errors import Conflict
from .keys import display_prefix, generate_key, hash_key
from .records import KeyRecord, new_key_id
from .schema import check_environment
from .storage import Storage


def successor(old: KeyRecord, *, key_prefix: str, rate_limit: str | None, now: datetime) -> tuple[KeyRecord, str]:
    """The record of ``old``'s successor and its raw key: a fresh secret, everything else carried over."""
    raw_key = generate_key(key_prefix, check_environment(old.environment))
    new = KeyRecord(
        id=new_key_id(),
        name=old.name,
        type="api_key",
        lookup=hash_key(raw_key),
        prefix=display_prefix(raw_key, key_prefix),
        scopes=old.scopes,
        environment=old.environment,
        owner=old.owner,
        created_at=now,
        expires_at=old.expires_at,
        metadata=dict(old.metadata),
        rate_limit=rate_limit,
        allowed_ips=old.allowed_ips,
        # The new secret continues the old key's quota counter: rotating never refills it.
        quota=old.quota,
    )
    return new, raw_key


def retirement(old: KeyRecord, grace: int, now: datetime) -> datetime | None:
    """When ``old`` stops working once rotated: after ``grace`` seconds, or its own expiry if sooner (``None``)."""
    retire_at = now + timedelta(seconds=grace)
    return retire_at if old.expires_at is None or old.expires_at > retire_at else None


def rotate_key(
    storage: Storage, old: KeyRecord, *, key_prefix: str, rate_limit: str | None, grace: int, now: datetime
) -> tuple[KeyRecord, str]:
    """Claim ``old``'s rotation and store its successor: ``(stored successor, raw key)``, or 409."""
    new, raw_key = successor(old, key_prefix=key_prefix, rate_limit=rate_limit, now=now)
    # Claim first, atomically: of concurrent rotations of one key exactly one wins, and a key
    # rotated before (still in its grace period) or revoked meanwhile cannot be rotated again.
    if not storage.mark_rotated(old.id, expires_at=retirement(old, grace, now), rotated_at=now):
        raise Conflict("This key was already rotated or revoked")
    return storage.add(new), raw_key
