"""Usage counts across four gunicorn workers: exact once every worker has flushed, and on exit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_gridauth.storage import storage_from_uri

from .conftest import BASE_CONFIG, HTTP_TIMEOUT, TOKEN, Gunicorn, bearer, create_key, wait_until
from .test_workers import on_every_worker, storage_config


def _allowed(server: Gunicorn, key_id: str) -> int:
    body = requests.get(
        f"{server.url}/api/v1/api-keys/{key_id}/usage?days=1", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT
    ).json()
    return sum(b["allowed"] for b in body["buckets"])


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_usage_is_exact_across_workers(
    kind: str, gunicorn: Callable[..., Gunicorn], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Requests spread over four workers are all counted within the flush interval, none twice."""
    config: dict[str, Any] = {
        **BASE_CONFIG,
        **storage_config(kind, tmp_path, request),
        "GRIDAUTH_USAGE_FLUSH_INTERVAL": 1,
    }
    server = gunicorn(config, workers=4)
    key = create_key(server.url, scopes=["read"])
    results = on_every_worker(server, "/boards", bearer(key["raw_key"]))
    assert {status for status, _ in results} == {200}
    sent = len(results)
    # Polled with a generous deadline: each worker writes its counts within about a second.
    wait_until(lambda: _allowed(server, key["id"]) >= sent, 60, f"{sent} counted requests")
    assert _allowed(server, key["id"]) == sent


def test_exiting_workers_flush(gunicorn: Callable[..., Gunicorn], tmp_path: Path) -> None:
    """With an hour-long interval nothing is written while serving; stopping gunicorn writes every count."""
    uri = f"sqlite:///{tmp_path}/exit.db"
    server = gunicorn({**BASE_CONFIG, "GRIDAUTH_STORAGE_URI": uri, "GRIDAUTH_USAGE_FLUSH_INTERVAL": 3600}, workers=4)
    key = create_key(server.url, scopes=["read"])
    results = on_every_worker(server, "/boards", bearer(key["raw_key"]))
    server.stop()
    storage = storage_from_uri(uri, instance_path=str(tmp_path))
    try:
        counted = sum(c.allowed for c in storage.list_usage(key["id"], since_hour=0))
    finally:
        storage.close()
    assert counted == len(results)
