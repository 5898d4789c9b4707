"""The storage contract (:class:`flask_gridauth.testing.StorageContract`) run against every backend.

Each backend runs against a real server of its kind; the registry, the
wrapping of driver errors and backend-specific behaviour are tested below.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from flask_gridauth.errors import ConfigurationError, StorageError
from flask_gridauth.records import Quota, utcnow
from flask_gridauth.storage import SCHEMES, MemoryStorage, SQLiteStorage, Storage, storage_from_uri
from flask_gridauth.testing import StorageContract, make_record
from tests.conftest import prefixed_redis_uri, schema_postgres_uri


class TestMemoryStorage(StorageContract):
    """The contract on ``memory://``."""

    shared_between_handles = False

    @pytest.fixture
    def storage_factory(self) -> Callable[[], Storage]:
        """One fresh in-process store per handle."""
        return lambda: storage_from_uri("memory://")


class TestSQLiteStorage(StorageContract):
    """The contract on a SQLite file of the test's own."""

    @pytest.fixture
    def storage_factory(self, tmp_path: Any) -> Callable[[], Storage]:
        """Handles on one file under the test's temporary folder."""
        return lambda: storage_from_uri(f"sqlite:///{tmp_path}/contract.db")


class TestRedisStorage(StorageContract):
    """The contract on the real Redis, under a key prefix of the test's own."""

    @pytest.fixture
    def storage_factory(self, redis_server: str) -> Iterator[Callable[[], Storage]]:
        """Handles on one fresh key prefix; its keys are deleted afterwards."""
        for uri in prefixed_redis_uri(redis_server):
            yield lambda uri=uri: storage_from_uri(uri)


class TestPostgresStorage(StorageContract):
    """The contract on the real PostgreSQL, in a schema of the test's own inside the session's database."""

    @pytest.fixture
    def storage_factory(self, postgres_server: str) -> Iterator[Callable[[], Storage]]:
        """Handles on one fresh schema; it is dropped afterwards."""
        for uri in schema_postgres_uri(postgres_server):
            yield lambda uri=uri: storage_from_uri(uri)


class TestValkeyScheme(StorageContract):
    """The contract through a ``valkey://`` URI (Valkey speaks Redis; the real Redis stands in)."""

    @pytest.fixture
    def storage_factory(self, redis_server: str) -> Iterator[Callable[[], Storage]]:
        """Handles through ``valkey://`` on a fresh key prefix."""
        for uri in prefixed_redis_uri(redis_server):
            yield lambda uri=uri: storage_from_uri("valkey://" + uri.split("://", 1)[1])


class _FlakyDriverError(Exception):
    """What a made-up driver raises."""


class FlakyStorage(MemoryStorage):
    """A third-party style backend: its own scheme, a driver error type, a method that fails."""

    schemes = ("flaky-test",)
    driver_errors = (_FlakyDriverError,)

    def find(self, lookup: str) -> Any:
        """Fail as a driver would."""
        raise _FlakyDriverError("connection to db://user:hunter2@host lost")


def test_third_party_scheme_is_registered_and_errors_wrapped() -> None:
    """A subclass declaring a scheme is found by storage_from_uri, and its driver errors leave as StorageError."""
    assert SCHEMES["flaky-test"] is FlakyStorage
    backend = storage_from_uri("flaky-test://anything")
    assert isinstance(backend, FlakyStorage)
    with pytest.raises(StorageError) as info:
        backend.find("x")
    assert "hunter2" not in str(info.value)
    assert backend.get("missing") is None  # an inherited method still answers


def test_builtin_schemes_registered_lazily() -> None:
    """The built-in backends answer to their schemes; SQLite and memory are there from the start."""
    assert SCHEMES["memory"] is MemoryStorage and SCHEMES["sqlite"] is SQLiteStorage
    backend = storage_from_uri("rediss://127.0.0.1:1/0")
    assert type(backend).__name__ == "RedisStorage" and SCHEMES["valkeys"] is type(backend)


def test_unknown_scheme_is_configuration_error(tmp_path: Any) -> None:
    """An unknown URI scheme is refused, naming the scheme."""
    with pytest.raises(ConfigurationError, match="'mysql'"):
        storage_from_uri("mysql://localhost/db", instance_path=str(tmp_path))


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


def test_sqlite_0_1_file_gains_the_new_columns(tmp_path: Any) -> None:
    """A SQLite file written by 0.1 keeps its keys and gains the 0.2 columns on first open."""
    import sqlite3

    from flask_gridauth.storage.sqlite_schema import _SCHEMA, MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA)  # exactly the 0.1 schema, user_version 0
    conn.execute(
        "INSERT INTO gridauth_keys (id, lookup, name, type, prefix, scopes, environment, owner, created_at,"
        " metadata) VALUES ('key_old', 'abc', 'old', 'api_key', 'grd_live_0', '[\"read\"]', 'live', 'alice', 1.0, '{}')"
    )
    conn.commit()
    conn.close()
    storage = storage_from_uri(f"sqlite:///{path}", instance_path=str(tmp_path))
    old = storage.find("abc")
    assert old is not None and (old.name, old.disabled_at, old.quota, old.canary) == ("old", None, None, False)
    updated = storage.update("key_old", {"quota": Quota(2), "disabled_at": utcnow()})
    assert updated is not None and updated.quota == Quota(2)
    assert storage.spend_quota(updated, 1, utcnow()) == (True, 1)
    storage.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    conn.close()
    # A second open finds the file migrated and changes nothing.
    again = storage_from_uri(f"sqlite:///{path}", instance_path=str(tmp_path))
    assert again.get("key_old") == updated
    again.close()


def test_postgres_0_2_columns_added_to_a_version_1_database(postgres_uri: str) -> None:
    """Tables created by migration 1 keep their keys and gain the 0.2 columns (migration 2) on first use."""
    import psycopg

    from flask_gridauth.storage.postgres_schema import _VERSION_TABLE, MIGRATIONS

    base, _, query = postgres_uri.partition("?")
    schema = dict(part.split("=", 1) for part in query.split("&"))["schema"]
    q = f'"{schema}".'
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(_VERSION_TABLE.format(s=q))
        conn.execute(MIGRATIONS[0][1].format(s=q))
        conn.execute(f"INSERT INTO {q}gridauth_schema_version (version) VALUES (1)")  # noqa: S608
        conn.execute(
            f"INSERT INTO {q}gridauth_keys (id, lookup, name, type, prefix, scopes, environment, owner,"  # noqa: S608
            " created_at, metadata) VALUES ('key_old', 'abc', 'old', 'api_key', 'grd_live_0', '{read}',"
            " 'live', 'alice', now(), '{}')"
        )
    storage = storage_from_uri(postgres_uri)
    try:
        old = storage.find("abc")
        assert old is not None and (old.name, old.disabled_at, old.allowed_ips, old.quota) == ("old", None, (), None)
        updated = storage.update("key_old", {"quota": Quota(2)})
        assert updated is not None and storage.spend_quota(updated, 1, utcnow()) == (True, 1)
    finally:
        storage.close()
    with psycopg.connect(base) as conn:
        versions = [row[0] for row in conn.execute(f"SELECT version FROM {q}gridauth_schema_version ORDER BY 1")]  # noqa: S608
    assert versions == [version for version, _ in MIGRATIONS]
