"""PostgreSQL beyond the contract: versioned tables, ``flask gridauth migrate``, outages, URI options."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from flask_gridauth.cli import gridauth_cli
from flask_gridauth.errors import ConfigurationError, StorageError
from flask_gridauth.storage import postgres as pg
from flask_gridauth.storage import postgres_sessions, storage_from_uri
from flask_gridauth.storage.postgres_schema import MIGRATIONS
from flask_gridauth.testing import make_record

from .conftest import POSTGRES_HOST, POSTGRES_PORT, bearer, build_app, create_key


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proxy:
    """A TCP forwarder to the real PostgreSQL that a test starts and stops: the database "coming back"."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []

    def start(self) -> None:
        """Listen on the port and forward every connection."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        listener.settimeout(0.05)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _accept(self, listener: socket.socket) -> None:
        with listener:
            while self._listener is listener:
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    return
                client.settimeout(None)
                self._forward(client)

    def _forward(self, client: socket.socket) -> None:
        upstream = socket.create_connection((POSTGRES_HOST, POSTGRES_PORT))
        self._sockets += [client, upstream]
        for a, b in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def stop(self) -> None:
        """Stop listening and cut every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            deadline = time.monotonic() + 5
            while listener.fileno() != -1 and time.monotonic() < deadline:
                time.sleep(0.01)  # the accept thread closes it within one timeout
        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        self._sockets.clear()


@pytest.fixture
def proxy() -> Iterator[Proxy]:
    """A stopped proxy on a free port; stopped again after the test."""
    forwarder = Proxy(_free_port())
    yield forwarder
    forwarder.stop()


def _via(uri: str, port: int) -> str:
    return uri.replace(f"{POSTGRES_HOST}:{POSTGRES_PORT}", f"127.0.0.1:{port}")


def _poll(check: Any, deadline: float = 30.0) -> Any:
    end = time.monotonic() + deadline
    while True:
        result = check()
        if result or time.monotonic() > end:
            return result
        time.sleep(0.05)


def test_down_at_start_up_then_back_without_restart(postgres_uri: str, proxy: Proxy, tmp_path: Any) -> None:
    """An app starts while PostgreSQL is unreachable, answers 503 (never lets a key through), then serves."""
    direct = build_app(str(tmp_path / "direct"), GRIDAUTH_STORAGE_URI=postgres_uri)
    _, raw = create_key(direct)
    app = build_app(
        str(tmp_path / "app"), GRIDAUTH_STORAGE_URI=_via(postgres_uri, proxy.port), GRIDAUTH_STORAGE_TIMEOUT=0.5
    )
    client = app.test_client()
    for _ in range(3):
        response = client.get("/items", headers=bearer(raw))
        assert response.status_code == 503 and response.get_json()["code"] == "unavailable"
    assert client.get("/api/v1/health").status_code == 503
    proxy.start()
    assert _poll(lambda: client.get("/items", headers=bearer(raw)).status_code == 200)
    assert client.get("/api/v1/health").status_code == 200
    proxy.stop()  # the database goes away under a running app: 503 again, then back once more
    assert _poll(lambda: client.get("/items", headers=bearer(raw)).status_code == 503)
    proxy.start()
    assert _poll(lambda: client.get("/items", headers=bearer(raw)).status_code == 200)


def test_errors_never_name_the_password(postgres_server: str) -> None:
    """An unreachable database gives StorageError with the driver's error type, not the URI's secret."""
    uri = f"postgresql://postgres:s3cret-pass@127.0.0.1:{_free_port()}/nowhere?pool_timeout=0.5"
    backend = storage_from_uri(uri)
    try:
        for call in (backend.ping, lambda: backend.find("x"), lambda: backend.add(make_record())):
            with pytest.raises(StorageError) as info:
                call()
            assert "s3cret-pass" not in str(info.value) and "PostgreSQL" in str(info.value)
    finally:
        backend.close()


def test_uri_options(postgres_server: str) -> None:
    """Pool sizes, the pool timeout and the schema come from the URI; bad values are configuration errors."""
    backend = storage_from_uri(
        "postgres://u@h:1/db?pool_min_size=2&pool_max_size=7&pool_timeout=1.5&schema=keys&sslmode=disable"
    )
    assert isinstance(backend, pg.PostgresStorage)
    assert (backend.min_size, backend.max_size, backend.pool_timeout, backend.schema) == (2, 7, 1.5, "keys")
    assert "sslmode=disable" in backend.conninfo and "pool_" not in backend.conninfo
    assert "connect_timeout=2" in backend.conninfo
    for bad in ("pool_max_size=0", "pool_min_size=5&pool_max_size=2", "pool_timeout=x", "schema=Bad-Name"):
        with pytest.raises(ConfigurationError):
            storage_from_uri(f"postgresql://u@h/db?{bad}")


