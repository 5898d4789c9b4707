"""Several gunicorn workers on one storage: revocation, rotation, the bootstrap token, rate limits, cursors."""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from flask_gridauth.credentials.token import BANNER

from ..conftest import prefixed_redis_uri
from .conftest import (
    BASE_CONFIG,
    HTTP_TIMEOUT,
    TOKEN,
    Gunicorn,
    assert_error,
    bearer,
    create_key,
    start_gunicorn,
    stop_all,
)

WORKERS = 4
#: Seconds each request of a burst is held before the app sees it, so that every worker gets some.
DELAY = 0.3
BANNER_RE = re.compile(re.escape(BANNER.split("{token}")[0]) + r"(\S+)")

Result = tuple[int, int]  # (status, worker pid)


def burst(server: Gunicorn, path: str, headers: dict[str, str], count: int = 2 * WORKERS) -> list[Result]:
    """``count`` concurrent requests, each held ``DELAY`` s: with sync workers, every worker takes some."""
    held = {**headers, "X-Test-Delay": str(DELAY)}
    with ThreadPoolExecutor(count) as pool:
        futures = [
            pool.submit(requests.get, f"{server.url}{path}", headers=held, timeout=HTTP_TIMEOUT) for _ in range(count)
        ]
        responses = [f.result() for f in futures]
    return [(r.status_code, int(r.headers["X-Worker-Pid"])) for r in responses]


def on_every_worker(server: Gunicorn, path: str, headers: dict[str, str]) -> list[Result]:
    """Bursts until every worker has answered (at most five); the statuses of all of them."""
    pids = server.worker_pids()
    assert len(pids) == server.workers, server.output()[-2000:]
    results: list[Result] = []
    for _ in range(5):
        results += burst(server, path, headers)
        if {pid for _, pid in results} >= pids:
            return results
    pytest.fail(f"only workers {sorted({pid for _, pid in results})} of {sorted(pids)} answered")


def storage_config(kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> dict[str, Any]:
    """One SQLite file in ``tmp_path``, or the shared Redis under a key prefix of this test's own."""
    if kind == "sqlite":
        return {"GRIDAUTH_STORAGE_URI": f"sqlite:///{tmp_path}/workers.db"}
    return {"GRIDAUTH_STORAGE_URI": str(request.getfixturevalue("redis_uri"))}


@pytest.fixture(scope="module")
def shared(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[str], Gunicorn]]:
    """``shared(kind)``: one 4-worker gunicorn per storage kind for this module, started on first use.

    One SQLite file, or the shared Redis under a key prefix of the module's own; one
    ``GRIDAUTH_SECRET_KEY`` for all workers. The tests on it make keys of their own and never
    change the app's config, so they share it instead of paying a gunicorn start each.
    """
    started: dict[str, Gunicorn] = {}
    prefixes: list[Iterator[str]] = []

    def get(kind: str) -> Gunicorn:
        if kind not in started:
            cwd = tmp_path_factory.mktemp(f"workers-{kind}")
            if kind == "sqlite":
                uri = f"sqlite:///{cwd}/workers.db"
            else:
                prefixes.append(prefixed_redis_uri(request.getfixturevalue("redis_server")))
                uri = next(prefixes[-1])
            env = {"GRIDAUTH_SECRET_KEY": secrets.token_hex(32)}
            started[kind] = start_gunicorn(
                {**BASE_CONFIG, "GRIDAUTH_STORAGE_URI": uri}, cwd=cwd, workers=WORKERS, env=env
            )
        return started[kind]

    yield get
    stop_all(list(started.values()))
    for prefix in prefixes:
        next(prefix, None)  # runs the generator on: it deletes the prefix's keys


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_revocation_and_rotation_reach_every_worker(shared: Callable[[str], Gunicorn], kind: str) -> None:
    """A key revoked (or rotated) through one worker is refused by all four on the very next requests."""
    server = shared(kind)
    key = create_key(server.url)
    results = on_every_worker(server, "/boards", bearer(key["raw_key"]))
    assert {status for status, _ in results} == {200}

    revoke = requests.delete(f"{server.url}/api/v1/api-keys/{key['id']}", headers=bearer(TOKEN), timeout=30)
    assert revoke.status_code == 200
    revoked_by = int(revoke.headers["X-Worker-Pid"])
    results = on_every_worker(server, "/boards", bearer(key["raw_key"]))
    assert {status for status, _ in results} == {401}, Counter(results)
    assert {pid for _, pid in results} - {revoked_by}, "no other worker was asked"

    old = create_key(server.url, name="rotating")
    on_every_worker(server, "/boards", bearer(old["raw_key"]))  # every worker has seen the old key
    rotated = requests.post(f"{server.url}/api/v1/api-keys/{old['id']}/rotate", headers=bearer(TOKEN), timeout=30)
    assert rotated.status_code == 201
    assert {s for s, _ in on_every_worker(server, "/boards", bearer(old["raw_key"]))} == {401}
    assert {s for s, _ in on_every_worker(server, "/boards", bearer(rotated.json()["raw_key"]))} == {200}


