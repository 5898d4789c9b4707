"""What the SQL backends (SQLite and PostgreSQL) do the same way, in one place.

:class:`SQLStorage` keeps the keys of both. A key is found by one indexed
``SELECT`` whose row is decoded once: an unchanged row (every column equal)
maps to the same immutable record object, so a key's JSON and times are parsed
once, not per request. Keys are listed, added, changed and spent with the same
SQL, and ``last_used_at`` is coalesced: a key's first use is written at once,
its later refreshes (at most one a minute per key) are gathered in this process
and written together at most once per :data:`TOUCH_FLUSH_INTERVAL`, by the
first request after it. This process reads its own pending refreshes at once;
other processes see them after the next flush. A flush that fails (the file is
locked, the database is down) is kept and retried; it never fails a request.

What differs is a hook: the placeholder, the table prefix, how times and JSON
are bound and read, how a statement runs on the backend's connections, and the
statements whose dialects differ (the quota spend, the batched refresh).
"""

from __future__ import annotations

import builtins
import dataclasses
import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from ..errors import StorageError
from ..records import REFILL_SECONDS, KeyRecord, utcnow
from .base import KeyExistsError, QuotaUse, Storage
from .sql_records import COUNTER_COLUMNS, INSERT_COLUMNS, LIST_FIELDS, TIME_FIELDS, quota_columns, record_from_row
from .values import from_epoch, refill_now

logger = logging.getLogger("flask_gridauth")

#: Seconds between two writes of gathered ``last_used_at`` refreshes.
TOUCH_FLUSH_INTERVAL = 1.0
#: Most decoded rows :meth:`SQLStorage.find` keeps (then the cache starts over).
MAX_CACHED_ROWS = 4096

Params = Sequence[Any] | Mapping[str, Any]


