"""Real clients against the example app in a real server: requests, httpx, curl, the examples, Node."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests

from flask_gridauth.client import GridSigner, generate_keypair, sign_request, write_private_key
from flask_gridauth.keys import hash_key

from ..jwks_server import JWKSServer, rsa_key
from .conftest import EXAMPLES, HTTP_TIMEOUT, ROOT, TOKEN, LiveServer, assert_error, bearer, create_key

ISSUER = "https://idp.live.test"


def get(url: str, **headers: str) -> requests.Response:
    """A GET with requests, bounded."""
    return requests.get(url, headers=headers, timeout=HTTP_TIMEOUT)


# -- requests ----------------------------------------------------------------------------------------------------------


def test_requests_key_lifecycle(live: LiveServer) -> None:
    """Create with the token, call with Bearer and x-api-key, list, get, scope check, revoke."""
    created = create_key(live.url, name="CI/CD Pipeline", scopes=["read", "write"])
    raw, key_id = created["raw_key"], created["id"]
    assert raw.startswith("grd_live_") and created["object"] == "api_key"
    assert "lookup" not in created and hash_key(raw) not in json.dumps(created)

    for headers in (bearer(raw), {"x-api-key": raw}, {"Authorization": f"bearer {raw}"}):
        response = requests.get(f"{live.url}/boards", headers=headers, timeout=HTTP_TIMEOUT)
        assert response.status_code == 200
        assert response.json() == {"owner": "admin", "boards": ["main", "ideas"]}

    me = get(f"{live.url}/api/v1/me", **bearer(raw)).json()
    assert (me["kind"], me["id"], me["owner"]) == ("api_key", key_id, "admin")

    listing = get(f"{live.url}/api/v1/api-keys", **bearer(TOKEN)).json()
    assert listing["object"] == "list" and [k["id"] for k in listing["data"]] == [key_id]
    assert all("raw_key" not in k for k in listing["data"])
    one = get(f"{live.url}/api/v1/api-keys/{key_id}", **bearer(TOKEN)).json()
    assert one["id"] == key_id and one["last_used_at"] is not None

    # write does not imply holdings:write; a non-admin key cannot manage keys.
    denied = requests.post(f"{live.url}/holdings", json={}, headers=bearer(raw), timeout=HTTP_TIMEOUT)
    assert assert_error(denied, 403, "forbidden")["message"] == "Missing required scope: holdings:write"
    assert_error(get(f"{live.url}/api/v1/api-keys", **bearer(raw)), 403, "forbidden")

    revoked = requests.delete(f"{live.url}/api/v1/api-keys/{key_id}", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    body = assert_error(get(f"{live.url}/boards", **bearer(raw)), 401, "unauthorized")
    assert body["message"] == "API key has been revoked"  # the holder of the real key may read why


def test_requests_refusals_are_json(live: LiveServer) -> None:
    """No credential, a typo, two different credentials, a query-string key: the generic 401 JSON."""
    raw = create_key(live.url)["raw_key"]
    typo = raw[:-1] + ("0" if raw[-1] != "0" else "1")
    cases: list[dict[str, str]] = [
        {},
        bearer(typo),
        bearer("not a token"),
        {"x-api-key": typo},
        {"Authorization": f"Bearer {raw}", "x-api-key": typo},
        {"Authorization": f"Basic {raw}"},
    ]
    for headers in cases:
        body = assert_error(requests.get(f"{live.url}/boards", headers=headers, timeout=HTTP_TIMEOUT), 401)
        assert body["message"] == "Authentication required"
    in_query = requests.get(f"{live.url}/boards", params={"api_key": raw}, timeout=HTTP_TIMEOUT)
    assert_error(in_query, 401)
    assert requests.get(f"{live.url}/", timeout=HTTP_TIMEOUT).json()["service"] == "flask_gridauth example"
    assert get(f"{live.url}/api/v1/health").json() == {"status": "ok"}
    # An unknown path is authenticated first: nothing about the app's routes leaks to a stranger.
    assert_error(get(f"{live.url}/no-such-route"), 401)


@pytest.mark.parametrize("grace", [0, 3600])
def test_requests_rotate(live: LiveServer, grace: int) -> None:
    """Rotation gives a new secret with the same name and scopes; the old one lasts the grace period."""
    old = create_key(live.url, name="rotating", scopes=["read"])
    response = requests.post(
        f"{live.url}/api/v1/api-keys/{old['id']}/rotate",
        json={"grace_period": grace},
        headers=bearer(TOKEN),
        timeout=HTTP_TIMEOUT,
    )
    assert response.status_code == 201
    new = response.json()
    assert new["rotated_from"] == old["id"] and new["raw_key"] != old["raw_key"]
    assert (new["name"], new["scopes"]) == ("rotating", ["read"])
    assert get(f"{live.url}/boards", **bearer(new["raw_key"])).status_code == 200
    old_status = get(f"{live.url}/boards", **bearer(old["raw_key"])).status_code
    assert old_status == (200 if grace else 401)


# -- httpx -------------------------------------------------------------------------------------------------------------


def test_httpx_client(live: LiveServer) -> None:
    """httpx, one keep-alive connection: create, call with x-api-key, bad JSON body is 422 JSON, revoke."""
    with httpx.Client(base_url=live.url, timeout=HTTP_TIMEOUT) as client:
        created = client.post("/api/v1/api-keys", json={"name": "httpx", "scopes": ["write"]}, headers=bearer(TOKEN))
        assert created.status_code == 201
        raw, key_id = created.json()["raw_key"], created.json()["id"]
        assert created.headers["Location"].endswith(f"/api/v1/api-keys/{key_id}")
        assert client.get("/boards", headers={"x-api-key": raw}).status_code == 200

        bad = client.post(
            "/api/v1/api-keys",
            content=b'{"name": "x", "scopes": ',
            headers={**bearer(TOKEN), "Content-Type": "application/json"},
        )
        assert assert_error(bad, 422, "invalid_request")["field"] == "body"
        escalate = client.post("/api/v1/api-keys", json={"name": "more", "scopes": ["admin"]}, headers=bearer(raw))
        assert_error(escalate, 403)

        assert client.delete(f"/api/v1/api-keys/{key_id}", headers=bearer(TOKEN)).status_code == 200
        assert_error(client.get("/boards", headers={"x-api-key": raw}), 401)
        assert_error(client.get(f"/api/v1/api-keys/key_{'0' * 24}", headers=bearer(TOKEN)), 404, "not_found")


# -- curl: the commands of the README and the docs, as written ---------------------------------------------------------

#: Guide pages whose commands call an example server of their own (tests/test_guides.py runs them).
OWN_SERVER_PAGES = {"coming-from-single-token.rst", "coming-from-clerk-supabase.rst", "signed-trading-requests.rst"}
RST_SHELL_RE = re.compile(r"^(\s*)\.\. code-block:: (?:bash|console|shell|sh)\s*$")


def _curl_lines(block: str) -> list[str]:
    joined = block.replace("\\\n", " ")
    lines = [line.strip().removeprefix("$ ") for line in joined.splitlines()]
    return [line for line in lines if line.startswith("curl ")]


def documented_curl_commands() -> dict[str, list[str]]:
    """Every ``curl`` command of the README's bash blocks and the docs' shell blocks, by page."""
    found: dict[str, list[str]] = {}
    readme = (ROOT / "README.md").read_text()
    found["README.md"] = [
        c for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.S) for c in _curl_lines(block)
    ]
    for page in sorted((ROOT / "docs").rglob("*.rst")):
        if "_build" in page.parts or page.name in OWN_SERVER_PAGES:
            continue
        lines = page.read_text().splitlines()
        commands: list[str] = []
        for index, line in enumerate(lines):
            match = RST_SHELL_RE.match(line)
            if match is None:
                continue
            body = []
            for text in lines[index + 1 :]:
                if text.strip() and len(text) - len(text.lstrip()) <= len(match.group(1)):
                    break
                body.append(text)
            commands += _curl_lines("\n".join(body))
        if commands:
            found[str(page.relative_to(ROOT))] = commands
    return found


CURL_COMMANDS = documented_curl_commands()


def test_docs_show_curl() -> None:
    """The README shows how to create a key and use it with curl (the collector found them)."""
    assert len(CURL_COMMANDS.get("README.md", [])) >= 2
    assert any("/api/v1/api-keys" in c for c in CURL_COMMANDS["README.md"])


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("page", sorted(CURL_COMMANDS))
def test_documented_curl_commands(live: LiveServer, page: str) -> None:
    """Each page's curl commands, run as written against a live server (only the address and secrets filled in)."""
    env = {**os.environ, "TOKEN": TOKEN}
    raw_key = create_key(live.url)["raw_key"]  # for a command that uses a key made earlier on the page
    data: Any = None
    for command in CURL_COMMANDS[page]:
        command = command.replace("http://127.0.0.1:8080", live.url).replace("grd_live_…", raw_key)
        assert live.url in command, f"a documented curl command does not call the example server: {command}"
        done = subprocess.run(
            ["bash", "-c", command + " -s -w '\\n%{http_code}'"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        body, _, status = done.stdout.rpartition("\n")
        assert status.startswith("2"), (command, status, body)
        data = json.loads(body)
        if isinstance(data, dict) and "raw_key" in data:
            raw_key = data["raw_key"]
    if page == "README.md":
        assert data == {"owner": "admin", "boards": ["main", "ideas"]}


# -- signed requests ---------------------------------------------------------------------------------------------------


def register_signing_key(base_url: str, public_key: str, scopes: list[str]) -> dict[str, Any]:
    """Register an Ed25519 public key through the blueprint."""
    return create_key(base_url, type="signing", name="trader", public_key=public_key, scopes=scopes)


def test_signed_order_with_client_helpers(live: LiveServer) -> None:
    """GridSigner for requests and httpx places orders; a replay, a tampered body and a read key are refused."""
    pair = generate_keypair()
    registered = register_signing_key(live.url, pair.public_key, ["trade", "read"])
    assert registered["fingerprint"] == pair.fingerprint and "raw_key" not in registered

    order = json.dumps({"symbol": "ACME", "quantity": 10}).encode()
    json_type = {"Content-Type": "application/json"}
    with requests.Session() as session:
        session.auth = GridSigner(pair.private_key)
        placed = session.post(f"{live.url}/orders", data=order, headers=json_type, timeout=HTTP_TIMEOUT)
        assert placed.status_code == 201
        assert placed.json() == {"order": {"symbol": "ACME", "quantity": 10}, "by": "signature"}
        assert session.get(f"{live.url}/boards", params={"page": "1"}, timeout=HTTP_TIMEOUT).status_code == 200
    with httpx.Client(base_url=live.url, auth=GridSigner(pair.private_key, version=1), timeout=HTTP_TIMEOUT) as client:
        assert client.post("/orders", content=order, headers=json_type).status_code == 201

    # Ed25519 is deterministic: the same order signed in the same second is the same signature, so
    # this one differs from the orders above (which the replay cache has already seen).
    order = json.dumps({"symbol": "ACME", "quantity": 11}).encode()
    headers = sign_request(pair.private_key, "POST", f"{live.url}/orders", order) | json_type
    first = requests.post(f"{live.url}/orders", data=order, headers=headers, timeout=HTTP_TIMEOUT)
    assert first.status_code == 201
    replay = requests.post(f"{live.url}/orders", data=order, headers=headers, timeout=HTTP_TIMEOUT)
    assert_error(replay, 401)
    fresh = sign_request(pair.private_key, "POST", f"{live.url}/orders", order) | json_type
    tampered = requests.post(f"{live.url}/orders", data=order.replace(b"11", b"99"), headers=fresh, timeout=30)
    assert_error(tampered, 401)

    reader = generate_keypair()
    register_signing_key(live.url, reader.public_key, ["read"])
    signed = sign_request(reader.private_key, "POST", f"{live.url}/orders", order) | json_type
    assert_error(requests.post(f"{live.url}/orders", data=order, headers=signed, timeout=HTTP_TIMEOUT), 403)


def test_sign_client_example(live: LiveServer, tmp_path: Path) -> None:
    """``examples/sign_client.py`` signs by hand, with requests and with httpx: every call succeeds."""
    pair = generate_keypair()
    key_file = tmp_path / "client-key.pem"
    write_private_key(key_file, pair)
    register_signing_key(live.url, pair.public_key, ["trade", "read"])
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "sign_client.py")],
        env={**os.environ, "GRIDAUTH_URL": live.url, "GRIDAUTH_KEY_FILE": str(key_file)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": 201 ") == 3 and "requests GET (v2): 200" in done.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_node_client_example(live: LiveServer, tmp_path: Path) -> None:
    """``examples/node_client.mjs`` (node:crypto and fetch only) places a v2 order and reads with v1."""
    pair = generate_keypair()
    key_file = tmp_path / "client-key.pem"
    write_private_key(key_file, pair)
    register_signing_key(live.url, pair.public_key, ["trade", "read"])
    done = subprocess.run(
        ["node", str(EXAMPLES / "node_client.mjs")],
        env={**os.environ, "GRIDAUTH_URL": live.url, "GRIDAUTH_KEY_FILE": str(key_file)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "POST /orders (v2): 201" in done.stdout and "GET /boards?page=1 (v1): 200" in done.stdout


# -- JWT from a loopback JWKS ------------------------------------------------------------------------------------------


def test_jwt_from_loopback_jwks(serve: Callable[..., LiveServer]) -> None:
    """A user signs in with an RS256 JWT, creates an API key of its own, and the key acts as that user."""
    signer = rsa_key("live-1")
    with JWKSServer(signer.jwk()) as jwks:
        issuers = [{"issuer": ISSUER, "jwks_url": jwks.url, "algorithms": ["RS256"]}]
        live = serve(GRIDAUTH_JWT_ISSUERS=issuers)
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": "user_42", "exp": now + 300, "iat": now, "permissions": ["admin"]}
        token = signer.sign(claims)

        me = get(f"{live.url}/api/v1/me", **bearer(token)).json()
        assert (me["kind"], me["owner"]) == ("jwt", "user_42")
        assert {"admin", "write", "read"} <= set(me["scopes"])

        key = create_key(live.url, credential=token, name="user script", scopes=["read"])
        assert key["owner"] == "user_42"
        assert get(f"{live.url}/boards", **bearer(key["raw_key"])).json()["owner"] == "user_42"
        mine = get(f"{live.url}/api/v1/api-keys", **bearer(token)).json()["data"]
        assert [k["id"] for k in mine] == [key["id"]]

        reader = signer.sign({**claims, "permissions": ["read"]})
        assert get(f"{live.url}/boards", **bearer(reader)).status_code == 200
        assert_error(get(f"{live.url}/api/v1/api-keys", **bearer(reader)), 403)
        expired = signer.sign({**claims, "exp": now - 3600, "iat": now - 7200})
        assert_error(get(f"{live.url}/boards", **bearer(expired)), 401)
        forged = rsa_key("live-1").sign(claims)  # same kid, a key the JWKS never served
        assert_error(get(f"{live.url}/boards", **bearer(forged)), 401)
        assert jwks.fetches >= 1


# -- rate limits -------------------------------------------------------------------------------------------------------


def test_rate_limit_429_with_headers(serve: Callable[..., LiveServer]) -> None:
    """A key's own limit: each answer carries X-RateLimit-*, the one past it is 429 with Retry-After."""
    live = serve()
    raw = create_key(live.url, name="limited", rate_limit="3/minute")["raw_key"]
    remaining = []
    for _ in range(3):
        response = get(f"{live.url}/boards", **bearer(raw))
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        assert int(response.headers["X-RateLimit-Reset"]) > 0
        remaining.append(int(response.headers["X-RateLimit-Remaining"]))
    assert remaining == [2, 1, 0]
    over = get(f"{live.url}/boards", **bearer(raw))
    assert_error(over, 429, "rate_limited")
    assert 0 < int(over.headers["Retry-After"]) <= 60
    assert over.headers["X-RateLimit-Remaining"] == "0"
    # Another key has its own budget.
    assert get(f"{live.url}/boards", **bearer(create_key(live.url)["raw_key"])).status_code == 200


def test_failed_auth_throttle(serve: Callable[..., LiveServer]) -> None:
    """Repeated bad credentials from one address end in 429, as JSON."""
    live = serve(GRIDAUTH_FAILED_AUTH_LIMIT="5/minute")
    statuses = [get(f"{live.url}/boards", **bearer(f"wrong-token-{i}")).status_code for i in range(8)]
    assert statuses[:4] == [401] * 4
    assert statuses[-1] == 429
    assert_error(get(f"{live.url}/boards", **bearer("wrong-again")), 429, "rate_limited")


# -- secrets stay secret -----------------------------------------------------------------------------------------------


def test_no_secret_in_logs_or_bodies(live: LiveServer, caplog: pytest.LogCaptureFixture) -> None:
    """Across successes and failures, neither the token nor a key nor its hash reaches a log or a body."""
    caplog.set_level(logging.DEBUG)
    created = create_key(live.url)
    raw = created["raw_key"]
    secrets_ = [TOKEN, raw, hash_key(raw), TOKEN[:-1], raw[:-1]]
    bodies: list[str] = [json.dumps({k: v for k, v in created.items() if k != "raw_key"})]
    calls = [
        bearer(raw),
        bearer(raw[:-1] + "x"),
        bearer(TOKEN + "x"),
        bearer(TOKEN[:-1]),
        {"x-api-key": raw, "Authorization": f"Bearer {TOKEN}"},
        {"x-api-key": raw[:-2]},
    ]
    for headers in calls:
        response = requests.get(f"{live.url}/boards", headers=headers, timeout=HTTP_TIMEOUT)
        bodies.append(response.text + json.dumps(dict(response.headers)))
    requests.delete(f"{live.url}/api/v1/api-keys/{created['id']}", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT)
    bodies.append(get(f"{live.url}/boards", **bearer(raw)).text)
    bodies.append(get(f"{live.url}/api/v1/api-keys", **bearer(TOKEN)).text)
    assert any("authentication failed" in r.getMessage() for r in caplog.records)
    for secret in secrets_:
        assert secret not in caplog.text
        assert all(secret not in body for body in bodies)


# -- the CLI, against the storage of a running server ------------------------------------------------------------------


def flask_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """``flask --app examples/quickstart.py gridauth ARGS`` in its own process, on the live test's instance folder."""
    return subprocess.run(
        [str(Path(sys.executable).parent / "flask"), "--app", str(EXAMPLES / "quickstart.py"), "gridauth", *args],
        env={**os.environ, "GRIDAUTH_API_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_cli_manages_keys_of_a_running_server(serve: Callable[..., LiveServer]) -> None:
    """Keys made, rotated and revoked with ``flask gridauth`` in another process take effect on the live server."""
    live = serve(GRIDAUTH_STORAGE_URI=None)  # the default: <instance>/gridauth.db, which the CLI opens too
    created = flask_cli("create-key", "--name", "from the shell", "--scopes", "read", "--quiet")
    assert created.returncode == 0, created.stderr
    raw = created.stdout.strip()
    assert re.fullmatch(r"grd_live_[0-9a-f]{48}", raw)
    assert get(f"{live.url}/boards", **bearer(raw)).status_code == 200

    key_id = get(f"{live.url}/api/v1/api-keys", **bearer(TOKEN)).json()["data"][0]["id"]
    listing = flask_cli("list-keys")
    assert listing.returncode == 0 and key_id in listing.stdout and raw not in listing.stdout

    rotated = flask_cli("rotate", key_id, "--quiet")
    assert rotated.returncode == 0, rotated.stderr
    new_raw = rotated.stdout.strip()
    assert_error(get(f"{live.url}/boards", **bearer(raw)), 401)
    assert get(f"{live.url}/boards", **bearer(new_raw)).status_code == 200

    new_id = get(f"{live.url}/api/v1/me", **bearer(new_raw)).json()["id"]
    revoked = flask_cli("revoke", new_id)
    assert revoked.returncode == 0, revoked.stderr
    assert_error(get(f"{live.url}/boards", **bearer(new_raw)), 401)

    routes = flask_cli("routes")
    assert routes.returncode == 0
    assert re.search(r"^/boards\s+\S+\s+scopes: read\s", routes.stdout, flags=re.M), routes.stdout
    assert re.search(r"^/\s+\S+\s+public\s", routes.stdout, flags=re.M), routes.stdout

    bad = flask_cli("revoke", "key_does_not_exist")
    assert bad.returncode == 1 and bad.stderr.startswith("Error:") and "Traceback" not in bad.stderr
