"""One contract every storage backend keeps, run against memory, SQLite and a real Redis."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta
from typing import Any

import pytest

from flask_gridauth.errors import ConfigurationError, StorageError
from flask_gridauth.keys import hash_key
from flask_gridauth.records import KeyRecord, new_key_id, utcnow
from flask_gridauth.storage import KeyExistsError, Storage, storage_from_uri


def make_record(owner: str = "alice", **changes: Any) -> KeyRecord:
    """A fresh API key record with a unique lookup."""
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


@pytest.fixture
def storage(storage_uri: str, tmp_path: Any) -> Any:
    """The backend under test, closed afterwards."""
    backend = storage_from_uri(storage_uri, instance_path=str(tmp_path))
    yield backend
    backend.close()


class TestStorageContract:
    """Behaviour every backend must share."""

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


def test_unknown_scheme_is_configuration_error(tmp_path: Any) -> None:
    """An unknown URI scheme is refused, naming the scheme."""
    with pytest.raises(ConfigurationError, match="'postgres'"):
        storage_from_uri("postgres://localhost/db", instance_path=str(tmp_path))


def test_sqlite_memory_path_refused(tmp_path: Any) -> None:
    """An in-memory SQLite URI is refused: it cannot be shared between connections."""
    with pytest.raises(ValueError, match="memory://"):
        storage_from_uri("sqlite:///:memory:", instance_path="")


def test_sqlite_relative_path_under_instance(tmp_path: Any) -> None:
    """A relative SQLite path lives under the instance folder."""
    backend = storage_from_uri("sqlite:///sub/keys.db", instance_path=str(tmp_path))
    backend.add(make_record())
    assert (tmp_path / "sub" / "keys.db").exists()


def test_redis_down_raises_storage_error(tmp_path: Any) -> None:
    """Every Redis operation against a closed port raises StorageError, never naming the password."""
    backend = storage_from_uri("redis://:s3cret-pass@127.0.0.1:1/0", instance_path=str(tmp_path), timeout=0.5)
    for call in (
        backend.ping,
        lambda: backend.find("x"),
        lambda: backend.get("x"),
        lambda: backend.add(make_record()),
        lambda: backend.claim_once("t", 5),
    ):
        with pytest.raises(StorageError) as info:
            call()
        assert "s3cret-pass" not in str(info.value)


def test_sqlite_locked_raises_storage_error(tmp_path: Any) -> None:
    """A write that cannot get the SQLite lock within the timeout raises StorageError."""
    import sqlite3

    path = tmp_path / "locked.db"
    backend = storage_from_uri(f"sqlite:///{path}", instance_path=str(tmp_path), timeout=0.2)
    backend.ping()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError):
            backend.add(make_record())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    backend.add(make_record())


def test_memory_replay_cache_drops_expired_entries() -> None:
    """The memory replay cache forgets expired tokens as new ones arrive, so it stays bounded."""
    import time

    from flask_gridauth.storage.memory import MemoryStorage

    storage = MemoryStorage()
    for i in range(1000):
        assert storage.claim_once(f"old-{i}", 0.001)
    time.sleep(0.01)
    for i in range(500):
        assert storage.claim_once(f"new-{i}", 30)
    assert len(storage._seen) == 500
    assert storage.claim_once("old-3", 30) is True
    assert storage.claim_once("new-3", 30) is False


def test_sqlite_first_connections_race_safely(tmp_path: Any) -> None:
    """Eight threads opening a fresh SQLite file at once all succeed: the set-up runs once."""
    for attempt in range(40):
        storage = storage_from_uri(f"sqlite:///{tmp_path}/race-{attempt}.db", instance_path=str(tmp_path))
        barrier = threading.Barrier(8)
        errors: list[BaseException] = []

        def first_use(
            n: int,
            storage: Storage = storage,
            barrier: threading.Barrier = barrier,
            errors: list[BaseException] = errors,
        ) -> None:
            barrier.wait()
            try:
                assert storage.claim_once(f"token-{n}", 30)
            except BaseException as exc:  # collected, then asserted below
                errors.append(exc)

        threads = [threading.Thread(target=first_use, args=(n,)) for n in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [], attempt
