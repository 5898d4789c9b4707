"""The SQLite backend's connections, and the file they are on.

One connection per thread (and per process, so a fork never shares one), WAL
so readers never wait for writers, ``synchronous=NORMAL`` on the hot path (the
replay cache, usage times) so those commits do not fsync, ``FULL`` for key and
session changes so an acknowledged revocation survives a power loss, a busy
timeout, and ``BEGIN IMMEDIATE`` for writes that read first. The file opened is
remembered (device and inode): a file deleted or replaced under the running
server is a ``StorageError`` (503), never a write into the unlinked file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from ..errors import ConfigurationError
from .base import Storage
from .sqlite_schema import _SCHEMA, migrate

#: Seconds between two checks, on the read path, that the file at the path is still the file this
#: storage opened (a ``stat``, measured at 5-7 µs on a loaded 2-vCPU box, about half a key look-up).
#: Writes and :meth:`SQLiteStorage.ping` (``/health``) check every time.
IDENTITY_CHECK_INTERVAL = 1.0


def sqlite_path(uri: str, instance_path: str) -> str:
    """The file of a ``sqlite:///`` URI; a relative path is under the instance folder."""
    path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
    if not path:
        raise ConfigurationError("a SQLite storage URI looks like sqlite:///relative/path.db or sqlite:////abs/path.db")
    return path if os.path.isabs(path) else os.path.join(instance_path, path)


class SQLiteConnections(Storage):
    """The connections of :class:`~flask_gridauth.storage.sqlite.SQLiteStorage` (an abstract base)."""

    if TYPE_CHECKING:
        path: str
        timeout: float
        _local: threading.local
        _schema_ready: bool
        _schema_lock: threading.Lock
        #: (st_dev, st_ino) of the file first opened, and when the read path last compared it.
        _identity: tuple[int, int] | None
        _identity_checked: float

    def _check_file(self) -> None:
        """Refuse (``OperationalError``, so 503) when the file at the path is not the one first opened.

        A database deleted or replaced (a backup restored by renaming it into
        place) under a running server would otherwise go on serving the old,
        unlinked inode: writes acknowledged into a file nobody will read again,
        and revoked keys back at the next start. Only a restart opens the new file.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise sqlite3.OperationalError(
                "the database file was deleted under the running server; restore it, then restart"
            ) from None
        current = (st.st_dev, st.st_ino)
        if self._identity is None:
            self._identity = current
        elif current != self._identity:
            raise sqlite3.OperationalError(
                "the database file was replaced under the running server (another inode); restart to use it"
            )
        self._identity_checked = time.monotonic()

    def _connect(self) -> sqlite3.Connection:
        if self._identity is not None:
            self._check_file()  # never create a fresh empty file where the opened one was deleted
        # The file holds key hashes and the replay cache: create it private (SQLite gives its
        # -wal and -shm files the same mode), never with the umask's usual 0644.
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise sqlite3.OperationalError(f"cannot create {self.path}: {exc.strerror}") from None
        conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=True)
        conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            self._check_file()  # the file just opened is the one first opened (or becomes it)
        except sqlite3.Error:
            conn.close()
            raise
        if not self._schema_ready:
            # One thread of this process sets the file up; the others wait for it.
            with self._schema_lock:
                if not self._schema_ready:
                    self._set_up(conn)
                    self._schema_ready = True
        return conn

    def _set_up(self, conn: sqlite3.Connection) -> None:
        """WAL mode and the schema, retried while another process is doing the same.

        Switching the journal mode can answer "database is locked" at once,
        without waiting out the busy timeout, when another process holds the
        file open at that moment; so retry until the timeout has passed.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    conn.execute("PRAGMA journal_mode = WAL")
                conn.executescript(_SCHEMA)
                migrate(conn)
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)

    @property
    def _conn(self) -> sqlite3.Connection:
        # Keyed by pid too: a connection must never cross a fork.
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            local.conn = self._connect()
            local.pid = os.getpid()
        elif time.monotonic() - self._identity_checked >= IDENTITY_CHECK_INTERVAL:
            self._check_file()
        conn: sqlite3.Connection = local.conn
        return conn

    @contextmanager
    def _write(self, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """A ``BEGIN IMMEDIATE`` transaction on the file first opened.

        ``durable`` (every write but the batched ``last_used_at`` refreshes)
        commits under ``synchronous=FULL``: in WAL mode that syncs the WAL at the
        commit, so a revocation, once answered, survives a power loss. Under
        ``NORMAL`` a commit is only synced at the next checkpoint, and "might
        roll back following a power loss or system crash" (SQLite's own words).
        """
        conn = self._conn
        self._check_file()
        if durable:
            conn.execute("PRAGMA synchronous = FULL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            if durable:
                conn.execute("PRAGMA synchronous = NORMAL")
