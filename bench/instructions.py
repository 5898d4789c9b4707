"""CPU instructions per request, counted by callgrind: comparisons that hold on a noisy machine.

Usage: ``.venv/bin/python bench/instructions.py [CASE ...] [--n 100] [--m 600]``

Each case of ``bench/apps.py`` runs twice under ``valgrind --tool=callgrind``
(``PYTHONHASHSEED=0``): once sending N requests, once M. Start-up, imports and
warm-up are the same in both runs, so ``(I(M) - I(N)) / (M - N)`` is what one
request costs. Requests are prepared (signed) for M in both runs, so signing
is subtracted out too. Figures are printed with their ratio to the bare route
of the same method. Instruction counts are repeatable where wall-clock times
on these shared machines differ by 2x between runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import apps  # noqa: E402
from harness import Case  # noqa: E402


def _postgres_database() -> str:
    """A database of this run's own on the local PostgreSQL, dropped at exit; its URI."""
    import atexit
    import uuid

    import psycopg

    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    name = f"gridauth_instr_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def api_key_postgres(*, cache: bool = True, redis_limits: bool = False, batch: int = 1) -> Case:
    """GridAuth, API key, PostgreSQL; with ``cache``, ``GRIDAUTH_CACHE_TTL=60``: served from the pushed key cache.

    Needs the real PostgreSQL at 127.0.0.1:5432; the database is this run's own,
    dropped at exit. With the cache, requests are counted once the push channel
    is up and every key is cached. ``redis_limits``: plus the per-key limit
    counted in the local Redis (the several-hosts deployment of
    ``docs/guide/scaling.rst``); ``batch``: its ``GRIDAUTH_RATELIMIT_BATCH``
    (leased counting).
    """
    import atexit
    import time

    limits: dict[str, object] = {}
    if redis_limits:
        limits = {
            "GRIDAUTH_RATELIMIT_ENABLED": True,
            "GRIDAUTH_RATELIMIT_API_KEY": apps.LIMIT,
            "GRIDAUTH_RATELIMIT_STORAGE_URI": apps.REDIS_DB_URL,
            "GRIDAUTH_RATELIMIT_BATCH": batch,
        }
    app = apps.gridauth_app(_postgres_database(), GRIDAUTH_CACHE_TTL=60 if cache else 0, **limits)
    atexit.register(app.extensions["gridauth"].storage.close)  # runs before the drop (registered later)
    # 100 keys, not 1,000: under callgrind a request takes tens of milliseconds, and warming 1,000 keys
    # would outlast the 60 s between two recorded uses, so measured requests would write last_used_at.
    raw_keys = apps.with_keys(app, 100)
    call = apps.api_key_call(app, raw_keys)
    if cache:
        key_cache = app.extensions["gridauth"].storage._key_cache
        deadline = time.monotonic() + 120
        while not key_cache.live and time.monotonic() < deadline:
            time.sleep(0.05)
        for _ in raw_keys:  # now cached
            call()
    label = (", cache on" if cache else "") + (", Redis limits" if redis_limits else "")
    return Case("GridAuth API key, PostgreSQL" + label + (f", batch {batch}" if batch > 1 else ""), call)


def postgres_select_in_request() -> Case:
    """The bare route whose view makes one psycopg primary-key SELECT (``bench/postgres.py``'s unit)."""
    import postgres

    pool, lookup = postgres.unit_table(_postgres_database())
    return postgres.select_cases(pool, lookup)[1]


def api_key_redis_limited() -> Case:
    """GridAuth, API key and per-key limit on Redis: one script finds the key and counts (one round trip)."""
    uri = apps.redis_uri("gridauth-instr")
    import atexit

    atexit.register(apps.cleanup_redis, uri)
    return apps.api_key_redis(uri, limited=True)


