"""The Python API for keys: the one place that creates, lists, revokes and rotates them.

The blueprint, the CLI and the dashboard all call :class:`KeyManager`, so its
rules (validation, owner isolation, no escalation) hold everywhere.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import current_app, has_app_context
from limits import parse_many

from . import signals
from .errors import Forbidden, InvalidRequest, NotFound
from .keys import ENVIRONMENTS, Environment, display_prefix, generate_key, hash_key
from .principal import Principal
from .records import KeyRecord, new_key_id, utcnow
from .scopes import is_valid_scope
from .storage import KeyExistsError, Storage

logger = logging.getLogger("flask_gridauth")

MAX_NAME = 200
MAX_SCOPES = 50
MAX_METADATA_BYTES = 4096
#: Longest lifetime or grace period accepted, in seconds (ten years).
MAX_DURATION = 10 * 365 * 24 * 3600
_UNSET: Any = object()


def validate_name(name: object) -> str:
    """A key name: 1-200 printable characters."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME or not name.isprintable() or not name.strip():
        raise InvalidRequest(f"name must be 1-{MAX_NAME} printable characters", field="name")
    return name


def validate_scopes(scopes: object, field: str = "scopes") -> tuple[str, ...]:
    """A non-empty list of scope names, without duplicates (order kept)."""
    if not isinstance(scopes, list | tuple) or not 1 <= len(scopes) <= MAX_SCOPES:
        raise InvalidRequest(f"{field} must be a list of 1-{MAX_SCOPES} scope names", field=field)
    for scope in scopes:
        if not is_valid_scope(scope):
            raise InvalidRequest(f"{field} holds an invalid scope name", field=field)
    return tuple(dict.fromkeys(scopes))


def validate_duration(value: object, field: str, *, allow_zero: bool = False) -> int:
    """Whole seconds, positive (or zero), at most ten years."""
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= MAX_DURATION:
        raise InvalidRequest(f"{field} must be a whole number of seconds from {low} to {MAX_DURATION}", field=field)
    return value


def validate_expires_at(value: object) -> datetime:
    """An ISO 8601 time (with a zone, or UTC assumed) in the future."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidRequest("expires_at must be an ISO 8601 time", field="expires_at") from None
    if not isinstance(value, datetime):
        raise InvalidRequest("expires_at must be an ISO 8601 time", field="expires_at")
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    if value <= utcnow():
        raise InvalidRequest("expires_at must be in the future", field="expires_at")
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-23:59 is past year 9999 in UTC
        raise InvalidRequest("expires_at is out of range", field="expires_at") from None
    if value > utcnow() + timedelta(seconds=MAX_DURATION):
        raise InvalidRequest("expires_at must be at most ten years away", field="expires_at")
    return value


def validate_rate_limit(value: object) -> str | None:
    """A flask-limiter limit string such as ``100/minute``, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 100:
        raise InvalidRequest("rate_limit must be a limit such as '100/minute'", field="rate_limit")
    try:
        parsed = parse_many(value)
    except ValueError:
        raise InvalidRequest("rate_limit must be a limit such as '100/minute'", field="rate_limit") from None
    if not parsed:
        raise InvalidRequest("rate_limit must be a limit such as '100/minute'", field="rate_limit")
    return value


