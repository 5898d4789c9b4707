"""Per-owner overrides of ``GRIDAUTH_RATELIMIT_OWNER`` in the SQLite backend's ``gridauth_owner_limits`` table."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from .base import Storage


class SQLiteOwners(Storage):
    """The owner-limit methods of :class:`~flask_gridauth.storage.sqlite.SQLiteStorage` (an abstract base)."""

    if TYPE_CHECKING:

        @property
        def _conn(self) -> sqlite3.Connection: ...

        def _write(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]: ...

    def set_owner_limit(self, owner: str, limit: str | None) -> None:
        """Upsert or delete the owner's row, committed durably (like a key change)."""
        with self._write() as conn:
            if limit is None:
                conn.execute("DELETE FROM gridauth_owner_limits WHERE owner = ?", (owner,))
            else:
                conn.execute(
                    "INSERT INTO gridauth_owner_limits (owner, rate_limit, updated_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (owner) DO UPDATE SET rate_limit = excluded.rate_limit,"
                    " updated_at = excluded.updated_at",
                    (owner, limit, time.time()),
                )

    def owner_limits(self) -> dict[str, str]:
        """Every row, in one query."""
        rows = self._conn.execute("SELECT owner, rate_limit FROM gridauth_owner_limits").fetchall()
        return {str(owner): str(limit) for owner, limit in rows}

    def get_owner_limit(self, owner: str) -> str | None:
        """The owner's row, if any."""
        row = self._conn.execute("SELECT rate_limit FROM gridauth_owner_limits WHERE owner = ?", (owner,)).fetchone()
        return None if row is None else str(row[0])
