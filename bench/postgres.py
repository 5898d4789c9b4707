"""PostgreSQL: what an API-key request adds, against one psycopg primary-key SELECT, in one run.

Usage: ``.venv/bin/python bench/postgres.py [--requests N] [--rounds N] [--keys N]``
(needs the real PostgreSQL at 127.0.0.1:5432; a database of its own is created and dropped).

Cases, interleaved in one process (``harness.measure``): the bare route; the
bare route whose view runs one prepared primary-key ``SELECT`` through a
psycopg_pool connection (the unit, paid under the same conditions as a request
pays it); GridAuth with an API key on ``postgresql://`` (limits off); and the
same ``SELECT`` in a tight loop. The target of issue 15: the API-key request
adds at most 1.3× what the in-request ``SELECT`` adds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps  # noqa: E402
from flask import Flask  # noqa: E402
from harness import Case, log, measure, table  # noqa: E402

ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_KEY = "GridAuth API key, PostgreSQL"
PG_CACHED = "GridAuth API key, PostgreSQL, GRIDAUTH_CACHE_TTL=60"
SELECT_IN_REQUEST = "bare route + one psycopg primary-key SELECT in the view"
SELECT = "psycopg primary-key SELECT (pool, tight loop)"


def unit_table(uri: str) -> tuple[Any, str]:
    """A pool and a one-row table looked up by primary key, like gridauth_keys."""
    import psycopg_pool

    pool = psycopg_pool.ConnectionPool(uri, min_size=1, max_size=4, kwargs={"autocommit": True}, open=True)
    with pool.connection() as conn:
        conn.execute("CREATE TABLE bench_unit (lookup text PRIMARY KEY, body text NOT NULL)")
        conn.execute("INSERT INTO bench_unit VALUES (%s, %s)", ("k" * 64, "x" * 200))
    return pool, "k" * 64


def select_cases(pool: Any, lookup: str) -> list[Case]:
    """The SELECT in a tight loop, and inside a bare route's view."""

    def select() -> int:
        with pool.connection() as conn:
            row = conn.execute("SELECT body FROM bench_unit WHERE lookup = %s", (lookup,), prepare=True).fetchone()
        return 200 if row else 500

    app = Flask("bare-pg-select")

    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"ok": select() == 200}

    headers = [{"Authorization": "Bearer none"} for _ in range(apps.POOL)]
    return [
        Case(SELECT, select, group="unit"),
        Case(SELECT_IN_REQUEST, apps.cycle(app, headers), group="unit-request", base=apps.BARE_GET),
    ]


def main() -> None:
    """Create a database, measure, print the table and the ratio, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()
    import psycopg

    name = f"gridauth_bench_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    uri = f"postgresql://postgres@127.0.0.1:5432/{name}"
    pool = None
    try:
        log("preparing ...")
        pool, lookup = unit_table(uri)
        app = apps.gridauth_app(uri)
        key_case = Case(PG_KEY, apps.api_key_call(app, apps.with_keys(app, args.keys)), base=apps.BARE_GET)
        cached_app = apps.gridauth_app(uri, GRIDAUTH_CACHE_TTL=60)
        cached_case = Case(
            PG_CACHED, apps.api_key_call(cached_app, apps.with_keys(cached_app, args.keys)), base=apps.BARE_GET
        )
        memory = apps.api_key_memory()
        memory.base = apps.BARE_GET
        cases = [apps.bare(), memory, key_case, cached_case, *select_cases(pool, lookup)]
        measure(cases, requests=args.requests, rounds=args.rounds)
        by = {c.name: c for c in cases}
        bare = by[apps.BARE_GET].median_us
        added_key = by[PG_KEY].median_us - bare
        added_select = by[SELECT_IN_REQUEST].median_us - bare
        print("\n".join(table(cases, peer=SELECT_IN_REQUEST)))
        added_memory = by[memory.name].median_us - bare
        print(
            f"\nAPI key on PostgreSQL adds {added_key:.1f} µs; one primary-key SELECT inside a request adds "
            f"{added_select:.1f} µs; ratio {added_key / added_select:.2f} (target ≤ 1.3); "
            f"the same key on memory adds {added_memory:.1f} µs, so PostgreSQL's own share is "
            f"{(added_key - added_memory) / added_select:.2f}× the SELECT; "
            f"the SELECT in a tight loop: {by[SELECT].median_us:.1f} µs"
        )
        # The ratio of each round (the same minutes of the machine for the three cases), then their median:
        # steadier than the ratio of medians, whose parts can come from different rounds.
        per_round = sorted(
            (k - b) / (s - b)
            for k, s, b in zip(
                by[PG_KEY].samples, by[SELECT_IN_REQUEST].samples, by[apps.BARE_GET].samples, strict=True
            )
            if s > b
        )
        if per_round:
            low, mid, high = per_round[0], statistics.median(per_round), per_round[-1]
            print(f"Per round: median ratio {mid:.2f} (lowest {low:.2f}, highest {high:.2f}, {len(per_round)} rounds)")
        added_cached = by[PG_CACHED].median_us - bare
        print(
            f"With the key cache on, PostgreSQL adds {added_cached:.1f} µs = "
            f"{added_cached / added_memory:.2f}× what memory adds (target ≤ 1.15)"
        )
        cached_app.extensions["gridauth"].storage.close()
        app.extensions["gridauth"].storage.close()
    finally:
        if pool is not None:
            pool.close()
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


if __name__ == "__main__":
    main()
