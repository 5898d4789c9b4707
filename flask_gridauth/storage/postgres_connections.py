"""How the PostgreSQL backend connects: the parameters of its URI, one pool per process, the tables ready first."""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from ..errors import ConfigurationError, StorageError
from .base import Storage
from .postgres_schema import apply_migrations, migration_sql, pending_versions

if TYPE_CHECKING:
    from types import ModuleType

    import psycopg
    from psycopg_pool import ConnectionPool

_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class ConnectionOptions(NamedTuple):
    """What a ``postgresql://`` URI says: libpq's connection string, and our own parameters."""

    conninfo: str
    min_size: int
    max_size: int
    pool_timeout: float
    auto_migrate: bool
    schema: str | None


def _flag(value: str, name: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"the PostgreSQL storage URI parameter {name} must be true or false")


def _number(value: str, name: str, *, integer: bool) -> float:
    try:
        number = int(value) if integer else float(value)
    except ValueError:
        number = -1
    if not number > 0 or math.isinf(number):
        raise ConfigurationError(f"the PostgreSQL storage URI parameter {name} must be a positive number")
    return number


def parse_uri(uri: str, *, timeout: float) -> ConnectionOptions:
    """Our parameters taken out of ``uri`` (see :mod:`flask_gridauth.storage.postgres`), the rest left to libpq."""
    parts = urlsplit(uri)
    ours: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("pool_min_size", "pool_max_size", "pool_timeout", "schema", "auto_migrate"):
            ours[key] = value
        else:
            rest.append((key, value))
    if not any(key == "connect_timeout" for key, _ in rest):
        rest.append(("connect_timeout", str(max(1, math.ceil(timeout)))))
    conninfo = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(rest)))
    min_size = int(_number(ours.get("pool_min_size", "1"), "pool_min_size", integer=True))
    max_size = int(_number(ours.get("pool_max_size", "10"), "pool_max_size", integer=True))
    if min_size > max_size:
        raise ConfigurationError("pool_min_size cannot be larger than pool_max_size")
    pool_timeout = _number(ours.get("pool_timeout", str(timeout)), "pool_timeout", integer=False)
    auto_migrate = _flag(ours.get("auto_migrate", "true"), "auto_migrate")
    schema = ours.get("schema")
    if schema is not None and not _IDENTIFIER.fullmatch(schema):
        raise ConfigurationError("the PostgreSQL schema name must be lower-case letters, digits and _")
    return ConnectionOptions(conninfo, min_size, max_size, pool_timeout, auto_migrate, schema)


class PostgresConnections(Storage):
    """The pool and the schema of :class:`~flask_gridauth.storage.postgres.PostgresStorage` (an abstract base)."""

    if TYPE_CHECKING:
        conninfo: str
        min_size: int
        max_size: int
        pool_timeout: float
        auto_migrate: bool
        schema: str | None
        _pool_module: ModuleType
        _pool: ConnectionPool[Any] | None
        _pool_pid: int
        _pool_lock: threading.Lock
        _schema_ready: bool

    def _open_pool(self) -> ConnectionPool[Any]:
        pool = self._pool
        if pool is not None and self._pool_pid == os.getpid():
            return pool
        with self._pool_lock:
            if self._pool is None or self._pool_pid != os.getpid():
                # A pool never crosses a fork: the child opens its own (the parent's stays the parent's).
                self._pool = self._pool_module.ConnectionPool(
                    self.conninfo,
                    min_size=self.min_size,
                    max_size=self.max_size,
                    timeout=self.pool_timeout,
                    # Give up on a failing connection attempt soon: the next request asks for a new one,
                    # so traffic comes back within a few seconds of the database.
                    reconnect_timeout=max(1.0, self.pool_timeout),
                    kwargs={"autocommit": True},
                    open=False,
                    name="gridauth",
                )
                self._pool.open(wait=False)
                self._pool_pid = os.getpid()
            return self._pool

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection[Any]]:
        pool = self._open_pool()
        with pool.connection() as conn:
            if not self._schema_ready:
                self._ensure_schema(conn)
            yield conn

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self.auto_migrate:
            apply_migrations(conn, self.schema)
        elif pending_versions(conn, self.schema):
            raise StorageError("PostgreSQL storage: the tables are behind; run `flask gridauth migrate`")
        self._schema_ready = True

    def migrate(self) -> tuple[int, ...]:
        """Apply the migrations this database lacks; the versions applied (none when up to date)."""
        with self._pool_connection() as conn:
            applied = apply_migrations(conn, self.schema)
        self._schema_ready = True
        return applied

    def migration_sql(self) -> str:
        """The SQL of every migration, for operators who apply them with their own tools."""
        return migration_sql(self.schema)

    @contextmanager
    def _pool_connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._open_pool().connection() as conn:
            yield conn
