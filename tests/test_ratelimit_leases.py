"""Leased counting (``GRIDAUTH_RATELIMIT_BATCH``): fewer counter calls, never more than the limit admitted."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask

from flask_gridauth.errors import ConfigurationError
from flask_gridauth.memory_counters import MemoryCounters
from flask_gridauth.ratelimit_counting import Counting
from flask_gridauth.ratelimit_items import Limit, Result, parse_limits
from flask_gridauth.ratelimit_leases import Leases

from .conftest import bearer, build_app, create_key


class CountedCalls(MemoryCounters):
    """Shared in-process counters that count the ``incr`` calls made on them (one "server" for several processes)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        self.calls += 1
        return super().incr(key, expiry, amount)


def _limit(text: str) -> tuple[Limit, ...]:
    parsed = parse_limits(text)
    assert parsed is not None
    return parsed


def _hit(leases: Leases, limits: tuple[Limit, ...], key: str = "api_key:k1") -> Result:
    out: list[Result] = []
    leases.count(key, limits, time.time(), out)
    assert len(out) == 1
    return out[0]


def test_one_process_asks_once_per_batch() -> None:
    """A process with a batch of 5 asks the counters once per 5 requests, and Remaining goes down by one."""
    counters = CountedCalls()
    leases = Leases(Counting(counters), 5)
    limits = _limit("100/minute")
    results = [_hit(leases, limits) for _ in range(12)]
    assert counters.calls == 3
    assert [remaining for _, remaining, _, _ in results] == list(range(99, 87, -1))
    assert not any(exceeded for *_, exceeded in results)


def test_processes_never_admit_more_than_the_limit() -> None:
    """Three processes on one counter admit at most the limit, and at least the limit minus their unused units."""
    counters = CountedCalls()
    processes = [Leases(Counting(counters), 4) for _ in range(3)]
    limits = _limit("10/minute")
    admitted = 0
    for n in range(60):
        exceeded = _hit(processes[n % 3], limits)[3]
        admitted += not exceeded
    assert 10 - 3 * (4 - 1) <= admitted <= 10
    # Once the shared counter is past the limit, every process refuses without asking.
    before = counters.calls
    assert all(_hit(p, limits)[3] for p in processes)
    assert counters.calls == before


def test_units_are_handed_out_once_across_threads() -> None:
    """gthread workers: 8 threads on one process's leases are admitted exactly the limit, each unit once."""
    leases = Leases(Counting(CountedCalls()), 7)
    limits = _limit("500/minute")
    remaining: list[int] = []
    refused = [0]
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(100):
            _, left, _, exceeded = _hit(leases, limits)
            with lock:
                if exceeded:
                    refused[0] += 1
                else:
                    remaining.append(left)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # No unit twice, never past the limit. (Two threads that reserve at once: the later lease replaces
    # the earlier, whose unused units are lost, so the count may fall short of the limit, never exceed it.)
    assert len(remaining) == len(set(remaining)) and len(remaining) <= 500
    assert len(remaining) + refused[0] == 800 and refused[0] >= 300


def test_a_new_window_gets_new_leases(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the window ends, the spent process reserves again in the new one."""
    clock = [1_000_000.0]

    class FakeTime:
        @staticmethod
        def time() -> float:
            return clock[0]

    monkeypatch.setattr("flask_gridauth.memory_counters.time", FakeTime)
    counters = CountedCalls()
    leases = Leases(Counting(counters), 3)
    limits = _limit("3/minute")

    def hit() -> bool:
        out: list[Result] = []
        leases.count("api_key:k1", limits, clock[0], out)
        return out[0][3]

    assert [hit() for _ in range(4)] == [False, False, False, True]
    clock[0] += 61
    assert [hit() for _ in range(4)] == [False, False, False, True]
    assert counters.calls == 2  # one reservation a window: it took the whole limit, so the 4th is refused locally


@pytest.fixture
def limited(tmp_path: Any) -> Callable[..., Flask]:
    """An app factory with a 10/minute API-key limit; keyword arguments are config."""

    def factory(**config: Any) -> Flask:
        config.setdefault("GRIDAUTH_STORAGE_URI", "memory://")
        return build_app(
            str(tmp_path / "instance"),
            GRIDAUTH_RATELIMIT_ENABLED=True,
            GRIDAUTH_RATELIMIT_API_KEY="10/minute",
            **config,
        )

    return factory


def test_two_apps_on_redis_share_leases(limited: Callable[..., Flask], redis_uri: str, tmp_path: Any) -> None:
    """Two apps (two hosts) leasing 4 units at a time from Redis admit at most 10 and make fewer calls than requests."""
    keys = limited(GRIDAUTH_STORAGE_URI=f"sqlite:///{tmp_path / 'keys.db'}")
    _, raw = create_key(keys)
    apps = [
        limited(
            GRIDAUTH_STORAGE_URI=f"sqlite:///{tmp_path / 'keys.db'}",
            GRIDAUTH_RATELIMIT_STORAGE_URI=redis_uri,
            GRIDAUTH_RATELIMIT_BATCH=4,
        )
        for _ in range(2)
    ]
    clients = [app.test_client() for app in apps]
    first = [clients[n % 2].get("/items", headers=bearer(raw)) for n in range(6)]
    assert [r.status_code for r in first] == [200] * 6
    server, prefix = redis_uri.split("?key_prefix=")
    client = redis.Redis.from_url(server)
    counted = [int(client.get(k) or 0) for k in client.scan_iter(match=f"{prefix}*")]
    client.close()
    assert counted == [8]  # two reservations of 4 served six requests
    rest = [clients[n % 2].get("/items", headers=bearer(raw)).status_code for n in range(20)]
    admitted = 6 + rest.count(200)
    assert 10 - 2 * 3 <= admitted <= 10
    assert rest[-4:] == [429] * 4


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"GRIDAUTH_RATELIMIT_BATCH": 0}, "from 1 to"),
        ({"GRIDAUTH_RATELIMIT_BATCH": "5"}, "from 1 to"),
        ({"GRIDAUTH_RATELIMIT_BATCH": True}, "from 1 to"),
        ({"GRIDAUTH_RATELIMIT_BATCH": 10_001}, "from 1 to"),
        ({"GRIDAUTH_RATELIMIT_BATCH": 2, "GRIDAUTH_RATELIMIT_STRATEGY": "moving-window"}, "fixed-window"),
    ],
)
def test_bad_batch_refused_at_start_up(limited: Callable[..., Flask], config: dict[str, Any], message: str) -> None:
    """A batch that is not a whole number from 1 to 10,000, or one above 1 with another strategy, is refused."""
    with pytest.raises(ConfigurationError, match=message):
        limited(**config)


def test_a_forked_child_does_not_reuse_its_parents_units() -> None:
    """A child forked after the parent took a lease starts with none: it reserves its own units."""
    import os

    counters = CountedCalls()
    leases = Leases(Counting(counters), 5)
    limits = _limit("100/minute")
    assert _hit(leases, limits)[1] == 99  # the parent holds units 2..5
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first hit must reserve (units 6..10 of the shared count), not take unit 2
        try:
            os.write(write, str(_hit(leases, limits)[1]).encode())
        finally:
            os._exit(0)
    os.close(write)
    answer = os.read(read, 16).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert answer == "94"  # memory counters are copied, not shared: the child's reservation is 6..10
    assert _hit(leases, limits)[1] == 98  # the parent goes on with its own lease
