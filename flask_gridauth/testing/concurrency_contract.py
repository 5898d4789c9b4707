"""Races between threads and handles on one store: rotation claimed once, no update or add lost.

Part of :class:`~flask_gridauth.testing.StorageContract`, which provides the ``storage`` fixture.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest

from ..records import KeyRecord, utcnow
from ..storage import Storage
from .factories import make_record


class ConcurrencyContract:
    """Races between threads and handles on one store: rotation claimed once, no update or add lost."""

    #: Set by :class:`~flask_gridauth.testing.StorageContract`.
    shared_between_handles: bool

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

    def test_mark_rotated_refuses_disabled_keys(self, storage: Storage) -> None:
        """A key disabled after it was read cannot be claimed: the disable is not lost to a rotation."""
        record = storage.add(make_record())
        storage.update(record.id, {"disabled_at": utcnow()})
        assert storage.mark_rotated(record.id, expires_at=utcnow(), rotated_at=utcnow()) is False
        found = storage.get(record.id)
        assert found is not None and found.expires_at == record.expires_at and found.disabled_at is not None

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
