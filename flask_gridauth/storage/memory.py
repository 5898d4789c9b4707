"""In-process storage: for tests and single-process development only."""

from __future__ import annotations

import builtins
import dataclasses
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..activity import AuditEvent, UsageCount
from ..records import KeyRecord, utcnow
from .base import KeyExistsError, QuotaUse, Storage, check_changes
from .values import bare_quota, from_epoch, quota_state, refill_now


class MemoryStorage(Storage):
    """Dicts behind one lock. Nothing is shared between processes."""

    schemes = ("memory",)

    @classmethod
    def from_uri(cls, uri: str, *, instance_path: str, timeout: float) -> MemoryStorage:
        """A fresh, empty store: ``memory://`` takes no options."""
        return cls()

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, KeyRecord] = {}
        self._by_lookup: dict[str, str] = {}
        self._seen: OrderedDict[str, float] = OrderedDict()
        # Session id -> (subject, expiry in epoch seconds).
        self._sessions: dict[str, tuple[str, float]] = {}
        self._seq = 0
        # Key id -> [remaining, refilled_at (epoch seconds)] of its quota, apart from the record so
        # that spending never replaces the record object (which keeps the principal cache warm).
        self._quota: dict[str, list[float]] = {}
        # Key id -> when its rotation was claimed (see mark_rotated).
        self._rotated: dict[str, datetime] = {}
        self._events: list[AuditEvent] = []  # append order = seq order
        self._event_seq = 0
        # (key id, hour) -> ([allowed, forbidden, rate_limited], {scope: count})
        self._usage: dict[tuple[str, int], tuple[list[int], dict[str, int]]] = {}
        # Owner -> its override of GRIDAUTH_RATELIMIT_OWNER.
        self._owner_limits: dict[str, str] = {}

    def add(self, record: KeyRecord) -> KeyRecord:
        """Store a new key, assigning the next ``seq``."""
        with self._lock:
            if record.lookup in self._by_lookup or record.id in self._by_id:
                raise KeyExistsError(record.id)
            self._seq += 1
            stored = dataclasses.replace(record, seq=self._seq, quota=bare_quota(record.quota))
            self._by_id[stored.id] = stored
            self._by_lookup[stored.lookup] = stored.id
            self._set_quota(record, stored.created_at)
            return self._with_quota(stored) or stored

    def _set_quota(self, record: KeyRecord, since: datetime) -> None:
        remaining, refilled_at = quota_state(record.quota, since)
        if remaining is None or refilled_at is None:
            self._quota.pop(record.id, None)
        else:
            self._quota[record.id] = [remaining, refilled_at]

    def _with_quota(self, record: KeyRecord | None) -> KeyRecord | None:
        """``record`` with its quota counter as it stands."""
        if record is None or record.quota is None:
            return record
        state = self._quota.get(record.id)
        if state is None:  # pragma: no cover - every stored quota has a counter
            return record
        quota = dataclasses.replace(record.quota, remaining=int(state[0]), refilled_at=from_epoch(state[1]))
        return dataclasses.replace(record, quota=quota)

    def get(self, key_id: str) -> KeyRecord | None:
        """The key with this id."""
        with self._lock:
            return self._with_quota(self._by_id.get(key_id))

    def find(self, lookup: str) -> KeyRecord | None:
        """The key with this hash or fingerprint."""
        key_id = self._by_lookup.get(lookup)
        return None if key_id is None else self._by_id.get(key_id)

    def list(self, owner: str | None, *, limit: int, before_seq: int | None = None) -> list[KeyRecord]:
        """Keys newest first."""
        with self._lock:
            records = [
                r
                for r in self._by_id.values()
                if (owner is None or r.owner == owner) and (before_seq is None or r.seq < before_seq)
            ]
            records.sort(key=lambda r: r.seq, reverse=True)
            return [r for r in map(self._with_quota, records[:limit]) if r is not None]

    def update(self, key_id: str, changes: Mapping[str, Any]) -> KeyRecord | None:
        """Replace the stored record with a changed copy."""
        check_changes(changes)
        with self._lock:
            record = self._by_id.get(key_id)
            if record is None:
                return None
            updated = dataclasses.replace(record, **changes)
            if "quota" in changes:
                self._set_quota(updated, utcnow())
                updated = dataclasses.replace(updated, quota=bare_quota(updated.quota))
            self._by_id[key_id] = updated
            return self._with_quota(updated)

    def mark_rotated(self, key_id: str, *, expires_at: datetime | None, rotated_at: datetime) -> bool:
        """Check and set under the lock."""
        with self._lock:
            record = self._by_id.get(key_id)
            if record is None or record.revoked_at is not None or record.disabled_at is not None:
                return False
            if key_id in self._rotated:
                return False
            self._rotated[key_id] = rotated_at
            if expires_at is not None:
                self._by_id[key_id] = dataclasses.replace(record, expires_at=expires_at)
            return True

    def spend_quota(self, record: KeyRecord, cost: int, now: datetime) -> QuotaUse | None:
        """Take ``cost`` units under the lock."""
        # acquire/release, not ``with``: on every request of a key with a quota, and the context-manager
        # protocol costs twice the two calls (callgrind).
        self._lock.acquire()
        try:
            current = self._by_id.get(record.id)
            state = self._quota.get(record.id)
            if current is None or current.quota is None or state is None:
                return None
            quota = current.quota
            remaining = int(state[0])
            if quota.refill_amount:  # without a refill there is nothing to add: skip the clock arithmetic
                remaining, state[1] = refill_now(
                    quota.limit, quota.refill_amount, quota.refill_seconds, remaining, state[1], now.timestamp()
                )
            allowed = remaining >= cost
            if allowed:
                remaining -= cost
            state[0] = remaining
        finally:
            self._lock.release()
        return QuotaUse(allowed, remaining)

    def touch(self, record: KeyRecord, when: datetime) -> None:
        """Set ``last_used_at``."""
        with self._lock:
            current = self._by_id.get(record.id)
            if current is not None:
                self._by_id[record.id] = dataclasses.replace(current, last_used_at=when)

    def set_owner_limit(self, owner: str, limit: str | None) -> None:
        """Set or clear the override in this object's dict."""
        with self._lock:
            if limit is None:
                self._owner_limits.pop(owner, None)
            else:
                self._owner_limits[owner] = limit

    def owner_limits(self) -> dict[str, str]:
        """A copy of every override."""
        with self._lock:
            return dict(self._owner_limits)

    def add_session(self, session_id: str, subject: str, expires_at: datetime) -> None:
        """Remember the session; expired ones are dropped on the way."""
        now = time.time()
        with self._lock:
            for sid, (_, until) in list(self._sessions.items()):
                if until <= now:
                    del self._sessions[sid]
            self._sessions[session_id] = (subject, expires_at.timestamp())

    def session_subject(self, session_id: str) -> str | None:
        """The live session's subject."""
        entry = self._sessions.get(session_id)
        return entry[0] if entry is not None and entry[1] > time.time() else None

    def end_session(self, session_id: str) -> None:
        """Forget the session."""
        with self._lock:
            self._sessions.pop(session_id, None)

    def end_sessions(self, subject: str) -> int:
        """Forget every session of ``subject``."""
        now = time.time()
        with self._lock:
            ended = [sid for sid, (who, _) in self._sessions.items() if who == subject]
            live = sum(1 for sid in ended if self._sessions[sid][1] > now)
            for sid in ended:
                del self._sessions[sid]
        return live

    def claim_once(self, token: str, ttl: float) -> bool:
        """First claim within ``ttl`` wins.

        Entries sit in an ``OrderedDict`` in claim order, so each claim drops
        expired entries from the front in O(1): the cache never needs a full
        sweep, however many entries are alive.
        """
        now = time.monotonic()
        with self._lock:
            seen = self._seen
            for _ in range(2):  # two out per one in: a backlog left by a burst shrinks
                if not seen:
                    break
                oldest, oldest_expiry = next(iter(seen.items()))
                if oldest_expiry > now:
                    break
                del seen[oldest]
            expires = seen.get(token)
            if expires is not None and expires > now:
                return False
            seen[token] = now + ttl
            seen.move_to_end(token)
            return True

    def ping(self) -> None:
        """Memory always answers."""

    # -- audit log and usage -------------------------------------------------

    def add_audit_event(self, event: AuditEvent) -> AuditEvent:
        """Append the event with the next ``seq``."""
        with self._lock:
            self._event_seq += 1
            stored = dataclasses.replace(event, seq=self._event_seq, details=dict(event.details))
            self._events.append(stored)
            return stored

    def list_audit_events(
        self,
        owner: str | None,
        *,
        limit: int,
        before_seq: int | None = None,
        action: str | None = None,
        target_id: str | None = None,
    ) -> builtins.list[AuditEvent]:
        """Events newest first, filtered."""
        out: list[AuditEvent] = []
        with self._lock:
            for event in reversed(self._events):
                if len(out) >= limit:
                    break
                if (
                    (before_seq is None or event.seq < before_seq)
                    and (owner is None or event.owner == owner)
                    and (action is None or event.action == action)
                    and (target_id is None or event.target_id == target_id)
                ):
                    out.append(event)
        return out

    def purge_audit_events(self, before: datetime, *, limit: int = 1000) -> int:
        """Drop the oldest events created before ``before``."""
        with self._lock:
            old = [i for i, e in enumerate(self._events) if e.created_at < before][:limit]
            for i in reversed(old):
                del self._events[i]
            return len(old)

    def add_usage(self, counts: Sequence[UsageCount]) -> None:
        """Add the counts to the buckets."""
        with self._lock:
            for count in counts:
                totals, scopes = self._usage.setdefault((count.key_id, count.hour), ([0, 0, 0], {}))
                totals[0] += count.allowed
                totals[1] += count.forbidden
                totals[2] += count.rate_limited
                for scope, n in count.scopes.items():
                    scopes[scope] = scopes.get(scope, 0) + n

    def list_usage(self, key_id: str, *, since_hour: int) -> builtins.list[UsageCount]:
        """The key's buckets from ``since_hour``, oldest first."""
        with self._lock:
            found = [
                UsageCount(key_id, hour, totals[0], totals[1], totals[2], dict(scopes))
                for (kid, hour), (totals, scopes) in self._usage.items()
                if kid == key_id and hour >= since_hour
            ]
        return sorted(found, key=lambda c: c.hour)

    def purge_usage(self, before_hour: int, *, limit: int = 1000) -> int:
        """Drop buckets of hours before ``before_hour``."""
        with self._lock:
            old = [k for k in self._usage if k[1] < before_hour][:limit]
            for k in old:
                del self._usage[k]
            return len(old)
