"""Keys: stored, found, listed, changed, revoked and touched, the 0.2 fields included.

Part of :class:`~flask_gridauth.testing.StorageContract`, which provides the ``storage`` fixture.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest

from ..records import Quota, utcnow
from ..storage import KeyExistsError, Storage
from .factories import make_record


class KeyContract:
    """Keys: stored, found, listed, changed, revoked and touched, the 0.2 fields included."""

    def test_add_then_find_by_lookup(self, storage: Storage) -> None:
        """A stored key comes back whole from its lookup, with a seq assigned."""
        record = make_record()
        stored = storage.add(record)
        assert stored.seq > 0
        found = storage.find(record.lookup)
        assert found is not None
        assert found == dataclasses.replace(record, seq=stored.seq)
        assert found.created_at.tzinfo is not None

    def test_get_by_id(self, storage: Storage) -> None:
        """A key is found by its id and a missing id gives None."""
        record = storage.add(make_record())
        assert storage.get(record.id) == record
        assert storage.get("key_missing") is None
        assert storage.find("0" * 64) is None

    def test_duplicate_lookup_refused(self, storage: Storage) -> None:
        """Two keys can never share a lookup (hash or fingerprint)."""
        first = storage.add(make_record())
        with pytest.raises(KeyExistsError):
            storage.add(make_record(lookup=first.lookup))

    def test_list_newest_first_per_owner(self, storage: Storage) -> None:
        """Listing is per owner, newest first, and pages by seq."""
        same_time = utcnow().replace(microsecond=0)
        ids = [storage.add(make_record(created_at=same_time)).id for _ in range(5)]
        storage.add(make_record(owner="bob"))
        listed = storage.list("alice", limit=10)
        assert [r.id for r in listed] == ids[::-1]
        page = storage.list("alice", limit=2, before_seq=listed[1].seq)
        assert [r.id for r in page] == ids[::-1][2:4]
        assert len(storage.list(None, limit=10)) == 6

    def test_update_changes_only_named_fields(self, storage: Storage) -> None:
        """An update changes the named fields and keeps the rest."""
        record = storage.add(make_record())
        when = utcnow().replace(microsecond=0) + timedelta(days=1)
        updated = storage.update(
            record.id, {"name": "renamed", "scopes": ("read",), "expires_at": when, "rate_limit": "5/minute"}
        )
        assert updated is not None
        assert (updated.name, updated.scopes, updated.expires_at, updated.rate_limit) == (
            "renamed",
            ("read",),
            when,
            "5/minute",
        )
        assert updated.metadata == {"team": "ops"} and updated.owner == "alice"
        cleared = storage.update(record.id, {"expires_at": None})
        assert cleared is not None and cleared.expires_at is None
        assert storage.update("key_missing", {"name": "x"}) is None

    def test_update_refuses_fixed_fields(self, storage: Storage) -> None:
        """The owner, hash and type of a key can never be changed."""
        record = storage.add(make_record())
        with pytest.raises(ValueError, match="cannot be changed"):
            storage.update(record.id, {"owner": "mallory"})

    def test_revocation_visible_immediately(self, storage: Storage) -> None:
        """A revoked_at written by update is what the next find returns."""
        record = storage.add(make_record())
        now = utcnow().replace(microsecond=0)
        storage.update(record.id, {"revoked_at": now})
        found = storage.find(record.lookup)
        assert found is not None and found.revoked_at == now

    def test_touch_sets_last_used(self, storage: Storage) -> None:
        """touch records last_used_at without disturbing a revocation."""
        record = storage.add(make_record())
        revoked = utcnow().replace(microsecond=0)
        storage.update(record.id, {"revoked_at": revoked})
        used = revoked + timedelta(seconds=5)
        storage.touch(record, used)
        found = storage.find(record.lookup)
        assert found is not None
        assert found.last_used_at == used
        assert found.revoked_at == revoked

    def test_new_fields_round_trip(self, storage: Storage) -> None:
        """disabled_at, allowed_ips, canary and a quota come back from add, find, get and list."""
        when = utcnow().replace(microsecond=0)
        quota = Quota(100, 10, "day")
        record = make_record(disabled_at=when, allowed_ips=("10.0.0.0/8", "2001:db8::/32"), canary=True, quota=quota)
        stored = storage.add(record)
        for found in (storage.find(record.lookup), storage.get(record.id), storage.list("alice", limit=5)[0]):
            assert found is not None
            assert found == dataclasses.replace(record, seq=stored.seq)
            assert (found.disabled_at, found.allowed_ips, found.canary) == (when, record.allowed_ips, True)
            assert found.quota is not None and found.quota.spec() == {
                "limit": 100,
                "refill": {"amount": 10, "interval": "day"},
            }
        got = storage.get(record.id)
        assert got is not None and got.quota is not None and got.quota.remaining == 100

    def test_defaults_for_plain_keys(self, storage: Storage) -> None:
        """A key stored without the new fields reads back enabled, unrestricted, unlimited, not a canary."""
        record = storage.add(make_record())
        found = storage.find(record.lookup)
        assert found is not None
        assert (found.disabled_at, found.allowed_ips, found.quota, found.canary) == (None, (), None, False)
        assert storage.spend_quota(found, 1, utcnow()) is None

    def test_update_new_fields(self, storage: Storage) -> None:
        """disabled_at, allowed_ips and quota can be set and cleared by update."""
        record = storage.add(make_record())
        when = utcnow().replace(microsecond=0)
        updated = storage.update(record.id, {"disabled_at": when, "allowed_ips": ("192.0.2.0/24",), "quota": Quota(5)})
        assert updated is not None
        assert (updated.disabled_at, updated.allowed_ips) == (when, ("192.0.2.0/24",))
        assert updated.quota == Quota(5) and updated.quota.remaining == 5
        assert storage.spend_quota(record, 2, utcnow()) == (True, 3)
        found = storage.find(record.lookup)
        assert found is not None and found.disabled_at == when and found.quota == Quota(5)
        cleared = storage.update(record.id, {"disabled_at": None, "allowed_ips": (), "quota": None})
        assert cleared is not None and (cleared.disabled_at, cleared.allowed_ips, cleared.quota) == (None, (), None)
        assert storage.spend_quota(record, 1, utcnow()) is None
