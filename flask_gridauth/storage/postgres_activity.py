"""The audit log and usage counts in the PostgreSQL backend's ``gridauth_audit`` and ``gridauth_usage`` tables."""

from __future__ import annotations

import builtins
import dataclasses
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..activity import Actor, AuditEvent, UsageCount
from ..errors import StorageError
from .base import Storage

if TYPE_CHECKING:
    import psycopg


class PostgresActivity(Storage):
    """The audit and usage methods of :class:`~flask_gridauth.storage.postgres.PostgresStorage` (an abstract base)."""

    if TYPE_CHECKING:
        #: The schema prefix of every table name (``"name".`` or empty).
        _q: str
        #: psycopg's ``Jsonb`` wrapper (imported when the backend is built).
        _jsonb: Callable[[Any], Any]

        def _conn(self) -> AbstractContextManager[psycopg.Connection[Any]]: ...

    # -- audit log and usage -------------------------------------------------

    def add_audit_event(self, event: AuditEvent) -> AuditEvent:
        """Insert the event; its ``seq`` comes from the identity column."""
        sql = (
            f"INSERT INTO {self._q}gridauth_audit"  # noqa: S608 - fixed names
            " (id, action, actor, target_id, owner, remote_addr, created_at, details)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING seq"
        )
        jsonb = self._jsonb
        with self._conn() as conn:
            row = conn.execute(
                sql,
                (
                    event.id,
                    event.action,
                    jsonb(event.actor.to_dict()),
                    event.target_id,
                    event.owner,
                    event.remote_addr,
                    event.created_at,
                    jsonb(dict(event.details)),
                ),
            ).fetchone()
        if row is None:  # pragma: no cover - RETURNING always gives the row
            raise StorageError("PostgreSQL storage failed: no seq returned for an audit event")
        return dataclasses.replace(event, seq=int(row[0]))

    def list_audit_events(
        self,
        owner: str | None,
        *,
        limit: int,
        before_seq: int | None = None,
        action: str | None = None,
        target_id: str | None = None,
    ) -> builtins.list[AuditEvent]:
        """Events newest first, by ``seq``, filtered in SQL."""
        clauses: builtins.list[str] = []
        params: builtins.list[Any] = []
        for column, value in (("owner", owner), ("action", action), ("target_id", target_id)):
            if value is not None:
                clauses.append(f"{column} = %s")
                params.append(value)
        if before_seq is not None:
            clauses.append("seq < %s")
            params.append(before_seq)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        columns = "seq, id, action, actor, target_id, owner, remote_addr, created_at, details"
        sql = f"SELECT {columns} FROM {self._q}gridauth_audit{where} ORDER BY seq DESC LIMIT %s"  # noqa: S608
        with self._conn() as conn:
            rows = conn.execute(sql, (*params, limit)).fetchall()
        return [
            AuditEvent(
                seq=int(seq),
                id=event_id,
                action=act,
                actor=Actor(kind=who["kind"], id=who["id"], owner=who["owner"]),
                target_id=target,
                owner=own,
                remote_addr=remote,
                created_at=created,
                details=details,
            )
            for seq, event_id, act, who, target, own, remote, created, details in rows
        ]

    def purge_audit_events(self, before: datetime, *, limit: int = 1000) -> int:
        """Delete the oldest events created before ``before``, at most ``limit`` in one statement."""
        q = self._q
        sql = (
            f"DELETE FROM {q}gridauth_audit WHERE seq IN (SELECT seq FROM {q}gridauth_audit"  # noqa: S608
            " WHERE created_at < %s ORDER BY seq LIMIT %s)"
        )
        with self._conn() as conn:
            return int(conn.execute(sql, (before, limit)).rowcount)

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

    def list_usage(self, key_id: str, *, since_hour: int) -> builtins.list[UsageCount]:
        """The key's buckets from ``since_hour``, oldest first."""
        sql = (
            f"SELECT hour, allowed, forbidden, rate_limited, scopes FROM {self._q}gridauth_usage"  # noqa: S608
            " WHERE key_id = %s AND hour >= %s ORDER BY hour"
        )
        with self._conn() as conn:
            rows = conn.execute(sql, (key_id, since_hour)).fetchall()
        return [
            UsageCount(key_id, int(h), int(a), int(f), int(r), {k: int(v) for k, v in s.items()})
            for h, a, f, r, s in rows
        ]

    def purge_usage(self, before_hour: int, *, limit: int = 1000) -> int:
        """Delete buckets of hours before ``before_hour``, at most ``limit`` in one statement."""
        q = self._q
        sql = (
            f"DELETE FROM {q}gridauth_usage WHERE (key_id, hour) IN (SELECT key_id, hour FROM {q}gridauth_usage"  # noqa: S608
            " WHERE hour < %s LIMIT %s)"
        )
        with self._conn() as conn:
            return int(conn.execute(sql, (before_hour, limit)).rowcount)