def validate_metadata(value: object) -> dict[str, Any]:
    """A JSON object of at most 4 KB."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidRequest("metadata must be a JSON object", field="metadata")
    try:
        size = len(json.dumps(value).encode())
    except (TypeError, ValueError):
        raise InvalidRequest("metadata must be a JSON object", field="metadata") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidRequest(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON", field="metadata")
    return value


def validate_environment(value: object) -> Environment:
    """``live`` or ``test``."""
    if value not in ENVIRONMENTS:
        raise InvalidRequest("environment must be 'live' or 'test'", field="environment")
    return value


def _send(signal: Any, **kwargs: Any) -> None:
    sender = current_app._get_current_object() if has_app_context() else None  # type: ignore[attr-defined]
    signal.send(sender, **kwargs)


class KeyManager:
    """Create, read, list, update, revoke and rotate keys in one app's storage.

    ``owner=None`` on a read or change means any owner (the bootstrap token);
    otherwise a key of another owner is :class:`~flask_gridauth.errors.NotFound`,
    exactly like a missing one. ``by`` is the principal asking: it can only
    grant scopes it holds itself.
    """

    def __init__(self, storage: Storage, *, key_prefix: str) -> None:
        self.storage = storage
        self.key_prefix = key_prefix

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

    def _check_grant(self, by: Principal | None, scopes: Sequence[str]) -> None:
        if by is None:
            return
        missing = [s for s in scopes if not by.has_scope(s)]
        if missing:
            raise Forbidden("Cannot grant a scope you do not hold: " + ", ".join(missing))

    def _expiry(self, expires_in: object, expires_at: object, now: datetime) -> datetime | None:
        if expires_in is not None and expires_at is not None:
            raise InvalidRequest("give expires_in or expires_at, not both", field="expires_in")
        if expires_in is not None:
            return now + timedelta(seconds=validate_duration(expires_in, "expires_in"))
        if expires_at is not None:
            return validate_expires_at(expires_at)
        return None

    def _validated(
        self,
        name: object,
        scopes: object,
        expires_in: object,
        expires_at: object,
        rate_limit: object,
        metadata: object,
    ) -> dict[str, Any]:
        """The fields every new key shares, validated: name, scopes, times, limit and metadata."""
        now = utcnow()
        return {
            "name": validate_name(name),
            "scopes": validate_scopes(scopes),
            "created_at": now,
            "expires_at": self._expiry(expires_in, expires_at, now),
            "rate_limit": validate_rate_limit(rate_limit),
            "metadata": dict(validate_metadata(metadata)),
        }

    def _store(self, record: KeyRecord) -> KeyRecord:
        stored = self.storage.add(record)
        logger.info(
            "key created: id=%s prefix=%s owner=%s type=%s", stored.id, stored.prefix, stored.owner, stored.type
        )
        _send(signals.key_created, key=stored)
        return stored

    def create(
        self,
        *,
        name: str,
        scopes: Sequence[str],
        owner: str,
        by: Principal | None = None,
        environment: str = "live",
        expires_in: int | None = None,
        expires_at: datetime | str | None = None,
        rate_limit: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[KeyRecord, str]:
        """A new API key: the record and the raw key, which is never available again."""
        fields = self._validated(name, scopes, expires_in, expires_at, rate_limit, metadata)
        env = validate_environment(environment)
        self._check_grant(by, fields["scopes"])
        raw_key = generate_key(self.key_prefix, env)
        record = KeyRecord(
            id=new_key_id(),
            type="api_key",
            lookup=hash_key(raw_key),
            prefix=display_prefix(raw_key, self.key_prefix),
            environment=env,
            owner=owner,
            **fields,
        )
        return self._store(record), raw_key

    def register_signing_key(
        self,
        *,
        name: str,
        public_key: str,
        scopes: Sequence[str],
        owner: str,
        by: Principal | None = None,
        expires_in: int | None = None,
        expires_at: datetime | str | None = None,
        rate_limit: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> KeyRecord:
        """Register an Ed25519 public key (standard base64 of its 32 raw bytes)."""
        from .credentials.signature import load_public_key

        fields = self._validated(name, scopes, expires_in, expires_at, rate_limit, metadata)
        encoded, fingerprint = load_public_key(public_key)
        self._check_grant(by, fields["scopes"])
        record = KeyRecord(
            id=new_key_id(),
            type="signing",
            lookup=fingerprint,
            prefix=fingerprint[:8],
            environment="live",
            owner=owner,
            public_key=encoded,
            **fields,
        )
        try:
            return self._store(record)
        except KeyExistsError:
            raise InvalidRequest("this public key is already registered", field="public_key") from None

    # -- changes -------------------------------------------------------------

    def update(
        self,
        key_id: str,
        *,
        owner: str | None = None,
        name: str = _UNSET,
        metadata: Mapping[str, Any] | None = _UNSET,
        scopes: Sequence[str] = _UNSET,
        rate_limit: str | None = _UNSET,
    ) -> KeyRecord:
        """Rename, re-label, narrow the scopes of, or re-limit a key. Scopes may only shrink."""
        record = self.get(key_id, owner=owner)
        changes: dict[str, Any] = {}
        if name is not _UNSET:
            changes["name"] = validate_name(name)
        if metadata is not _UNSET:
            changes["metadata"] = validate_metadata(metadata)
        if rate_limit is not _UNSET:
            changes["rate_limit"] = validate_rate_limit(rate_limit)
        if scopes is not _UNSET:
            narrowed = validate_scopes(scopes)
            if not set(narrowed) <= set(record.scopes):
                raise Forbidden("A key's scopes can only shrink")
            changes["scopes"] = narrowed
        updated = self.storage.update(record.id, changes)
        if updated is None:
            raise NotFound("API key not found")
        return updated

    def revoke(self, key_id: str, *, owner: str | None = None) -> KeyRecord:
        """Revoke at once; revoking a revoked key changes nothing."""
        record = self.get(key_id, owner=owner)
        if record.revoked_at is not None:
            return record
        updated = self.storage.update(record.id, {"revoked_at": utcnow()})
        if updated is None:
            raise NotFound("API key not found")
        logger.info("key revoked: id=%s prefix=%s owner=%s", updated.id, updated.prefix, updated.owner)
        _send(signals.key_revoked, key=updated)
        return updated

    def rotate(
        self, key_id: str, *, owner: str | None = None, by: Principal | None = None, grace_period: int = 0
    ) -> tuple[KeyRecord, str]:
        """A new secret with the same name, scopes and owner; the old one lasts ``grace_period`` seconds."""
        grace = validate_duration(grace_period, "grace_period", allow_zero=True)
        old = self.get(key_id, owner=owner)
        if old.type != "api_key":
            raise InvalidRequest("signing keys have no secret to rotate: register a new public key", field="id")
        if old.status() != "active":
            raise InvalidRequest("only an active key can be rotated", field="id")
        # Rotation hands out a fresh secret: the caller must hold every scope it carries.
        self._check_grant(by, old.scopes)
        now = utcnow()
        raw_key = generate_key(self.key_prefix, validate_environment(old.environment))
        new = KeyRecord(
            id=new_key_id(),
            name=old.name,
            type="api_key",
            lookup=hash_key(raw_key),
            prefix=display_prefix(raw_key, self.key_prefix),
            scopes=old.scopes,
            environment=old.environment,
            owner=old.owner,
            created_at=now,
            expires_at=old.expires_at,
            metadata=dict(old.metadata),
            rate_limit=old.rate_limit,
        )
        stored = self.storage.add(new)
        retire_at = now + timedelta(seconds=grace)
        if old.expires_at is None or old.expires_at > retire_at:
            self.storage.update(old.id, {"expires_at": retire_at})
        logger.info("key rotated: id=%s new_id=%s prefix=%s grace=%ss", old.id, stored.id, stored.prefix, grace)
        _send(signals.key_rotated, key=stored, old_key=old)
        return stored, raw_key
