"""Time the key-management routes through ``app.test_client()`` (memory storage, bootstrap token).

Usage: ``.venv/bin/python bench/management.py [--rounds N] [--calls N]``. To compare two
trees, run it once per tree from outside both, e.g.
``cd /tmp && PYTHONPATH=/path/to/tree /path/to/.venv/bin/python /path/to/bench/management.py``.
Rounds interleave the routes; the figure is the median microseconds per request.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

from flask import Flask

import flask_gridauth
from flask_gridauth import GridAuth, api_keys_blueprint

TOKEN = "bench-token-" + "x" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BODY = {
    "name": "Clé de production ✓",
    "scopes": ["read", "write"],
    "expires_in": 3600,
    "rate_limit": "100/minute",
    "metadata": {f"k{i}": "v" for i in range(10)},
}


def build() -> Flask:
    """The blueprint on memory storage, without rate limits (the routes alone are timed)."""
    app = Flask(__name__, instance_path=tempfile.mkdtemp())
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False)
    GridAuth(app)
    app.register_blueprint(api_keys_blueprint, url_prefix="/api/v1")
    return app


def routes(app: Flask) -> dict[str, Callable[[], int]]:
    """One zero-argument request per route, each returning its status."""
    client = app.test_client()
    key_id = client.post("/api/v1/api-keys", headers=AUTH, json=BODY).get_json()["id"]
    for _ in range(30):
        client.post("/api/v1/api-keys", headers=AUTH, json=BODY)

    def rotate() -> int:
        nonlocal key_id
        response = client.post(f"/api/v1/api-keys/{key_id}/rotate", headers=AUTH, json={"grace_period": 60})
        key_id = response.get_json()["id"]
        return response.status_code

    return {
        "POST /api-keys": lambda: client.post("/api/v1/api-keys", headers=AUTH, json=BODY).status_code,
        "GET /api-keys?limit=20": lambda: client.get("/api/v1/api-keys?limit=20", headers=AUTH).status_code,
        "GET /api-keys/<id>": lambda: client.get(f"/api/v1/api-keys/{key_id}", headers=AUTH).status_code,
        "PATCH /api-keys/<id>": lambda: (
            client.patch(
                f"/api/v1/api-keys/{key_id}", headers=AUTH, json={"name": "renamed", "rate_limit": "10/second"}
            ).status_code
        ),
        "POST /api-keys/<id>/rotate": rotate,
        "POST /api-keys (invalid, 422)": lambda: (
            client.post("/api/v1/api-keys", headers=AUTH, json={"name": "", "scopes": ["read"]}).status_code
        ),
    }


def main() -> None:
    """Print a Markdown table of median microseconds per request."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    calls = routes(build())
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                call()
            samples[name].append((time.perf_counter() - start) / args.calls)
    print(f"flask_gridauth from {flask_gridauth.__file__}")
    print("| route | µs per request (median) |\n| --- | ---: |")
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values) * 1e6:.0f} |")


if __name__ == "__main__":
    main()
