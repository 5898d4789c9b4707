"""Leased counting: a process takes ``GRIDAUTH_RATELIMIT_BATCH`` hits of a window at once, then counts locally.

With exact counting every limited request asks the shared counter storage
once. On these machines one redis-py round trip inside a request costs about
half a bare route's throughput under gunicorn (``bench/server.py``, "bare
route + one redis-py GET"), so no exact shared counter can keep a request
near the bare route's cost. A lease trades exactness for that round trip,
in the direction that never lets a request through too many:

- one ``incr`` by ``batch`` reserves the window's units ``top - batch + 1 ..
  top`` for this process; it hands them out one per request, without a call,
  until they run out or the window ends, then reserves again;
- units past the limit are never handed out, so across every process and host
  **no more than the limit** is admitted in a window;
- units a process reserved but did not use when the window ends are lost: a
  window may refuse up to ``(batch - 1) × processes`` requests before the
  limit is reached (a refusal means only that the shared counter is past it);
- once the shared counter is past the limit, the process refuses the rest of
  the window without asking (a fixed window's count never goes down);
- ``X-RateLimit-Remaining`` is the limit minus this process's newest unit.

Fixed windows only: a sliding or moving window needs each hit's time, which a
lease cannot give (``ConfigurationError`` at start-up). Failed-authentication
throttling stays exact. ``limits`` has no such mode (its strategies hit the
storage on every request), hence this module.
"""

from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass

from .ratelimit_counting import MAX_CACHED, Counting
from .ratelimit_items import Limit, Result


@dataclass
class Lease:
    """Units of one window this process reserved: ``next`` to ``last`` are left; valid until ``ends``."""

    next: int
    last: int
    ends: float
    #: When the window ends, as the headers show it.
    reset: float
    #: The shared counter is past the limit: the rest of the window is refused without a call.
    spent: bool


class Leases:
    """Counts fixed windows through :class:`~flask_gridauth.ratelimit_counting.Counting`, ``batch`` units a call."""

    def __init__(self, counting: Counting, batch: int) -> None:
        self.counting = counting
        self.batch = batch
        self._leases: dict[str, Lease] = {}
        # gthread workers serve several requests at once: a unit must go to one of them only.
        self._lock = threading.Lock()
        _EVERY.add(self)

    def forget(self) -> None:
        """Drop every lease (its unused units are lost): what a forked child does with its parent's."""
        self._lock = threading.Lock()  # the parent's may have been held by a thread the child does not have
        self._leases = {}

    def count(self, key: str, limits: tuple[Limit, ...], now: float, out: list[Result]) -> None:
        """Hit every limit of ``key`` once, from this process's lease where it has units left."""
        for limit in limits:
            name = key + limit.suffix
            with self._lock:
                lease = self._leases.get(name)
                if lease is not None and lease.ends > now:
                    if lease.next <= lease.last:
                        unit = lease.next
                        lease.next = unit + 1
                        out.append((limit.amount, limit.amount - unit, lease.reset, False))
                        continue
                    if lease.spent:
                        out.append((limit.amount, 0, lease.reset, True))
                        continue
            out.append(self._reserve(name, limit, now))

    def _reserve(self, name: str, limit: Limit, now: float) -> Result:
        """One storage call: reserve ``batch`` units of the window and use the first one that is ours."""
        batch = self.batch
        top = self.counting.counters.incr(name, limit.expiry, batch)
        opened = top == batch
        reset = self.counting.reset_of(name, limit, 1 if opened else top, now)
        # A window this call opened ends no earlier than now + expiry; a known one's end came from
        # the storage's TTL in whole seconds (or was raised to now + 1 for the headers): end the
        # lease a second early, so no unit is handed out after the shared window rolled over.
        ends = reset if opened else reset - 1.0
        first = top - batch + 1
        amount = limit.amount
        lease = Lease(first + 1, min(top, amount), ends, reset, top >= amount)
        with self._lock:
            if len(self._leases) >= MAX_CACHED:
                self._leases.clear()
            self._leases[name] = lease
        if first > amount:
            return amount, 0, reset, True
        return amount, amount - first, reset, False


#: Every ``Leases`` of this process, so a forked child can drop what it inherited.
_EVERY: weakref.WeakSet[Leases] = weakref.WeakSet()


def _forget_in_child() -> None:
    # A child of a process that had leases (gunicorn --preload after a request) would hand out the
    # same units as its parent and its siblings: past the limit. It starts with none.
    for leases in list(_EVERY):
        leases.forget()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_forget_in_child)
