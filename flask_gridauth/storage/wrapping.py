"""Every public method of a backend, wrapped: driver errors leave as ``StorageError``, the key cache stays right.

:class:`~flask_gridauth.storage.Storage` wraps each public method a subclass
defines with :func:`wrap_method` when the class is created; which methods
empty or push the key cache is decided there, from its lists of reads and of
writes that change no key.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from ..errors import StorageError
from ..records import KeyRecord

if TYPE_CHECKING:
    from .cache import KeyCache

F = TypeVar("F", bound=Callable[..., Any])


class _Backend(Protocol):
    """What a wrapped method uses of its backend (a :class:`~flask_gridauth.storage.Storage`)."""

    driver_errors: tuple[type[BaseException], ...]
    pushes_own_changes: ClassVar[frozenset[str]]
    _key_cache: KeyCache | None

    def storage_error(self, exc: BaseException) -> StorageError: ...

    def _push_change(self) -> None: ...

    def _cache_check(self) -> None: ...


def wrap_method(func: F, *, clears: bool, key_write: bool) -> F:
    """``func`` with its backend's driver errors raised as ``StorageError``.

    When the key cache is on, a method that may change a key (``clears``)
    empties this process's cache after it ran, and ``find`` answers from the
    cache. A method that may change a key (``key_write``) and does not push the
    change itself (see :attr:`Storage.pushes_own_changes
    <flask_gridauth.storage.Storage.pushes_own_changes>`) is followed by
    ``_push_change``, whether or not this process caches: the other processes'
    caches drop every key.
    """
    name = func.__name__

    @functools.wraps(func)
    def wrapper(self: _Backend, *args: Any, **kwargs: Any) -> Any:
        try:
            result = func(self, *args, **kwargs)
            if key_write and name not in self.pushes_own_changes:
                self._push_change()
        except StorageError:
            raise
        except self.driver_errors as exc:
            raise self.storage_error(exc) from None
        if clears and self._key_cache is not None:
            self._key_cache.clear()
        return result

    if name == "find":
        plain = wrapper

        @functools.wraps(func)
        def cached_find(self: _Backend, lookup: str) -> Any:
            cache = self._key_cache
            if cache is None:
                return plain(self, lookup)
            try:
                self._cache_check()
            except self.driver_errors as exc:
                raise self.storage_error(exc) from None
            hit = cache.get(lookup)
            if hit is not None:
                return hit
            generation = cache.generation
            record = plain(self, lookup)
            if record is not None:
                cache.put(lookup, record, generation)
            return record

        wrapper = cached_find
    elif name == "touch":
        plain_touch = wrapper

        @functools.wraps(func)
        def touch(self: _Backend, record: KeyRecord, when: datetime) -> Any:
            result = plain_touch(self, record, when)
            if self._key_cache is not None:
                # The cached record shows this use, so the next request does not record it again.
                self._key_cache.used(record.lookup, dataclasses.replace(record, last_used_at=when))
            return result

        wrapper = touch
    wrapper.__gridauth_wrapped__ = True  # type: ignore[attr-defined]
    return cast(F, wrapper)
