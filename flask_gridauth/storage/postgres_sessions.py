"""Dashboard sessions and the replay cache in the PostgreSQL tables ``gridauth_sessions`` and ``gridauth_seen``."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .base import Storage

if TYPE_CHECKING:
    import psycopg

#: Claims between two purges of expired replay-cache rows, and the most rows one purge deletes.
PURGE_EVERY, PURGE_BATCH = 1000, 5000


class PostgresSessions(Storage):
    """Session and replay-cache methods of :class:`~flask_gridauth.storage.postgres.PostgresStorage` (abstract base)."""

    if TYPE_CHECKING:
        #: The schema prefix of every table name (``"name".`` or empty).
        _q: str
        #: Claims made by this process (every :data:`PURGE_EVERY`-th also purges expired rows).
        _claims: int

        def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    # -- dashboard sessions --------------------------------------------------

    def add_session(self, session_id: str, subject: str, expires_at: datetime) -> None:
        """Insert the session, deleting expired ones in the same statement's transaction."""
        q = self._q
        with self._conn() as conn, conn.transaction():
            conn.execute(f"DELETE FROM {q}gridauth_sessions WHERE expires_at <= now()")  # noqa: S608
            conn.execute(
                f"INSERT INTO {q}gridauth_sessions (id, subject, expires_at) VALUES (%s, %s, %s)"  # noqa: S608
                " ON CONFLICT (id) DO UPDATE SET subject = excluded.subject, expires_at = excluded.expires_at",
                (session_id, subject, expires_at),
            )

    def session_subject(self, session_id: str) -> str | None:
        """One primary-key SELECT."""
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT subject FROM {self._q}gridauth_sessions WHERE id = %s AND expires_at > now()",  # noqa: S608
                (session_id,),
                prepare=True,
            ).fetchone()
        return None if row is None else str(row[0])

    def end_session(self, session_id: str) -> None:
        """Delete the session's row."""
        with self._conn() as conn:
            conn.execute(f"DELETE FROM {self._q}gridauth_sessions WHERE id = %s", (session_id,))  # noqa: S608

    def end_sessions(self, subject: str) -> int:
        """Delete every row of ``subject``; how many were live."""
        with self._conn() as conn:
            rows = conn.execute(
                f"DELETE FROM {self._q}gridauth_sessions WHERE subject = %s RETURNING expires_at > now()",  # noqa: S608
                (subject,),
            ).fetchall()
        return sum(1 for (live,) in rows if live)

    # -- the replay cache ----------------------------------------------------

    def claim_once(self, token: str, ttl: float) -> bool:
        """Insert ``token``; a live row is a conflict (a replay), an expired one is taken over."""
        q = self._q
        with self._conn() as conn:
            self._claims += 1
            if self._claims % PURGE_EVERY == 0:
                conn.execute(
                    f"DELETE FROM {q}gridauth_seen WHERE token IN (SELECT token FROM {q}gridauth_seen"  # noqa: S608
                    " WHERE expires_at <= now() LIMIT %s)",
                    (PURGE_BATCH,),
                )
            cur = conn.execute(
                f"INSERT INTO {q}gridauth_seen AS s (token, expires_at)"  # noqa: S608
                " VALUES (%s, now() + make_interval(secs => %s))"
                " ON CONFLICT (token) DO UPDATE SET expires_at = excluded.expires_at WHERE s.expires_at <= now()",
                (token, float(ttl)),
                prepare=True,
            )
            return cur.rowcount == 1