class SQLStorage(Storage):
    """Keys in a SQL table, the same way for every SQL backend (an abstract base; see the module docstring)."""

    #: The driver's parameter placeholder (``?`` for sqlite3, ``%s`` for psycopg).
    _p: ClassVar[str]
    #: The SELECT list of a record as this backend reads it (see :data:`~.sql_records.COLUMNS`).
    _columns: ClassVar[str]
    #: One statement that refills lazily and takes ``cost`` units if enough are left (atomic across
    #: processes), ``RETURNING quota_remaining``; parameters ``now``, ``cost`` and ``id``, by name.
    _spend_sql: str

    def __init__(self, table_prefix: str = "") -> None:
        #: The prefix of every table name (``"schema".``), or empty.
        self._q = table_prefix
        q, p = table_prefix, self._p
        self._full_columns = self._columns + COUNTER_COLUMNS
        self._get_sql = f"SELECT {self._full_columns} FROM {q}gridauth_keys WHERE id = {p}"  # noqa: S608 - fixed
        self._touch_sql = f"UPDATE {q}gridauth_keys SET last_used_at = {p} WHERE id = {p}"  # noqa: S608
        values = ", ".join([p] * (INSERT_COLUMNS.count(",") + 1))
        self._insert_sql = f"INSERT INTO {q}gridauth_keys ({INSERT_COLUMNS}) VALUES ({values})"  # noqa: S608
        self._quota_sql = (
            "SELECT quota_limit, quota_refill_amount, quota_refill_interval, quota_remaining,"  # noqa: S608
            f" quota_refilled_at FROM {q}gridauth_keys WHERE id = {p}"
        )
        # Row tuple -> its record (see the module docstring).
        self._rows: dict[tuple[Any, ...], KeyRecord] = {}
        # Key id -> last_used_at not yet written; see the module docstring.
        self._pending: dict[str, datetime] = {}
        self._pending_lock = threading.Lock()
        self._flush_at = 0.0

    # -- hooks: what differs between the backends --------------------------------

    @abstractmethod
    def _find_row(self, lookup: str) -> tuple[Any, ...] | None:
        """The row (:attr:`_columns`) of the key with this lookup: the hot path's one ``SELECT``."""

    @abstractmethod
    def _select(self, sql: str, params: Params, *, prepare: bool = False) -> list[tuple[Any, ...]]:
        """The rows of one statement, run on its own (``prepare``: worth preparing, where the driver can)."""

    @abstractmethod
    def _execute(self, sql: str, params: Params, *, prepare: bool = False) -> None:
        """Run one statement on its own, not durably where that is cheaper (a usage time)."""

    @abstractmethod
    def _run_write(self, sql: str, params: Params) -> int:
        """Run one statement in a durable write; the rows it changed."""

    @abstractmethod
    def _insert(self, sql: str, params: Params) -> int:
        """Run one ``INSERT`` durably; the new row's ``seq``."""

    @abstractmethod
    def _is_duplicate(self, exc: BaseException) -> bool:
        """Whether this driver error is a unique constraint refusing a row."""

    @abstractmethod
    def _write_used_batch(self, batch: dict[str, datetime]) -> None:
        """Write gathered ``last_used_at`` refreshes (key id -> time) in one transaction."""

    @abstractmethod
    def _time_param(self, value: datetime | None) -> Any:
        """A time as this backend binds it."""

    @abstractmethod
    def _time_value(self, value: Any) -> datetime | None:
        """A stored time as a datetime (``None`` stays ``None``)."""

    @abstractmethod
    def _list_param(self, value: Iterable[str]) -> Any:
        """A list of strings (scopes, address ranges) as this backend binds it."""

    @abstractmethod
    def _object_param(self, value: Mapping[str, Any]) -> Any:
        """A JSON object as this backend binds it."""

    # -- shared ----------------------------------------------------------------

    def _decode(self, row: tuple[Any, ...]) -> KeyRecord:
        return record_from_row(row, self._time_value)

    def _with_pending(self, record: KeyRecord) -> KeyRecord:
        """``record`` with this process's refresh of its ``last_used_at`` that is not written yet."""
        used = self._pending.get(record.id)
        return record if used is None else dataclasses.replace(record, last_used_at=used)

    def _one(self, sql: str, params: Params, *, prepare: bool = False) -> tuple[Any, ...] | None:
        rows = self._select(sql, params, prepare=prepare)
        return rows[0] if rows else None

    def add(self, record: KeyRecord) -> KeyRecord:
        """Insert the key; its ``seq`` is the table's."""
        quota = quota_columns(record.quota, record.created_at)
        when, listed = self._time_param, self._list_param
        values = (
            record.id,
            record.lookup,
            record.name,
            record.type,
            record.prefix,
            listed(record.scopes),
            record.environment,
            record.owner,
            when(record.created_at),
            when(record.expires_at),
            when(record.revoked_at),
            when(record.last_used_at),
            self._object_param(record.metadata),
            record.rate_limit,
            record.public_key,
            when(record.disabled_at),
            listed(record.allowed_ips),
            record.canary,
            *quota.values(),
        )
        try:
            seq = self._insert(self._insert_sql, values)
        except self.driver_errors as exc:
            if self._is_duplicate(exc):
                raise KeyExistsError(record.id) from None
            raise
        stored = dataclasses.replace(record, seq=seq)
        if stored.quota is None:
            return stored
        counter = dataclasses.replace(
            stored.quota, remaining=quota["quota_remaining"], refilled_at=from_epoch(quota["quota_refilled_at"])
        )
        return dataclasses.replace(stored, quota=counter)

    def get(self, key_id: str) -> KeyRecord | None:
        """The key with this id (a unique index)."""
        row = self._one(self._get_sql, (key_id,), prepare=True)
        if row is None:
            return None
        record = self._decode(row)
        return self._with_pending(record) if self._pending else record

    def find(self, lookup: str) -> KeyRecord | None:
        """The key with this hash or fingerprint: one indexed ``SELECT`` (the hot path), decoded once per row."""
        row = self._find_row(lookup)
        if row is None:
            return None
        rows = self._rows
        record = rows.get(row)
        if record is None:
            record = self._decode(row)
            if len(rows) >= MAX_CACHED_ROWS:
                rows.clear()
            rows[row] = record
        if self._pending:
            if time.monotonic() >= self._flush_at:
                self._flush_quietly()
            return self._with_pending(record)
        return record

    def list(self, owner: str | None, *, limit: int, before_seq: int | None = None) -> list[KeyRecord]:
        """Keys newest first, by ``seq``."""
        where, params = self._page_where({"owner": owner}, before_seq)
        sql = f"SELECT {self._full_columns} FROM {self._q}gridauth_keys{where} ORDER BY seq DESC LIMIT {self._p}"  # noqa: S608
        records = [self._decode(row) for row in self._select(sql, (*params, limit))]
        return [self._with_pending(r) for r in records] if self._pending else records

    def _page_where(self, equal: Mapping[str, Any], before_seq: int | None) -> tuple[str, builtins.list[Any]]:
        """``WHERE`` for one page of a newest-first listing: each non-``None`` column of ``equal``, then the cursor."""
        p = self._p
        clauses = [f"{column} = {p}" for column, value in equal.items() if value is not None]
        params = [value for value in equal.values() if value is not None]
        if before_seq is not None:
            clauses.append(f"seq < {p}")
            params.append(before_seq)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def _update_columns(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """The columns an update of ``changes`` (checked) sets, as bound values; a quota re-sets its counter."""
        columns: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "quota":
                columns.update(quota_columns(value, utcnow()))
                continue
            if name in TIME_FIELDS:
                value = self._time_param(value)
            elif name in LIST_FIELDS:
                value = self._list_param(value)
            elif name == "metadata":
                value = self._object_param(value)
            columns[name] = value
        return columns

    def spend_quota(self, record: KeyRecord, cost: int, now: datetime) -> QuotaUse | None:
        """One ``UPDATE ... RETURNING``: refill and take, or take nothing, atomically."""
        row = self._one(self._spend_sql, {"now": now.timestamp(), "cost": cost, "id": record.id})
        if row is not None:
            return QuotaUse(True, int(row[0]))
        row = self._one(self._quota_sql, (record.id,))
        if row is None or row[0] is None:
            return None
        seconds = REFILL_SECONDS.get(row[2]) if row[2] else None
        amount = None if row[1] is None else int(row[1])
        remaining, _ = refill_now(int(row[0]), amount, seconds, int(row[3]), float(row[4]), now.timestamp())
        return QuotaUse(False, remaining)

    # -- last_used_at, coalesced ---------------------------------------------------

    def touch(self, record: KeyRecord, when: datetime) -> None:
        """Set ``last_used_at``: a first use at once, a refresh with the next flush (see the module docstring)."""
        if record.last_used_at is None:
            self._execute(self._touch_sql, (self._time_param(when), record.id), prepare=True)
            return
        with self._pending_lock:
            self._pending[record.id] = when
        if time.monotonic() >= self._flush_at:
            self._flush_quietly()

    def _flush_quietly(self) -> None:
        # A request never fails for a refresh it does not need: a failed flush is kept and retried.
        try:
            self.flush()
        except StorageError as exc:
            logger.warning("could not write last_used_at refreshes yet (retrying later): %s", exc)

    def flush(self) -> None:
        """Write the gathered ``last_used_at`` refreshes in one transaction; ``StorageError`` keeps them."""
        with self._pending_lock:
            batch, self._pending = self._pending, {}
            self._flush_at = time.monotonic() + TOUCH_FLUSH_INTERVAL
        if not batch:
            return
        try:
            self._write_used_batch(batch)
        except self.driver_errors:
            with self._pending_lock:
                # Put them back (a newer refresh made meanwhile wins) for the next flush.
                self._pending = {**batch, **self._pending}
            raise

    def _flush_before_close(self) -> None:
        """Write pending ``last_used_at`` refreshes, if any, as a backend's ``close`` begins."""
        if self._pending:
            try:
                self.flush()
            except StorageError:
                pass  # closing anyway: a usage timestamp is not worth failing a shutdown for
