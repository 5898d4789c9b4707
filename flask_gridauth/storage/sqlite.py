"""SQLite storage: the embedded default, safe across threads and processes.

Connections (one per thread and process, WAL, the file first opened and no
other) are :mod:`~flask_gridauth.storage.sqlite_connections`'s.

``last_used_at`` writes are coalesced: a key's first use is written at once,
and its later refreshes (at most one a minute per key) are gathered in this
process and written together in one transaction at most once per
:data:`TOUCH_FLUSH_INTERVAL`, by the first request after it. Many keys in use
then cost one short write a second instead of one each, so requests rarely
meet the write lock or a WAL checkpoint. This process reads its own pending
refreshes at once; other processes see them after the next flush. A flush
that fails (the file is locked) is kept and retried; it never fails a request.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..errors import ConfigurationError, StorageError
from ..records import REFILL_SECONDS, KeyRecord, utcnow
from .base import KeyExistsError, QuotaUse, check_changes
from .sqlite_activity import SQLiteActivity
from .sqlite_connections import SQLiteConnections, sqlite_path
from .sqlite_owners import SQLiteOwners
from .sqlite_records import _COLUMNS, _FULL_COLUMNS, _JSON_FIELDS, _TIME_FIELDS, _quota_columns, _record
from .sqlite_schema import MIGRATIONS as MIGRATIONS
from .sqlite_sessions import SQLiteSessions
from .values import from_epoch, quota_state, refill_now, to_epoch

logger = logging.getLogger("flask_gridauth")

_INTERVAL_SECONDS = (
    "(CASE quota_refill_interval "
    + " ".join(f"WHEN '{name}' THEN {seconds}" for name, seconds in REFILL_SECONDS.items())
    + " END)"
)
# Whole refill intervals since the last refill (0 without refill), and the units available now.
_PERIODS = f"IFNULL(MAX(0, CAST((:now - quota_refilled_at) / {_INTERVAL_SECONDS} AS INTEGER)), 0)"
_AVAILABLE = f"MIN(quota_limit, quota_remaining + {_PERIODS} * IFNULL(quota_refill_amount, 0))"
#: One statement, so atomic across threads and processes: refill lazily, then take the units if enough.
_SPEND_SQL = (
    f"UPDATE gridauth_keys SET quota_remaining = {_AVAILABLE} - :cost,"  # noqa: S608 - fixed SQL
    f" quota_refilled_at = quota_refilled_at + {_PERIODS} * IFNULL({_INTERVAL_SECONDS}, 0)"
    f" WHERE id = :id AND quota_limit IS NOT NULL AND {_AVAILABLE} >= :cost RETURNING quota_remaining"
)
#: Seconds between two writes of gathered ``last_used_at`` refreshes.
TOUCH_FLUSH_INTERVAL = 1.0
_TOUCH_SQL = "UPDATE gridauth_keys SET last_used_at = ? WHERE id = ?"
_FIND_SQL = f"SELECT {_COLUMNS} FROM gridauth_keys WHERE lookup = ?"  # noqa: S608 - fixed columns
#: Most decoded rows :meth:`SQLiteStorage.find` keeps (then the cache starts over).
MAX_CACHED_ROWS = 4096


class SQLiteStorage(SQLiteConnections, SQLiteSessions, SQLiteActivity, SQLiteOwners):
    """Keys in one SQLite file, shared by every thread and process that opens it."""

    schemes = ("sqlite",)
    driver_errors = (sqlite3.Error,)

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
        self.path = path
        self.timeout = timeout
        self._local = threading.local()
        self._schema_ready = False
        self._schema_lock = threading.Lock()
        self._claims = 0
        # Row tuple -> its record: an unchanged row (every column equal) decodes to the same
        # immutable record object, so a key's JSON and timestamps are parsed once, not per request.
        self._rows: dict[tuple[Any, ...], KeyRecord] = {}
        # Key id -> last_used_at (epoch seconds) not yet written; see the module docstring.
        self._pending: dict[str, float] = {}
        self._pending_lock = threading.Lock()
        self._flush_at = 0.0
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

    def add(self, record: KeyRecord) -> KeyRecord:
        """Insert the key; its ``seq`` is the row id."""
        try:
            with self._write() as conn:
                quota = _quota_columns(record.quota, record.created_at)
                cur = conn.execute(
                    "INSERT INTO gridauth_keys (id, lookup, name, type, prefix, scopes, environment, owner,"
                    " created_at, expires_at, revoked_at, last_used_at, metadata, rate_limit, public_key,"
                    " disabled_at, allowed_ips, canary, quota_limit, quota_refill_amount, quota_refill_interval,"
                    " quota_remaining, quota_refilled_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        record.id,
                        record.lookup,
                        record.name,
                        record.type,
                        record.prefix,
                        json.dumps(list(record.scopes)),
                        record.environment,
                        record.owner,
                        to_epoch(record.created_at),
                        to_epoch(record.expires_at),
                        to_epoch(record.revoked_at),
                        to_epoch(record.last_used_at),
                        json.dumps(record.metadata),
                        record.rate_limit,
                        record.public_key,
                        to_epoch(record.disabled_at),
                        json.dumps(list(record.allowed_ips)),
                        int(record.canary),
                        *quota.values(),
                    ),
                )
                seq = int(cur.lastrowid or 0)
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise KeyExistsError(record.id) from None
            raise
        return self._full(dataclasses.replace(record, seq=seq), record.created_at)

    @staticmethod
    def _full(record: KeyRecord, since: datetime) -> KeyRecord:
        """``record`` with the counter its quota was just stored with."""
        if record.quota is None:
            return record
        remaining, refilled_at = quota_state(record.quota, since)
        quota = dataclasses.replace(record.quota, remaining=remaining, refilled_at=from_epoch(refilled_at))
        return dataclasses.replace(record, quota=quota)

    def _one(self, where: str, value: str) -> KeyRecord | None:
        # ``where`` is one of two fixed column names, never caller input.
        sql = f"SELECT {_FULL_COLUMNS} FROM gridauth_keys WHERE {where} = ?"  # noqa: S608
        row = self._conn.execute(sql, (value,)).fetchone()
        return None if row is None else _record(row)

    def _with_pending(self, record: KeyRecord) -> KeyRecord:
        """``record`` with this process's refresh of its ``last_used_at`` that is not written yet."""
        used = self._pending.get(record.id)
        return record if used is None else dataclasses.replace(record, last_used_at=from_epoch(used))

    def get(self, key_id: str) -> KeyRecord | None:
        """The key with this id."""
        record = self._one("id", key_id)
        return self._with_pending(record) if record is not None and self._pending else record

    def find(self, lookup: str) -> KeyRecord | None:
        """The key with this hash or fingerprint: one indexed SELECT (the hot path)."""
        row = self._conn.execute(_FIND_SQL, (lookup,)).fetchone()
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
        params: list[str | int] = []
        if owner is not None:
            clauses.append("owner = ?")
            params.append(owner)
        if before_seq is not None:
            clauses.append("seq < ?")
            params.append(before_seq)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT {_FULL_COLUMNS} FROM gridauth_keys{where} ORDER BY seq DESC LIMIT ?"  # noqa: S608 - fixed clauses
        rows = self._conn.execute(sql, (*params, limit)).fetchall()
        records = [_record(row) for row in rows]
        return [self._with_pending(r) for r in records] if self._pending else records

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Change the named fields in one statement."""
        check_changes(changes)
        if changes:
            columns: dict[str, Any] = {}
            for name, value in changes.items():
                if name == "quota":
                    columns.update(_quota_columns(value, utcnow()))
                    continue
                if name in _TIME_FIELDS:
                    value = to_epoch(value)
                elif name in _JSON_FIELDS:
                    value = json.dumps(value if name == "metadata" else list(value))
                columns[name] = value
            values = list(columns.values())
            # Column names come from MUTABLE_FIELDS (checked above); values are bound.
            assignments = ", ".join(f"{name} = ?" for name in columns)
            sql = f"UPDATE gridauth_keys SET {assignments} WHERE id = ?"  # noqa: S608
            with self._write() as conn:
                conn.execute(sql, (*values, key_id))
        return self.get(key_id)

    def mark_rotated(self, key_id: str, *, expires_at: datetime | None, rotated_at: datetime) -> bool:
        """One conditional ``UPDATE``: it changes a row only if nobody rotated or revoked the key first."""
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE gridauth_keys SET rotated_at = ?, expires_at = IFNULL(?, expires_at)"
                " WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL",
                (to_epoch(rotated_at), to_epoch(expires_at), key_id),
            )
            return cursor.rowcount == 1

    def spend_quota(self, record: KeyRecord, cost: int, now: datetime) -> QuotaUse | None:
        """One ``UPDATE ... RETURNING``: refill and take, or take nothing, atomically."""
        conn = self._conn
        row = conn.execute(_SPEND_SQL, {"now": now.timestamp(), "cost": cost, "id": record.id}).fetchone()
        if row is not None:
            return QuotaUse(True, int(row[0]))
        row = conn.execute(
            "SELECT quota_limit, quota_refill_amount, quota_refill_interval, quota_remaining, quota_refilled_at"
            " FROM gridauth_keys WHERE id = ?",
            (record.id,),
        ).fetchone()
        if row is None or row[0] is None:
            return None
        seconds = REFILL_SECONDS.get(row[2]) if row[2] else None
        remaining, _ = refill_now(row[0], row[1], seconds, int(row[3]), float(row[4]), now.timestamp())
        return QuotaUse(False, remaining)

    def touch(self, record: KeyRecord, when: datetime) -> None:
        """Set ``last_used_at``: a first use at once, a refresh with the next flush (see the module docstring)."""
        if record.last_used_at is None:
            self._conn.execute(_TOUCH_SQL, (when.timestamp(), record.id))
            return
        with self._pending_lock:
            self._pending[record.id] = when.timestamp()
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
            with self._write(durable=False) as conn:  # a lost usage time is harmless: no fsync for it
                conn.executemany(_TOUCH_SQL, [(used, key_id) for key_id, used in batch.items()])
        except sqlite3.Error:
            with self._pending_lock:
                # Put them back (a newer refresh made meanwhile wins) for the next flush.
                self._pending = {**batch, **self._pending}
            raise

    def ping(self) -> None:
        """Run a trivial query against the file, after checking it is still the file first opened."""
        conn = self._conn
        self._check_file()
        conn.execute("SELECT 1 FROM gridauth_keys LIMIT 1").fetchall()

    def close(self) -> None:
        """Write pending ``last_used_at`` refreshes, then close this thread's connection."""
        if self._pending:
            try:
                self.flush()
            except StorageError:
                pass  # closing anyway: a usage timestamp is not worth failing a shutdown for
        conn = getattr(self._local, "conn", None)
        if conn is not None and getattr(self._local, "pid", None) == os.getpid():
            conn.close()
        self._local = threading.local()
