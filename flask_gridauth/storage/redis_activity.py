"""The audit log and usage counts on Redis: one Lua script per operation.

Key layout: see :mod:`flask_gridauth.storage.redis`; :class:`RedisActivity` is a base of
:class:`~flask_gridauth.storage.redis.RedisStorage` (and so of the cluster backend, which
re-names the keys through :meth:`RedisActivity.activity_key`).
"""

from __future__ import annotations

import builtins
import dataclasses
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..activity import AuditEvent, UsageCount
from .base import Storage
from .redis_scripts import _ACTIVITY_SCRIPTS


class RedisActivity(Storage):
    """The audit and usage methods of the Redis backends (an abstract base, so their driver errors are wrapped)."""

    if TYPE_CHECKING:
        client: Any

        def key(self, *parts: str) -> str: ...

    def activity_key(self, *parts: str) -> str:
        """The name of an audit or usage key (a cluster puts them all in one slot)."""
        return self.key(*parts)

    def _activity(self, name: str) -> Any:
        """One of the audit and usage scripts, registered on the current client once."""
        client = self.client
        cached = self.__dict__.get("_activity_scripts")
        if cached is None or cached[0] is not client:
            cached = (client, {n: client.register_script(src) for n, src in _ACTIVITY_SCRIPTS.items()})
            self.__dict__["_activity_scripts"] = cached
        return cached[1][name]

    def add_audit_event(self, event: AuditEvent) -> AuditEvent:
        """Store the event and its index entries in one script."""
        k = self.activity_key
        keys = [
            k("audit", "seq"),
            k("audit", "all"),
            "" if event.owner is None else k("audit", "owner", event.owner),
            "" if event.target_id is None else k("audit", "target", event.target_id),
        ]
        data = json.dumps(dataclasses.replace(event, seq=0).to_row())
        seq = int(self._activity("audit_add")(keys=[x for x in keys if x], args=[data, k("audit", "ev", "")]))
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
        """Events newest first: the narrowest index is walked, the other filters applied in the script."""
        k = self.activity_key
        if target_id is not None:
            index = k("audit", "target", target_id)
        elif owner is not None:
            index = k("audit", "owner", owner)
        else:
            index = k("audit", "all")
        args = [
            k("audit", "ev", ""),
            "" if before_seq is None else str(before_seq),
            str(limit),
            owner or "",
            action or "",
            target_id or "",
        ]
        rows = self._activity("audit_list")(keys=[index], args=args)
        return [AuditEvent.from_row(json.loads(row)) for row in rows]

    def purge_audit_events(self, before: datetime, *, limit: int = 1000) -> int:
        """Delete the oldest events created before ``before`` (one script, at most ``limit``)."""
        k = self.activity_key
        args = [
            k("audit", "ev", ""),
            k("audit", "owner", ""),
            k("audit", "target", ""),
            repr(before.timestamp()),
            limit,
        ]
        return int(self._activity("audit_purge")(keys=[k("audit", "all")], args=args))

    def add_usage(self, counts: Sequence[UsageCount]) -> None:
        """``HINCRBY`` every count in one script: one round trip, all or nothing."""
        if not counts:
            return
        args: builtins.list[str | int] = [self.activity_key("usage", "")]
        for c in counts:
            args += [c.key_id, c.hour, c.allowed, c.forbidden, c.rate_limited, len(c.scopes)]
            for scope, n in c.scopes.items():
                args += [scope, n]
        self._activity("usage_add")(keys=[self.activity_key("usage", "hours")], args=args)

    def list_usage(self, key_id: str, *, since_hour: int) -> builtins.list[UsageCount]:
        """The key's hours from its index and their hashes, in one script."""
        reply = self._activity("usage_list")(
            keys=[self.activity_key("usage", "idx", key_id)], args=[self.activity_key("usage", ""), key_id, since_hour]
        )
        out = []
        for i in range(0, len(reply), 2):
            flat = reply[i + 1]
            values = {flat[j].decode(): int(flat[j + 1]) for j in range(0, len(flat), 2)}
            if not values:
                continue
            scopes = {name[2:]: n for name, n in values.items() if name.startswith("s:")}
            out.append(
                UsageCount(key_id, int(reply[i]), values.get("a", 0), values.get("f", 0), values.get("r", 0), scopes)
            )
        return out

    def purge_usage(self, before_hour: int, *, limit: int = 1000) -> int:
        """Delete buckets of hours before ``before_hour`` with their index entries (one script)."""
        args = [self.activity_key("usage", ""), before_hour, limit]
        return int(self._activity("usage_purge")(keys=[self.activity_key("usage", "hours")], args=args))