def test_migrate_command_prints_and_applies(postgres_uri: str, tmp_path: Any) -> None:
    """With auto_migrate off the tables are 503 until `flask gridauth migrate`; --sql prints them."""
    app = build_app(str(tmp_path), GRIDAUTH_STORAGE_URI=postgres_uri + "&auto_migrate=false")
    client = app.test_client()
    assert client.get("/api/v1/health").status_code == 503
    runner = app.test_cli_runner()
    printed = runner.invoke(gridauth_cli, args=["migrate", "--sql"])
    assert printed.exit_code == 0, printed.output
    assert "CREATE TABLE" in printed.output and "gridauth_schema_version" in printed.output
    assert printed.output.startswith("BEGIN;") and printed.output.rstrip().endswith("COMMIT;")
    assert client.get("/api/v1/health").status_code == 503  # printing applied nothing
    applied = runner.invoke(gridauth_cli, args=["migrate"])
    versions = ", ".join(str(version) for version, _ in MIGRATIONS)
    assert applied.exit_code == 0 and f"Applied schema versions: {versions}" in applied.output
    again = runner.invoke(gridauth_cli, args=["migrate"])
    assert again.exit_code == 0 and "up to date" in again.output
    assert client.get("/api/v1/health").status_code == 200


def test_printed_sql_applies_with_psql_tools(postgres_server: str) -> None:
    """The SQL of `migrate --sql` applied by hand gives tables the backend then uses as they are."""
    schema = "t_manual_" + str(_free_port())
    uri = f"{postgres_server}?schema={schema}&auto_migrate=false"
    backend = storage_from_uri(uri)
    sql = backend.migration_sql()
    assert sql is not None
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(sql.encode())
    try:
        record = backend.add(make_record())
        assert backend.find(record.lookup) == record
        assert backend.migrate() == ()
    finally:
        backend.close()
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())


def test_processes_starting_together_migrate_once(postgres_uri: str) -> None:
    """Eight handles opening a fresh schema at once all succeed; the version is recorded once."""
    handles = [storage_from_uri(postgres_uri) for _ in range(8)]
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def first_use(n: int) -> None:
        barrier.wait()
        try:
            handles[n].ping()
        except BaseException as exc:  # collected, then asserted below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        schema = postgres_uri.split("schema=")[1].split("&")[0]
        with psycopg.connect(postgres_uri.split("?")[0]) as conn:
            rows = conn.execute(f'SELECT version FROM "{schema}".gridauth_schema_version').fetchall()  # noqa: S608
        assert sorted(rows) == [(version,) for version, _ in MIGRATIONS]
    finally:
        for handle in handles:
            handle.close()


def test_replay_rows_purged_in_batches(postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Expired replay-cache rows are deleted by a later claim, at most a batch at a time."""
    monkeypatch.setattr(postgres_sessions, "PURGE_EVERY", 10)
    monkeypatch.setattr(postgres_sessions, "PURGE_BATCH", 4)
    backend = storage_from_uri(postgres_uri)
    try:
        for i in range(6):
            assert backend.claim_once(f"old-{i}", 0.001)
        time.sleep(0.01)
        assert backend.claim_once("old-0", 30) is True  # an expired token is taken over, not refused
        for i in range(3):
            assert backend.claim_once(f"new-{i}", 30)
        schema = postgres_uri.split("schema=")[1].split("&")[0]
        with psycopg.connect(postgres_uri.split("?")[0]) as conn:
            count = conn.execute(f'SELECT count(*) FROM "{schema}".gridauth_seen').fetchone()  # noqa: S608
        # 8 rows before the tenth claim; it purged one batch (4 of the 5 expired), then added its own
        assert count is not None and count[0] == 8 - 4 + 1
    finally:
        backend.close()


def test_last_used_refreshes_coalesced(postgres_uri: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first use is written at once; a refresh is read at once here and reaches others with the flush."""
    first, second = storage_from_uri(postgres_uri), storage_from_uri(postgres_uri)
    try:
        record = first.add(make_record())
        used = record.created_at + timedelta(seconds=1)
        first.touch(record, used)
        seen = second.get(record.id)
        assert seen is not None and seen.last_used_at == used
        monkeypatch.setattr(first, "_flush_at", time.monotonic() + 3600)  # no flush due yet
        later = used + timedelta(minutes=2)
        first.touch(seen, later)
        mine = first.find(record.lookup)
        assert mine is not None and mine.last_used_at == later
        theirs = second.find(record.lookup)
        assert theirs is not None and theirs.last_used_at == used
        assert isinstance(first, pg.PostgresStorage)
        first.flush()
        theirs = second.find(record.lookup)
        assert theirs is not None and theirs.last_used_at == later
    finally:
        first.close()
        second.close()


def test_migration_versions_are_consecutive() -> None:
    """Migration versions run 1, 2, 3, ... with no repeat: two branches adding "version 2" cannot both land."""
    assert [version for version, _ in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
