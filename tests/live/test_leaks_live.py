"""Leaked keys over real HTTP: the loopback "GitHub" sends a signed alert to gunicorn; every worker refuses the key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from flask_gridauth.keys import generate_key

from ..github_server import AlertKey, GitHubKeysServer
from .conftest import BASE_CONFIG, HTTP_TIMEOUT, Gunicorn, bearer, create_key
from .test_workers import WORKERS, on_every_worker, storage_config


@pytest.fixture
def github() -> Iterator[tuple[GitHubKeysServer, AlertKey]]:
    """The loopback public-keys endpoint and the key it serves."""
    key = AlertKey.generate()
    with GitHubKeysServer(key) as server:
        yield server, key


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_alert_revokes_on_every_worker(
    gunicorn: Callable[..., Gunicorn],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    github: tuple[GitHubKeysServer, AlertKey],
    kind: str,
) -> None:
    """A signed alert sent over HTTP to one worker revokes the key for all four; a made-up key is a false positive."""
    server_keys, github_key = github
    config = {**BASE_CONFIG, **storage_config(kind, tmp_path, request)}
    server = gunicorn({**config, "GRIDAUTH_SECRET_SCANNING_KEYS_URL": server_keys.url}, workers=WORKERS)
    leaked = create_key(server.url)["raw_key"]
    assert {status for status, _ in on_every_worker(server, "/boards", bearer(leaked))} == {200}

    made_up = generate_key("grd")
    matches = [
        {"token": t, "type": "gridauth_api_key", "url": "https://github.com/o/r", "source": "content"}
        for t in (leaked, made_up)
    ]
    response = github_key.send(f"{server.url}/api/v1/secret-scanning", matches)
    assert response.status == 200
    answer = json.loads(response.body)  # type: ignore[attr-defined]
    assert [(a["token_hash"], a["label"]) for a in answer] == [
        (hashlib.sha256(leaked.encode()).hexdigest(), "true_positive"),
        (hashlib.sha256(made_up.encode()).hexdigest(), "false_positive"),
    ]
    assert {status for status, _ in on_every_worker(server, "/boards", bearer(leaked))} == {401}

    # The public route, through whichever worker answers, reaches every worker too.
    other = create_key(server.url, name="second")["raw_key"]
    revoke = requests.post(f"{server.url}/api/v1/api-keys/revoke-leaked", json={"keys": [other]}, timeout=HTTP_TIMEOUT)
    assert (revoke.status_code, revoke.json()) == (202, {"object": "revocation_report", "received": 1})
    assert {status for status, _ in on_every_worker(server, "/boards", bearer(other))} == {401}
    output = server.output()
    assert "leaked key reported" in output  # the operator sees it, by id and prefix
    assert leaked not in output and other not in output
