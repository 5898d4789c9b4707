"""The audit log: :class:`AuditLog`, the one writer of audit events.

The service layer (:class:`~flask_gridauth.management.KeyManager`) records
every key change through it, so the blueprint, the dashboard and the CLI
produce the same events. Other parts call :meth:`AuditLog.record` for what is
not a key change (``key.leaked``, ``key.canary_used``, ``dashboard.*``).

An event never holds a secret or a hash: :meth:`AuditLog.record` refuses
details that look like an API key or a hex digest. Events are append-only;
the only deletion is the retention purge, run lazily by the writes
themselves (one batch at most once an hour per process), never by a thread.
"""

from __future__ import annotations

import getpass
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from flask import g, has_request_context, request

from .activity import ACTIONS, Actor, AuditEvent, new_event_id
from .errors import ConfigurationError, StorageError
from .principal import G_ATTR, Principal
from .records import utcnow
from .storage import Storage

logger = logging.getLogger("flask_gridauth")

#: Events deleted per purge batch.
PURGE_BATCH = 1000
#: Seconds between two purges in one process (sooner while a batch came back full).
PURGE_INTERVAL = 3600.0
#: Default ``GRIDAUTH_AUDIT_RETENTION_DAYS``.
DEFAULT_RETENTION_DAYS = 90

# Strings an event must never hold: an API key's shape, a long hex digest, a JWT.
_SECRET_LIKE = re.compile(
    r"[A-Za-z0-9]+_(live|test)_[0-9a-f]{48}|[0-9a-fA-F]{40,}|eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.",
)


def _cli_actor() -> Actor:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in a bare container
        user = "unknown"
    return Actor(kind="cli", id=user, owner=None)


def actor_of(by: Principal | Actor | None) -> Actor:
    """Who acts: the principal given, else the request's principal, else the shell user (the CLI)."""
    if isinstance(by, Actor):
        return by
    if by is None and has_request_context():
        by = g.get(G_ATTR)
    if by is None:
        return _cli_actor() if not has_request_context() else Actor(kind="anonymous", id="anonymous", owner=None)
    return Actor(kind=by.kind, id=by.id, owner=by.owner)


def _check_details(value: Any, path: str = "details") -> None:
    """Refuse a secret-looking string anywhere in ``details`` (a programming error, caught in tests)."""
    if isinstance(value, str):
        if _SECRET_LIKE.search(value):
            raise ValueError(f"audit {path} must not hold a secret or a hash")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _check_details(key, path)
            _check_details(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        for item in value:
            _check_details(item, path)


class AuditLog:
    """Append audit events to one app's storage, and read them back.

    ``retention_days`` is ``GRIDAUTH_AUDIT_RETENTION_DAYS``; ``clock`` gives
    the time events are stamped with (tests inject one).
    """

    def __init__(
        self,
        storage: Storage,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
            raise ConfigurationError("GRIDAUTH_AUDIT_RETENTION_DAYS must be a whole number of days, at least 1")
        self.storage = storage
        self.retention = timedelta(days=retention_days)
        self.clock = clock
        self._purge_at = 0.0
        self._purge_lock = threading.Lock()

    def record(
        self,
        action: str,
        *,
        target_id: str | None,
        owner: str | None,
        by: Principal | Actor | None = None,
        details: Mapping[str, Any] | None = None,
        remote_addr: str | None = None,
    ) -> AuditEvent | None:
        """Append one event; the stored event, or ``None`` if storage refused it.

        ``by`` is who acted (default: the request's principal, or the shell
        user outside a request); ``remote_addr`` defaults to the request's.
        The change the event describes has already happened, so a storage
        failure here is logged, never raised.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}")
        details = dict(details or {})
        _check_details(details)
        if remote_addr is None and has_request_context():
            remote_addr = request.remote_addr
        event = AuditEvent(
            id=new_event_id(),
            action=action,
            actor=actor_of(by),
            target_id=target_id,
            owner=owner,
            remote_addr=remote_addr,
            created_at=self.clock(),
            details=details,
        )
        try:
            stored = self.storage.add_audit_event(event)
        except StorageError as exc:
            logger.error("audit event not recorded: action=%s target=%s: %s", action, target_id, exc)
            return None
        self._purge_when_due()
        return stored

    def list(
        self,
        *,
        owner: str | None,
        limit: int = 20,
        before_seq: int | None = None,
        action: str | None = None,
        target_id: str | None = None,
    ) -> list[AuditEvent]:
        """Events of ``owner`` (every owner if ``None``), newest first."""
        return self.storage.list_audit_events(
            owner, limit=limit, before_seq=before_seq, action=action, target_id=target_id
        )

    def purge(self, *, limit: int = PURGE_BATCH) -> int:
        """Delete up to ``limit`` events older than the retention; how many went."""
        return self.storage.purge_audit_events(self.clock() - self.retention, limit=limit)

    def _purge_when_due(self) -> None:
        now = time.monotonic()
        if now < self._purge_at or not self._purge_lock.acquire(blocking=False):
            return
        try:
            removed = self.purge()
            # A full batch means more are waiting: purge again with the next write.
            self._purge_at = now if removed >= PURGE_BATCH else now + PURGE_INTERVAL
        except StorageError as exc:
            logger.warning("audit retention purge failed (retried later): %s", exc)
            self._purge_at = now + 60
        finally:
            self._purge_lock.release()


__all__ = ["ACTIONS", "Actor", "AuditEvent", "AuditLog", "actor_of"]
