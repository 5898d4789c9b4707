"""Benchmark every credential kind against a bare route and Flask-HTTPAuth, in one run.

Usage: ``make bench`` or ``.venv/bin/python bench/run.py [--quick] [--rows N]``.
Prints a Markdown table and writes it to ``bench/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps  # noqa: E402
from harness import Case, log, measure, table, write_results  # noqa: E402


def main() -> None:
    """Build every configuration, time them interleaved, print and save the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer requests and rounds (a smoke run)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="keys in the large SQLite table")
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    args = parser.parse_args()
    requests, rounds = (200, 3) if args.quick else (2000, 7)

    log("preparing configurations ...")
    redis_call, redis_uri = apps.gridauth_redis()
    cases = [
        Case("bare Flask route", apps.bare()),
        Case("Flask-HTTPAuth token (dict)", apps.httpauth_peer(), note="the peer"),
        Case("GridAuth API key, memory", apps.gridauth_memory()),
        Case("GridAuth API key, SQLite 1k keys", apps.gridauth_sqlite(apps.POOL)),
        Case(f"GridAuth API key, SQLite {args.rows:,} keys", apps.gridauth_sqlite(args.rows)),
        Case("GridAuth API key, Redis", redis_call),
    ]
    unit = [Case("redis-py GET (loopback)", apps.redis_get(), group="unit")]
    try:
        log(f"measuring {len(cases) + len(unit)} configurations: {rounds} rounds of {requests} requests ...")
        measure(cases + unit, requests=requests, rounds=rounds)
    finally:
        apps.cleanup_redis(redis_uri)

    rows = table(cases, bare="bare Flask route", peer="Flask-HTTPAuth token (dict)")
    by_name = {c.name: c.median_us for c in cases}
    small = by_name["GridAuth API key, SQLite 1k keys"] - by_name["bare Flask route"]
    large = by_name[f"GridAuth API key, SQLite {args.rows:,} keys"] - by_name["bare Flask route"]
    redis_added = by_name["GridAuth API key, Redis"] - by_name["bare Flask route"]
    get_us = unit[0].median_us
    summary = [
        f"- SQLite added cost, {args.rows:,} keys vs 1k keys: {large:.1f} µs vs {small:.1f} µs "
        f"= {large / small:.2f}×" if small > 0 else "- SQLite: no added cost measured",
        f"- Redis added cost {redis_added:.1f} µs = {redis_added / get_us:.2f}× one redis-py GET ({get_us:.1f} µs)",
    ]
    command = "make bench" if not args.quick else "python bench/run.py --quick"
    write_results(args.output, [("API keys (issue 2)", rows + ["", *summary])], command)
    print("\n".join(rows + ["", *summary]))
    log(f"written to {args.output}")


if __name__ == "__main__":
    main()
