"""Per-owner overrides of ``GRIDAUTH_RATELIMIT_OWNER``: stored, read back all at once, cleared, shared.

Part of :class:`~flask_gridauth.testing.StorageContract`, which provides the ``storage`` and
``open_storage`` fixtures.
"""

from __future__ import annotations

from collections.abc import Callable

from ..storage import Storage


class OwnerLimitContract:
    """Per-owner overrides of ``GRIDAUTH_RATELIMIT_OWNER``: stored, read back all at once, cleared, shared."""

    shared_between_handles: bool

    def test_owner_limit_set_replaced_and_cleared(self, storage: Storage) -> None:
        """An override is read back as set, a second set replaces it, and clearing removes it (twice is fine)."""
        assert storage.owner_limits() == {}
        assert storage.get_owner_limit("acme") is None
        storage.set_owner_limit("acme", "100/minute")
        storage.set_owner_limit("globex", "5/second;1000/day")
        assert storage.get_owner_limit("acme") == "100/minute"
        storage.set_owner_limit("acme", "200/minute")
        assert storage.owner_limits() == {"acme": "200/minute", "globex": "5/second;1000/day"}
        storage.set_owner_limit("acme", None)
        storage.set_owner_limit("acme", None)
        storage.set_owner_limit("nobody", None)
        assert storage.get_owner_limit("acme") is None
        assert storage.owner_limits() == {"globex": "5/second;1000/day"}

    def test_owner_limit_keeps_any_owner_name(self, storage: Storage) -> None:
        """Owners with braces (a cluster's hash-tag syntax), colons, spaces and non-ASCII are kept apart."""
        owners = ["{acme}", "a{b}c:d", "clerk:user_1", "Zoë & co", "x" * 200, "{", "}"]
        for n, owner in enumerate(owners, start=1):
            storage.set_owner_limit(owner, f"{n}/minute")
        assert storage.owner_limits() == {owner: f"{n}/minute" for n, owner in enumerate(owners, start=1)}
        assert all(storage.get_owner_limit(owner) == f"{n}/minute" for n, owner in enumerate(owners, start=1))
        storage.set_owner_limit("{acme}", None)
        assert storage.get_owner_limit("{acme}") is None and storage.get_owner_limit("a{b}c:d") == "2/minute"

    def test_owner_limit_is_durable_and_shared(self, open_storage: Callable[[], Storage]) -> None:
        """An override set through one handle is read by another, and survives closing the first."""
        if not self.shared_between_handles:
            return  # one object is the whole store: the first test covers it
        first, second = open_storage(), open_storage()
        first.set_owner_limit("acme", "7/hour")
        first.close()
        assert second.get_owner_limit("acme") == "7/hour"
        assert second.owner_limits() == {"acme": "7/hour"}
        second.set_owner_limit("acme", None)
        assert open_storage().owner_limits() == {}
