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
in batches. What PostgreSQL does as SQLite does (the decoded-row cache,
``last_used_at`` coalesced, the SQL of keys, audit and usage) is
:class:`~flask_gridauth.storage.sql.SQLStorage`'s.

Nothing is contacted when the backend is built: the pool opens on first use,
so an app starts while the database is down and answers 503 until it is back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..activity import UsageCount
from ..errors import StorageError
from ..records import KeyRecord
from .base import check_changes
from .postgres_changes import PostgresChanges
from .postgres_connections import PostgresConnections, parse_uri
from .postgres_owners import PostgresOwners
from .postgres_sessions import PURGE_BATCH as PURGE_BATCH
from .postgres_sessions import PURGE_EVERY as PURGE_EVERY
from .postgres_sessions import PostgresSessions
from .sql import Params
from .sql_activity import SQLActivity
from .sql_records import COLUMNS, INTERVAL_SECONDS

if TYPE_CHECKING:
    from psycopg_pool import ConnectionPool

# scopes and metadata come back as JSON text: a row is then a tuple of hashable values, and an
# unchanged row is decoded once (see SQLStorage.find), not parsed into a list and a dict each time.
_AS_TEXT = {
    "scopes": "to_json(scopes)::text",
    "metadata": "metadata::text",
    "allowed_ips": "to_json(allowed_ips)::text",
}
_COLUMNS = ", ".join(_AS_TEXT.get(name, name) for name in COLUMNS)
# Whole refill intervals since the last refill (0 without refill), and the units available now.
_PERIODS = f"COALESCE(GREATEST(0, FLOOR((%(now)s - quota_refilled_at) / {INTERVAL_SECONDS})), 0)::bigint"
_AVAILABLE = f"LEAST(quota_limit, quota_remaining + {_PERIODS} * COALESCE(quota_refill_amount, 0))"
#: One statement (the row lock serialises concurrent spenders): refill lazily, then take the units if enough.
_SPEND_SQL = (
    "UPDATE {s}gridauth_keys SET quota_remaining = " + _AVAILABLE + " - %(cost)s,"  # noqa: S608 - fixed SQL
    " quota_refilled_at = quota_refilled_at + " + _PERIODS + " * COALESCE(" + INTERVAL_SECONDS + ", 0)"
    " WHERE id = %(id)s AND quota_limit IS NOT NULL AND " + _AVAILABLE + " >= %(cost)s RETURNING quota_remaining"
)


