"""Storage backends, chosen by URI scheme from a fixed list."""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import ConfigurationError, StorageError
from .base import KeyExistsError, Storage
from .memory import MemoryStorage
from .sqlite import SQLiteStorage

SCHEMES = ("memory", "sqlite", "redis", "rediss")


def sqlite_path(uri: str, instance_path: str) -> str:
    """The file of a ``sqlite:///`` URI; a relative path is under the instance folder."""
    path = uri[len("sqlite:///") :] if uri.startswith("sqlite:///") else ""
    if not path:
        raise ConfigurationError("a SQLite storage URI looks like sqlite:///relative/path.db or sqlite:////abs/path.db")
    return path if os.path.isabs(path) else os.path.join(instance_path, path)


def storage_from_uri(uri: str, *, instance_path: str, timeout: float = 2.0) -> Storage:
    """Build the backend a ``GRIDAUTH_STORAGE_URI`` names; nothing is contacted yet."""
    if not isinstance(uri, str):
        raise ConfigurationError("GRIDAUTH_STORAGE_URI must be a string")
    scheme = urlsplit(uri).scheme
    if scheme == "memory":
        return MemoryStorage()
    if scheme == "sqlite":
        path = sqlite_path(uri, instance_path)
        directory = os.path.dirname(path) or "."
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot create the folder for the SQLite storage {directory!r}: {exc.strerror}"
            ) from None
        return SQLiteStorage(path, timeout=timeout)
    if scheme in ("redis", "rediss"):
        from .redis import RedisStorage

        return RedisStorage(uri, timeout=timeout)
    raise ConfigurationError(
        f"unknown GRIDAUTH_STORAGE_URI scheme {scheme!r}: use one of " + ", ".join(s + "://" for s in SCHEMES)
    )


__all__ = [
    "KeyExistsError",
    "MemoryStorage",
    "SCHEMES",
    "SQLiteStorage",
    "Storage",
    "StorageError",
    "storage_from_uri",
]
