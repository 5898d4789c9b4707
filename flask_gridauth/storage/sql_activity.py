"""The audit log and usage counts in the SQL backends' ``gridauth_audit`` and ``gridauth_usage`` tables.

The same SQL for SQLite and PostgreSQL, over the hooks of
:class:`~flask_gridauth.storage.sql.SQLStorage`; only ``add_usage``, whose upsert
merges the scope counts in each dialect's own way, is the backends' own.
"""

from __future__ import annotations

import builtins
import dataclasses
from abc import abstractmethod
from datetime import datetime
from typing import Any, cast

from ..activity import Actor, AuditEvent, UsageCount
from .sql import SQLStorage

_AUDIT_COLUMNS = "seq, id, action, actor, target_id, owner, remote_addr, created_at, details"


class SQLActivity(SQLStorage):
    """The audit and usage methods of the SQL backends (an abstract base)."""

    @abstractmethod
    def _json_value(self, value: Any) -> Any:
        """A stored JSON column as Python values (the driver may have decoded it already)."""

    def add_audit_event(self, event: AuditEvent) -> AuditEvent:
        """Insert the event; its ``seq`` is the table's."""
        sql = (
            f"INSERT INTO {self._q}gridauth_audit"  # noqa: S608 - fixed names
            " (id, action, actor, target_id, owner, remote_addr, created_at, details)"
            f" VALUES ({', '.join([self._p] * 8)})"
        )
        json = self._object_param
        values = (
            event.id,
            event.action,
            json(event.actor.to_dict()),
            event.target_id,
            event.owner,
            event.remote_addr,
            self._time_param(event.created_at),
            json(dict(event.details)),
        )
        return dataclasses.replace(event, seq=self._insert(sql, values))

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
        where, params = self._page_where({"owner": owner, "action": action, "target_id": target_id}, before_seq)
        sql = f"SELECT {_AUDIT_COLUMNS} FROM {self._q}gridauth_audit{where} ORDER BY seq DESC LIMIT {self._p}"  # noqa: S608
        load = self._json_value
        events = []
        for seq, event_id, act, actor, target, own, remote, created, details in self._select(sql, (*params, limit)):
            who = load(actor)
            events.append(
                AuditEvent(
                    seq=int(seq),
                    id=event_id,
                    action=act,
                    actor=Actor(kind=who["kind"], id=who["id"], owner=who["owner"]),
                    target_id=target,
                    owner=own,
                    remote_addr=remote,
                    created_at=cast(datetime, self._time_value(created)),  # the column is NOT NULL
                    details=load(details),
                )
            )
        return events

    def purge_audit_events(self, before: datetime, *, limit: int = 1000) -> int:
        """Delete the oldest events created before ``before``, at most ``limit`` in one transaction."""
        q, p = self._q, self._p
        sql = (
            f"DELETE FROM {q}gridauth_audit WHERE seq IN (SELECT seq FROM {q}gridauth_audit"  # noqa: S608
            f" WHERE created_at < {p} ORDER BY seq LIMIT {p})"
        )
        return self._run_write(sql, (self._time_param(before), limit))

    def list_usage(self, key_id: str, *, since_hour: int) -> builtins.list[UsageCount]:
        """The key's buckets from ``since_hour``, oldest first."""
        sql = (
            f"SELECT hour, allowed, forbidden, rate_limited, scopes FROM {self._q}gridauth_usage"  # noqa: S608
            f" WHERE key_id = {self._p} AND hour >= {self._p} ORDER BY hour"
        )
        load = self._json_value
        return [
            UsageCount(key_id, int(h), int(a), int(f), int(r), {k: int(v) for k, v in load(s).items()})
            for h, a, f, r, s in self._select(sql, (key_id, since_hour))
        ]

    def purge_usage(self, before_hour: int, *, limit: int = 1000) -> int:
        """Delete buckets of hours before ``before_hour``, at most ``limit`` in one transaction."""
        q, p = self._q, self._p
        sql = (
            f"DELETE FROM {q}gridauth_usage WHERE (key_id, hour) IN (SELECT key_id, hour FROM {q}gridauth_usage"  # noqa: S608
            f" WHERE hour < {p} LIMIT {p})"
        )
        return self._run_write(sql, (before_hour, limit))
