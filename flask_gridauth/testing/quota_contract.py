"""Quotas: spent exactly, atomically, refilled lazily, re-set by an update.

Part of :class:`~flask_gridauth.testing.StorageContract`, which provides the ``storage`` fixture.
"""

from __future__ import annotations

import threading
from datetime import timedelta

from ..records import Quota, utcnow
from ..storage import Storage
from .factories import make_record


class QuotaContract:
    """Quotas: spent exactly, atomically, refilled lazily, re-set by an update."""

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
