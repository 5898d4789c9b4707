"""The example app (``examples/quickstart.py``) as gunicorn loads it for the real-server bench.

``GRIDAUTH_BENCH_CONFIG`` (JSON) holds the Flask config the bench chooses: the
storage URI and the rate-limit settings. The app's public ``/`` is the bare
route; ``/boards`` is the authenticated one. With memory storage, which each
worker holds for itself, ``GRIDAUTH_BENCH_MEMORY_KEYS`` names a JSON file of
raw keys that every worker stores at start-up (with ``GRIDAUTH_BENCH_MEMORY_QUOTA``,
each with a quota of 10^9 units). With ``GRIDAUTH_BENCH_REDIS_GET``
(a Redis URL), the public ``/bench/redis-get`` makes one redis-py ``GET`` and
returns what the public ``/`` returns: the bare route plus one round trip, the
ceiling of anything that asks Redis once per request.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

from quickstart import create_app  # noqa: E402

from flask_gridauth import public  # noqa: E402
from flask_gridauth.keys import display_prefix, hash_key  # noqa: E402
from flask_gridauth.records import KeyRecord, Quota, new_key_id, utcnow  # noqa: E402

app = create_app(json.loads(os.environ.get("GRIDAUTH_BENCH_CONFIG", "{}")))

_memory_keys = os.environ.get("GRIDAUTH_BENCH_MEMORY_KEYS")
_quota = Quota(limit=10**9) if os.environ.get("GRIDAUTH_BENCH_MEMORY_QUOTA") else None
if _memory_keys:
    _storage = app.extensions["gridauth"].storage
    for _n, _raw in enumerate(json.loads(Path(_memory_keys).read_text())):
        _storage.add(
            KeyRecord(
                id=new_key_id(),
                name=f"bench {_n}",
                type="api_key",
                lookup=hash_key(_raw),
                prefix=display_prefix(_raw, "grd"),
                scopes=("read",),
                environment="live",
                owner="bench",
                created_at=utcnow(),
                quota=_quota,
            )
        )


@app.get("/bench/headers")
@public
def five_headers() -> tuple[dict[str, str], dict[str, str]]:
    """The bare route plus five short headers, as a key with a quota and a limit gets: what the headers cost."""
    headers = {"X-RateLimit-Limit": "60000", "X-RateLimit-Remaining": "59999", "X-RateLimit-Reset": "1796000000"}
    headers |= {"X-Quota-Limit": "1000000000", "X-Quota-Remaining": "999999999"}
    return {"service": "flask_gridauth example", "docs": "/api/v1/health"}, headers


_redis_get = os.environ.get("GRIDAUTH_BENCH_REDIS_GET")
if _redis_get:
    import redis

    _client = redis.Redis.from_url(_redis_get)
    _client.set("gridauth-bench-get", b"x" * 200, ex=3600)

    @app.get("/bench/redis-get")
    @public
    def redis_get() -> dict[str, str]:
        """The bare route plus one redis-py GET (the value is read, then dropped)."""
        _client.get("gridauth-bench-get")
        return {"service": "flask_gridauth example", "docs": "/api/v1/health"}
