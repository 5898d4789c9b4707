"""RESP3 client-side caching (redis-py ``cache_config``) against our pub/sub-invalidated key cache, in one run.

Usage: ``.venv/bin/python bench/resp3_cache.py [--calls N] [--rounds N] [--trials N] [--instructions]``
(needs the local Redis at 127.0.0.1:6379; works under a key prefix of its own in db 14, deleted after).

Three ways for one process to find a key record (``HMGET <p>:rec:<lookup> d u`` and its decoding):

- ``no cache``: :class:`~flask_gridauth.storage.redis.RedisStorage` without a cache, one round trip;
- ``pub/sub``: the same with ``GRIDAUTH_CACHE_TTL`` (:mod:`flask_gridauth.storage.cache`): a dict
  look-up per hit, emptied by a listener thread subscribed to ``<p>:changes``;
- ``RESP3``: redis-py's client-side cache (``protocol=3, cache_config=CacheConfig()``): the server
  tracks the keys each connection read (``CLIENT TRACKING``) and pushes an invalidation on that
  connection when one changes; redis-py reads pending pushes before each command, so a hit still
  polls the socket. Decoding goes through the same ``(d, u) -> record`` memo as ``RedisStorage``.

Figures: the time per look-up of each (medians of interleaved rounds in one process, and the ratio of
the two caches), and the delay from a change (an ``update`` through another handle) until a looping
reader sees it (p50, p99). ``--instructions`` counts instructions per look-up with callgrind instead
of timing (runs of 200 and 1,200 look-ups; ``PYTHONHASHSEED=0``).

redis-py enables its cache only against Redis 7.4 or later ("to maximize compatibility with all
Redis products"); the server here is 7.0, which has ``CLIENT TRACKING`` and RESP3 pushes since 6.0,
so this script lowers that check for its own client only. Nothing in ``flask_gridauth`` does.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import apps  # noqa: E402

from flask_gridauth.records import KeyRecord  # noqa: E402
from flask_gridauth.storage import Storage, storage_from_uri  # noqa: E402
from flask_gridauth.storage.redis_records import _load  # noqa: E402
from flask_gridauth.testing import make_record  # noqa: E402

CASES = ("no cache", "pub/sub", "RESP3")


def resp3_client(url: str) -> Any:
    """A redis-py client with its RESP3 client-side cache, the 7.4 check lowered (see the module doc)."""
    import redis
    from redis.cache import CacheConfig
    from redis.connection import CacheProxyConnection

    CacheProxyConnection.MIN_ALLOWED_VERSION = "6.0.0"  # type: ignore[misc]
    return redis.Redis.from_url(url, protocol=3, cache_config=CacheConfig())


def finder(case: str, uri: str, lookup: str) -> tuple[Callable[[], KeyRecord | None], Callable[[], None]]:
    """``case``'s look-up of ``lookup`` (warmed, its push channel up) and what closes it."""
    if case == "RESP3":
        storage = storage_from_uri(uri)
        key = storage._rec_key(lookup)  # type: ignore[attr-defined]
        client = resp3_client(storage.url)  # type: ignore[attr-defined]
        memo: dict[tuple[Any, Any], KeyRecord | None] = {}

        def find_resp3() -> KeyRecord | None:
            pair = client.hmget(key, "d", "u")
            if pair[0] is None:
                return None
            memo_key = (pair[0], pair[1])
            record = memo.get(memo_key)
            if record is None:
                record = memo[memo_key] = _load(list(pair))
            return record

        def close_resp3() -> None:
            client.close()
            storage.close()

        find_resp3()
        return find_resp3, close_resp3
    storage = storage_from_uri(uri)
    if case == "pub/sub":
        assert storage.enable_cache(60.0)
        cache = storage._key_cache
        assert cache is not None
        storage.find(lookup)  # starts the listener
        deadline = time.monotonic() + 30
        while not cache.live:
            if time.monotonic() > deadline:
                raise SystemExit("the pub/sub channel never came up")
            time.sleep(0.01)

    def find() -> KeyRecord | None:
        return storage.find(lookup)

    find()
    return find, storage.close


