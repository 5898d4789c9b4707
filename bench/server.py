"""The real-server run: the example app under gunicorn (2 workers, 127.0.0.1, a free port), driven by wrk.

Six servers run side by side: one on the SQLite file with 1,000,000 keys and
rate limits off (its public ``/`` is the bare route, ``/boards`` the API-key
route, ``/bench/redis-get`` the bare route plus one redis-py ``GET``), one on
memory storage (1,000 keys in each worker), one on Redis with the per-key
limit on, and three of the several-hosts deployment of
``docs/guide/scaling.rst``, keys in PostgreSQL (a database of its own, created
and dropped) with ``GRIDAUTH_CACHE_TTL=60``: without a limit, with the per-key
limit counted exactly in Redis, and with it leased (``GRIDAUTH_RATELIMIT_BATCH``).
Their 100 keys are sent to both workers until each worker has cached them all,
so they measure the cache's steady state. Besides req/s, each round reads the
CPU time the server's workers used (``/proc``) per request.
wrk drives each configuration
for a bounded time, round-robin, and reports requests/second and p50/p99/p99.9
latency, given here as ratios to the bare route. Without wrk (Debian package
``wrk``), a bounded Python load generator stands in, and the table says so.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import apps
from harness import log, percentile

from flask_gridauth.keys import generate_key

BENCH = Path(__file__).resolve().parent
#: Longest a server may take to answer its first request.
START_TIMEOUT = 30.0
#: The several-hosts configuration of docs/guide/scaling.rst.
POSTGRES_LOAD = "GridAuth API key + per-key limit, PostgreSQL keys (GRIDAUTH_CACHE_TTL=60) + Redis limits (/boards)"
#: The ceiling of one round trip: the bare route plus one redis-py GET in the view.
REDIS_GET_LOAD = "bare route + one redis-py GET in the view (public /bench/redis-get)"
#: The several-hosts deployment's keys without its limit: what the pushed cache costs alone.
CACHED_LOAD = "GridAuth API key, PostgreSQL keys (GRIDAUTH_CACHE_TTL=60), no limit (/boards)"
#: ``GRIDAUTH_RATELIMIT_BATCH`` of the leased configuration: one Redis call per 20 requests of a key and worker.
BATCH = 20
#: The several-hosts deployment with leased counting (docs/guide/rate-limits.rst).
LEASED_LOAD = f"{POSTGRES_LOAD[: -len(' (/boards)')]}, GRIDAUTH_RATELIMIT_BATCH={BATCH} (/boards)"
#: Keys the cached configuration cycles through: a working set both workers hold after the warm-up
#: (a miss is one primary-key SELECT; see bench/postgres.py for that cost).
CACHED_KEYS = 100
#: The local PostgreSQL's maintenance database (a run creates and drops a database of its own).
POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
#: wrk threads and connections: two sync workers serve two requests at a time.
THREADS, CONNECTIONS = 1, 4

_LUA = """
local keys = {%(keys)s}
local path = "%(path)s"
local requests = {}
local i = 0
init = function(args)
  for n, key in ipairs(keys) do
    requests[n] = wrk.format("GET", path, {["Authorization"] = "Bearer " .. key})
  end
