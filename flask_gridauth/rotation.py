"""Rotating an API key in storage: the successor's record, and the order of the storage steps.

:meth:`~flask_gridauth.management.KeyManager.rotate` checks who may rotate
what; this module does the rotation itself. The claim on the old key
(:meth:`~flask_gridauth.storage.Storage.mark_rotated`) is atomic, so of
concurrent rotations of one key exactly one wins.

The successor is stored *before* the claim. Storing can fail (the storage
goes away, a constraint refuses the row); had the old key been claimed
first, that failure would leave it marked rotated, retiring at the end of its
grace period, with no successor anyone holds: a lock-out. In this order a
failed add changes nothing. A claim that is lost (another rotation won, or
the key was revoked meanwhile) revokes the successor again: its secret was
never shown to anyone, so it can authenticate no one either way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from .errors import Conflict, StorageError
from .keys import display_prefix, generate_key, hash_key
from .records import KeyRecord, new_key_id
from .schema import check_environment
from .storage import Storage

logger = logging.getLogger("flask_gridauth")


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
    """Store ``old``'s successor, then claim ``old``'s rotation: ``(stored successor, raw key)``, or 409.

    Whatever fails, ``old`` is left usable unless its rotation was claimed (see the module's docstring).
    """
    new, raw_key = successor(old, key_prefix=key_prefix, rate_limit=rate_limit, now=now)
    stored = storage.add(new)  # first: if it fails, nothing has changed
    try:
        # Atomic: of concurrent rotations of one key exactly one wins, and a key rotated
        # before (still in its grace period) or revoked meanwhile cannot be rotated again.
        claimed = storage.mark_rotated(old.id, expires_at=retirement(old, grace, now), rotated_at=now)
    except BaseException:
        _withdraw(storage, stored, now)
        raise
    if not claimed:
        _withdraw(storage, stored, now)
        raise Conflict("This key was already rotated or revoked")
    return stored, raw_key


def _withdraw(storage: Storage, stored: KeyRecord, now: datetime) -> None:
    """Revoke a successor whose rotation did not happen (its secret was never shown), as far as storage lets us."""
    try:
        storage.update(stored.id, {"revoked_at": now})
    except StorageError:
        # Its raw key exists only in this request, which fails: the record can authenticate no one.
        logger.warning("rotation not claimed: its unused successor %s could not be revoked", stored.id)
    else:
        logger.info("rotation not claimed: its unused successor %s was revoked", stored.id)
