"""One small cache: a dict with a bound, owned by one app's state.

The per-app caches of the request path are these, made by
:meth:`flask_gridauth.state.GridAuthState.cache` and listed in its ``caches``,
so each is found in one place, has a bound, and dies with its app. (A few
caches belong to one object rather than the app: a SQL backend's decoded
rows, the rate limiter's parsed limits; each has its own bound there.)

Why not :func:`functools.lru_cache`: it belongs to a function, so it is shared
by every app of the process (two apps' entries evict each other, and a test's
entries outlive its app), it can only forget everything at once, and a hit
still costs a Python-level wrapper call. Why not a TTL cache (cachetools is
not a dependency, and the standard library has none): the one cache that
expires entries (verified JWTs) needs a deadline per entry (the token's own
``exp``), so it keeps the deadline in the value and checks it itself.

What this adds over a plain dict is small on purpose: a bound (past it the
oldest entry goes, dicts keep insertion order), a lock so that concurrent
misses cannot break the eviction, ``pop`` to forget one entry, and a ``get``
that *is* the dict's own (a hit runs no Python code of ours). No Flask here:
the cache belongs to the core.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar, cast, overload

K = TypeVar("K")
V = TypeVar("V")
D = TypeVar("D")
K_contra = TypeVar("K_contra", contravariant=True)
V_co = TypeVar("V_co", covariant=True)


class Getter(Protocol[K_contra, V_co]):
    """``dict.get``'s shape: ``get(key)`` or ``get(key, default)``."""

    @overload
    def __call__(self, key: K_contra, /) -> V_co | None: ...
    @overload
    def __call__(self, key: K_contra, default: D, /) -> V_co | D: ...


class BoundedCache(Generic[K, V]):
    """At most ``max_entries`` entries; past that, the oldest goes first.

    ``get`` is the underlying dict's bound method (``get(key)`` or
    ``get(key, default)``), so a hit costs what a dict look-up costs.
    """

    __slots__ = ("_entries", "_lock", "get", "max_entries", "name")

    def __init__(self, name: str, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError("max_entries must be zero (no caching) or more")
        self.name = name
        self.max_entries = max_entries
        self._entries: dict[K, V] = {}
        self._lock = threading.Lock()
        #: The dict's own ``get``; the dict is cleared in place, never replaced, so this stays live.
        self.get: Getter[K, V] = cast("Getter[K, V]", self._entries.get)  # mypy cannot match two overload sets

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` under ``key`` (evicting the oldest entry when full) and return it."""
        if self.max_entries == 0:
            return value
        with self._lock:
            entries = self._entries
            if key not in entries:
                while len(entries) >= self.max_entries:
                    del entries[next(iter(entries))]
            entries[key] = value
        return value

    def pop(self, key: K) -> None:
        """Forget ``key`` (nothing happens if it is not kept)."""
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __repr__(self) -> str:
        return f"BoundedCache({self.name!r}, {len(self._entries)}/{self.max_entries})"


#: What makes a cache: ``make_cache(name, max_entries)``. The class itself (a cache of one's own) or
#: :meth:`flask_gridauth.state.GridAuthState.cache` (one the app's state owns and lists).
MakeCache = Callable[[str, int], BoundedCache[Any, Any]]
