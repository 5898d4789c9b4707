"""GRIDAUTH_CACHE_TTL: how long a change takes to reach another handle's key cache (p50, p99).

Usage: ``.venv/bin/python bench/cache_propagation.py [--trials N]`` (needs the real
PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379).

For each pushed backend, two handles on one store stand for two processes: one
with the cache on, one that writes. Each trial renames a key through the
writer, then the cached handle looks the key up in a loop until it sees the new
name; the delay from the write's return to that look-up is recorded. Both
handles run in this process, so the figure is the push path (NOTIFY, pub/sub,
``data_version``) plus one look-up, without a network between hosts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask_gridauth.storage import Storage, storage_from_uri  # noqa: E402
from flask_gridauth.testing import make_record  # noqa: E402


def measure(cached: Storage, plain: Storage, trials: int) -> list[float]:
    """Delays in milliseconds from a write to the cached handle seeing it."""
    assert cached.enable_cache(60.0)
    cache = cached._key_cache
    assert cache is not None
    record = plain.add(make_record())
    cached.find(record.lookup)
    deadline = time.monotonic() + 10
    while not cache.live and time.monotonic() < deadline:
        time.sleep(0.01)
    delays = []
    for i in range(trials):
        cached.find(record.lookup)  # cached again
        name = f"trial {i}"
        plain.update(record.id, {"name": name})
        start = time.perf_counter()
        while (found := cached.find(record.lookup)) is None or found.name != name:
            if time.perf_counter() - start > 5:
                raise SystemExit("a change never arrived")
        delays.append((time.perf_counter() - start) * 1000)
    return delays


def main() -> None:
    """Measure SQLite, PostgreSQL and Redis; print one line each."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    import psycopg
    import redis

    folder = tempfile.mkdtemp(prefix="gridauth-cache-")
    database = f"gridauth_cache_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True)
    admin.execute(f'CREATE DATABASE "{database}"')
    prefix = f"gridauth-cache-{uuid.uuid4().hex[:8]}"
    uris = {
        "SQLite": f"sqlite:///{folder}/keys.db",
        "PostgreSQL (LISTEN/NOTIFY)": f"postgresql://postgres@127.0.0.1:5432/{database}",
        "Redis (pub/sub)": f"redis://127.0.0.1:6379/14?key_prefix={prefix}",
    }
    try:
        for name, uri in uris.items():
            cached, plain = storage_from_uri(uri), storage_from_uri(uri)
            try:
                delays = sorted(measure(cached, plain, args.trials))
            finally:
                cached.close()
                plain.close()
            p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
            print(f"{name}: p50 {statistics.median(delays):.2f} ms, p99 {p99:.2f} ms, max {delays[-1]:.2f} ms")
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.close()
        client = redis.Redis.from_url("redis://127.0.0.1:6379/14")
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
