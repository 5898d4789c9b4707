"""When the Redis server this process talks to started: learnt on each new connection.

A signed request is refused when it is not later than the server's start (see
:meth:`Storage.started_at <flask_gridauth.storage.Storage.started_at>`): a
Redis restarted from an older snapshot may have lost replay-cache claims.
:class:`RedisRestarts` is a base of :class:`~flask_gridauth.storage.redis.RedisStorage`.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from .base import Storage

logger = logging.getLogger("flask_gridauth")


def parse_info(reply: bytes | str) -> dict[str, str]:
    """``INFO``'s ``field:value`` lines as a dict (section headers and blank lines skipped)."""
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition(":")
        if sep and not name.startswith("#"):
            fields[name.strip()] = value.strip()
    return fields


class RedisRestarts(Storage):
    """The server-start tracking of the Redis backends (an abstract base)."""

    #: The server run (INFO ``run_id``) this process last connected to, and when it started
    #: (see :meth:`started_at`); set by :meth:`_on_connect`, on clients built with it.
    _run_id: str | None = None
    _started: float | None = None

    if TYPE_CHECKING:
        #: The ``redis`` module (imported when the backend is built).
        _redis_module: Any

    def started_at(self) -> float | None:
        """When the server this process is connected to started, learnt on connecting (no round trip).

        After a failover to another server (a new ``run_id`` where another was
        seen), the moment this process noticed counts as the start: the new
        server's replay cache may lack the last claims of the old one.
        """
        return self._started

    def _on_connect(self, conn: Any) -> None:
        """Every new connection: the usual handshake, then one ``INFO`` to learn the server's run and start.

        A restarted server drops every connection, so the first command after a
        restart runs on a new connection and this runs first: no request pays a
        round trip for it, and none is served before the new start is known.
        """
        conn.on_connect()
        try:
            conn.send_command("INFO")
            reply = conn.read_response()
        except self._redis_module.ResponseError:
            # INFO refused (an ACL without +info, a renamed command): start unknown, said once.
            if self._run_id is None:
                self._run_id = ""
                logger.warning(
                    "Redis at %s refuses INFO: replays of signed requests after a restart from an older"
                    " snapshot cannot be refused; allow INFO for this user",
                    self._where(conn),
                )
            return
        info = parse_info(reply)
        run_id = info.get("run_id", "")
        if run_id == self._run_id:
            return
        try:
            started = time.time() - int(info.get("uptime_in_seconds", "0"))
        except ValueError:
            started = time.time()
        if self._run_id:  # another server, or the same one restarted: noticed now
            started = max(started, time.time())
            logger.warning("Redis at %s is a new server run (restarted or failed over)", self._where(conn))
        self._started = started
        previous, self._run_id = self._run_id, run_id
        if previous is None and info.get("aof_enabled", "0") == "0":
            logger.warning(
                "Redis at %s keeps no append-only file (appendonly no): a crash restores the last snapshot,"
                " which can bring revoked keys back and forget recent changes. Turn on appendonly, or use"
                " PostgreSQL, the store of record",
                self._where(conn),
            )

    @staticmethod
    def _where(conn: Any) -> str:
        # Host and port only: never the URL, which may hold a password.
        host, port = getattr(conn, "host", None), getattr(conn, "port", None)
        return f"{host}:{port}" if host else "the configured server"