def api_key_sqlite() -> Case:
    """GridAuth, API key, SQLite: a fresh file of this run's own, removed at exit; the steady state.

    Usage counting is off and no ``last_used_at`` refresh falls due during the
    runs: both write on a wall-clock schedule (a batch every few seconds, a
    refresh a minute per key), and under callgrind the runs' wall time, not the
    code, would decide how many writes land in the counted requests.
    """
    import atexit
    from datetime import timedelta

    from flask_gridauth.credentials import api_key

    api_key.TOUCH_INTERVAL = timedelta(days=1)
    folder = tempfile.mkdtemp(prefix="gridauth-instr-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    app = apps.gridauth_app(f"sqlite:///{folder}/keys.db", GRIDAUTH_USAGE=False)
    raw_keys = apps.with_keys(app, 100)  # few: creating keys under callgrind is slow
    return Case("GridAuth API key, SQLite", apps.api_key_call(app, raw_keys))


#: A limit whose windows outlive any run under callgrind: no window ends mid-run, whose renewal would
#: add a cost that depends on how long the run took.
STEADY_LIMIT = "1000000000/day"


def api_key_memory_steady(*, limited: bool, quota: bool, usage: bool = False) -> Case:
    """GridAuth, API key, memory, usage counting off; with ``limited`` a per-key limit, with ``quota`` a quota.

    Issue 17's "on memory, quota plus limit adds ≤ 10 µs over the plain key", in instructions: compare
    with ``api_key_memory_usage_off`` (the plain key, usage off too). Usage counting is off because its
    flusher runs on a wall-clock interval, and the limit's windows last a day, so nothing in these runs
    depends on how long callgrind took; the quota (10^9 units) never runs out.
    """
    from datetime import timedelta

    from flask_gridauth.credentials import api_key

    # No last_used_at refresh inside a run either (a minute per key: wall-clock again).
    api_key.TOUCH_INTERVAL = timedelta(days=1)
    # With ``usage``: counting on, its flush (every GRIDAUTH_USAGE_FLUSH_INTERVAL) after the run.
    config: dict[str, object] = {"GRIDAUTH_USAGE": usage, "GRIDAUTH_USAGE_FLUSH_INTERVAL": 3600.0}
    if limited:
        config.update(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY=STEADY_LIMIT)
    app = apps.gridauth_app("memory://", **config)
    with app.app_context():
        keys = app.extensions["gridauth"].keys
        given = {"limit": 10**9} if quota else None
        raw_keys = [
            keys.create(name=f"bench {i}", scopes=["read"], owner=f"o{i % 50}", quota=given)[1]
            for i in range(apps.POOL)
        ]
    parts = [" + per-key limit" if limited else "", " + quota" if quota else ""]
    counting = "usage counted, flushed after the run" if usage else "usage counting off"
    return Case(f"GridAuth API key{''.join(parts)}, memory, {counting}", apps.api_key_call(app, raw_keys))


def api_key_memory_allowlist() -> Case:
    """GridAuth, API keys with a two-CIDR ``allowed_ips`` that lets the test client's 127.0.0.1 in; no usage counting.

    What the per-app ``address_allowed`` cache is measured on (see ``keypolicy.py``).
    """
    app = apps.gridauth_app("memory://", GRIDAUTH_USAGE=False)
    with app.app_context():
        keys = app.extensions["gridauth"].keys
        cidrs = ["10.0.0.0/8", "127.0.0.0/8"]
        raw_keys = [
            keys.create(name=f"bench {i}", scopes=["read"], owner=f"o{i % 50}", allowed_ips=cidrs)[1]
            for i in range(apps.POOL)
        ]
    return Case("GridAuth API key with an address allowlist, memory", apps.api_key_call(app, raw_keys))


#: Case name -> builder; ``base`` is the bare route each is compared with.
CASES: dict[str, tuple[Callable[[], Case], str]] = {
    "bare": (apps.bare, "bare"),
    "bare_post": (apps.bare_post, "bare_post"),
    "httpauth": (apps.httpauth_peer, "bare"),
    "api_key_memory": (apps.api_key_memory, "bare"),
    "api_key_memory_allowlist": (api_key_memory_allowlist, "bare"),
    "api_key_memory_limited": (lambda: apps.api_key_memory(limited=True), "bare"),
    "api_key_memory_usage_off": (lambda: apps.api_key_memory(usage=False), "bare"),
    "api_key_memory_steady": (lambda: api_key_memory_steady(limited=False, quota=False), "bare"),
    "api_key_memory_steady_usage": (lambda: api_key_memory_steady(limited=False, quota=False, usage=True), "bare"),
    "api_key_memory_limit": (lambda: api_key_memory_steady(limited=True, quota=False), "bare"),
    "api_key_memory_quota": (lambda: api_key_memory_steady(limited=False, quota=True), "bare"),
    "api_key_memory_quota_limit": (lambda: api_key_memory_steady(limited=True, quota=True), "bare"),
    "api_key_sqlite": (api_key_sqlite, "bare"),
    "api_key_postgres": (lambda: api_key_postgres(cache=False), "bare"),
    "postgres_select_in_request": (postgres_select_in_request, "bare"),
    "api_key_postgres_cached": (api_key_postgres, "bare"),
    "api_key_postgres_cached_redis_limited": (lambda: api_key_postgres(redis_limits=True), "bare"),
    "api_key_postgres_cached_redis_leased": (lambda: api_key_postgres(redis_limits=True, batch=20), "bare"),
    "api_key_redis_limited": (api_key_redis_limited, "bare"),
    "redis_get_in_request": (apps.redis_get_in_request, "bare"),
    "jwt_hs256": (apps.jwt_hs256, "bare"),
    "jwt_hs256_full": (lambda: apps.jwt_hs256(cache=False), "bare"),
    "jwt_extended": (apps.jwt_extended_peer, "bare"),
    "flask_limiter": (apps.flask_limiter_alone, "bare"),
    "signed_v1": (lambda: apps.signed(1), "bare_post"),
    "signed_v2": (lambda: apps.signed(2), "bare_post"),
}
DEFAULT = ["bare", "bare_post", "httpauth", "api_key_memory", "api_key_memory_limited", "jwt_hs256", "signed_v2"]


def child(name: str, count: int, prepared: int) -> None:
    """Build the case, prepare ``prepared`` requests, send ``count`` of them; exit non-zero on a wrong status."""
    case = CASES[name][0]()
    if case.prepare is not None:
        case.prepare(prepared)
    for _ in range(count):
        status = case.call()
        if status != case.expect:
            raise SystemExit(f"{name}: status {status}, expected {case.expect}")


def instructions(name: str, count: int, prepared: int) -> int:
    """Total instructions of one child run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--child",
            name,
            str(count),
            str(prepared),
        ]
        subprocess.run(command, check=True, env=env, capture_output=True)
        for line in Path(out).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in the callgrind output of {name}")


def main() -> None:
    """Print instructions per request for each case and its ratio to the bare route."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("cases", nargs="*", help="cases: " + ", ".join(CASES))
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--m", type=int, default=600)
    parser.add_argument("--child", nargs=3, metavar=("CASE", "COUNT", "PREPARED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]))
        return
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown cases {unknown}: choose from {', '.join(CASES)}")
    args.cases = args.cases or DEFAULT
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    names = list(dict.fromkeys([*args.cases, *(CASES[c][1] for c in args.cases)]))
    per_request: dict[str, float] = {}
    for name in names:
        low, high = instructions(name, args.n, args.m), instructions(name, args.m, args.m)
        per_request[name] = (high - low) / (args.m - args.n)
    print(f"instructions per request (callgrind, PYTHONHASHSEED=0, runs of {args.n} and {args.m} requests)")
    print(f"{'case':<26} {'instructions':>13} {'added':>10} {'x bare':>7}")
    for name in names:
        base = CASES[name][1]
        value, bare = per_request[name], per_request[base]
        print(f"{name:<26} {value:>13,.0f} {value - bare:>10,.0f} {value / bare:>7.2f}")


if __name__ == "__main__":
    main()
