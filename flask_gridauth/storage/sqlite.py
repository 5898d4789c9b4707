"""SQLite storage: the embedded default, safe across threads and processes.

Connections (one per thread and process, WAL, the file first opened and no
other) are :mod:`~flask_gridauth.storage.sqlite_connections`'s; what SQLite
does as PostgreSQL does (the decoded-row cache of the hot path, ``last_used_at``
refreshes gathered and written together, the SQL of keys, audit and usage) is
:class:`~flask_gridauth.storage.sql.SQLStorage`'s. Here: SQLite's dialect and
how a statement runs on its connections (reads on this thread's connection,
writes in a ``BEGIN IMMEDIATE`` transaction, usage times without an fsync).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from ..activity import UsageCount
from ..errors import ConfigurationError, StorageError
from ..records import KeyRecord
from .base import check_changes
from .sql import Params
from .sql_activity import SQLActivity
from .sql_records import COLUMNS, INTERVAL_SECONDS
from .sqlite_connections import SQLiteConnections, sqlite_path
from .sqlite_owners import SQLiteOwners
from .sqlite_schema import MIGRATIONS as MIGRATIONS
from .sqlite_sessions import SQLiteSessions
from .values import from_epoch, to_epoch

# Whole refill intervals since the last refill (0 without refill), and the units available now.
_PERIODS = f"IFNULL(MAX(0, CAST((:now - quota_refilled_at) / {INTERVAL_SECONDS} AS INTEGER)), 0)"
_AVAILABLE = f"MIN(quota_limit, quota_remaining + {_PERIODS} * IFNULL(quota_refill_amount, 0))"
#: One statement, so atomic across threads and processes: refill lazily, then take the units if enough.
_SPEND_SQL = (
    f"UPDATE gridauth_keys SET quota_remaining = {_AVAILABLE} - :cost,"  # noqa: S608 - fixed SQL
    f" quota_refilled_at = quota_refilled_at + {_PERIODS} * IFNULL({INTERVAL_SECONDS}, 0)"
    f" WHERE id = :id AND quota_limit IS NOT NULL AND {_AVAILABLE} >= :cost RETURNING quota_remaining"
)
_COLUMNS = ", ".join(COLUMNS)
_FIND_SQL = f"SELECT {_COLUMNS} FROM gridauth_keys WHERE lookup = ?"  # noqa: S608 - fixed columns


class SQLiteStorage(SQLiteConnections, SQLiteSessions, SQLiteOwners, SQLActivity):
    """Keys in one SQLite file, shared by every thread and process that opens it."""

    schemes = ("sqlite",)
    driver_errors = (sqlite3.Error,)
    _p = "?"
    _columns = _COLUMNS
    _spend_sql = _SPEND_SQL

    @classmethod
    def from_uri(cls, uri: str, *, instance_path: str, timeout: float) -> SQLiteStorage:
        """``sqlite:///relative.db`` (under ``instance_path``) or ``sqlite:////absolute.db``; makes the folder."""
        path = sqlite_path(uri, instance_path)
        directory = os.path.dirname(path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the folder for the SQLite storage {directory!r}: {exc.strerror}"
            ) from None
        return cls(path, timeout=timeout)

    def __init__(self, path: str, *, timeout: float = 2.0) -> None:
        if path in ("", ":memory:"):
            raise ValueError("an in-memory SQLite database is private to one connection: use memory:// instead")
        super().__init__()
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._claims = 0
        # (st_dev, st_ino) of the file first opened, and when the read path last compared it.
        self._identity: tuple[int, int] | None = None
        self._identity_checked = 0.0

    def enable_cache(self, ttl: float) -> bool:
        """Cache found keys; ``PRAGMA data_version`` tells each look-up whether anything changed since."""
        from .cache import KeyCache

        self._key_cache = KeyCache(ttl, live=True)
        return True

    def _cache_check(self) -> None:
        # data_version changes when any other connection (thread or process) has committed: exact and local.
        cache = self._key_cache
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        local = self._local
        if getattr(local, "data_version", None) != version:
            local.data_version = version
            if cache is not None:
                cache.clear()

    def storage_error(self, exc: BaseException) -> StorageError:
        """The driver's message never names a key: safe to keep. The path tells an operator which file."""
        return StorageError(f"SQLite storage {self.path} failed: {type(exc).__name__}: {exc}")

    # -- how statements run here (hooks of SQLStorage) ------------------------------

    def _find_row(self, lookup: str) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self._conn.execute(_FIND_SQL, (lookup,)).fetchone()
        return row

    def _select(self, sql: str, params: Params, *, prepare: bool = False) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, params).fetchall()

    def _execute(self, sql: str, params: Params, *, prepare: bool = False) -> None:
        self._conn.execute(sql, params)  # autocommit, synchronous=NORMAL: no fsync for a usage time

    def _run_write(self, sql: str, params: Params) -> int:
        with self._write() as conn:
            return int(conn.execute(sql, params).rowcount)

    def _insert(self, sql: str, params: Params) -> int:
        with self._write() as conn:
            return int(conn.execute(sql, params).lastrowid or 0)

    def _is_duplicate(self, exc: BaseException) -> bool:
        return isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc)

    def _write_used_batch(self, batch: dict[str, datetime]) -> None:
        with self._write(durable=False) as conn:  # a lost usage time is harmless: no fsync for it
            conn.executemany(self._touch_sql, [(used.timestamp(), key_id) for key_id, used in batch.items()])

    def _time_param(self, value: datetime | None) -> float | None:
        return to_epoch(value)

    def _time_value(self, value: float | None) -> datetime | None:
        return from_epoch(value)

    def _list_param(self, value: Iterable[str]) -> str:
        return json.dumps(list(value))

    def _object_param(self, value: Mapping[str, Any]) -> str:
        return json.dumps(value)

    def _json_value(self, value: str) -> Any:
        return json.loads(value)

    # -- keys --------------------------------------------------------------------

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Change the named fields in one statement."""
        check_changes(changes)
        if changes:
            columns = self._update_columns(changes)
            values = list(columns.values())
            # Column names come from MUTABLE_FIELDS (checked above); values are bound.
            assignments = ", ".join(f"{name} = ?" for name in columns)
            sql = f"UPDATE gridauth_keys SET {assignments} WHERE id = ?"  # noqa: S608
            with self._write() as conn:
                conn.execute(sql, (*values, key_id))
        return self.get(key_id)

    def mark_rotated(self, key_id: str, *, expires_at: datetime | None, rotated_at: datetime) -> bool:
        """One conditional ``UPDATE``: it changes a row only if nobody rotated, revoked or disabled the key first."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE gridauth_keys SET rotated_at = ?, expires_at = IFNULL(?, expires_at)"
                " WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL AND disabled_at IS NULL",
                (to_epoch(rotated_at), to_epoch(expires_at), key_id),
            )
            return cursor.rowcount == 1

    # -- usage counts ----------------------------------------------------------------

    def add_usage(self, counts: Sequence[UsageCount]) -> None:
        """Upsert every bucket in one transaction, adding to the stored counts."""
        if not counts:
            return
        with self._write() as conn:
            for count in counts:
                row = conn.execute(
                    "SELECT scopes FROM gridauth_usage WHERE key_id = ? AND hour = ?", (count.key_id, count.hour)
                ).fetchone()
                scopes: dict[str, int] = json.loads(row[0]) if row is not None else {}
                for scope, n in count.scopes.items():
                    scopes[scope] = scopes.get(scope, 0) + n
                conn.execute(
                    "INSERT INTO gridauth_usage (key_id, hour, allowed, forbidden, rate_limited, scopes)"
                    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key_id, hour) DO UPDATE SET"
                    " allowed = allowed + excluded.allowed, forbidden = forbidden + excluded.forbidden,"
                    " rate_limited = rate_limited + excluded.rate_limited, scopes = excluded.scopes",
                    (
                        count.key_id,
                        count.hour,
                        count.allowed,
                        count.forbidden,
                        count.rate_limited,
                        json.dumps(scopes, sort_keys=True),
                    ),
                )

    # -- health --------------------------------------------------------------------

    def ping(self) -> None:
        """Run a trivial query against the file, after checking it is still the file first opened."""
        conn = self._conn
        self._check_file()
        conn.execute("SELECT 1 FROM gridauth_keys LIMIT 1").fetchall()

    def close(self) -> None:
        """Write pending ``last_used_at`` refreshes, then close this thread's connection."""
        self._flush_before_close()
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()
