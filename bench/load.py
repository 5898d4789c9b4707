"""A bounded load run: the example app under gunicorn, hammered on loopback with good and bad keys.

Usage: ``make bench`` runs it, or ``.venv/bin/python bench/load.py [--seconds 20] [--connections 8]
[--workers 4] [--storage sqlite|redis]``.

gunicorn serves ``examples/quickstart.py`` on 127.0.0.1 and a free port (SQLite in a temporary
folder, or the local Redis under a key prefix of its own, deleted afterwards). ``--connections``
client threads then call ``GET /boards`` for at most ``--seconds`` (30 at most), cycling through
valid keys, revoked keys, mistyped keys (bad checksum), unknown keys (good checksum, never stored)
and garbage. Every valid key must get 200 and every other credential 401: anything else (a 5xx,
a 429, a 503, a 200 for a bad key) is a wrong decision. The resident memory of each worker is read
from ``/proc`` after a warm-up and at the end.

Exit status 0 when there was no 5xx, no wrong decision and no worker grew by more than
``--max-growth-mb``; 1 otherwise. Nothing but 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flask_gridauth.keys import generate_key  # noqa: E402

#: The longest run allowed, whatever ``--seconds`` says.
MAX_SECONDS = 30.0
START_TIMEOUT = 60.0


@dataclass
class Tally:
    """What the client threads saw, merged under a lock."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    wrong: Counter[tuple[str, int]] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)


def log(message: str) -> None:
    """Progress on stderr, so stdout holds only the summary."""
    print(message, file=sys.stderr, flush=True)


def worker_rss(master: int) -> dict[int, int]:
    """Resident set size in KiB of each child of the gunicorn master (Linux ``/proc``)."""
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return {}
    sizes: dict[int, int] = {}
    for pid in children:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, flags=re.M)
        if match:
            sizes[int(pid)] = int(match.group(1))
    return sizes


def start_gunicorn(
    config: dict[str, object], workers: int, folder: Path, token: str
) -> tuple[subprocess.Popen[bytes], str]:
    """gunicorn with the example app's factory called on ``config``; returns the process and its URL."""
    gunicorn = Path(sys.executable).parent / "gunicorn"
    logfile = folder / "gunicorn.log"
    env = {**os.environ, "GRIDAUTH_API_TOKEN": token, "GRIDAUTH_INSTANCE_PATH": str(folder / "instance")}
    command = [
        str(gunicorn),
        "--workers",
        str(workers),
        "--bind",
        "127.0.0.1:0",
        "--pythonpath",
        f"{ROOT / 'examples'},{ROOT}",
        "--no-control-socket",
        "--error-logfile",
        str(logfile),
        "--access-logfile",
        "/dev/null",
        "--log-level",
        "info",  # the "Listening at" line tells the port
        f"quickstart:create_app({config!r})",
    ]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and process.poll() is None:
        text = logfile.read_text(errors="replace") if logfile.exists() else ""
        match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", text)
        if match and len(worker_rss(process.pid)) >= workers:
            url = match.group(1)
            try:
                if requests.get(url + "/", timeout=5).ok:
                    return process, url
            except requests.RequestException:
                pass
        time.sleep(0.1)
    stop(process)
    raise SystemExit(
        "gunicorn did not start:\n" + (logfile.read_text(errors="replace")[-3000:] if logfile.exists() else "")
    )


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if gunicorn lingers."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def prepare_credentials(url: str, token: str) -> list[tuple[str, str]]:
    """(kind, credential) pairs: valid and revoked keys made through the blueprint, and bad ones."""
    admin = {"Authorization": f"Bearer {token}"}

    def create(name: str) -> dict[str, str]:
        response = requests.post(
            f"{url}/api/v1/api-keys", json={"name": name, "scopes": ["read"]}, headers=admin, timeout=30
        )
        response.raise_for_status()
        data: dict[str, str] = response.json()
        return data

    valid = [create(f"load {i}")["raw_key"] for i in range(16)]
    revoked = []
    for i in range(4):
        key = create(f"revoked {i}")
        requests.delete(f"{url}/api/v1/api-keys/{key['id']}", headers=admin, timeout=30).raise_for_status()
        revoked.append(key["raw_key"])
    mistyped = [k[:-1] + ("0" if k[-1] != "0" else "1") for k in valid[:4]]
    unknown = [generate_key("grd") for _ in range(4)]
    garbage = ["not-a-key", "grd_live_short", "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", secrets.token_urlsafe(32)]
    pairs = [("valid", k) for k in valid] + [("revoked", k) for k in revoked]
    pairs += [("mistyped", k) for k in mistyped] + [("unknown", k) for k in unknown] + [("garbage", k) for k in garbage]
    # Half the traffic valid, half bad: interleave so every thread sees both.
    bad = [p for p in pairs if p[0] != "valid"]
    good = [p for p in pairs if p[0] == "valid"]
    return [item for pair in zip(good, bad * 2, strict=False) for item in pair]


