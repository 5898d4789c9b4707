"""Two gunicorn "hosts" sharing PostgreSQL (keys, replay cache) and Redis (rate limits) agree on every decision.

Each host is its own gunicorn master with its own workers on its own port, so
nothing is shared between them but the two servers, as on two machines. (Not
network namespaces: PostgreSQL and Redis listen on this machine's loopback,
which another namespace cannot reach.)
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flask_gridauth.client import public_key_of, sign_request

from ..conftest import schema_postgres_uri
from .conftest import (
    BASE_CONFIG,
    HTTP_TIMEOUT,
    TOKEN,
    Gunicorn,
    assert_error,
    bearer,
    create_key,
    spawn_gunicorn,
    stop_all,
    wait_ready,
)

WORKERS = 2


@pytest.fixture(scope="module")
def hosts(
    tmp_path_factory: pytest.TempPathFactory, postgres_server: str, redis_server: str
) -> Iterator[tuple[Gunicorn, Gunicorn]]:
    """Host A and host B: two gunicorn masters on one PostgreSQL schema and one Redis, for this module.

    Started once (each start costs seconds): every test makes keys of its own, and
    rate limits and the replay cache are per key and per signature, so no test sees another's state.
    """
    schema = schema_postgres_uri(postgres_server)
    config: dict[str, Any] = {
        **BASE_CONFIG,
        "GRIDAUTH_STORAGE_URI": next(schema),
        "GRIDAUTH_RATELIMIT_STORAGE_URI": redis_server,
    }
    env = {"GRIDAUTH_SECRET_KEY": secrets.token_hex(32)}  # one secret for both, as a deployment would set
    cwd = tmp_path_factory.mktemp("hosts")
    a, b = (spawn_gunicorn(config, cwd=cwd, workers=WORKERS, env=env) for _ in "ab")
    try:
        wait_ready([a, b])
        yield a, b
    finally:
        stop_all([a, b])
        next(schema, None)  # runs the generator on: it drops the schema


def get(host: Gunicorn, path: str, headers: dict[str, str]) -> requests.Response:
    """One GET to ``host``."""
    return requests.get(f"{host.url}{path}", headers=headers, timeout=HTTP_TIMEOUT)


def test_revocation_on_one_host_is_seen_by_the_other(hosts: tuple[Gunicorn, Gunicorn]) -> None:
    """A key made on A works on B; revoked on A, B refuses it on its very next request."""
    a, b = hosts
    key = create_key(a.url)
    assert get(b, "/boards", bearer(key["raw_key"])).status_code == 200
    revoked = requests.delete(f"{a.url}/api/v1/api-keys/{key['id']}", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT)
    assert revoked.status_code == 200
    for _ in range(2 * WORKERS):  # every worker of B, whichever answers
        assert_error(get(b, "/boards", bearer(key["raw_key"])), 401, "unauthorized")


def test_rotation_on_one_host_is_seen_by_the_other(hosts: tuple[Gunicorn, Gunicorn]) -> None:
    """Rotated on B: the old secret is refused on A at once, the new one accepted; a second rotation is 409."""
    a, b = hosts
    old = create_key(a.url, name="rotating")
    assert get(a, "/boards", bearer(old["raw_key"])).status_code == 200
    rotated = requests.post(f"{b.url}/api/v1/api-keys/{old['id']}/rotate", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT)
    assert rotated.status_code == 201
    for _ in range(2 * WORKERS):
        assert_error(get(a, "/boards", bearer(old["raw_key"])), 401)
        assert get(a, "/boards", bearer(rotated.json()["raw_key"])).status_code == 200
    again = requests.post(f"{a.url}/api/v1/api-keys/{old['id']}/rotate", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT)
    assert_error(again, 409, "conflict")


def test_a_signature_used_on_one_host_is_refused_on_the_other(hosts: tuple[Gunicorn, Gunicorn]) -> None:
    """The replay cache lives in PostgreSQL: a v1 signed POST accepted by A is 'Signature already used' on B."""
    a, b = hosts
    private = Ed25519PrivateKey.generate()
    registered = requests.post(
        f"{a.url}/api/v1/api-keys",
        json={"name": "trader", "type": "signing", "public_key": public_key_of(private), "scopes": ["trade"]},
        headers=bearer(TOKEN),
        timeout=HTTP_TIMEOUT,
    )
    assert registered.status_code == 201, registered.text[:300]
    body = b'{"symbol": "GRID", "qty": 1}'
    # Version 1 signs no host, so the very same headers are valid on both hosts but for the replay cache.
    headers = {"Content-Type": "application/json", **sign_request(private, "POST", "/orders", body, version=1)}
    first = requests.post(f"{a.url}/orders", data=body, headers=headers, timeout=HTTP_TIMEOUT)
    assert first.status_code == 201 and first.json()["by"] == "signature", first.text[:300]
    replay = requests.post(f"{b.url}/orders", data=body, headers=headers, timeout=HTTP_TIMEOUT)
    assert assert_error(replay, 401, "unauthorized")["message"] == "Signature already used"
    assert base64.b64decode(headers["X-Grid-Signature"]).hex() not in replay.text


def test_a_rate_limit_is_one_budget_across_hosts(hosts: tuple[Gunicorn, Gunicorn]) -> None:
    """A key's 4/minute, counted in the shared Redis: requests alternating between hosts pass 4 times, then 429."""
    a, b = hosts
    raw = create_key(a.url, rate_limit="4/minute")["raw_key"]
    statuses = [get(host, "/boards", bearer(raw)).status_code for host in (a, b, a, b, a, b)]
    assert statuses == [200, 200, 200, 200, 429, 429]
    limited = get(b, "/boards", bearer(raw))
    assert limited.headers["X-RateLimit-Limit"] == "4" and limited.headers["X-RateLimit-Remaining"] == "0"


def test_hosts_share_nothing_but_the_servers(hosts: tuple[Gunicorn, Gunicorn]) -> None:
    """The two hosts are separate process trees on separate ports (what makes the tests above mean something)."""
    a, b = hosts
    assert a.url != b.url
    assert a.process.pid != b.process.pid
    assert a.worker_pids().isdisjoint(b.worker_pids())
