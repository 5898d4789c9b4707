"""Faults under a real server: Redis killed and restarted mid-traffic, SQLite locked, JWKS down, bad paths."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from flask_gridauth.errors import ConfigurationError
from flask_gridauth.keys import generate_key

from ..jwks_server import JWKSServer, rsa_key
from .conftest import (
    BASE_CONFIG,
    EXAMPLES,
    HTTP_TIMEOUT,
    TOKEN,
    LiveServer,
    RedisProcess,
    assert_error,
    bearer,
    create_key,
    free_port,
    load_example,
    wait_until,
)

#: Seconds a storage operation may wait before its request gets 503.
STORAGE_TIMEOUT = 0.5


@dataclass(frozen=True)
class Outcome:
    """One request of the traffic: which credential, what came back, and when it started and ended."""

    kind: str
    status: int
    start: float
    end: float


class Traffic:
    """Threads that keep calling ``/boards`` with valid, revoked, unknown and mistyped keys."""

    def __init__(self, url: str, credentials: dict[str, str], threads: int = 4) -> None:
        self.url = url
        self.credentials = credentials
        self.outcomes: list[Outcome] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def _run(self, index: int) -> None:
        kinds = sorted(self.credentials)
        with requests.Session() as session:
            i = index
            while not self._stop.is_set():
                kind = kinds[i % len(kinds)]
                i += 1
                start = time.monotonic()
                try:
                    response = session.get(
                        f"{self.url}/boards", headers=bearer(self.credentials[kind]), timeout=HTTP_TIMEOUT
                    )
                    status = response.status_code
                except requests.RequestException:
                    status = -1
                with self._lock:
                    self.outcomes.append(Outcome(kind, status, start, time.monotonic()))

    def between(self, after: float, before: float = float("inf")) -> list[Outcome]:
        """The requests that started after ``after`` and ended before ``before``."""
        with self._lock:
            return [o for o in self.outcomes if o.start > after and o.end < before]

    def count(self, after: float, kind: str, status: int) -> int:
        """How many requests that started after ``after`` with this credential got ``status``."""
        return sum(1 for o in self.between(after) if (o.kind, o.status) == (kind, status))

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=HTTP_TIMEOUT + 5)


def test_redis_killed_mid_traffic_then_restarted(serve: Callable[..., LiveServer], own_redis: RedisProcess) -> None:
    """Redis dies under load: 503s, never a 200 for a bad key, never a 500; it comes back: 200s, same app."""
    live = serve(GRIDAUTH_STORAGE_URI=own_redis.url, GRIDAUTH_STORAGE_TIMEOUT=STORAGE_TIMEOUT)
    valid = create_key(live.url)["raw_key"]
    revoked = create_key(live.url)
    assert requests.delete(f"{live.url}/api/v1/api-keys/{revoked['id']}", headers=bearer(TOKEN), timeout=30).ok
    assert requests.get(f"{live.url}/boards", headers=bearer(valid), timeout=HTTP_TIMEOUT).status_code == 200
    own_redis.save()  # the restarted server loads this snapshot: the same keys, the revocation included

    credentials = {
        "valid": valid,
        "revoked": revoked["raw_key"],
        "unknown": generate_key("grd"),  # right shape and checksum, never stored: needs a look-up
        "mistyped": valid[:-1] + ("0" if valid[-1] != "0" else "1"),
    }
    with Traffic(live.url, credentials) as traffic:
        began = time.monotonic()
        wait_until(lambda: traffic.count(began, "valid", 200) >= 10, 60, "traffic before the failure")
        own_redis.kill()
        killed = time.monotonic()
        wait_until(lambda: traffic.count(killed, "valid", 503) >= 10, 60, "503s while Redis is down")
        health = requests.get(f"{live.url}/api/v1/health", timeout=HTTP_TIMEOUT)
        assert (health.status_code, health.json()) == (503, {"status": "unavailable"})
        assert_error(
            requests.get(f"{live.url}/boards", headers=bearer(valid), timeout=HTTP_TIMEOUT), 503, "unavailable"
        )
        restarting = time.monotonic()
        own_redis.start()
        restarted = time.monotonic()
        wait_until(lambda: traffic.count(restarted, "valid", 200) >= 1, 60, "traffic to recover")
        recovered = time.monotonic()
        wait_until(lambda: traffic.count(recovered, "valid", 200) >= 10, 60, "traffic after the restart")

    outcomes = traffic.outcomes
    assert not [o for o in outcomes if o.status >= 500 and o.status != 503], Counter(outcomes)
    assert not [o for o in outcomes if o.status == -1], "a request failed at the HTTP level"
    assert not [o for o in outcomes if o.kind != "valid" and o.status == 200], "a bad key was let through"
    assert {o.status for o in outcomes if o.kind == "valid"} <= {200, 503}
    # Wholly inside the outage, a valid key cannot be confirmed: 503, never 200.
    down = [o for o in traffic.between(killed, restarting) if o.kind == "valid"]
    assert down and {o.status for o in down} == {503}
    # Once recovered, every valid request succeeds and every bad one is refused (no stale failures).
    back = traffic.between(recovered)
    assert all(o.status == (200 if o.kind == "valid" else 401) for o in back), Counter((o.kind, o.status) for o in back)
    assert requests.get(f"{live.url}/api/v1/health", timeout=HTTP_TIMEOUT).json() == {"status": "ok"}


LOCKER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN EXCLUSIVE")
conn.execute("DELETE FROM gridauth_seen WHERE 0")
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes our stdin
conn.execute("ROLLBACK")
"""