def client(url: str, credentials: list[tuple[str, str]], offset: int, until: float, tally: Tally) -> None:
    """One connection's loop: call /boards with each credential in turn until ``until``."""
    statuses: Counter[tuple[str, int]] = Counter()
    wrong: Counter[tuple[str, int]] = Counter()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    i = offset
    with requests.Session() as session:
        while time.monotonic() < until:
            kind, credential = credentials[i % len(credentials)]
            i += 1
            header = {"x-api-key": credential} if i % 2 else {"Authorization": f"Bearer {credential}"}
            started = time.perf_counter()
            try:
                response = session.get(f"{url}/boards", headers=header, timeout=30)
            except requests.RequestException as exc:
                errors[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            status = response.status_code
            statuses[(kind, status)] += 1
            if status != (200 if kind == "valid" else 401):
                wrong[(kind, status)] += 1
    with tally.lock:
        tally.statuses.update(statuses)
        tally.wrong.update(wrong)
        tally.latencies.extend(latencies)
        tally.errors.update(errors)


def cleanup_redis(uri: str, prefix: str) -> None:
    """Delete every Redis key this run created (under its own prefix only)."""
    import redis

    conn = redis.Redis.from_url(uri)
    keys = list(conn.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        conn.delete(*keys)
    conn.close()


def main() -> int:
    """Run the load, print the summary, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the measured run (at most 30)")
    parser.add_argument("--connections", type=int, default=8, help="client threads, one connection each")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--storage", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--max-growth-mb", type=float, default=32.0, help="largest RSS growth allowed per worker")
    args = parser.parse_args()
    seconds = min(max(args.seconds, 1.0), MAX_SECONDS)

    token = secrets.token_urlsafe(32)
    prefix = f"gridauth-load-{uuid.uuid4().hex[:12]}"
    redis_base = "redis://127.0.0.1:6379/15"
    with tempfile.TemporaryDirectory(prefix="gridauth-load-") as tmp:
        folder = Path(tmp)
        storage = f"sqlite:///{folder}/load.db" if args.storage == "sqlite" else f"{redis_base}?key_prefix={prefix}"
        config: dict[str, object] = {
            "GRIDAUTH_STORAGE_URI": storage,
            # Limits stay on (their cost is part of the path) but far above what this run can send.
            "GRIDAUTH_RATELIMIT_API_KEY": "100000000/minute",
            "GRIDAUTH_FAILED_AUTH_LIMIT": "100000000/minute",
        }
        log(f"starting gunicorn: {args.workers} workers, {args.storage} storage ...")
        process, url = start_gunicorn(config, args.workers, folder, token)
        try:
            credentials = prepare_credentials(url, token)
            log("warming up for 2 s ...")
            warm = Tally()
            warm_until = time.monotonic() + 2.0
            threads = [
                threading.Thread(target=client, args=(url, credentials, i, warm_until, warm))
                for i in range(args.connections)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            rss_start = worker_rss(process.pid)

            log(f"measuring: {args.connections} connections for {seconds:.0f} s against {url} ...")
            tally = Tally()
            started = time.monotonic()
            until = started + seconds
            threads = [
                threading.Thread(target=client, args=(url, credentials, i * 7, until, tally))
                for i in range(args.connections)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            rss_end = worker_rss(process.pid)
        finally:
            stop(process)
            if args.storage == "redis":
                cleanup_redis(redis_base, prefix)

    total = sum(tally.statuses.values())
    server_errors = sum(n for (_, status), n in tally.statuses.items() if status >= 500)
    wrong = sum(tally.wrong.values())
    growth = {pid: (rss_end.get(pid, kib) - kib) / 1024 for pid, kib in rss_start.items()}
    max_growth = max(growth.values(), default=0.0)
    lat = sorted(tally.latencies) or [0.0]
    by_kind: Counter[str] = Counter()
    for (kind, _), n in tally.statuses.items():
        by_kind[kind] += n
    summary = {
        "storage": args.storage,
        "workers": args.workers,
        "connections": args.connections,
        "seconds": round(elapsed, 1),
        "requests": total,
        "requests_per_second": round(total / elapsed, 1) if elapsed else 0,
        "by_credential": dict(sorted(by_kind.items())),
        "statuses": {f"{kind} {status}": n for (kind, status), n in sorted(tally.statuses.items())},
        "server_errors_5xx": server_errors,
        "wrong_decisions": wrong,
        "client_errors": dict(tally.errors),
        "latency_ms": {
            "p50": round(statistics.median(lat) * 1000, 2),
            "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 2),
            "max": round(lat[-1] * 1000, 2),
        },
        "worker_rss_mb_start": {str(pid): round(kib / 1024, 1) for pid, kib in sorted(rss_start.items())},
        "worker_rss_mb_end": {str(pid): round(kib / 1024, 1) for pid, kib in sorted(rss_end.items())},
        "worker_rss_growth_mb_max": round(max_growth, 1),
    }
    print(json.dumps(summary, indent=2))
    failed = bool(server_errors or wrong or tally.errors) or max_growth > args.max_growth_mb
    print("RESULT: " + ("FAIL" if failed else "OK: no 5xx, no wrong decision, memory flat"))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
