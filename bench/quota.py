"""Quotas: what a key's quota adds on memory, and round trips on Redis, in one run.

Usage: ``.venv/bin/python bench/quota.py [--requests N] [--rounds N]``.

Cases, interleaved in one process (``harness.measure``): the bare route; an
API key on ``memory://`` (limits off); the same with its per-key limit; the
same with the limit and a quota (one unit per request, never running out); and
on Redis the key with the limit, with and without a quota. Targets of issue 17:
on memory, quota plus limit adds at most 10 µs over the plain key; on Redis a
key with a quota is still one round trip per request.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps  # noqa: E402
from flask import Flask  # noqa: E402
from harness import Case, log, measure, table  # noqa: E402
from run import round_trips  # noqa: E402

PLAIN = "GridAuth API key, memory"
LIMITED = "GridAuth API key + per-key limit, memory"
QUOTA = "GridAuth API key + per-key limit + quota, memory"
REDIS_LIMITED = "GridAuth API key + per-key limit, Redis"
REDIS_QUOTA = "GridAuth API key + per-key limit + quota, Redis"
#: Never runs out during a run.
BIG = {"limit": 10**12}


def _keys(app: Flask, count: int, quota: dict[str, Any] | None) -> list[str]:
    with app.app_context():
        keys = app.extensions["gridauth"].keys
        return [
            keys.create(name=f"bench {i}", scopes=["read"], owner=f"o{i % 50}", quota=quota)[1] for i in range(count)
        ]


def _case(name: str, uri: str, *, limited: bool, quota: dict[str, Any] | None, count: int) -> Case:
    config = {"GRIDAUTH_RATELIMIT_ENABLED": True, "GRIDAUTH_RATELIMIT_API_KEY": apps.LIMIT} if limited else {}
    app = apps.gridauth_app(uri, **config)
    return Case(name, apps.api_key_call(app, _keys(app, count, quota)), base=apps.BARE_GET)


def main() -> None:
    """Measure, print the table, the two targets and the Redis round trips."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()
    log("preparing ...")
    redis_limited, redis_quota = apps.redis_uri(), apps.redis_uri()
    try:
        cases = [
            apps.bare(),
            _case(PLAIN, "memory://", limited=False, quota=None, count=args.keys),
            _case(LIMITED, "memory://", limited=True, quota=None, count=args.keys),
            _case(QUOTA, "memory://", limited=True, quota=BIG, count=args.keys),
            _case(REDIS_LIMITED, redis_limited, limited=True, quota=None, count=args.keys),
            _case(REDIS_QUOTA, redis_quota, limited=True, quota=BIG, count=args.keys),
        ]
        measure(cases, requests=args.requests, rounds=args.rounds)
        by = {c.name: c for c in cases}
        trips = {name: round_trips(by[name].call) for name in (REDIS_LIMITED, REDIS_QUOTA)}
    finally:
        apps.cleanup_redis(redis_limited)
        apps.cleanup_redis(redis_quota)
    print("\n".join(table(cases, peer=PLAIN)))
    plain, limited, quota = (by[n].median_us for n in (PLAIN, LIMITED, QUOTA))
    added = quota - plain
    print(
        f"\nmemory: quota + limit add {added:.1f} µs over the plain key (target ≤ 10 µs: "
        f"{'PASS' if added <= 10 else 'MISS'}); the limit alone adds {limited - plain:.1f} µs, "
        f"the quota on top of it {quota - limited:.1f} µs"
    )
    print(
        f"Redis round trips per request: {trips[REDIS_QUOTA]:.2f} with a quota, {trips[REDIS_LIMITED]:.2f} without "
        f"(target 1: {'PASS' if trips[REDIS_QUOTA] <= 1.0 else 'MISS'}); the quota adds "
        f"{by[REDIS_QUOTA].median_us - by[REDIS_LIMITED].median_us:.1f} µs on Redis"
    )


if __name__ == "__main__":
    main()