def test_bootstrap_token_generated_once_for_all_workers(gunicorn: Callable[..., Gunicorn], tmp_path: Path) -> None:
    """Four workers start at once with no token: exactly one prints it, all accept it, a restart keeps it."""
    config = {key: value for key, value in BASE_CONFIG.items() if key != "GRIDAUTH_API_TOKEN"}
    config["GRIDAUTH_STORAGE_URI"] = f"sqlite:///{tmp_path}/workers.db"
    env = {"GRIDAUTH_API_TOKEN": ""}  # an empty variable counts as unset: the token is generated
    server = gunicorn(config, workers=WORKERS, env=env)
    printed = BANNER_RE.findall(server.output())
    assert len(printed) == 1, server.output()[-3000:]
    token = printed[0]
    token_file = tmp_path / "instance" / "gridauth-token.json"
    assert token in token_file.read_text()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    results = on_every_worker(server, "/api/v1/me", bearer(token))
    assert {status for status, _ in results} == {200}
    assert_error(requests.get(f"{server.url}/boards", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT), 401)

    server.stop()
    again = gunicorn(config, workers=WORKERS, env=env)
    assert BANNER_RE.findall(again.output()) == []  # read from the file, never printed twice
    assert {status for status, _ in on_every_worker(again, "/api/v1/me", bearer(token))} == {200}


def test_rate_limit_holds_across_workers_on_redis(shared: Callable[[str], Gunicorn]) -> None:
    """A key's 6/minute on Redis is one budget for all workers: exactly 6 of 12 concurrent requests pass."""
    server = shared("redis")
    raw = create_key(server.url, rate_limit="6/minute")["raw_key"]
    results = burst(server, "/boards", bearer(raw), count=12)
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: 6, 429: 6}, statuses
    assert len({pid for status, pid in results if status == 200}) >= 2, "the budget was spent by one worker only"


def test_pagination_cursor_works_on_every_worker(shared: Callable[[str], Gunicorn]) -> None:
    """With one GRIDAUTH_SECRET_KEY for all workers, a cursor from one worker is accepted by every other."""
    server = shared("sqlite")
    for i in range(3):
        create_key(server.url, name=f"key {i}")
    first = requests.get(f"{server.url}/api/v1/api-keys?limit=1", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT)
    cursor = first.json()["next_cursor"]
    assert cursor
    results = on_every_worker(server, f"/api/v1/api-keys?limit=1&cursor={cursor}", bearer(TOKEN))
    assert {status for status, _ in results} == {200}


def test_worker_processes_are_real(shared: Callable[[str], Gunicorn]) -> None:
    """Sanity: the pids that answer are gunicorn's worker processes, not the test process."""
    server = shared("sqlite")
    pids = {pid for _, pid in on_every_worker(server, "/", {})}
    assert pids == server.worker_pids() and os.getpid() not in pids
