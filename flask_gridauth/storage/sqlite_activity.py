"""The audit log and usage counts in the SQLite backend's ``gridauth_audit`` and ``gridauth_usage`` tables."""

from __future__ import annotations

import builtins
import dataclasses
import json
import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from ..activity import Actor, AuditEvent, UsageCount
from .base import Storage


class SQLiteActivity(Storage):
    """The audit and usage methods of :class:`~flask_gridauth.storage.sqlite.SQLiteStorage` (an abstract base)."""

    if TYPE_CHECKING:

        @property
        def _conn(self) -> sqlite3.Connection: ...

        def _write(self, *, durable: bool = True) -> AbstractContextManager[sqlite3.Connection]: ...

    def add_audit_event(self, event: AuditEvent) -> AuditEvent:
        """Insert the event; its ``seq`` is the row id."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO gridauth_audit (id, action, actor, target_id, owner, remote_addr, created_at, details)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.action,
                    json.dumps(event.actor.to_dict()),
                    event.target_id,
                    event.owner,
                    event.remote_addr,
                    event.created_at.timestamp(),
                    json.dumps(dict(event.details)),
                ),
            )
            seq = int(cur.lastrowid or 0)
        return dataclasses.replace(event, seq=seq)

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
        clauses: list[str] = []
        params: list[str | int] = []
        for column, value in (("owner", owner), ("action", action), ("target_id", target_id)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if before_seq is not None:
            clauses.append("seq < ?")
            params.append(before_seq)
        where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
        columns = "seq, id, action, actor, target_id, owner, remote_addr, created_at, details"
        sql = f"SELECT {columns} FROM gridauth_audit{where} ORDER BY seq DESC LIMIT ?"  # noqa: S608 - fixed clauses
        rows = self._conn.execute(sql, (*params, limit)).fetchall()
        events = []
        for seq, event_id, act, actor, target, own, remote, created, details in rows:
            who = json.loads(actor)
            events.append(
                AuditEvent(
                    seq=seq,
                    id=event_id,
                    action=act,
                    actor=Actor(kind=who["kind"], id=who["id"], owner=who["owner"]),
                    target_id=target,
                    owner=own,
                    remote_addr=remote,
                    created_at=datetime.fromtimestamp(created, UTC),
                    details=json.loads(details),
                )
            )
        return events

    def purge_audit_events(self, before: datetime, *, limit: int = 1000) -> int:
        """Delete the oldest events created before ``before``, at most ``limit`` in one transaction."""
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM gridauth_audit WHERE seq IN"
                " (SELECT seq FROM gridauth_audit WHERE created_at < ? ORDER BY seq LIMIT ?)",
                (before.timestamp(), limit),
            )
            return int(cur.rowcount)

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

    def list_usage(self, key_id: str, *, since_hour: int) -> builtins.list[UsageCount]:
        """The key's buckets from ``since_hour``, oldest first."""
        rows = self._conn.execute(
            "SELECT hour, allowed, forbidden, rate_limited, scopes FROM gridauth_usage"
            " WHERE key_id = ? AND hour >= ? ORDER BY hour",
            (key_id, since_hour),
        ).fetchall()
        return [UsageCount(key_id, h, a, f, r, json.loads(s)) for h, a, f, r, s in rows]

    def purge_usage(self, before_hour: int, *, limit: int = 1000) -> int:
        """Delete buckets of hours before ``before_hour``, at most ``limit`` in one transaction."""
        with self._write() as conn:
            cur = conn.execute(
                "DELETE FROM gridauth_usage WHERE (key_id, hour) IN"
                " (SELECT key_id, hour FROM gridauth_usage WHERE hour < ? LIMIT ?)",
                (before_hour, limit),
            )
            return int(cur.rowcount)
