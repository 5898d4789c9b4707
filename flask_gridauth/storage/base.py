"""The storage contract every backend keeps, and the registry of URI schemes.

:class:`Storage` is the complete interface: everything any module of the
package uses of a backend is declared here. A subclass that declares
``schemes`` is registered for them when the class is created, so
:func:`~flask_gridauth.storage.storage_from_uri` finds third-party backends as
it finds ours. Driver errors are turned into
:class:`~flask_gridauth.errors.StorageError` here, once: every public method a
subclass defines is wrapped (:mod:`~flask_gridauth.storage.wrapping`) so that
an exception of one of its :attr:`Storage.driver_errors` leaves as ``StorageError``.
"""

from __future__ import annotations

import builtins
import inspect
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, cast

from ..activity import AuditEvent, UsageCount
from ..errors import StorageError
from ..records import KeyRecord
from .wrapping import wrap_method

if TYPE_CHECKING:
    import limits.storage

    from .cache import KeyCache

#: Fields :meth:`~flask_gridauth.storage.Storage.update` may change; everything else is fixed at creation.
MUTABLE_FIELDS = frozenset(
    {"name", "scopes", "metadata", "expires_at", "revoked_at", "rate_limit", "disabled_at", "allowed_ips", "quota"}
)


class QuotaUse(NamedTuple):
    """What :meth:`Storage.spend_quota` did: whether the units were taken, and what is left."""

    allowed: bool
    remaining: int


#: URI scheme -> the backend class registered for it (built-in backends register on first use).
SCHEMES: dict[str, type[Storage]] = {}

#: What :meth:`Storage.find_counted` returns: the record, whether its use was recorded, the counts.
Counted = tuple[KeyRecord | None, bool, list[tuple[int, int]] | None, QuotaUse | None]


#: Methods that change no cached field of a key: calling them leaves this process's key cache as it is.
#: (``spend_quota`` moves only the quota counter, which callers read from its answer, never from a found key.)
_READS = frozenset(
    {
        "get",
        "find",
        "list",
        "ping",
        "close",
        "flush",
        "find_counted",
        "claim_once",
        "touch",
        "migration_sql",
        "key",
        "started_at",
        "session_subject",
        "spend_quota",
        "storage_error",
        "activity_key",
        # the audit log and usage counts (append-only, no key field)
        "add_audit_event",
        "list_audit_events",
        "purge_audit_events",
        "add_usage",
        "list_usage",
        "purge_usage",
        # per-owner rate-limit overrides: no key field either
        "set_owner_limit",
        "get_owner_limit",
        "owner_limits",
    }
)


#: Writes that change no key record (or only add one, which no cache can hold yet): they push nothing.
#: Every other method not in ``_READS`` may change a key, so after it ran every process is told (see
#: :meth:`Storage._push_change`): a write method added later is pushed unless it is listed here.
_NOT_KEY_WRITES = frozenset(
    {
        "add",
        "add_session",
        "end_session",
        "end_sessions",
        "migrate",
        "enable_cache",
        "shared_counters",
    }
)


