"""PostgreSQL storage: the store of record for several hosts (psycopg 3 and psycopg_pool).

``postgresql://user@host:port/db`` (or ``postgres://``). Query parameters of
our own, removed before the rest goes to libpq:

- ``pool_min_size`` (default 1) and ``pool_max_size`` (default 10): connections
  per process;
- ``pool_timeout``: seconds a request waits for a connection before a 503
  (default ``GRIDAUTH_STORAGE_TIMEOUT``); libpq's own ``connect_timeout``
  defaults to the same, rounded up;
- ``schema``: the schema holding the tables (created if missing; default: the
  connection's ``search_path``);
- ``auto_migrate`` (default ``true``): create or upgrade the tables on first
  use; ``false`` leaves that to ``flask gridauth migrate`` and answers 503
  while the tables are behind.

The tables are versioned: ``gridauth_schema_version`` records every migration
of :data:`~flask_gridauth.storage.postgres_schema.MIGRATIONS` applied, each under an advisory lock so that processes
starting together apply it once. A key is found by its lookup (the primary
key): one prepared ``SELECT`` per request. Updates are single ``UPDATE ...
RETURNING`` statements of the named columns that bump ``version`` (the
compare-and-set token for writers that read first), so concurrent updates of
different fields never lose one another. The replay cache is an ``INSERT ...
ON CONFLICT`` that only takes over an expired row, with expired rows purged
in batches. ``last_used_at`` is coalesced as on SQLite: a first use at once,
later refreshes gathered per process and written together at most once per
:data:`TOUCH_FLUSH_INTERVAL`.

Nothing is contacted when the backend is built: the pool opens on first use,
so an app starts while the database is down and answers 503 until it is back.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..errors import StorageError
from ..records import REFILL_SECONDS, KeyRecord, utcnow
from .base import KeyExistsError, QuotaUse, check_changes
from .postgres_activity import PostgresActivity
from .postgres_changes import PostgresChanges
from .postgres_connections import PostgresConnections, parse_uri
from .postgres_owners import PostgresOwners
from .postgres_records import _quota_columns, _record
from .postgres_sessions import PURGE_BATCH as PURGE_BATCH
from .postgres_sessions import PURGE_EVERY as PURGE_EVERY
from .postgres_sessions import PostgresSessions
from .values import from_epoch, refill_now

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

logger = logging.getLogger("flask_gridauth")

#: Seconds between two writes of gathered ``last_used_at`` refreshes.
TOUCH_FLUSH_INTERVAL = 1.0
# scopes and metadata come back as JSON text: a row is then a tuple of hashable values, and an
# unchanged row is decoded once (see PostgresStorage.find), not parsed into a list and a dict each time.
_COLUMNS = (
    "seq, id, lookup, name, type, prefix, to_json(scopes)::text, environment, owner,"
    " created_at, expires_at, revoked_at, last_used_at, metadata::text, rate_limit, public_key,"
    " disabled_at, to_json(allowed_ips)::text, canary, quota_limit, quota_refill_amount, quota_refill_interval"
)
#: The record's columns plus the quota counter, which the hot path does not read (it changes on every use).
_FULL_COLUMNS = _COLUMNS + ", quota_remaining, quota_refilled_at"
_INTERVAL_SECONDS = (
    "(CASE quota_refill_interval "
    + " ".join(f"WHEN '{name}' THEN {seconds}" for name, seconds in REFILL_SECONDS.items())
    + " END)"
)
# Whole refill intervals since the last refill (0 without refill), and the units available now.
_PERIODS = f"COALESCE(GREATEST(0, FLOOR((%(now)s - quota_refilled_at) / {_INTERVAL_SECONDS})), 0)::bigint"
_AVAILABLE = f"LEAST(quota_limit, quota_remaining + {_PERIODS} * COALESCE(quota_refill_amount, 0))"
#: One statement (the row lock serialises concurrent spenders): refill lazily, then take the units if enough.
_SPEND_SQL = (
    "UPDATE {s}gridauth_keys SET quota_remaining = " + _AVAILABLE + " - %(cost)s,"  # noqa: S608 - fixed SQL
    " quota_refilled_at = quota_refilled_at + " + _PERIODS + " * COALESCE(" + _INTERVAL_SECONDS + ", 0)"
    " WHERE id = %(id)s AND quota_limit IS NOT NULL AND " + _AVAILABLE + " >= %(cost)s RETURNING quota_remaining"
)
#: Most decoded rows :meth:`PostgresStorage.find` keeps (then the cache starts over).
MAX_CACHED_ROWS = 4096


class PostgresStorage(PostgresConnections, PostgresChanges, PostgresSessions, PostgresActivity, PostgresOwners):
    """Keys in PostgreSQL, shared by every process and host using the same database."""

    schemes = ("postgresql", "postgres")
    #: ``update`` notifies the changed lookup in its own transaction (delivered at commit).
    pushes_own_changes = frozenset({"update", "mark_rotated"})

    def __init__(self, uri: str, *, timeout: float = 2.0) -> None:
        try:
            import psycopg
            import psycopg_pool
        except ImportError:  # pragma: no cover - depends on the install
            raise ImportError(
                "PostgreSQL storage needs the postgres extra: pip install 'flask-gridauth[postgres]'"
            ) from None
        from psycopg.types.json import Jsonb

        self._psycopg = psycopg
        self._jsonb = Jsonb
        self._pool_module = psycopg_pool
        self.driver_errors = (psycopg.Error,)
        self.conninfo, self.min_size, self.max_size, self.pool_timeout, self.auto_migrate, schema = parse_uri(
            uri, timeout=timeout
        )
        self.schema = schema
        q = f'"{schema}".' if schema else ""
        self._q = q
        #: The NOTIFY channel of key changes (one per schema).
        self.channel = f"gridauth_keys_{schema or 'public'}"
        self._listening = 0  # the pid whose listener thread runs; 0: none
        self._listener: threading.Thread | None = None
        self._find_sql = f"SELECT {_COLUMNS} FROM {q}gridauth_keys WHERE lookup = %s"  # noqa: S608 - fixed names
        self._get_sql = f"SELECT {_FULL_COLUMNS} FROM {q}gridauth_keys WHERE id = %s"  # noqa: S608
        self._spend_sql = _SPEND_SQL.replace("{s}", q)
        self._touch_sql = f"UPDATE {q}gridauth_keys SET last_used_at = %s WHERE id = %s"  # noqa: S608
        # Row tuple -> its record: an unchanged row decodes to the same immutable record object.
        self._rows: dict[tuple[Any, ...], KeyRecord] = {}
        self._pool: ConnectionPool[Any] | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._schema_ready = False
        self._claims = 0
        # Key id -> last_used_at not yet written; see the module docstring.
        self._pending: dict[str, datetime] = {}
        self._pending_lock = threading.Lock()
        self._flush_at = 0.0

    def storage_error(self, exc: BaseException) -> StorageError:
        """The error's type and SQLSTATE: a driver's message may name the host or the user."""
        state = getattr(exc, "sqlstate", None)
        return StorageError(f"PostgreSQL storage failed: {type(exc).__name__}" + (f" ({state})" if state else ""))

    # -- keys ----------------------------------------------------------------

    def add(self, record: KeyRecord) -> KeyRecord:
        """Insert the key; its ``seq`` comes from the identity column."""
        sql = (
            f"INSERT INTO {self._q}gridauth_keys (id, lookup, name, type, prefix, scopes, environment, owner,"  # noqa: S608
            " created_at, expires_at, revoked_at, last_used_at, metadata, rate_limit, public_key,"
            " disabled_at, allowed_ips, canary, quota_limit, quota_refill_amount, quota_refill_interval,"
            " quota_remaining, quota_refilled_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,"
            " %s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq"
        )
        quota = _quota_columns(record.quota, record.created_at)
        jsonb = self._jsonb
        try:
            with self._conn() as conn:
                row = conn.execute(
                    sql,
                    (
                        record.id,
                        record.lookup,
                        record.name,
                        record.type,
                        record.prefix,
                        list(record.scopes),
                        record.environment,
                        record.owner,
                        record.created_at,
                        record.expires_at,
                        record.revoked_at,
                        record.last_used_at,
                        jsonb(record.metadata),
                        record.rate_limit,
                        record.public_key,
                        record.disabled_at,
                        list(record.allowed_ips),
                        record.canary,
                        *quota.values(),
                    ),
                ).fetchone()
        except self._psycopg.errors.UniqueViolation:
            raise KeyExistsError(record.id) from None
        if row is None:  # pragma: no cover - RETURNING always returns the row
            raise StorageError("PostgreSQL storage failed: no seq returned")
        stored = dataclasses.replace(record, seq=int(row[0]))
        if stored.quota is not None:
            counter = dataclasses.replace(
                stored.quota, remaining=quota["quota_remaining"], refilled_at=from_epoch(quota["quota_refilled_at"])
            )
            stored = dataclasses.replace(stored, quota=counter)
        return stored

    def _with_pending(self, record: KeyRecord) -> KeyRecord:
        used = self._pending.get(record.id)
        return record if used is None else dataclasses.replace(record, last_used_at=used)

    def get(self, key_id: str) -> KeyRecord | None:
        """The key with this id (a unique index)."""
        with self._conn() as conn:
            row = conn.execute(self._get_sql, (key_id,), prepare=True).fetchone()
        if row is None:
            return None
        record = _record(row)
        return self._with_pending(record) if self._pending else record

    def find(self, lookup: str) -> KeyRecord | None:
        """The key with this hash or fingerprint: one prepared primary-key ``SELECT`` (the hot path)."""
        with self._conn() as conn:
            row = conn.execute(self._find_sql, (lookup,), prepare=True, binary=True).fetchone()
        if row is None:
            return None
        rows = self._rows
        record = rows.get(row)
        if record is None:
            record = _record(row)
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
        clauses: list[str] = []
        params: list[Any] = []
        if owner is not None:
            clauses.append("owner = %s")
            params.append(owner)
        if before_seq is not None:
            clauses.append("seq < %s")
            params.append(before_seq)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT {_FULL_COLUMNS} FROM {self._q}gridauth_keys{where} ORDER BY seq DESC LIMIT %s"  # noqa: S608
        with self._conn() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        records = [_record(row) for row in rows]
        return [self._with_pending(r) for r in records] if self._pending else records

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Change the named columns and bump ``version``, in one ``UPDATE ... RETURNING``."""
        check_changes(changes)
        if not changes:
            return self.get(key_id)
        columns: dict[str, Any] = {}
        for name, value in changes.items():
            if name == "quota":
                columns.update(_quota_columns(value, utcnow()))
                continue
            if name in ("scopes", "allowed_ips"):
                value = list(value)
            elif name == "metadata":
                value = self._jsonb(value)
            columns[name] = value
        values = list(columns.values())
        # Column names come from MUTABLE_FIELDS (checked above); values are bound.
        assignments = ", ".join(f"{name} = %s" for name in columns)
        sql = (
            f"UPDATE {self._q}gridauth_keys SET {assignments}, version = version + 1"  # noqa: S608
            f" WHERE id = %s RETURNING {_FULL_COLUMNS}"
        )
        with self._conn() as conn, conn.transaction():
            row = conn.execute(sql, (*values, key_id)).fetchone()
            if row is not None:
                # Delivered at commit, to every process listening (their key caches drop this key).
                conn.execute("SELECT pg_notify(%s, %s)", (self.channel, row[2]))
        if row is None:
            return None
        record = _record(row)
        return self._with_pending(record) if self._pending else record

    def mark_rotated(self, key_id: str, *, expires_at: datetime | None, rotated_at: datetime) -> bool:
        """One conditional ``UPDATE ... RETURNING``: the row lock lets exactly one claimer change the row."""
        sql = (
            f"UPDATE {self._q}gridauth_keys SET rotated_at = %s, expires_at = COALESCE(%s::timestamptz, expires_at),"  # noqa: S608
            " version = version + 1 WHERE id = %s AND rotated_at IS NULL AND revoked_at IS NULL RETURNING lookup"
        )
        with self._conn() as conn, conn.transaction():
            row = conn.execute(sql, (rotated_at, expires_at, key_id)).fetchone()
            if row is not None:
                # Delivered at commit, to every process listening (their key caches drop this key).
                conn.execute("SELECT pg_notify(%s, %s)", (self.channel, row[0]))
        return row is not None

    def spend_quota(self, record: KeyRecord, cost: int, now: datetime) -> QuotaUse | None:
        """One ``UPDATE ... RETURNING`` under the row's lock: refill and take, or take nothing."""
        with self._conn() as conn:
            row = conn.execute(self._spend_sql, {"now": now.timestamp(), "cost": cost, "id": record.id}).fetchone()
            if row is not None:
                return QuotaUse(True, int(row[0]))
            row = conn.execute(
                "SELECT quota_limit, quota_refill_amount, quota_refill_interval, quota_remaining,"  # noqa: S608
                f" quota_refilled_at FROM {self._q}gridauth_keys WHERE id = %s",
                (record.id,),
            ).fetchone()
        if row is None or row[0] is None:
            return None
        seconds = REFILL_SECONDS.get(row[2]) if row[2] else None
        amount = None if row[1] is None else int(row[1])
        remaining, _ = refill_now(int(row[0]), amount, seconds, int(row[3]), float(row[4]), now.timestamp())
        return QuotaUse(False, remaining)

    # -- usage ---------------------------------------------------------------

    def touch(self, record: KeyRecord, when: datetime) -> None:
        """Set ``last_used_at``: a first use at once, a refresh with the next flush."""
        if record.last_used_at is None:
            with self._conn() as conn:
                conn.execute(self._touch_sql, (when, record.id), prepare=True)
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
        """Write the gathered ``last_used_at`` refreshes in one statement; ``StorageError`` keeps them."""
        with self._pending_lock:
            batch, self._pending = self._pending, {}
            self._flush_at = time.monotonic() + TOUCH_FLUSH_INTERVAL
        if not batch:
            return
        sql = (
            f"UPDATE {self._q}gridauth_keys AS k SET last_used_at = v.used"  # noqa: S608
            " FROM unnest(%s::text[], %s::timestamptz[]) AS v(id, used)"
            " WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.used)"
        )
        try:
            with self._conn() as conn:
                conn.execute(sql, (list(batch), list(batch.values())))
        except self._psycopg.Error:
            with self._pending_lock:
                # Put them back (a newer refresh made meanwhile wins) for the next flush.
                self._pending = {**batch, **self._pending}
            raise

    # -- health --------------------------------------------------------------

    def ping(self) -> None:
        """Run a trivial query (creating the tables first if this is the first use)."""
        with self._conn() as conn:
            conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        """Write pending ``last_used_at`` refreshes, then close this process's pool (a later call reopens it)."""
        if self._pending:
            try:
                self.flush()
            except StorageError:
                pass  # closing anyway: a usage timestamp is not worth failing a shutdown for
        self._listening = 0  # the listener thread stops within half a second
        listener, self._listener = self._listener, None
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=2.0)
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()
