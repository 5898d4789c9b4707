"""The apps the benchmark compares: a bare route, the peers, and GridAuth on each backend."""

from __future__ import annotations

import json
import random
import secrets
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from flask import Flask

from flask_gridauth import GridAuth
from flask_gridauth.keys import generate_key
from harness import Call, log

DATA = Path(__file__).resolve().parent / ".data"
TOKEN = "bench-bootstrap-token-0123456789abcdef"
#: Keys the benchmark presents, cycled so every request looks up a different row.
POOL = 1000


def _route(app: Flask) -> None:
    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"ok": True}


def caller(app: Flask, headers: list[dict[str, str]] | None = None) -> Call:
    """A zero-argument request against ``/items``, cycling through ``headers``."""
    client = app.test_client()
    if not headers:
        return lambda: client.get("/items").status_code
    state = {"i": 0}
    n = len(headers)

    def call() -> int:
        i = state["i"]
        state["i"] = i + 1
        return client.get("/items", headers=headers[i % n]).status_code

    return call


def bare() -> Call:
    """Flask alone."""
    app = Flask("bare")
    _route(app)
    return caller(app)


def httpauth_peer() -> Call:
    """Flask-HTTPAuth's HTTPTokenAuth with a plain dict lookup: the peer."""
    from flask_httpauth import HTTPTokenAuth

    app = Flask("httpauth")
    auth = HTTPTokenAuth(scheme="Bearer")
    tokens = {secrets.token_hex(24): f"user{i}" for i in range(POOL)}

    @auth.verify_token
    def verify(token: str) -> str | None:
        return tokens.get(token)

    @app.get("/items")
    @auth.login_required
    def items() -> dict[str, Any]:
        return {"ok": True}

    return caller(app, [{"Authorization": f"Bearer {t}"} for t in tokens])


def gridauth_app(uri: str, **config: Any) -> Flask:
    """A GridAuth app with rate limits off unless the config turns them on."""
    app = Flask("gridauth", instance_path=tempfile.mkdtemp(prefix="gridauth-bench-"))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI=uri, GRIDAUTH_RATELIMIT_ENABLED=False)
    app.config.update(config)
    GridAuth(app)
    _route(app)
    return app


def api_key_caller(app: Flask, raw_keys: list[str]) -> Call:
    """Requests cycling through ``raw_keys``, warmed so ``last_used_at`` writes are behind us."""
    headers = [{"Authorization": f"Bearer {k}"} for k in raw_keys]
    call = caller(app, headers)
    for _ in headers:
        call()
    return call


def with_keys(app: Flask, count: int = POOL) -> list[str]:
    """Create ``count`` keys through the Python API; return the raw keys."""
    with app.app_context():
        keys = app.extensions["gridauth"].keys
        return [keys.create(name=f"bench {i}", scopes=["read"], owner=f"o{i % 50}")[1] for i in range(count)]


def gridauth_memory() -> Call:
    """GridAuth, API key, memory storage."""
    app = gridauth_app("memory://")
    return api_key_caller(app, with_keys(app))


def sqlite_db(rows: int) -> tuple[str, list[str]]:
    """A SQLite file holding ``rows`` keys (cached in bench/.data), and POOL raw keys among them."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"keys-{rows}.db"
    pool_file = DATA / f"keys-{rows}.json"
    if path.exists() and pool_file.exists():
        return str(path), json.loads(pool_file.read_text())
    log(f"building a SQLite file with {rows:,} keys (cached in {DATA}) ...")
    started = time.time()
    path.unlink(missing_ok=True)
    app = gridauth_app(f"sqlite:///{path}")
    raw_keys = with_keys(app)
    conn = sqlite3.connect(path)
    now = time.time()
    filler = rows - POOL
    batch = 50_000
    for start in range(0, filler, batch):
        conn.executemany(
            "INSERT INTO gridauth_keys (id, lookup, name, type, prefix, scopes, environment, owner, created_at,"
            " metadata) VALUES (?, ?, 'filler', 'api_key', 'grd_live_00000000', '[\"read\"]', 'live', ?, ?, '{}')",
            (
                ("key_" + secrets.token_hex(12), secrets.token_hex(32), f"o{random.randrange(5000)}", now)
                for _ in range(min(batch, filler - start))
            ),
        )
        conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    pool_file.write_text(json.dumps(raw_keys))
    log(f"  built in {time.time() - started:.0f} s")
    return str(path), raw_keys


def gridauth_sqlite(rows: int) -> Call:
    """GridAuth, API key, SQLite holding ``rows`` keys."""
    path, raw_keys = sqlite_db(rows)
    app = gridauth_app(f"sqlite:///{path}")
    return api_key_caller(app, raw_keys)


def redis_uri(prefix: str = "gridauth-bench") -> str:
    """The bench's Redis database and key prefix (db 14, never the tests' db 15)."""
    return f"redis://127.0.0.1:6379/14?key_prefix={prefix}-{secrets.token_hex(4)}"


def gridauth_redis() -> tuple[Call, str]:
    """GridAuth, API key, Redis storage; also returns its URI for clean-up."""
    uri = redis_uri()
    app = gridauth_app(uri)
    return api_key_caller(app, with_keys(app)), uri


def redis_get() -> Call:
    """One redis-py GET on loopback: the unit a Redis-backed request is compared with."""
    import redis

    client = redis.Redis.from_url("redis://127.0.0.1:6379/14")
    client.set("gridauth-bench:get", b"x" * 200)
    return lambda: 200 if client.get("gridauth-bench:get") else 500


def cleanup_redis(uri: str) -> None:
    """Delete every key a bench app created under its prefix."""
    import redis

    from flask_gridauth.storage.redis import split_uri

    url, prefix = split_uri(uri)
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.delete("gridauth-bench:get")