def timings(uri: str, lookup: str, calls: int, rounds: int) -> dict[str, tuple[float, float]]:
    """Median microseconds per look-up of each case, rounds interleaved: ``(wall, CPU)``.

    CPU time (user and system, of this process) is the steadier figure on a shared machine: a
    syscall is a point where the scheduler hands the CPU to another job, which wall time counts.
    """
    finders = {case: finder(case, uri, lookup) for case in CASES}
    samples: dict[str, list[tuple[float, float]]] = {case: [] for case in CASES}
    try:
        for _ in range(rounds):
            for case, (find, _) in finders.items():
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(calls):
                    find()
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                samples[case].append((wall / calls * 1e6, cpu / calls * 1e6))
    finally:
        for _, close in finders.values():
            close()
    return {
        case: (statistics.median(w for w, _ in values), statistics.median(c for _, c in values))
        for case, values in samples.items()
    }


def propagation(uri: str, writer: Storage, record: KeyRecord, case: str, trials: int) -> list[float]:
    """Milliseconds from an update's return until ``case``'s looping reader sees it."""
    find, close = finder(case, uri, record.lookup)
    delays: list[float] = []
    try:
        for i in range(trials):
            find()  # cached again
            name = f"{case} trial {i}"
            writer.update(record.id, {"name": name})
            started = time.perf_counter()
            while (found := find()) is None or found.name != name:
                if time.perf_counter() - started > 5:
                    raise SystemExit(f"{case}: a change never arrived")
            delays.append((time.perf_counter() - started) * 1000)
    finally:
        close()
    return delays


def instructions(case: str, uri: str, lookup: str, count: int) -> int:
    """Total instructions of a child process that makes ``count`` look-ups, under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__]
        command += ["--child", case, uri, lookup, str(count)]
        subprocess.run(command, check=True, env={**os.environ, "PYTHONHASHSEED": "0"}, capture_output=True)
        for line in Path(out).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in the callgrind output of {case}")


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main() -> None:
    """Measure both caches (and no cache) on one record; print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="look-ups per round")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--trials", type=int, default=200, help="changes timed per cache")
    parser.add_argument("--instructions", action="store_true", help="callgrind instead of timing")
    parser.add_argument("--child", nargs=4, metavar=("CASE", "URI", "LOOKUP", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.getLogger("flask_gridauth").setLevel(logging.ERROR)  # not the local Redis's AOF warning, per handle
    if args.child:
        case, uri, lookup, count = args.child
        find, close = finder(case, uri, lookup)
        for _ in range(int(count)):
            find()
        close()
        return
    uri = apps.redis_uri("gridauth-resp3")
    writer = storage_from_uri(uri)
    try:
        record = writer.add(make_record())
        if args.instructions:
            low, high = 200, 1200
            per = {
                case: (instructions(case, uri, record.lookup, high) - instructions(case, uri, record.lookup, low))
                / (high - low)
                for case in CASES
            }
            print(f"instructions per look-up (callgrind, PYTHONHASHSEED=0, runs of {low} and {high}):")
            for case in CASES:
                print(f"  {case:<9} {per[case]:>10,.0f}")
            print(f"RESP3 / pub/sub: {per['RESP3'] / per['pub/sub']:.2f}")
            return
        per_call = timings(uri, record.lookup, args.calls, args.rounds)
        print(f"time per look-up (medians of {args.rounds} interleaved rounds of {args.calls}), wall and CPU:")
        for case in CASES:
            print(f"  {case:<9} {per_call[case][0]:>8.2f} µs  {per_call[case][1]:>8.2f} µs")
        ratios = [per_call["RESP3"][i] / per_call["pub/sub"][i] for i in (0, 1)]
        print(f"RESP3 / pub/sub: {ratios[0]:.1f} (wall), {ratios[1]:.1f} (CPU)")
        for case in ("pub/sub", "RESP3"):
            delays = propagation(uri, writer, record, case, args.trials)
            print(
                f"change -> {case} reader, {len(delays)} changes: p50 {statistics.median(delays):.3f} ms,"
                f" p99 {percentile(delays, 0.99):.3f} ms, max {max(delays):.3f} ms"
            )
    finally:
        writer.close()
        apps.cleanup_redis(uri)


if __name__ == "__main__":
    main()
