"""The storage contract every backend keeps."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from ..records import KeyRecord

#: Fields :meth:`Storage.update` may change; everything else is fixed at creation.
MUTABLE_FIELDS = frozenset({"name", "scopes", "metadata", "expires_at", "revoked_at", "rate_limit"})


class Storage(ABC):
    """Keys, signing keys, the replay cache and usage timestamps.

    Every method raises :class:`~flask_gridauth.errors.StorageError` (and only
    that) when the backend cannot answer. Backends connect lazily, so an app
    starts while its storage is down and answers 503 until it is back.
    """

    #: The URI scheme(s) that select this backend.
    schemes: tuple[str, ...] = ()

    @abstractmethod
    def add(self, record: KeyRecord) -> KeyRecord:
        """Store a new key and return it with its ``seq``; a taken ``lookup`` raises ``KeyExistsError``."""

    @abstractmethod
    def get(self, key_id: str) -> KeyRecord | None:
        """The key with this id, or ``None``."""

    @abstractmethod
    def find(self, lookup: str) -> KeyRecord | None:
        """The key whose ``lookup`` (hash or fingerprint) this is, or ``None``: the hot path."""

    @abstractmethod
    def list(self, owner: str | None, *, limit: int, before_seq: int | None = None) -> list[KeyRecord]:
        """Up to ``limit`` keys of ``owner`` (every owner if ``None``), newest first, ``seq < before_seq``."""

    @abstractmethod
    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Change some of :data:`MUTABLE_FIELDS`; the updated key, or ``None`` if there is none."""

    @abstractmethod
    def touch(self, record: KeyRecord, when: datetime) -> None:
        """Record that ``record`` was used at ``when``."""

    @abstractmethod
    def claim_once(self, token: str, ttl: float) -> bool:
        """``True`` the first time ``token`` is claimed within ``ttl`` seconds, ``False`` after."""

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StorageError`` unless the backend answers."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections; a later call reconnects."""


def to_epoch(value: datetime | None) -> float | None:
    """A time as the backends store it: epoch seconds, or ``None``."""
    return None if value is None else value.timestamp()


def from_epoch(value: float | None) -> datetime | None:
    """A stored epoch-seconds time back as an aware UTC datetime, or ``None``."""
    return None if value is None else datetime.fromtimestamp(value, UTC)


class KeyExistsError(Exception):
    """A key with the same ``lookup`` (hash or fingerprint) is already stored."""


def check_changes(changes: Mapping[str, Any]) -> None:
    """Refuse to change anything but :data:`MUTABLE_FIELDS`."""
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(f"these fields cannot be changed: {sorted(unknown)}")
