"""The Python API for keys: the one place that creates, lists, revokes and rotates them.

The blueprint, the CLI and the dashboard all call :class:`KeyManager`, so its
rules (the one input schema of :mod:`.schema`, owner isolation, no escalation)
hold everywhere; they only translate their input and show the errors.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from flask import current_app, has_app_context

from . import signals
from .audit import Actor, AuditLog
from .ceilings import RateCeilings
from .errors import Conflict, Forbidden, InvalidRequest, NotFound
from .grants import check_scopes_held, owner_for, pay_for_quota
from .keys import display_prefix, generate_key, hash_key
from .management_owners import OwnerLimitManagement
from .principal import Principal
from .records import KeyRecord, new_key_id, utcnow
from .rotation import rotate_key
from .schema import (
    MAX_DURATION,
    MAX_METADATA_BYTES,
    MAX_NAME,
    MAX_SCOPES,
    UNSET,
    NewKey,
    check_duration,
    check_environment,
    check_expires_at,
    check_metadata,
    check_name,
    check_rate_limit,
    check_scopes,
    parse_create,
    parse_rotation,
    parse_update,
)
from .storage import KeyExistsError, Storage

logger = logging.getLogger("flask_gridauth")

# The rules live in :mod:`.schema`; these names stay importable from here.
validate_name = check_name
validate_scopes = check_scopes
validate_expires_at = check_expires_at
validate_rate_limit = check_rate_limit
validate_metadata = check_metadata
validate_environment = check_environment
_UNSET: Any = UNSET
__all__ = ["MAX_DURATION", "MAX_METADATA_BYTES", "MAX_NAME", "MAX_SCOPES", "KeyManager"]


def validate_duration(value: object, field: str, *, allow_zero: bool = False) -> int:
    """Whole seconds, positive (or zero), at most ten years."""
    return check_duration(value, field, low=0 if allow_zero else 1)


def _given(**fields: Any) -> dict[str, Any]:
    """The keyword arguments a caller really gave (``None`` means "not given" for optional fields)."""
    return {k: v for k, v in fields.items() if v is not None and v is not _UNSET}


def _send(signal: Any, **kwargs: Any) -> None:
    sender = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]
    signal.send(sender, **kwargs)


class KeyManager(OwnerLimitManagement):
    """Create, read, list, update, revoke and rotate keys in one app's storage.

    Every input goes through the one schema (:mod:`flask_gridauth.schema`) here,
    whoever calls: the blueprint, the dashboard, the CLI or an app's own code.
    ``owner=None`` on a read or change means any owner (the bootstrap token);
    otherwise a key of another owner is :class:`~flask_gridauth.errors.NotFound`,
    exactly like a missing one. ``by`` is the principal asking (``None``: the
    operator, e.g. the CLI): it can only grant scopes it holds itself. Every
    change is recorded in ``audit`` with ``by`` as its actor (default: the
    request's principal, or the shell user outside a request).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        key_prefix: str,
        audit: AuditLog | None = None,
        ceilings: RateCeilings | None = None,
    ) -> None:
        self.storage = storage
        self.key_prefix = key_prefix
        self.audit = audit if audit is not None else AuditLog(storage)
        #: Rate-limit ceilings (none unless the app's configuration gives them).
        self.ceilings = ceilings or RateCeilings()
        self.owner_limit_listeners = []

    def _audit(self, action: str, record: KeyRecord, by: Principal | Actor | None, **details: Any) -> None:
        """Record ``action`` on ``record`` (never its secret or hash: only what the key object shows)."""
        self.audit.record(action, target_id=record.id, owner=record.owner, by=by, details=details)

    # -- owners --------------------------------------------------------------

    def owner_for(self, by: Principal | None, requested: object = None) -> str:
        """The owner a call acts for: ``requested`` if ``by`` may act for it, else ``by``'s own.

        The owner rule (:func:`~flask_gridauth.schema.check_owner`) holds for every
        owner named explicitly; only the bootstrap token and the operator name
        another owner than their own (403 otherwise).
        """
        return owner_for(by, requested)

    # -- reads ---------------------------------------------------------------

    def get(self, key_id: str, *, owner: str | None = None) -> KeyRecord:
        """One key, or 404 if it is missing or not ``owner``'s."""
        record = self.storage.get(key_id) if isinstance(key_id, str) and len(key_id) <= 100 else None
        if record is None or (owner is not None and record.owner != owner):
            raise NotFound("API key not found")
        return record

    def list(self, *, owner: str | None = None, limit: int = 20, before_seq: int | None = None) -> list[KeyRecord]:
        """Keys newest first; ``before_seq`` continues a page."""
        return self.storage.list(owner, limit=limit, before_seq=before_seq)

    # -- creation ------------------------------------------------------------

    def _store(self, record: KeyRecord, by: Principal | None) -> KeyRecord:
        stored = self.storage.add(record)
        logger.info(
            "key created: id=%s prefix=%s owner=%s type=%s", stored.id, stored.prefix, stored.owner, stored.type
        )
        _send(signals.key_created, key=stored)
        details: dict[str, Any] = {"name": stored.name, "scopes": list(stored.scopes), "prefix": stored.prefix}
        if stored.type == "signing":
            self._audit("signing_key.registered", stored, by, **details)
        else:
            self._audit("key.created", stored, by, environment=stored.environment, **details)
        return stored

    def create_from(self, data: Mapping[str, Any], *, by: Principal | None = None) -> tuple[KeyRecord, str | None]:
        """Create what a ``create`` input describes: ``(record, raw key)``; signing keys have no raw key."""
        spec = parse_create(data)
        if spec.type == "signing":
            return self._register(spec, by), None
        return self._create(spec, by)

    def _common(self, spec: NewKey, by: Principal | None) -> dict[str, Any]:
        """The fields every new key shares, once the caller may create it."""
        owner = self.owner_for(by, spec.owner)
        check_scopes_held(by, spec.scopes)
        now = utcnow()
        common: dict[str, Any] = {
            "id": new_key_id(),
            "name": spec.name,
            "scopes": spec.scopes,
            "owner": owner,
            "created_at": now,
            "expires_at": spec.expiry(now),
            "rate_limit": self.ceilings.apply(by, spec.rate_limit, spec.type),
            "metadata": spec.metadata,
            "allowed_ips": spec.allowed_ips,
            "quota": spec.quota,
        }
        pay_for_quota(self.storage, by, spec.quota)  # last: nothing is spent for a refused key
        return common

    def _register(self, spec: NewKey, by: Principal | None) -> KeyRecord:
        from .credentials.signature import load_public_key

        encoded, fingerprint = load_public_key(spec.public_key)
        record = KeyRecord(
            type="signing",
            lookup=fingerprint,
            prefix=fingerprint[:8],
            environment="live",
            public_key=encoded,
            **self._common(spec, by),
        )
        try:
            return self._store(record, by)
        except KeyExistsError:
            raise InvalidRequest("this public key is already registered", field="public_key") from None

    def _create(self, spec: NewKey, by: Principal | None) -> tuple[KeyRecord, str]:
        common = self._common(spec, by)
        raw_key = generate_key(self.key_prefix, spec.environment)
        record = KeyRecord(
            type="api_key",
            lookup=hash_key(raw_key),
            prefix=display_prefix(raw_key, self.key_prefix),
            environment=spec.environment,
            canary=spec.canary,
            **common,
        )
        return self._store(record, by), raw_key

    def create(
        self,
        *,
        name: str,
        scopes: Sequence[str],
        owner: str | None = None,
        by: Principal | None = None,
        environment: str = "live",
        expires_in: int | None = None,
        expires_at: datetime | str | None = None,
        rate_limit: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        allowed_ips: Sequence[str] | None = None,
        quota: Mapping[str, Any] | None = None,
        canary: bool = False,
    ) -> tuple[KeyRecord, str]:
        """A new API key: the record and the raw key, which is never available again."""
        data = _given(
            expires_in=expires_in,
            expires_at=expires_at,
            rate_limit=rate_limit,
            metadata=metadata,
            allowed_ips=allowed_ips,
            quota=quota,
        )
        if canary:
            data["canary"] = True
        if owner is not None and (by is None or owner != by.owner):
            data["owner"] = owner
        spec = parse_create({"name": name, "scopes": scopes, "environment": environment, **data})
        return self._create(spec, by)

    def register_signing_key(
        self,
        *,
        name: str,
        public_key: str,
        scopes: Sequence[str],
        owner: str | None = None,
        by: Principal | None = None,
        expires_in: int | None = None,
        expires_at: datetime | str | None = None,
        rate_limit: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> KeyRecord:
        """Register an Ed25519 public key (standard base64 of its 32 raw bytes)."""
        data = _given(expires_in=expires_in, expires_at=expires_at, rate_limit=rate_limit, metadata=metadata)
        if owner is not None and (by is None or owner != by.owner):
            data["owner"] = owner
        spec = parse_create({"name": name, "scopes": scopes, "type": "signing", "public_key": public_key, **data})
        return self._register(spec, by)

    # -- changes -------------------------------------------------------------

    def update_from(
        self, key_id: str, data: Mapping[str, Any], *, owner: str | None = None, by: Principal | None = None
    ) -> KeyRecord:
        """Apply an ``update`` input: rename, re-label, narrow the scopes of, or re-limit a key."""
        changes = parse_update(data).given()
        record = self.get(key_id, owner=owner)
        if not changes:
            return record  # nothing to write, nothing to audit (a form saved unchanged)
        if "scopes" in changes and not set(changes["scopes"]) <= set(record.scopes):
            raise Forbidden("A key's scopes can only shrink")
        if "rate_limit" in changes:
            changes["rate_limit"] = self.ceilings.apply(by, changes["rate_limit"], record.type)
        if "quota" in changes:
            own_key = by.key if by is not None else None
            if own_key is not None and own_key.quota is not None and own_key.id == record.id:
                raise Forbidden("A key bound by a quota cannot change its own quota")
            pay_for_quota(self.storage, by, changes["quota"])  # last: nothing is spent for a refused change
        updated = self.storage.update(record.id, changes)
        if updated is None:
            raise NotFound("API key not found")
        details: dict[str, Any] = {"fields": sorted(changes)}
        if "scopes" in changes:
            details["scopes"] = {"from": list(record.scopes), "to": list(updated.scopes)}
        if "name" in changes:
            details["name"] = updated.name
        if "rate_limit" in changes:
            details["rate_limit"] = updated.rate_limit
        self._audit("key.updated", updated, by, **details)
        return updated

    def update(
        self,
        key_id: str,
        *,
        owner: str | None = None,
        by: Principal | None = None,
        name: str = _UNSET,
        metadata: Mapping[str, Any] | None = _UNSET,
        scopes: Sequence[str] = _UNSET,
        rate_limit: str | None = _UNSET,
        allowed_ips: Sequence[str] = _UNSET,
        quota: Mapping[str, Any] | None = _UNSET,
    ) -> KeyRecord:
        """Rename, re-label, narrow the scopes of, re-limit, re-fence or re-quota a key. Scopes may only shrink."""
        given = {
            "name": name,
            "metadata": metadata,
            "scopes": scopes,
            "rate_limit": rate_limit,
            "allowed_ips": allowed_ips,
            "quota": quota,
        }
        return self.update_from(key_id, {k: v for k, v in given.items() if v is not _UNSET}, owner=owner, by=by)

    def revoke(self, key_id: str, *, owner: str | None = None, by: Principal | Actor | None = None) -> KeyRecord:
        """Revoke at once; revoking a revoked key changes nothing."""
        record = self.get(key_id, owner=owner)
        if record.revoked_at is not None:
            return record
        updated = self.storage.update(record.id, {"revoked_at": utcnow()})
        if updated is None:
            raise NotFound("API key not found")
        logger.info("key revoked: id=%s prefix=%s owner=%s", updated.id, updated.prefix, updated.owner)
        _send(signals.key_revoked, key=updated)
        self._audit("key.revoked", updated, by, name=updated.name, prefix=updated.prefix)
        return updated

    def rotate_from(
        self, key_id: str, data: Mapping[str, Any], *, owner: str | None = None, by: Principal | None = None
    ) -> tuple[KeyRecord, str]:
        """Apply a ``rotate`` input (``grace_period``)."""
        rotation = parse_rotation(data)
        return self._rotate(key_id, rotation.grace_period, owner=owner, by=by)

    def disable(self, key_id: str, *, owner: str | None = None, by: Principal | None = None) -> KeyRecord:
        """Switch a key off until :meth:`enable`; disabling a disabled or revoked key changes nothing."""
        record = self.get(key_id, owner=owner)
        if record.disabled_at is not None or record.revoked_at is not None:
            return record
        updated = self.storage.update(record.id, {"disabled_at": utcnow()})
        if updated is None:
            raise NotFound("API key not found")
        logger.info("key disabled: id=%s prefix=%s owner=%s", updated.id, updated.prefix, updated.owner)
        _send(signals.key_disabled, key=updated)
        self._audit("key.disabled", updated, by, name=updated.name, prefix=updated.prefix)
        return updated

    def enable(self, key_id: str, *, owner: str | None = None, by: Principal | None = None) -> KeyRecord:
        """Switch a disabled key back on (a revoked key stays revoked); enabling an enabled key changes nothing."""
        record = self.get(key_id, owner=owner)
        if record.disabled_at is None:
            return record
        updated = self.storage.update(record.id, {"disabled_at": None})
        if updated is None:
            raise NotFound("API key not found")
        logger.info("key enabled: id=%s prefix=%s owner=%s", updated.id, updated.prefix, updated.owner)
        _send(signals.key_enabled, key=updated)
        self._audit("key.enabled", updated, by, name=updated.name, prefix=updated.prefix)
        return updated

    def rotate(
        self, key_id: str, *, owner: str | None = None, by: Principal | None = None, grace_period: int = 0
    ) -> tuple[KeyRecord, str]:
        """A new secret with the same name, scopes and owner; the old one lasts ``grace_period`` seconds."""
        return self.rotate_from(key_id, {"grace_period": grace_period}, owner=owner, by=by)

    def _rotate(self, key_id: str, grace: int, *, owner: str | None, by: Principal | None) -> tuple[KeyRecord, str]:
        old = self.get(key_id, owner=owner)
        if old.type != "api_key":
            raise Conflict("Signing keys have no secret to rotate: register a new public key")
        if old.status() != "active":
            raise Conflict("Only an active key can be rotated")
        # Rotation hands out a fresh secret: the caller must hold every scope it carries.
        check_scopes_held(by, old.scopes)
        rate_limit = self.ceilings.apply(by, old.rate_limit, old.type)
        if old.quota is not None and grace:
            # One balance, two secrets: during a grace period each would spend all of it.
            raise InvalidRequest("A key with a quota is rotated without a grace period", field="grace_period")
        own_key = by.key if by is not None else None
        if own_key is not None and own_key.id != old.id:
            # The caller receives the new secret: for a caller bound by a quota that is a grant of the
            # key's quota, paid as on create (last, so a refused rotation costs nothing). Rotating its
            # own key moves its units from the old secret to the new one: nothing to pay.
            pay_for_quota(self.storage, by, old.quota)
        stored, raw_key = rotate_key(
            self.storage, old, key_prefix=self.key_prefix, rate_limit=rate_limit, grace=grace, now=utcnow()
        )
        logger.info("key rotated: id=%s new_id=%s prefix=%s grace=%ss", old.id, stored.id, stored.prefix, grace)
        _send(signals.key_rotated, key=stored, old_key=old)
        self._audit("key.rotated", old, by, new_key_id=stored.id, prefix=stored.prefix, grace_period=grace)
        return stored, raw_key