def test_sqlite_locked_by_another_process(
    serve: Callable[..., LiveServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process holds SQLite's write lock: writes get 503 after the busy timeout, then everything recovers.

    Under WAL readers never wait for a writer, so a key already in use keeps
    working (it reads committed state: a revocation made before is seen).
    """
    db = tmp_path / "locked.db"
    live = serve(GRIDAUTH_STORAGE_URI=f"sqlite:///{db}", GRIDAUTH_STORAGE_TIMEOUT=STORAGE_TIMEOUT)
    used = create_key(live.url)["raw_key"]
    fresh = create_key(live.url)["raw_key"]  # never used: its first use must write last_used_at
    revoked = create_key(live.url)
    requests.delete(f"{live.url}/api/v1/api-keys/{revoked['id']}", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT)
    assert requests.get(f"{live.url}/boards", headers=bearer(used), timeout=HTTP_TIMEOUT).status_code == 200

    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout is not None and locker.stdout.readline().strip() == "locked"
        caplog.set_level(logging.ERROR, logger="flask_gridauth")
        create = requests.post(
            f"{live.url}/api/v1/api-keys", json={"name": "x", "scopes": ["read"]}, headers=bearer(TOKEN), timeout=30
        )
        assert_error(create, 503, "unavailable")
        assert_error(requests.get(f"{live.url}/boards", headers=bearer(fresh), timeout=HTTP_TIMEOUT), 503)
        assert requests.get(f"{live.url}/boards", headers=bearer(used), timeout=HTTP_TIMEOUT).status_code == 200
        assert_error(requests.get(f"{live.url}/boards", headers=bearer(revoked["raw_key"]), timeout=30), 401)
        assert "database is locked" in caplog.text
    finally:
        assert locker.stdin is not None
        locker.stdin.close()
        locker.wait(timeout=30)
        if locker.stdout is not None:
            locker.stdout.close()
    assert locker.returncode == 0
    assert requests.get(f"{live.url}/boards", headers=bearer(fresh), timeout=HTTP_TIMEOUT).status_code == 200
    assert create_key(live.url)["raw_key"].startswith("grd_live_")


def test_jwks_down_keeps_last_good_keys(serve: Callable[..., LiveServer]) -> None:
    """The identity provider's JWKS goes away: tokens signed with keys fetched before still verify."""
    signer = rsa_key("jwks-down")
    issuer = "https://idp.faults.test"
    jwks = JWKSServer(signer.jwk()).start()
    try:
        issuers = [{"issuer": issuer, "jwks_url": jwks.url, "algorithms": ["RS256"]}]
        live = serve(GRIDAUTH_JWT_ISSUERS=issuers, GRIDAUTH_JWKS_CACHE_TTL=0.05, GRIDAUTH_JWKS_TIMEOUT=1.0)
        now = int(time.time())
        token = signer.sign({"iss": issuer, "sub": "u1", "exp": now + 300, "permissions": ["read"]})
        assert requests.get(f"{live.url}/boards", headers=bearer(token), timeout=HTTP_TIMEOUT).status_code == 200
    finally:
        jwks.stop()
    time.sleep(0.2)  # let the cached set go stale, so the next request tries (and fails) a refresh
    for _ in range(3):
        assert requests.get(f"{live.url}/boards", headers=bearer(token), timeout=HTTP_TIMEOUT).status_code == 200
    stranger = rsa_key("jwks-other").sign({"iss": issuer, "sub": "u2", "exp": now + 300, "permissions": ["read"]})
    response = requests.get(f"{live.url}/boards", headers=bearer(stranger), timeout=HTTP_TIMEOUT)
    assert response.status_code in (401, 503)
    assert_error(response, response.status_code)


# -- start-up ---------------------------------------------------------------------------------------------------------


def _blocked_dir(tmp_path: Path) -> Path:
    """A folder path that cannot be created, even by root: its parent is a regular file."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file, not a folder\n")
    return blocker / "instance"


@pytest.mark.parametrize("where", ["file-parent", "proc"])
def test_unwritable_token_path_at_startup(tmp_path: Path, where: str) -> None:
    """A token file that cannot be written stops start-up with an error naming its path."""
    folder = _blocked_dir(tmp_path) if where == "file-parent" else Path("/proc/gridauth-live-test")
    path = str(folder / "gridauth-token.json")
    config = {**BASE_CONFIG, "GRIDAUTH_API_TOKEN": None, "GRIDAUTH_TOKEN_FILE": path}
    with pytest.raises(ConfigurationError) as info:
        load_example().create_app({**config, "GRIDAUTH_STORAGE_URI": "memory://"})
    assert path in str(info.value)


@pytest.mark.parametrize("where", ["file-parent", "proc"])
def test_unusable_sqlite_folder_at_startup(tmp_path: Path, where: str) -> None:
    """A SQLite file whose folder cannot be created stops start-up with an error naming the folder."""
    folder = _blocked_dir(tmp_path) if where == "file-parent" else Path("/proc/gridauth-live-test")
    with pytest.raises(ConfigurationError) as info:
        load_example().create_app({**BASE_CONFIG, "GRIDAUTH_STORAGE_URI": f"sqlite:///{folder}/gridauth.db"})
    assert str(folder) in str(info.value)


def test_read_only_sqlite_folder_is_named_in_the_log(
    serve: Callable[..., LiveServer], caplog: pytest.LogCaptureFixture
) -> None:
    """A folder that exists but cannot hold a database: storage is lazy, so health is 503 and the log names the file."""
    path = "/proc/self/gridauth.db"  # /proc/self exists and is read-only even for root
    caplog.set_level(logging.ERROR, logger="flask_gridauth")
    live = serve(GRIDAUTH_STORAGE_URI=f"sqlite:///{path}")
    assert requests.get(f"{live.url}/api/v1/health", timeout=HTTP_TIMEOUT).status_code == 503
    assert_error(requests.get(f"{live.url}/boards", headers=bearer(generate_key("grd")), timeout=30), 503)
    assert path in caplog.text


def test_example_server_refuses_to_start_on_a_bad_instance_folder(tmp_path: Path) -> None:
    """``python examples/quickstart.py`` with an impossible instance folder exits non-zero, naming it."""
    folder = _blocked_dir(tmp_path)
    env = {**os.environ, "GRIDAUTH_INSTANCE_PATH": str(folder), "PORT": str(free_port())}
    env.pop("GRIDAUTH_API_TOKEN", None)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "quickstart.py")],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "ConfigurationError" in done.stderr and str(folder) in done.stderr
