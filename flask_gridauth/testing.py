"""Test helpers for code built on flask_gridauth, starting with the storage contract suite.

:class:`StorageContract` is the suite every built-in backend passes, as a base
class. A third-party backend runs it by subclassing it in a test module and
providing a ``storage_factory`` fixture::

    import pytest
    from flask_gridauth.testing import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage_factory(self, tmp_path):
            return lambda: MyStorage(str(tmp_path / "keys"))

Each call of the factory opens a handle on the same store, empty at the start
of the test; the suite closes every handle it opened. A backend that is private
to one object (like ``memory://``) sets ``shared_between_handles = False``.
This module needs pytest, and is imported only by tests.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from .activity import Actor, AuditEvent, UsageCount, hour_of, new_event_id
from .keys import hash_key
from .records import KeyRecord, Quota, new_key_id, utcnow
from .storage import KeyExistsError, Storage

__all__ = ["StorageContract", "make_event", "make_record"]


def make_record(owner: str = "alice", **changes: Any) -> KeyRecord:
    """A fresh API key record with a unique id and lookup; ``changes`` replace fields."""
    key_id = new_key_id()
    record = KeyRecord(
        id=key_id,
        name="contract",
        type="api_key",
        lookup=hash_key(key_id),
        prefix="grd_live_00000000",
        scopes=("read", "holdings:write"),
        environment="live",
        owner=owner,
        created_at=utcnow().replace(microsecond=0),
        metadata={"team": "ops"},
    )
    return dataclasses.replace(record, **changes)


def make_event(owner: str = "alice", **changes: Any) -> AuditEvent:
    """A fresh audit event of ``owner``."""
    event = AuditEvent(
        id=new_event_id(),
        action="key.created",
        actor=Actor(kind="token", id="token", owner="admin"),
        target_id="key_x",
        owner=owner,
        remote_addr="127.0.0.1",
        created_at=utcnow().replace(microsecond=0),
        details={},
    )
    return dataclasses.replace(event, **changes)


class StorageContract:
    """Behaviour every backend must share: subclass it and provide a ``storage_factory`` fixture."""

    #: ``False`` for a backend whose handles do not share one store (``memory://``).
    shared_between_handles: bool = True

    @pytest.fixture
    def storage_factory(self) -> Callable[[], Storage]:
        """Override: a callable that opens a handle on the store under test (empty at the start)."""
        raise NotImplementedError("subclass StorageContract and provide a storage_factory fixture")

    @pytest.fixture
    def open_storage(self, storage_factory: Callable[[], Storage]) -> Iterator[Callable[[], Storage]]:
        """Open handles through the factory; every one is closed after the test."""
        opened: list[Storage] = []

        def open_one() -> Storage:
            backend = storage_factory()
            opened.append(backend)
            return backend

        yield open_one
        for backend in opened:
            backend.close()

    @pytest.fixture
    def storage(self, open_storage: Callable[[], Storage]) -> Storage:
        """The backend under test."""
        return open_storage()

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

    def test_claim_once(self, storage: Storage) -> None:
        """A replay token is accepted once, then refused while it lives."""
        assert storage.claim_once("sig-1", 30) is True
        assert storage.claim_once("sig-1", 30) is False
        assert storage.claim_once("sig-2", 30) is True

    def test_claim_once_concurrent_single_winner(self, storage: Storage) -> None:
        """Of many threads claiming one token at once, exactly one wins."""
        results: list[bool] = []
        barrier = threading.Barrier(8)

        def claim() -> None:
            barrier.wait()
            results.append(storage.claim_once("race-token", 30))

        threads = [threading.Thread(target=claim) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count(True) == 1

    def test_mark_rotated_concurrent_single_winner(self, storage: Storage) -> None:
        """Of 20 threads claiming one key's rotation at once, exactly one wins; its grace expiry is stored."""
        record = storage.add(make_record())
        retire_at = (utcnow() + timedelta(seconds=60)).replace(microsecond=0)
        results: list[bool] = []
        barrier = threading.Barrier(20)

        def claim() -> None:
            barrier.wait()
            results.append(storage.mark_rotated(record.id, expires_at=retire_at, rotated_at=utcnow()))

        threads = [threading.Thread(target=claim) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(results) == 20 and results.count(True) == 1
        found = storage.get(record.id)
        assert found is not None and found.expires_at == retire_at and found.revoked_at is None
        assert storage.mark_rotated(record.id, expires_at=None, rotated_at=utcnow()) is False

    def test_mark_rotated_refuses_revoked_and_unknown_keys(self, storage: Storage) -> None:
        """A revoked key or an unknown id cannot be claimed; other fields' updates keep the mark."""
        revoked = storage.add(make_record())
        storage.update(revoked.id, {"revoked_at": utcnow()})
        assert storage.mark_rotated(revoked.id, expires_at=None, rotated_at=utcnow()) is False
        assert storage.mark_rotated("key_missing", expires_at=None, rotated_at=utcnow()) is False
        live = storage.add(make_record())
        assert storage.mark_rotated(live.id, expires_at=None, rotated_at=utcnow()) is True
        found = storage.get(live.id)
        assert found is not None and found.expires_at == live.expires_at
        storage.update(live.id, {"name": "renamed", "metadata": {"n": 1}})
        assert storage.mark_rotated(live.id, expires_at=None, rotated_at=utcnow()) is False

    def test_concurrent_updates_lose_nothing(self, storage: Storage) -> None:
        """Updates of different fields racing from two threads all survive."""
        record = storage.add(make_record())

        def rename() -> None:
            for i in range(20):
                storage.update(record.id, {"name": f"name-{i}"})

        def relabel() -> None:
            for i in range(20):
                storage.update(record.id, {"metadata": {"n": i}})

        threads = [threading.Thread(target=rename), threading.Thread(target=relabel)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = storage.get(record.id)
        assert final is not None
        assert (final.name, final.metadata) == ("name-19", {"n": 19})

    def test_ping(self, storage: Storage) -> None:
        """A reachable backend answers ping, and again after close() (a later call reconnects) with its keys."""
        record = storage.add(make_record())
        assert storage.ping() is None
        storage.close()
        assert storage.ping() is None
        assert storage.get(record.id) == record

    def test_sessions_live_until_ended(self, storage: Storage) -> None:
        """A session is found by id until it is ended; ending one leaves the others of its subject."""
        until = utcnow() + timedelta(hours=1)
        storage.add_session("s-one", "owner:alice", until)
        storage.add_session("s-two", "owner:alice", until)
        assert storage.session_subject("s-one") == "owner:alice"
        assert storage.session_subject("s-missing") is None
        storage.end_session("s-one")
        storage.end_session("s-one")  # ending an ended session is no error
        assert storage.session_subject("s-one") is None
        assert storage.session_subject("s-two") == "owner:alice"

    def test_end_sessions_ends_every_session_of_a_subject_only(self, storage: Storage) -> None:
        """Ending a subject's sessions ends all of them, and nobody else's."""
        until = utcnow() + timedelta(hours=1)
        for n in range(3):
            storage.add_session(f"a-{n}", "token", until)
        storage.add_session("b-0", "owner:bob", until)
        assert storage.end_sessions("token") == 3
        assert [storage.session_subject(f"a-{n}") for n in range(3)] == [None, None, None]
        assert storage.session_subject("b-0") == "owner:bob"
        assert storage.end_sessions("token") == 0
        storage.add_session("a-new", "token", until)  # a sign-in after the sign-out everywhere lives
        assert storage.session_subject("a-new") == "token"

    def test_expired_session_is_not_live(self, storage: Storage) -> None:
        """A session past its expiry is never found, whether or not the store has deleted it yet."""
        storage.add_session("s-old", "token", utcnow() - timedelta(seconds=5))
        assert storage.session_subject("s-old") is None
        storage.add_session("s-new", "token", utcnow() + timedelta(hours=1))
        assert storage.session_subject("s-new") == "token"

    def test_started_at_is_none_or_a_past_time(self, storage: Storage) -> None:
        """After contact, ``started_at`` is ``None`` (claims survive restarts) or a start in the past."""
        storage.ping()
        started = storage.started_at()
        assert started is None or (isinstance(started, float) and 0 < started <= time.time() + 1)
        assert storage.started_at() == started  # learnt once: no drift between calls

    def test_concurrent_adds_from_threads(self, storage: Storage) -> None:
        """Forty keys added from eight threads all land with distinct seqs."""
        added: list[KeyRecord] = []
        lock = threading.Lock()

        def work() -> None:
            for _ in range(5):
                rec = storage.add(make_record(owner="threads"))
                with lock:
                    added.append(rec)

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len({r.seq for r in added}) == 40
        assert len(storage.list("threads", limit=100)) == 40

    def test_second_handle_sees_changes(self, storage: Storage, open_storage: Callable[[], Storage]) -> None:
        """A key added or revoked through one handle is what another handle on the same store reads."""
        if not self.shared_between_handles:
            pytest.skip("this backend's handles do not share a store")
        other = open_storage()
        record = storage.add(make_record())
        assert other.find(record.lookup) == record
        now = utcnow().replace(microsecond=0)
        storage.update(record.id, {"revoked_at": now})
        found = other.find(record.lookup)
        assert found is not None and found.revoked_at == now
        assert other.claim_once("shared-token", 30) is True
        assert storage.claim_once("shared-token", 30) is False

    def test_driver_errors_are_storage_errors(self, storage: Storage) -> None:
        """Every public method of the backend class is wrapped so its driver errors leave as StorageError."""
        for name in (
            "add", "get", "find", "list", "update", "touch", "claim_once", "ping",
            "add_session", "session_subject", "end_session", "end_sessions",
            "add_audit_event", "list_audit_events", "purge_audit_events", "add_usage", "list_usage", "purge_usage",
        ):  # fmt: skip
            method = getattr(type(storage), name)
            assert getattr(method, "__gridauth_wrapped__", False), name

    # -- 0.2 key fields: disable, allowlist, quota, canary ---------------------

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

    def test_setting_a_quota_resets_its_counter(self, storage: Storage) -> None:
        """A quota set by update starts full again, from the new limit."""
        record = storage.add(make_record(quota=Quota(3)))
        assert storage.spend_quota(record, 3, utcnow()) == (True, 0)
        assert storage.spend_quota(record, 1, utcnow()) == (False, 0)
        storage.update(record.id, {"quota": Quota(10)})
        assert storage.spend_quota(record, 1, utcnow()) == (True, 9)
        got = storage.get(record.id)
        assert got is not None and got.quota is not None and got.quota.remaining == 9

    def test_spend_quota_takes_exactly_what_is_left(self, storage: Storage) -> None:
        """Units are taken while enough are left; a cost larger than what is left takes nothing."""
        record = storage.add(make_record(quota=Quota(10)))
        now = utcnow()
        assert storage.spend_quota(record, 4, now) == (True, 6)
        assert storage.spend_quota(record, 7, now) == (False, 6)
        assert storage.spend_quota(record, 6, now) == (True, 0)
        assert storage.spend_quota(record, 1, now) == (False, 0)

    def test_refill_is_lazy_and_capped(self, storage: Storage) -> None:
        """Whole intervals since the last refill add their amount, up to the limit, when next spent."""
        start = utcnow().replace(microsecond=0)
        record = storage.add(make_record(created_at=start, quota=Quota(10, 3, "hour")))
        assert storage.spend_quota(record, 10, start) == (True, 0)
        assert storage.spend_quota(record, 1, start + timedelta(minutes=59)) == (False, 0)
        assert storage.spend_quota(record, 1, start + timedelta(hours=2, minutes=30)) == (True, 5)
        # The refill clock moved by whole hours: the next refill is at start + 3 h.
        assert storage.spend_quota(record, 5, start + timedelta(hours=2, minutes=59)) == (True, 0)
        assert storage.spend_quota(record, 1, start + timedelta(hours=3)) == (True, 2)
        assert storage.spend_quota(record, 1, start + timedelta(days=30)) == (True, 9)

    def test_spend_quota_concurrent_exact(self, storage: Storage) -> None:
        """Eight threads spending one quota take exactly the limit, never more."""
        record = storage.add(make_record(quota=Quota(100)))
        allowed: list[bool] = []
        lock = threading.Lock()

        def spend() -> None:
            for _ in range(20):
                use = storage.spend_quota(record, 1, utcnow())
                assert use is not None
                with lock:
                    allowed.append(use.allowed)

        threads = [threading.Thread(target=spend) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert allowed.count(True) == 100
        got = storage.get(record.id)
        assert got is not None and got.quota is not None and got.quota.remaining == 0

    # -- audit log and usage -------------------------------------------------

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
