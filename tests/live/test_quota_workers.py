"""A quota spent by 8 threads against 4 gunicorn workers on one storage: exactly its limit, never more."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from .conftest import BASE_CONFIG, HTTP_TIMEOUT, TOKEN, Gunicorn, bearer, create_key

WORKERS = 4
THREADS = 8
LIMIT = 1000


def _storage(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path}/quota.db"
    if kind == "postgres":
        return str(request.getfixturevalue("postgres_uri"))
    return str(request.getfixturevalue("redis_uri"))


@pytest.mark.parametrize("kind", ["sqlite", "redis", "postgres"])
def test_quota_of_1000_spent_exactly_across_workers(
    gunicorn: Callable[..., Gunicorn], tmp_path: Path, request: pytest.FixtureRequest, kind: str
) -> None:
    """8 threads x 4 workers get exactly 1,000 answers 200, then only 429 quota_exceeded; remaining ends at 0."""
    server = gunicorn({**BASE_CONFIG, "GRIDAUTH_STORAGE_URI": _storage(kind, tmp_path, request)}, workers=WORKERS)
    key = create_key(server.url, quota={"limit": LIMIT})
    headers = bearer(key["raw_key"])
    statuses: Counter[int] = Counter()
    codes: Counter[str] = Counter()
    pids: set[int] = set()
    lock = threading.Lock()

    def spend() -> None:
        with requests.Session() as session:
            while True:
                response = session.get(f"{server.url}/boards", headers=headers, timeout=HTTP_TIMEOUT)
                with lock:
                    statuses[response.status_code] += 1
                    pids.add(int(response.headers["X-Worker-Pid"]))
                if response.status_code != 200:
                    with lock:
                        codes[response.json().get("code", "")] += 1
                    return

    threads = [threading.Thread(target=spend) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not any(t.is_alive() for t in threads)
    assert statuses[200] == LIMIT, (statuses, server.output()[-2000:])
    assert statuses[429] == THREADS and codes == Counter({"quota_exceeded": THREADS})
    assert len(pids) == WORKERS, pids
    shown: dict[str, Any] = requests.get(
        f"{server.url}/api/v1/api-keys/{key['id']}", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT
    ).json()
    assert shown["quota"]["remaining"] == 0