class PostgresStorage(PostgresConnections, PostgresChanges, PostgresSessions, PostgresOwners, SQLActivity):
    """Keys in PostgreSQL, shared by every process and host using the same database."""

    schemes = ("postgresql", "postgres")
    #: ``update`` notifies the changed lookup in its own transaction (delivered at commit).
    pushes_own_changes = frozenset({"update", "mark_rotated"})
    _p = "%s"
    _columns = _COLUMNS

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
        super().__init__(q)
        #: The NOTIFY channel of key changes (one per schema).
        self.channel = f"gridauth_keys_{schema or 'public'}"
        self._listening = 0  # the pid whose listener thread runs; 0: none
        self._listener: threading.Thread | None = None
        self._find_sql = f"SELECT {_COLUMNS} FROM {q}gridauth_keys WHERE lookup = %s"  # noqa: S608 - fixed names
        self._spend_sql = _SPEND_SQL.replace("{s}", q)
        self._pool: ConnectionPool[Any] | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()
        self._schema_ready = False
        self._claims = 0

    def storage_error(self, exc: BaseException) -> StorageError:
        """The error's type and SQLSTATE: a driver's message may name the host or the user."""
        state = getattr(exc, "sqlstate", None)
        return StorageError(f"PostgreSQL storage failed: {type(exc).__name__}" + (f" ({state})" if state else ""))

    # -- how statements run here (hooks of SQLStorage) ------------------------------

    def _find_row(self, lookup: str) -> tuple[Any, ...] | None:
        with self._conn() as conn:
            row: tuple[Any, ...] | None = conn.execute(self._find_sql, (lookup,), prepare=True, binary=True).fetchone()
        return row

    def _select(self, sql: str, params: Params, *, prepare: bool = False) -> list[tuple[Any, ...]]:
        with self._conn() as conn:
            return conn.execute(sql, params, prepare=True if prepare else None).fetchall()

    def _execute(self, sql: str, params: Params, *, prepare: bool = False) -> None:
        with self._conn() as conn:
            conn.execute(sql, params, prepare=True if prepare else None)

    def _run_write(self, sql: str, params: Params) -> int:
        with self._conn() as conn:
            return int(conn.execute(sql, params).rowcount)

    def _insert(self, sql: str, params: Params) -> int:
        with self._conn() as conn:
            row = conn.execute(sql + " RETURNING seq", params).fetchone()
        if row is None:  # pragma: no cover - RETURNING always returns the row
            raise StorageError("PostgreSQL storage failed: no seq returned")
        return int(row[0])

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, self._psycopg.errors.UniqueViolation)

    def _write_used_batch(self, batch: dict[str, datetime]) -> None:
        sql = (
            f"UPDATE {self._q}gridauth_keys AS k SET last_used_at = v.used"  # noqa: S608
            " FROM unnest(%s::text[], %s::timestamptz[]) AS v(id, used)"
            " WHERE k.id = v.id AND (k.last_used_at IS NULL OR k.last_used_at < v.used)"
        )
        with self._conn() as conn:
            conn.execute(sql, (list(batch), list(batch.values())))

    def _time_param(self, value: datetime | None) -> datetime | None:
        return value  # psycopg binds an aware datetime as timestamptz

    def _time_value(self, value: datetime | None) -> datetime | None:
        return value

    def _list_param(self, value: Iterable[str]) -> list[str]:
        return list(value)

    def _object_param(self, value: Mapping[str, Any]) -> Any:
        return self._jsonb(value)

    def _json_value(self, value: Any) -> Any:
        return value  # psycopg decodes jsonb

    # -- keys ----------------------------------------------------------------

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Change the named columns and bump ``version``, in one ``UPDATE ... RETURNING``."""
        check_changes(changes)
        if not changes:
            return self.get(key_id)
        columns = self._update_columns(changes)
        values = list(columns.values())
        # Column names come from MUTABLE_FIELDS (checked above); values are bound.
        assignments = ", ".join(f"{name} = %s" for name in columns)
        sql = (
            f"UPDATE {self._q}gridauth_keys SET {assignments}, version = version + 1"  # noqa: S608
            f" WHERE id = %s RETURNING {self._full_columns}"
        )
        with self._conn() as conn, conn.transaction():
            row = conn.execute(sql, (*values, key_id)).fetchone()
            if row is not None:
                # Delivered at commit, to every process listening (their key caches drop this key).
                conn.execute("SELECT pg_notify(%s, %s)", (self.channel, row[2]))
        if row is None:
            return None
        record = self._decode(row)
        return self._with_pending(record) if self._pending else record

    def mark_rotated(self, key_id: str, *, expires_at: datetime | None, rotated_at: datetime) -> bool:
        """One conditional ``UPDATE ... RETURNING``: the row lock lets exactly one claimer change the row."""
        sql = (
            f"UPDATE {self._q}gridauth_keys SET rotated_at = %s, expires_at = COALESCE(%s::timestamptz, expires_at),"  # noqa: S608
            " version = version + 1 WHERE id = %s AND rotated_at IS NULL AND revoked_at IS NULL AND disabled_at IS NULL"
            " RETURNING lookup"
        )
        with self._conn() as conn, conn.transaction():
            row = conn.execute(sql, (rotated_at, expires_at, key_id)).fetchone()
            if row is not None:
                # Delivered at commit, to every process listening (their key caches drop this key).
                conn.execute("SELECT pg_notify(%s, %s)", (self.channel, row[0]))
        return row is not None

    # -- usage counts ----------------------------------------------------------------

    def add_usage(self, counts: Sequence[UsageCount]) -> None:
        """Upsert every bucket in one transaction, adding to the stored counts (scopes merged per name)."""
        if not counts:
            return
        sql = (
            f"INSERT INTO {self._q}gridauth_usage AS u"  # noqa: S608 - fixed names
            " (key_id, hour, allowed, forbidden, rate_limited, scopes) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (key_id, hour) DO UPDATE SET allowed = u.allowed + excluded.allowed,"
            " forbidden = u.forbidden + excluded.forbidden, rate_limited = u.rate_limited + excluded.rate_limited,"
            " scopes = (SELECT coalesce(jsonb_object_agg(k, coalesce((u.scopes ->> k)::bigint, 0)"
            " + coalesce((excluded.scopes ->> k)::bigint, 0)), '{}'::jsonb)"
            " FROM jsonb_object_keys(u.scopes || excluded.scopes) AS k)"
        )
        # One order for every writer, so two processes flushing the same buckets never deadlock.
        rows = sorted(
            (c.key_id, c.hour, c.allowed, c.forbidden, c.rate_limited, self._jsonb(dict(c.scopes))) for c in counts
        )
        with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(sql, rows)

    # -- health --------------------------------------------------------------

    def ping(self) -> None:
        """Run a trivial query (creating the tables first if this is the first use)."""
        with self._conn() as conn:
            conn.execute("SELECT 1").fetchone()

    def close(self) -> None:
        """Write pending ``last_used_at`` refreshes, then close this process's pool (a later call reopens it)."""
        self._flush_before_close()
        self._listening = 0  # the listener thread stops within half a second
        listener, self._listener = self._listener, None
        if listener is not None and listener is not threading.current_thread():
            listener.join(timeout=2.0)
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pool_pid == os.getpid():
            pool.close()
