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

from collections.abc import Callable, Iterator

import pytest

from ..storage import Storage
from .activity_contract import ActivityContract
from .concurrency_contract import ConcurrencyContract
from .factories import make_event, make_record
from .key_contract import KeyContract
from .owner_limit_contract import OwnerLimitContract
from .quota_contract import QuotaContract
from .session_contract import SessionContract

__all__ = ["StorageContract", "make_event", "make_record"]


class StorageContract(
    KeyContract, ConcurrencyContract, QuotaContract, SessionContract, ActivityContract, OwnerLimitContract
):
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

    def test_ping(self, storage: Storage) -> None:
        """A reachable backend answers ping, and again after close() (a later call reconnects) with its keys."""
        record = storage.add(make_record())
        assert storage.ping() is None
        storage.close()
        assert storage.ping() is None
        assert storage.get(record.id) == record

    def test_driver_errors_are_storage_errors(self, storage: Storage) -> None:
        """Every public method of the backend class is wrapped so its driver errors leave as StorageError."""
        for name in (
            "add", "get", "find", "list", "update", "touch", "claim_once", "ping",
            "add_session", "session_subject", "end_session", "end_sessions",
            "add_audit_event", "list_audit_events", "purge_audit_events", "add_usage", "list_usage", "purge_usage",
            "set_owner_limit", "owner_limits",
        ):  # fmt: skip
            method = getattr(type(storage), name)
            assert getattr(method, "__gridauth_wrapped__", False), name
