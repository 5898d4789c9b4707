"""Verify an API key: checksum first, then one look-up by its SHA-256."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime, timedelta
from re import Pattern

from ..errors import Unauthorized
from ..keys import check_key, hash_key
from ..principal import Principal, PrincipalKind
from ..records import KeyRecord, check_record, utcnow
from ..storage import Storage
from ..storage.base import QuotaUse

#: ``last_used_at`` is written at most this often per key (the first use at once).
TOUCH_INTERVAL = timedelta(seconds=60)

Expander = Callable[[Iterable[str]], frozenset[str]]


def touch_if_due(storage: Storage, record: KeyRecord, now: datetime) -> None:
    """Record a use: the first at once, then at most once per :data:`TOUCH_INTERVAL`."""
    last = record.last_used_at
    if last is None or now - last >= TOUCH_INTERVAL:
        storage.touch(record, now)


def principal_for(record: KeyRecord, kind: PrincipalKind, expand: Expander) -> Principal:
    """The principal a stored key authenticates as.

    Built afresh on every request: a per-app cache of principals (keyed by the
    record object, which storage keeps while the key is unchanged) saved nothing
    measurable once scope expansion is cached: 1,017,444 instructions per API-key
    request without it, 1,017,877 with it (callgrind, api_key_memory without
    usage counting), so it went.
    """
    environment = record.environment if kind == "api_key" else None
    return Principal(
        kind=kind, id=record.id, owner=record.owner, scopes=expand(record.scopes), key=record, environment=environment
    )


def _matching(record: KeyRecord | None, digest: str) -> KeyRecord:
    """``record`` if it is the API key stored under ``digest``, else 401."""
    if record is None or record.type != "api_key" or not hmac.compare_digest(record.lookup.encode(), digest.encode()):
        raise Unauthorized()
    return record


def check_usable(record: KeyRecord, now: datetime, environments: Collection[str] | None, storage: Storage) -> None:
    """:func:`check_record` for an API key, after two checks of its own.

    A canary key is reported (never authorising anything: a generic 401, its use
    recorded) and a key of an environment not in ``environments`` is refused.
    """
    if record.canary:
        from ..keypolicy import report_canary

        touch_if_due(storage, record, now)
        report_canary(record)
        raise Unauthorized()
    check_record(record, now)
    if environments is not None and record.environment not in environments:
        raise Unauthorized(f"API key environment '{record.environment}' is not accepted here")


def verify_api_key(
    raw_key: str,
    *,
    pattern: Pattern[str],
    storage: Storage,
    expand: Expander,
    environments: Collection[str] | None = None,
) -> Principal:
    """The principal of ``raw_key``, or 401. Storage failures propagate as ``StorageError``.

    ``environments``: the key environments accepted (``None``: any).
    """
    if not check_key(raw_key, pattern):
        raise Unauthorized()
    digest = hash_key(raw_key)
    record = _matching(storage.find(digest), digest)
    now = utcnow()
    check_usable(record, now, environments, storage)
    touch_if_due(storage, record, now)
    return principal_for(record, "api_key", expand)


def verify_api_key_counted(
    raw_key: str,
    *,
    pattern: Pattern[str],
    storage: Storage,
    expand: Expander,
    counter_prefix: str,
    windows: Sequence[str | int],
    environments: Collection[str] | None = None,
    quota_cost: int = 0,
) -> tuple[Principal, list[tuple[int, int]] | None, QuotaUse | None]:
    """:func:`verify_api_key` through a storage that counts in its look-up: the key's counters hit in the same call.

    Only for a storage whose :attr:`~flask_gridauth.storage.Storage.counts_in_lookup` is true
    (:meth:`~flask_gridauth.storage.Storage.find_counted`); this module names no backend.

    Returns the principal, the counts (``None`` when the script did not
    count, e.g. for a key with its own ``rate_limit``: the caller counts it)
    and what the key's quota paid for ``quota_cost`` (``None`` when not asked).
    Refusals are exactly those of :func:`verify_api_key`, and a refused key is
    neither counted nor touched.
    """
    if not check_key(raw_key, pattern):
        raise Unauthorized()
    digest = hash_key(raw_key)
    now = utcnow()
    record, touched, counts, quota = storage.find_counted(
        digest,
        record_type="api_key",
        now=now.timestamp(),
        touch_interval=TOUCH_INTERVAL.total_seconds(),
        counter_prefix=counter_prefix,
        windows=windows,
        environments=environments,
        quota_cost=quota_cost,
    )
    record = _matching(record, digest)
    check_usable(record, now, environments, storage)
    if not touched:
        touch_if_due(storage, record, now)
    return principal_for(record, "api_key", expand), counts, quota