end
request = function()
  i = i + 1
  return requests[(i %% #requests) + 1]
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"non2xx\\": %%d, \\"errors\\": %%d," ..
    " \\"p50\\": %%d, \\"p99\\": %%d, \\"p999\\": %%d}\\n",
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
"""


@dataclass
class Load:
    """One configuration driven against a server: its path and the keys it cycles through."""

    name: str
    port: int
    path: str
    keys: list[str]
    script: Path | None = None
    runs: list[dict[str, float]] = field(default_factory=list)

    def median(self, metric: str) -> float:
        """The median of ``metric`` over the rounds."""
        return statistics.median(run[metric] for run in self.runs)


#: The gunicorn master of each port this run started (its workers' CPU time is read from /proc).
MASTERS: dict[int, int] = {}
_TICKS = os.sysconf("SC_CLK_TCK")


def worker_cpu_seconds(port: int) -> float:
    """User + system CPU seconds the workers of the server on ``port`` have used so far (Linux /proc)."""
    master = MASTERS[port]
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        # After the command: state, ppid, ..., utime (14th field of the line) and stime (15th).
        if int(fields[1]) == master:
            total += (int(fields[11]) + int(fields[12])) / _TICKS
    return total


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (the server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(
    config: dict[str, Any],
    workdir: Path,
    name: str,
    *,
    workers: int = 2,
    prefix: tuple[str, ...] = (),
    timeout: float = START_TIMEOUT,
    **extra_env: str,
) -> Iterator[int]:
    """The example app under gunicorn with ``config``; yields its port and stops it (only this process group).

    ``prefix`` runs the server under another program (``bench/server_instructions.py``: callgrind).
    """
    port = free_port()
    env = {
        **os.environ,
        **extra_env,
        "GRIDAUTH_BENCH_CONFIG": json.dumps(config),
        "GRIDAUTH_INSTANCE_PATH": str(workdir / f"instance-{name}"),
        "GRIDAUTH_SECRET_KEY": "bench-secret-key-" + name,
        "PYTHONPATH": str(BENCH.parent),
    }
    command = [*prefix, sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    command += ["--chdir", str(BENCH), "--log-level", "warning", "server_app:app"]
    with open(workdir / f"gunicorn-{name}.log", "wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while not _answers(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log((workdir / f"gunicorn-{name}.log").read_text()[-2000:])
                raise SystemExit(f"gunicorn ({name}) did not start")
            time.sleep(0.2)
        MASTERS[port] = process.pid
        yield port
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _answers(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.request("GET", "/")
        ok = conn.getresponse().status == 200
        conn.close()
        return ok
    except OSError:
        return False


def wrk_script(load: Load, workdir: Path) -> Path:
    """A wrk Lua script cycling ``load.keys`` (pre-formatted requests); kept in the private work dir."""
    path = workdir / f"load-{load.port}-{load.path.strip('/').replace('/', '-') or 'root'}.lua"
    keys = ", ".join(f'"{k}"' for k in load.keys)
    path.write_text(_LUA % {"keys": keys, "path": load.path})
    path.chmod(0o600)
    return path


def drive_wrk(load: Load, seconds: int) -> dict[str, float]:
    """One wrk run of ``seconds`` against ``load``; its figures (latencies in µs)."""
    assert load.script is not None
    command = ["wrk", "-t", str(THREADS), "-c", str(CONNECTIONS), "-d", f"{seconds}s", "--timeout", "5s"]
    command += ["-s", str(load.script), f"http://127.0.0.1:{load.port}"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=True)
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    data = json.loads(line.removeprefix("RESULT "))
    if data["non2xx"] or data["errors"]:
        raise SystemExit(f"{load.name}: {data['non2xx']} non-2xx answers and {data['errors']} socket errors")
    return {
        "requests": data["requests"],
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50": data["p50"],
        "p99": data["p99"],
        "p999": data["p999"],
    }


def get_status(port: int, path: str, key: str | None, *, timeout: float) -> int:
    """One GET of ``path`` on a new connection (``key`` as a bearer token, if any), its body read; the status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {key}"} if key else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def drive_python(load: Load, seconds: int) -> dict[str, float]:
    """The fallback load generator: CONNECTIONS threads with keep-alive-free requests, bounded in time."""
    latencies: list[float] = []
    failures = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(offset: int) -> None:
        n = offset
        own: list[float] = []
        while time.monotonic() < stop:
            key = load.keys[n % len(load.keys)]
            n += CONNECTIONS
            started = time.perf_counter()
            status = get_status(load.port, load.path, key, timeout=5)
            own.append((time.perf_counter() - started) * 1e6)
            if status != 200:
                failures[0] += 1
        with lock:
            latencies.extend(own)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    if failures[0]:
        raise SystemExit(f"{load.name}: {failures[0]} answers were not 200")
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed,
        "p50": percentile(latencies, 50),
        "p99": percentile(latencies, 99),
        "p999": percentile(latencies, 99.9),
    }


def warm_every_key(load: Load, times: int) -> None:
    """Send each of ``load.keys`` ``times`` times, one request at a time; every answer must be 200."""
    for _ in range(times):
        for key in load.keys:
            status = get_status(load.port, load.path, key, timeout=30)
            if status != 200:
                raise SystemExit(f"{load.name}: warm-up answer {status}")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database of this run's own (the local server); yields its URI, then drops it."""
    import psycopg

    name = f"gridauth_bench_server_{secrets.token_hex(4)}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(*, rows: int, quick: bool) -> tuple[list[str], list[tuple[str, str, bool]]]:
    """Start both servers, drive every configuration round-robin, and return the table rows and targets."""
    have_wrk = shutil.which("wrk") is not None
    seconds, rounds = (2, 1) if quick else (5, 2)
    drive = drive_wrk if have_wrk else drive_python
    tool = "wrk" if have_wrk else "a Python load generator (wrk is not installed)"
    path, sqlite_keys = apps.sqlite_db(rows)
    redis_uri = apps.redis_uri("gridauth-bench-server")
    log(f"real-server run: gunicorn, 2 workers; {tool}; {rounds} round(s) of {seconds} s per configuration ...")
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gridauth-bench-server-")))
        stack.callback(apps.cleanup_redis, redis_uri)
        redis_app = apps.gridauth_app(redis_uri)
        redis_keys = apps.with_keys(redis_app)
        base = {"GRIDAUTH_API_TOKEN": apps.TOKEN}
        memory_keys = [generate_key("grd") for _ in range(apps.POOL)]
        keys_file = workdir / "memory-keys.json"
        keys_file.write_text(json.dumps(memory_keys))
        keys_file.chmod(0o600)
        memory_port = stack.enter_context(
            gunicorn(
                {**base, "GRIDAUTH_STORAGE_URI": "memory://", "GRIDAUTH_RATELIMIT_ENABLED": False},
                workdir,
                "memory",
                GRIDAUTH_BENCH_MEMORY_KEYS=str(keys_file),
            )
        )
        sqlite_port = stack.enter_context(
            gunicorn(
                {**base, "GRIDAUTH_STORAGE_URI": f"sqlite:///{path}", "GRIDAUTH_RATELIMIT_ENABLED": False},
                workdir,
                "sqlite",
                GRIDAUTH_BENCH_REDIS_GET=apps.REDIS_DB_URL,
            )
        )
        redis_port = stack.enter_context(
            gunicorn(
                {
                    **base,
                    "GRIDAUTH_STORAGE_URI": redis_uri,
                    "GRIDAUTH_RATELIMIT_ENABLED": True,
                    "GRIDAUTH_RATELIMIT_API_KEY": apps.LIMIT,
                },
                workdir,
                "redis",
            )
        )
        postgres_uri = stack.enter_context(postgres_database())
        postgres_app = apps.gridauth_app(postgres_uri)
        postgres_keys = apps.with_keys(postgres_app, CACHED_KEYS)
        postgres_app.extensions["gridauth"].storage.close()
        several = {
            **base,
            "GRIDAUTH_STORAGE_URI": postgres_uri,
            "GRIDAUTH_CACHE_TTL": 60,
            "GRIDAUTH_RATELIMIT_ENABLED": True,
            "GRIDAUTH_RATELIMIT_API_KEY": apps.LIMIT,
            "GRIDAUTH_RATELIMIT_STORAGE_URI": apps.REDIS_DB_URL,
        }
        postgres_port = stack.enter_context(gunicorn(several, workdir, "postgres"))
        leased = {**several, "GRIDAUTH_RATELIMIT_BATCH": BATCH}
        leased_port = stack.enter_context(gunicorn(leased, workdir, "postgres-leased"))
        cached_port = stack.enter_context(
            gunicorn(
                {
                    **base,
                    "GRIDAUTH_STORAGE_URI": postgres_uri,
                    "GRIDAUTH_CACHE_TTL": 60,
                    "GRIDAUTH_RATELIMIT_ENABLED": False,
                },
                workdir,
                "postgres-cached",
            )
        )
        big = f"{rows / 1_000_000:g}M" if rows >= 1_000_000 else f"{rows // 1000}k"
        loads = [
            Load("bare route (public /)", sqlite_port, "/", sqlite_keys),
            Load("GridAuth API key, memory (/boards)", memory_port, "/boards", memory_keys),
            Load(f"GridAuth API key, SQLite {big} keys (/boards)", sqlite_port, "/boards", sqlite_keys),
            Load("GridAuth API key + per-key limit, Redis (/boards)", redis_port, "/boards", redis_keys),
            Load(POSTGRES_LOAD, postgres_port, "/boards", postgres_keys),
            Load(REDIS_GET_LOAD, sqlite_port, "/bench/redis-get", sqlite_keys),
            Load(CACHED_LOAD, cached_port, "/boards", postgres_keys),
            Load(LEASED_LOAD, leased_port, "/boards", postgres_keys),
        ]
        for load in loads:
            load.script = wrk_script(load, workdir)
            drive(load, 1)  # warm-up: imports, connections, first-use writes
        # Every key into both workers' key caches (which worker accepts a request is a race: 8 tries
        # each leave about 1 key-worker pair in 256 cold), so the rounds measure the cache's steady state.
        warm_every_key(loads[4], times=8)
        warm_every_key(loads[6], times=8)
        warm_every_key(loads[7], times=8)
        for _ in range(rounds):
            for load in loads:
                before = worker_cpu_seconds(load.port)
                figures = drive(load, seconds)
                # CPU per request in the workers: a cost that other load on the machine changes far less
                # than requests per second (which it shares the CPUs with).
                figures["cpu_us"] = (worker_cpu_seconds(load.port) - before) / figures["requests"] * 1e6
                load.runs.append(figures)
    bare = loads[0]
    rows_out = [
        f"Load: {tool}, {CONNECTIONS} connections, {rounds} round(s) of {seconds} s per configuration, "
        "round-robin; medians of the rounds. Latency ratios are to the bare route's.",
        "",
        "Worker CPU: user + system CPU seconds of the server's workers during the round, per request"
        " (from /proc); 'bare ÷ this' is the throughput that CPU cost allows, against the bare route's:"
        " steadier than req/s when other work shares the machine.",
        "",
        "| configuration | req/s | vs bare | worker CPU µs/req | bare ÷ this | p50 µs | vs bare | p99 µs | vs bare"
        " | p99.9 µs | vs bare |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for load in loads:
        cells = [f"{load.median('rps'):,.0f}", f"{load.median('rps') / bare.median('rps'):.2f}"]
        cells += [f"{load.median('cpu_us'):,.0f}", f"{bare.median('cpu_us') / load.median('cpu_us'):.2f}"]
        for metric in ("p50", "p99", "p999"):
            cells += [f"{load.median(metric):,.0f}", f"{load.median(metric) / bare.median(metric):.2f}"]
        rows_out.append(f"| {load.name} | " + " | ".join(cells) + " |")
    memory, sqlite, limited, several, one_get, leased = loads[1], loads[2], loads[3], loads[4], loads[5], loads[7]
    several_ratio = several.median("rps") / bare.median("rps")
    one_get_ratio = one_get.median("rps") / bare.median("rps")
    leased_ratio = leased.median("rps") / bare.median("rps")
    several_cpu = bare.median("cpu_us") / several.median("cpu_us")
    leased_cpu = bare.median("cpu_us") / leased.median("cpu_us")
    memory_ratio = memory.median("rps") / bare.median("rps")
    sqlite_ratio = sqlite.median("rps") / bare.median("rps")
    tail = sqlite.median("p999") / bare.median("p999")
    results = [
        ("API key on memory ≥ 0.95 of bare throughput under gunicorn", f"{memory_ratio:.2f}", memory_ratio >= 0.95),
        (f"SQLite {big} keys ≥ 0.85 of bare throughput under gunicorn", f"{sqlite_ratio:.2f}", sqlite_ratio >= 0.85),
        (
            f"SQLite {big} keys: no checkpoint stalls (p99.9 within 2× bare's)",
            f"p99.9 {sqlite.median('p999'):,.0f} µs = {tail:.2f}× bare",
            tail <= 2.0,
        ),
        (
            "Redis API key + limit: throughput vs bare (reported)",
            f"{limited.median('rps') / bare.median('rps'):.2f}",
            True,
        ),
        (
            "PostgreSQL keys + Redis limits (exact), cache on ≥ 0.85 of bare throughput under gunicorn",
            f"{several_ratio:.2f} (by worker CPU {several_cpu:.2f}); the bare route plus one redis-py GET:"
            f" {one_get_ratio:.2f}",
            several_ratio >= 0.85,
        ),
        (
            f"PostgreSQL keys + Redis limits (GRIDAUTH_RATELIMIT_BATCH={BATCH}), cache on ≥ 0.85 of bare throughput",
            f"{leased_ratio:.2f} (by worker CPU {leased_cpu:.2f})",
            leased_ratio >= 0.85,
        ),
    ]
    return rows_out, results


def main() -> None:
    """Only the real-server run (``make bench`` runs it from ``run.py``), its rows and targets printed."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one round of 2 s per configuration, 20k SQLite keys")
    parser.add_argument("--rows", type=int, default=0, help="keys in the SQLite file (default 1M, 20k with --quick)")
    args = parser.parse_args()
    rows_out, results = run(rows=args.rows or (20_000 if args.quick else 1_000_000), quick=args.quick)
    verdicts = [f"{'PASS' if ok else 'MISS'}  {what}: {value}" for what, value, ok in results]
    print("\n".join(rows_out), "", *verdicts, sep="\n")


if __name__ == "__main__":
    main()
