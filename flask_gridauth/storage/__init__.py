"""Storage backends, chosen by URI scheme through a registry.

A backend class registers the schemes it declares (:attr:`Storage.schemes`)
when it is defined; ours are imported on first use, so an optional driver is
loaded only by an app that asks for its scheme.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from ..errors import ConfigurationError, StorageError
from .base import SCHEMES, KeyExistsError, Storage
from .memory import MemoryStorage
from .sqlite import SQLiteStorage

#: Built-in schemes and the module that registers each (imported lazily).
BUILTIN_SCHEMES: dict[str, str] = {
    "memory": "memory",
    "sqlite": "sqlite",
    "redis": "redis",
    "rediss": "redis",
    "valkey": "redis",
    "valkeys": "redis",
    "redis+sentinel": "sentinel",
    "redis+cluster": "cluster",
    "postgresql": "postgres",
    "postgres": "postgres",
}


def backend_for(scheme: str) -> type[Storage] | None:
    """The class registered for ``scheme`` (loading a built-in backend's module), or ``None``."""
    cls = SCHEMES.get(scheme)
    if cls is None and scheme in BUILTIN_SCHEMES:
        importlib.import_module(f"{__name__}.{BUILTIN_SCHEMES[scheme]}")
        cls = SCHEMES.get(scheme)
    return cls


def storage_from_uri(uri: str, *, instance_path: str = "", timeout: float = 2.0) -> Storage:
    """Build the backend a ``GRIDAUTH_STORAGE_URI`` names; nothing is contacted yet.

    The scheme picks the class from the registry: ours, and any subclass of
    :class:`Storage` that declared it in ``schemes``.
    """
    if not isinstance(uri, str):
        raise ConfigurationError("GRIDAUTH_STORAGE_URI must be a string")
    scheme = urlsplit(uri).scheme
    cls = backend_for(scheme)
    if cls is None:
        known = sorted({*BUILTIN_SCHEMES, *SCHEMES})
        raise ConfigurationError(
            f"unknown GRIDAUTH_STORAGE_URI scheme {scheme!r}: use one of " + ", ".join(s + "://" for s in known)
        )
    return cls.from_uri(uri, instance_path=instance_path, timeout=timeout)


__all__ = [
    "BUILTIN_SCHEMES",
    "KeyExistsError",
    "MemoryStorage",
    "SCHEMES",
    "SQLiteStorage",
    "Storage",
    "StorageError",
    "backend_for",
    "storage_from_uri",
]
