"""Revocation propagation between two gunicorn "hosts" sharing PostgreSQL and Redis.

Usage: ``.venv/bin/python bench/two_hosts.py [--keys N] [--cache-ttl S]``

Host A and host B are two gunicorn masters (2 workers each) on their own ports,
with keys and the replay cache in PostgreSQL and rate-limit counters in Redis.
For each of N keys: B serves the key once (so any per-process cache holds it),
A revokes it, and B is polled until it refuses the key. The delay is measured
from A's answer to the revocation to B's first refusal; p50 and p99 are
printed, with how often B still accepted the key after A's answer, and the
time of one request to B alone (taken just before each revocation): on a
loaded machine the delay's tail is that request's tail. Without
``GRIDAUTH_CACHE_TTL`` every request reads PostgreSQL, so the delay is the
first poll's round trip.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.live.conftest import BASE_CONFIG, TOKEN, start_gunicorn  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS = "redis://127.0.0.1:6379/15"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def percentile(values: list[float], fraction: float) -> float:
    """The value below which ``fraction`` of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def measure(a: str, b: str, keys: int) -> tuple[list[float], list[int], list[float]]:
    """For ``keys`` fresh keys: seconds from A's revocation answer to B's first 401, and B's 200s in between.

    Also the time of one request to B with a valid key, made just before each revocation: the
    delay can never be shorter than one such request, so its tail is the machine's, not the push's.
    """
    delays: list[float] = []
    stale: list[int] = []
    single: list[float] = []
    session = requests.Session()
    for i in range(keys):
        created = session.post(f"{a}/api/v1/api-keys", json={"name": f"k{i}", "scopes": ["read"]}, headers=AUTH)
        created.raise_for_status()
        key = created.json()
        headers = {"Authorization": f"Bearer {key['raw_key']}"}
        started = time.perf_counter()
        if session.get(f"{b}/boards", headers=headers).status_code != 200:
            raise SystemExit("host B refused a fresh key")
        single.append(time.perf_counter() - started)
        session.delete(f"{a}/api/v1/api-keys/{key['id']}", headers=AUTH).raise_for_status()
        revoked_at = time.perf_counter()
        deadline = revoked_at + 10
        accepted = 0
        while session.get(f"{b}/boards", headers=headers).status_code != 401:
            accepted += 1
            if time.perf_counter() > deadline:
                raise SystemExit("host B still accepted a revoked key after 10 s")
        delays.append(time.perf_counter() - revoked_at)
        stale.append(accepted)
    return delays, stale, single


def main() -> None:
    """Start both hosts on a database of their own, measure, print, clean up."""
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=100)
    parser.add_argument("--cache-ttl", type=float, default=0)
    args = parser.parse_args()
    name = f"gridauth_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    hosts: list[Any] = []
    try:
        config: dict[str, Any] = {
            **BASE_CONFIG,
            "GRIDAUTH_STORAGE_URI": f"postgresql://postgres@127.0.0.1:5432/{name}",
            "GRIDAUTH_RATELIMIT_STORAGE_URI": REDIS,
        }
        if args.cache_ttl:
            config["GRIDAUTH_CACHE_TTL"] = args.cache_ttl
        env = {"GRIDAUTH_SECRET_KEY": secrets.token_hex(32)}
        with tempfile.TemporaryDirectory() as tmp:
            for label in ("a", "b"):
                cwd = Path(tmp) / label
                cwd.mkdir()
                hosts.append(start_gunicorn(config, cwd=cwd, workers=2, env=env))
            delays, stale, single = measure(hosts[0].url, hosts[1].url, args.keys)
            for host in hosts:
                host.stop()
    finally:
        for host in hosts:
            host.stop()
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    ms = [d * 1000 for d in delays]
    one = [d * 1000 for d in single]
    print(
        f"revocation A -> B, {len(ms)} keys, GRIDAUTH_CACHE_TTL={args.cache_ttl or 0}: "
        f"p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms; "
        f"B still answered 200 after the revocation for {sum(1 for n in stale if n)} of {len(stale)} keys "
        f"(at most {max(stale)} times); one request to B alone: p50 {statistics.median(one):.1f} ms, "
        f"p99 {percentile(one, 0.99):.1f} ms (load average {os.getloadavg()[0]:.2f})"
    )


if __name__ == "__main__":
    main()
