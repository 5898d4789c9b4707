"""Owner-wide limits: ``GRIDAUTH_RATELIMIT_OWNER`` and the per-owner overrides, as one process knows them.

An operator overrides the default for one owner (``flask gridauth owner-limit``,
:meth:`~flask_gridauth.management.KeyManager.set_owner_limit`); the override
is stored durably and replaces ``GRIDAUTH_RATELIMIT_OWNER`` for every key and
JWT of that owner (also when the default is ``None``).

The request path never asks storage for an owner's override: each process
keeps every override in :class:`OwnerLimits` (owned by the app's rate limits,
so by its per-app state) and reads them all again, in one storage call, once
:data:`OVERRIDE_TTL` seconds have passed. An override set or cleared on
another process or host therefore takes effect here within
:data:`OVERRIDE_TTL` seconds; one changed through this app's ``KeyManager``
takes effect here at once. While storage cannot be read, the overrides last
read stay in force (re-read after another :data:`OVERRIDE_TTL`); with none
read yet, the request is a 503.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .errors import StorageError, Unavailable
from .ratelimit_items import Limit, parse_limits
from .storage import Storage

logger = logging.getLogger("flask_gridauth")

#: Seconds a process uses the overrides it read before reading them all again.
OVERRIDE_TTL = 10.0


class OwnerLimits:
    """The owner-wide limits of one app: the default and every override, re-read every :data:`OVERRIDE_TTL` s."""

    def __init__(
        self,
        storage: Storage,
        default: tuple[Limit, ...] | None,
        *,
        ttl: float = OVERRIDE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        #: ``GRIDAUTH_RATELIMIT_OWNER``: the limits of every owner without an override.
        self.default = default
        self.ttl = ttl
        #: Monotonic seconds (tests inject their own).
        self.clock = clock
        self._overrides: dict[str, tuple[Limit, ...]] | None = None
        self._parsed: dict[str, tuple[Limit, ...]] = {}
        self._expires = 0.0
        self._lock = threading.Lock()

    def for_owner(self, owner: str) -> tuple[Limit, ...] | None:
        """The limits ``owner``'s requests count against: its override, else the default (``None``: none)."""
        overrides = self._overrides if self.clock() < self._expires else self._read()
        if overrides:
            found = overrides.get(owner)
            if found is not None:
                return found
        return self.default

    def any(self) -> bool:
        """Whether any owner may be limited: a default, or at least one override."""
        if self.default is not None:
            return True
        overrides = self._overrides if self.clock() < self._expires else self._read()
        return bool(overrides)

    def forget(self) -> None:
        """Read the overrides again on the next request (after this process changed one)."""
        self._expires = 0.0

    def _read(self) -> dict[str, tuple[Limit, ...]]:
        """Every override, read from storage by one thread; the others keep using the last ones meanwhile."""
        if not self._lock.acquire(blocking=self._overrides is None):
            return self._overrides or {}
        try:
            if self._overrides is not None and self.clock() < self._expires:
                return self._overrides  # another thread has just read them
            try:
                stored = self.storage.owner_limits()
            except StorageError as exc:
                if self._overrides is None:
                    logger.error("owner rate-limit overrides unavailable: %s", exc)
                    raise Unavailable() from None
                logger.error("owner rate-limit overrides unavailable, keeping the last ones read: %s", exc)
                self._expires = self.clock() + self.ttl
                return self._overrides
            self._overrides = {owner: self._parse(text) for owner, text in stored.items()}
            self._overrides = {owner: limits for owner, limits in self._overrides.items() if limits}
            self._expires = self.clock() + self.ttl
            return self._overrides
        finally:
            self._lock.release()

    def _parse(self, text: str) -> tuple[Limit, ...]:
        parsed = self._parsed.get(text)
        if parsed is None:
            try:
                parsed = parse_limits(text)
            except ValueError:
                # KeyManager checks on write; a hand-edited row keeps the default, loudly.
                logger.error("ignoring an unparsable owner rate-limit override; using GRIDAUTH_RATELIMIT_OWNER")
                parsed = ()
            if len(self._parsed) >= 10_000:
                self._parsed.clear()
            self._parsed[text] = parsed
        return parsed