class Storage(ABC):
    """Keys, signing keys, the replay cache and usage timestamps.

    Every method raises :class:`~flask_gridauth.errors.StorageError` (and only
    that) when the backend cannot answer. Backends connect lazily, so an app
    starts while its storage is down and answers 503 until it is back.

    To write a backend: subclass, set :attr:`schemes` and
    :attr:`driver_errors`, implement the abstract methods (and
    :meth:`from_uri` if the constructor is not ``cls(uri, timeout=...)``), and
    run :class:`flask_gridauth.testing.StorageContract` against it.
    """

    #: The URI scheme(s) that select this backend; declaring them registers the class.
    schemes: ClassVar[tuple[str, ...]] = ()
    #: Exception types of the driver; raised by a public method, they leave as ``StorageError``.
    #: A backend that imports its driver lazily sets this on the instance.
    driver_errors: tuple[type[BaseException], ...] = ()
    #: ``True`` when :meth:`find_counted` counts rate limits itself (one round trip).
    counts_in_lookup: ClassVar[bool] = False
    #: The per-process key cache, once :meth:`enable_cache` turned it on.
    _key_cache: KeyCache | None = None
    #: Methods that push the lookup they changed themselves, in the same write (``update``); every
    #: other method that may change a key is followed by ``_push_change``.
    pushes_own_changes: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in list(vars(cls).items()):
            if name.startswith("_") or not inspect.isfunction(value) or getattr(value, "__gridauth_wrapped__", False):
                continue
            clears = name not in _READS
            setattr(cls, name, wrap_method(value, clears=clears, key_write=clears and name not in _NOT_KEY_WRITES))
        if "schemes" in vars(cls):
            for scheme in cls.schemes:
                SCHEMES[scheme] = cls

    @classmethod
    def from_uri(cls, uri: str, *, instance_path: str, timeout: float) -> Storage:
        """Build the backend for ``uri`` without contacting it; by default ``cls(uri, timeout=timeout)``."""
        factory = cast(Callable[..., Storage], cls)
        return factory(uri, timeout=timeout)

    def storage_error(self, exc: BaseException) -> StorageError:
        """The ``StorageError`` a driver error becomes; only its type by default (a message may hold a URI)."""
        return StorageError(f"{type(self).__name__} failed: {type(exc).__name__}")

    @abstractmethod
    def add(self, record: KeyRecord) -> KeyRecord:
        """Store a new key and return it with its ``seq``; a taken ``lookup`` raises ``KeyExistsError``.

        A quota's counter starts at ``quota.remaining`` (default the limit) from
        ``quota.refilled_at`` (default ``created_at``).
        """

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
        """Change some of :data:`MUTABLE_FIELDS`; the updated key, or ``None`` if there is none.

        Setting ``quota`` also re-sets its counter: to ``quota.remaining`` (default
        the limit) from ``quota.refilled_at`` (default now).
        """

    @abstractmethod
    def mark_rotated(self, key_id: str, *, expires_at: datetime | None, rotated_at: datetime) -> bool:
        """Claim the rotation of a key exactly once, atomically across threads and processes.

        Only if the key exists, is neither revoked nor disabled and was never rotated: record ``rotated_at`` as its
        rotation mark and set its ``expires_at`` (its grace expiry; ``None`` leaves it as it is).
        Whether this call won: of concurrent calls for one key at most one returns ``True``.
        """

    @abstractmethod
    def spend_quota(self, record: KeyRecord, cost: int, now: datetime) -> QuotaUse | None:
        """Take ``cost`` units of ``record``'s quota atomically, across every process; ``None`` if it has none.

        The refills due at ``now`` are added first (see
        :func:`~flask_gridauth.records.refilled`). When fewer than ``cost``
        units are left nothing is taken and ``allowed`` is false. The quota's
        limit and refill are the stored ones; ``record`` names the key.
        """

    @abstractmethod
    def touch(self, record: KeyRecord, when: datetime) -> None:
        """Record that ``record`` was used at ``when``."""

    @abstractmethod
    def set_owner_limit(self, owner: str, limit: str | None) -> None:
        """Store ``owner``'s override of ``GRIDAUTH_RATELIMIT_OWNER`` (a checked limit string); ``None`` clears it.

        Durable like a key change, and seen by every process sharing the store.
        """

    @abstractmethod
    def owner_limits(self) -> dict[str, str]:
        """Every owner's override, owner to limit string (one call: the rate limiter reads them all at once)."""

    def get_owner_limit(self, owner: str) -> str | None:
        """``owner``'s override, or ``None``; by default read from :meth:`owner_limits`."""
        return self.owner_limits().get(owner)

    @abstractmethod
    def claim_once(self, token: str, ttl: float) -> bool:
        """``True`` the first time ``token`` is claimed within ``ttl`` seconds, ``False`` after."""

    @abstractmethod
    def ping(self) -> None:
        """Raise ``StorageError`` unless the backend answers."""

    def close(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Release connections; a later call reconnects."""

    # -- dashboard sessions (server-side, so a sign-out ends every copy of the cookie) --

    @abstractmethod
    def add_session(self, session_id: str, subject: str, expires_at: datetime) -> None:
        """Record a live session of ``subject`` until ``expires_at``; ``session_id`` is an opaque hash."""

    @abstractmethod
    def session_subject(self, session_id: str) -> str | None:
        """The subject of the live session ``session_id``; ``None`` if it ended, expired or never was."""

    @abstractmethod
    def end_session(self, session_id: str) -> None:
        """End one session (nothing happens if there is none)."""

    @abstractmethod
    def end_sessions(self, subject: str) -> int:
        """End every session of ``subject``; how many were live (an upper bound where the store cannot tell)."""

    # -- audit log and usage (append-only; see flask_gridauth.audit and flask_gridauth.usage) --

    @abstractmethod
    def add_audit_event(self, event: AuditEvent) -> AuditEvent:
        """Append ``event`` and return it with its ``seq`` (higher is newer). Events are never changed."""

    @abstractmethod
    def list_audit_events(
        self,
        owner: str | None,
        *,
        limit: int,
        before_seq: int | None = None,
        action: str | None = None,
        target_id: str | None = None,
    ) -> builtins.list[AuditEvent]:
        """Up to ``limit`` events of ``owner`` (every owner if ``None``), newest first, ``seq < before_seq``.

        ``action`` and ``target_id``, when given, keep only the events that match exactly.
        """

    @abstractmethod
    def purge_audit_events(self, before: datetime, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` of the oldest events created before ``before``; how many went."""

    @abstractmethod
    def add_usage(self, counts: Sequence[UsageCount]) -> None:
        """Add ``counts`` to the stored buckets of the same key and hour (creating them), in one write."""

    @abstractmethod
    def list_usage(self, key_id: str, *, since_hour: int) -> builtins.list[UsageCount]:
        """The buckets of ``key_id`` from the hour ``since_hour`` (epoch seconds) on, oldest first."""

    @abstractmethod
    def purge_usage(self, before_hour: int, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` buckets of hours before ``before_hour``; how many went."""

    # -- optional capabilities: defaults that every backend may keep -----------

    def find_counted(
        self,
        lookup: str,
        *,
        record_type: str,
        now: float,
        touch_interval: float,
        counter_prefix: str,
        windows: Sequence[str | int],
        environments: Collection[str] | None = None,
        quota_cost: int = 0,
    ) -> Counted:
        """:meth:`find`, plus (where :attr:`counts_in_lookup`) the use and the rate-limit counts, at once.

        A backend that can do it in one round trip sets :attr:`counts_in_lookup`
        and, for a record of ``record_type`` that is neither revoked nor expired
        at ``now`` (epoch seconds), records its use when ``touch_interval``
        seconds have passed and, if the record has no own ``rate_limit``, hits
        the counters ``counter_prefix + id + suffix`` of ``windows`` (suffix,
        seconds, ...). Returns the record, whether its use was recorded, and
        ``(count, milliseconds left in the window)`` per window when counted.
        A canary, a disabled key, a key with ``allowed_ips`` or one whose
        environment is not in ``environments`` is neither touched nor counted
        (the caller refuses it, or checks its address first).
        When it counted, none of the counts went over its limit and
        ``quota_cost`` is above 0, the record's quota pays it as
        :meth:`spend_quota` would; the fourth item is that ``QuotaUse``
        (``None`` when the quota was not asked).
        This default only finds: ``(find(lookup), False, None, None)``.
        """
        return self.find(lookup), False, None, None

    def migrate(self) -> tuple[int, ...]:
        """Create or upgrade this backend's tables; the schema versions applied (none when up to date).

        Backends whose layout is not versioned set themselves up on first use
        and apply nothing here.
        """
        return ()

    def migration_sql(self) -> str | None:
        """The SQL :meth:`migrate` would run, for operators who apply it themselves; ``None`` if there is none."""
        return None

    def started_at(self) -> float | None:
        """Epoch seconds of the storage server's last start, if a restart can lose replay-cache claims.

        A signed request whose timestamp is not later than this is refused: the
        claims made before it may have been lost with the server's memory (a
        Redis restored from an older snapshot). ``None`` (the default) for a
        store whose claims survive a restart. Never contacts the server: a
        backend learns it when it connects.
        """
        return None

    def enable_cache(self, ttl: float) -> bool:
        """Keep found keys in this process for up to ``ttl`` seconds, invalidated by push; whether it is on.

        A backend that can learn of changes made by other processes and hosts
        overrides this (and ``_cache_check``); by default there is no
        cache, and every look-up goes to storage.
        """
        return False

    def _push_change(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Tell every process's key cache to drop every key; after a write that may have changed one.

        The one place a backend with a push channel announces key changes that
        are not pushed with the write itself (see :attr:`pushes_own_changes`).
        Nothing by default: a backend without a cache, or whose caches see every
        commit (SQLite's ``data_version``), has nothing to send.
        """

    def _cache_check(self) -> None:  # noqa: B027 - optional hook with a no-op default
        """Run before each cached look-up: empty the cache if something changed (SQLite), start the listener."""

    def shared_counters(self) -> tuple[limits.storage.Storage, str] | None:
        """A ``limits`` storage for rate-limit counters on this backend's own server, or ``None``.

        Returned with the prefix :meth:`find_counted` must be given for the
        counters of API keys to be the ones the ``limits`` storage hits.
        """
        return None


class KeyExistsError(Exception):
    """A key with the same ``lookup`` (hash or fingerprint) is already stored."""


def check_changes(changes: Mapping[str, Any]) -> None:
    """Refuse to change anything but :data:`MUTABLE_FIELDS`."""
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(f"these fields cannot be changed: {sorted(unknown)}")
