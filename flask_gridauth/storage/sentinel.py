"""Redis behind Sentinel: the Redis layout, with the master found through the sentinels.

``redis+sentinel://[:password@]host:port[,host:port]/service[/db]``. The
password (if any) is the master's; ``?sentinel_password=`` is the sentinels'
own, and ``?key_prefix=`` works as for ``redis://``. The client asks the
sentinels for the current master when it connects, and again after a
connection fails or the server it reached has become a replica: a failover
needs no restart. During the switch requests get 503 (never let through), and
they are served again as soon as the sentinels have promoted a replica.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigurationError
from .redis import RedisStorage, split_uri


def parse_hosts(netloc: str, scheme: str) -> tuple[list[tuple[str, int]], str | None, str | None]:
    """``[user:password@]host:port[,host:port]`` -> the hosts, the user name and the password."""
    user: str | None = None
    password: str | None = None
    if "@" in netloc:
        auth, netloc = netloc.rsplit("@", 1)
        name, _, secret = auth.partition(":")
        user, password = unquote(name) or None, unquote(secret) or None
    hosts: list[tuple[str, int]] = []
    for part in netloc.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ConfigurationError(f"a {scheme}:// URI lists host:port pairs separated by commas")
        hosts.append((host.strip("[]"), int(port)))
    return hosts, user, password


class SentinelStorage(RedisStorage):
    """Keys on the Redis master that the sentinels name; follows a failover without a restart."""

    schemes = ("redis+sentinel",)

    def _make_client(self) -> Any:
        from redis.sentinel import Sentinel

        parts = urlsplit(self.url)
        hosts, user, password = parse_hosts(parts.netloc, "redis+sentinel")
        path = [p for p in parts.path.split("/") if p]
        if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
            raise ConfigurationError(
                "a redis+sentinel:// URI names the service: redis+sentinel://host:port/service[/db]"
            )
        query = dict(parse_qsl(parts.query))
        sentinel_kwargs: dict[str, Any] = {"socket_timeout": self.timeout, "socket_connect_timeout": self.timeout}
        if "sentinel_password" in query:
            sentinel_kwargs["password"] = query["sentinel_password"]
        self.service = path[0]
        # Neither the Sentinel object nor master_for contacts anything: the first command does.
        sentinel = Sentinel(hosts, sentinel_kwargs=sentinel_kwargs, socket_timeout=self.timeout)  # type: ignore[no-untyped-call]
        return sentinel.master_for(  # type: ignore[no-untyped-call]
            self.service,
            db=int(path[1]) if len(path) == 2 else 0,
            username=user,
            password=password,
            socket_timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            health_check_interval=30,
            redis_connect_func=self._on_connect,  # learns each master's run and start (see RedisStorage)
        )


__all__ = ["SentinelStorage", "parse_hosts", "split_uri"]
