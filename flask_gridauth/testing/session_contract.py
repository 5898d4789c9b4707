"""Dashboard sessions, the replay cache and the server start that bounds it.

Part of :class:`~flask_gridauth.testing.StorageContract`, which provides the ``storage`` fixture.
"""

from __future__ import annotations

import time
from datetime import timedelta

from ..records import utcnow
from ..storage import Storage


class SessionContract:
    """Dashboard sessions, the replay cache and the server start that bounds it."""

    def test_claim_once(self, storage: Storage) -> None:
        """A replay token is accepted once, then refused while it lives."""
        assert storage.claim_once("sig-1", 30) is True
        assert storage.claim_once("sig-1", 30) is False
        assert storage.claim_once("sig-2", 30) is True

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
