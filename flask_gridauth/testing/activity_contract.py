"""The audit log and usage counts: appended, listed, filtered and purged.

Part of :class:`~flask_gridauth.testing.StorageContract`, which provides the ``storage`` fixture.
"""

from __future__ import annotations

from datetime import timedelta

from ..activity import UsageCount, hour_of
from ..records import utcnow
from ..storage import Storage
from .factories import make_event


class ActivityContract:
    """The audit log and usage counts: appended, listed, filtered and purged."""

    def test_audit_events_append_and_list_newest_first(self, storage: Storage) -> None:
        """Events come back whole, newest first, per owner, paged by seq."""
        first = storage.add_audit_event(make_event(details={"name": "a", "scopes": ["read"]}))
        second = storage.add_audit_event(make_event(action="key.revoked"))
        storage.add_audit_event(make_event(owner="bob"))
        assert 0 < first.seq < second.seq
        listed = storage.list_audit_events("alice", limit=10)
        assert [e.id for e in listed] == [second.id, first.id]
        assert listed[1] == first and listed[1].details == {"name": "a", "scopes": ["read"]}
        assert listed[1].created_at.tzinfo is not None
        assert [e.id for e in storage.list_audit_events("alice", limit=1, before_seq=second.seq)] == [first.id]
        assert len(storage.list_audit_events(None, limit=10)) == 3
        assert storage.list_audit_events("alice", limit=1) == [second]

    def test_audit_events_filters(self, storage: Storage) -> None:
        """action and target_id filters combine with the owner and the page."""
        created = [storage.add_audit_event(make_event(target_id=f"key_{i % 2}")) for i in range(6)]
        revoked = storage.add_audit_event(make_event(action="key.revoked", target_id="key_0"))
        storage.add_audit_event(make_event(owner="bob", action="key.revoked", target_id="key_0"))
        only = storage.list_audit_events("alice", limit=10, action="key.revoked")
        assert [e.id for e in only] == [revoked.id]
        targeted = storage.list_audit_events("alice", limit=10, target_id="key_0")
        assert [e.id for e in targeted] == [revoked.id] + [e.id for e in created[4::-2]]
        both = storage.list_audit_events(None, limit=10, action="key.revoked", target_id="key_0")
        assert len(both) == 2
        paged = storage.list_audit_events("alice", limit=2, target_id="key_0", before_seq=revoked.seq)
        assert [e.id for e in paged] == [created[4].id, created[2].id]
        assert storage.list_audit_events("alice", limit=10, action="key.enabled") == []

    def test_audit_purge_drops_only_old_events(self, storage: Storage) -> None:
        """A purge deletes events older than the cutoff, oldest first, at most ``limit`` at a time."""
        now = utcnow().replace(microsecond=0)
        old = [storage.add_audit_event(make_event(created_at=now - timedelta(days=100))) for _ in range(3)]
        recent = storage.add_audit_event(make_event(created_at=now))
        cutoff = now - timedelta(days=90)
        assert storage.purge_audit_events(cutoff, limit=2) == 2
        assert [e.id for e in storage.list_audit_events(None, limit=10)] == [recent.id, old[2].id]
        assert storage.purge_audit_events(cutoff) == 1
        assert storage.purge_audit_events(cutoff) == 0
        assert [e.id for e in storage.list_audit_events("alice", limit=10, target_id="key_x")] == [recent.id]

    def test_usage_adds_up_per_key_and_hour(self, storage: Storage) -> None:
        """Usage batches add to the stored buckets; a listing starts at the given hour, oldest first."""
        hour = hour_of(utcnow().timestamp())
        storage.add_usage(
            [
                UsageCount("key_a", hour, allowed=3, forbidden=1, scopes={"read": 3}),
                UsageCount("key_a", hour - 3600, allowed=1, rate_limited=2, scopes={"write": 1}),
                UsageCount("key_b", hour, allowed=9),
            ]
        )
        storage.add_usage([UsageCount("key_a", hour, allowed=2, rate_limited=1, scopes={"read": 1, "admin": 1})])
        storage.add_usage([])
        buckets = storage.list_usage("key_a", since_hour=hour - 7200)
        assert [(b.hour, b.allowed, b.forbidden, b.rate_limited) for b in buckets] == [
            (hour - 3600, 1, 0, 2),
            (hour, 5, 1, 1),
        ]
        assert dict(buckets[1].scopes) == {"read": 4, "admin": 1} and dict(buckets[0].scopes) == {"write": 1}
        assert [b.hour for b in storage.list_usage("key_a", since_hour=hour)] == [hour]
        assert storage.list_usage("key_missing", since_hour=0) == []

    def test_usage_purge(self, storage: Storage) -> None:
        """A purge drops the buckets of hours before the cutoff, of every key, and keeps the rest."""
        hour = hour_of(utcnow().timestamp())
        storage.add_usage([UsageCount(k, hour - d * 3600, allowed=1) for k in ("key_a", "key_b") for d in range(4)])
        assert storage.purge_usage(hour - 3600, limit=3) == 3
        assert storage.purge_usage(hour - 3600) == 1
        assert [b.hour for b in storage.list_usage("key_a", since_hour=0)] == [hour - 3600, hour]
        assert [b.hour for b in storage.list_usage("key_b", since_hour=0)] == [hour - 3600, hour]
