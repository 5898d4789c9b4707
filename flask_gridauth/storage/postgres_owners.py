"""Per-owner overrides of ``GRIDAUTH_RATELIMIT_OWNER`` in the PostgreSQL backend's ``gridauth_owner_limits`` table."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .base import Storage

if TYPE_CHECKING:
    import psycopg


class PostgresOwners(Storage):
    """The owner-limit methods of :class:`~flask_gridauth.storage.postgres.PostgresStorage` (an abstract base)."""

    if TYPE_CHECKING:
        #: The schema prefix of every table name (``"name".`` or empty).
        _q: str

        def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    def set_owner_limit(self, owner: str, limit: str | None) -> None:
        """Upsert or delete the owner's row (committed when the pooled connection is returned)."""
        with self._conn() as conn:
            if limit is None:
                conn.execute(f"DELETE FROM {self._q}gridauth_owner_limits WHERE owner = %s", (owner,))  # noqa: S608
            else:
                conn.execute(
                    f"INSERT INTO {self._q}gridauth_owner_limits (owner, rate_limit) VALUES (%s, %s)"  # noqa: S608
                    " ON CONFLICT (owner) DO UPDATE SET rate_limit = excluded.rate_limit, updated_at = now()",
                    (owner, limit),
                )

    def owner_limits(self) -> dict[str, str]:
        """Every row, in one query."""
        with self._conn() as conn:
            rows = conn.execute(f"SELECT owner, rate_limit FROM {self._q}gridauth_owner_limits").fetchall()  # noqa: S608
        return {str(owner): str(limit) for owner, limit in rows}

    def get_owner_limit(self, owner: str) -> str | None:
        """The owner's row, if any."""
        with self._conn() as conn:
            row = conn.execute(
                f"SELECT rate_limit FROM {self._q}gridauth_owner_limits WHERE owner = %s",  # noqa: S608
                (owner,),
            ).fetchone()
        return None if row is None else str(row[0])
