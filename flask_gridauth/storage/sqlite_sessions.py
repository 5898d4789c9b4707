"""Dashboard sessions and the replay cache in the SQLite tables ``gridauth_sessions`` and ``gridauth_seen``."""

from __future__ import annotations

import sqlite3
import time
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from .base import Storage


class SQLiteSessions(Storage):
    """Session and replay-cache methods of :class:`~flask_gridauth.storage.sqlite.SQLiteStorage` (abstract base)."""

    if TYPE_CHECKING:
        #: Claims made by this process (every 1000th also deletes expired rows).
        _claims: int

        @property
        def _conn(self) -> sqlite3.Connection: ...

        def _write(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]: ...

    def add_session(self, session_id: str, subject: str, expires_at: datetime) -> None:
        """Insert the session; expired sessions are deleted in the same transaction."""
        with self._write() as conn:
            conn.execute("DELETE FROM gridauth_sessions WHERE expires_at <= ?", (time.time(),))
            conn.execute(
                "INSERT OR REPLACE INTO gridauth_sessions (id, subject, expires_at) VALUES (?, ?, ?)",
                (session_id, subject, expires_at.timestamp()),
            )

    def session_subject(self, session_id: str) -> str | None:
        """One indexed SELECT."""
        row = self._conn.execute(
            "SELECT subject FROM gridauth_sessions WHERE id = ? AND expires_at > ?", (session_id, time.time())
        ).fetchone()
        return None if row is None else str(row[0])

    def end_session(self, session_id: str) -> None:
        """Delete the session's row."""
        with self._write() as conn:
            conn.execute("DELETE FROM gridauth_sessions WHERE id = ?", (session_id,))

    def end_sessions(self, subject: str) -> int:
        """Delete every row of ``subject``."""
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM gridauth_sessions WHERE subject = ? AND expires_at > ?", (subject, time.time())
            )
            conn.execute("DELETE FROM gridauth_sessions WHERE subject = ?", (subject,))
        return int(cur.rowcount)

    def claim_once(self, token: str, ttl: float) -> bool:
        """Insert ``token``, or take over an expired row; a live row means a replay."""
        now = time.time()
        conn = self._conn
        self._claims += 1
        if self._claims % 1000 == 0:
            conn.execute("DELETE FROM gridauth_seen WHERE expires_at <= ?", (now,))
        cur = conn.execute(
            "INSERT INTO gridauth_seen (token, expires_at) VALUES (?, ?)"
            " ON CONFLICT (token) DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE gridauth_seen.expires_at <= ?",
            (token, now + ttl, now),
        )
        return cur.rowcount == 1
