"""The "coming from" guides: each example server on a real port, driven by exactly the commands and clients shown.

Every ``curl`` of a guide section runs as written (only the address is
changed), in order, with the environment variables the page names; the
client files the page includes run unchanged but for the address. Node runs
where the page shows JavaScript (required under ``CI=true``); Go runs when
``go`` is installed.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flask_gridauth.client import load_private_key, public_key_of, sign_request

from .jwks_server import JWKSServer, rsa_key
from .node_support import require, tweetnacl_dir

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CLIENTS = EXAMPLES / "clients"
GUIDES = ROOT / "docs" / "guide"
DOC_URL = "http://127.0.0.1:8080"
START_TIMEOUT = 60.0


# -- the guides' commands --------------------------------------------------------------------------------------------


def section_curls(page: str, title: str) -> list[str]:
    """The ``curl`` commands of one section of a guide page, in order, continuation lines joined."""
    lines = (GUIDES / page).read_text(encoding="utf-8").splitlines()
    start = lines.index(title)
    assert set(lines[start + 1]) <= {"-", "="}, f"{title!r} is not a section title of {page}"
    body: list[str] = []
    for index in range(start + 2, len(lines)):
        nxt = lines[index + 1] if index + 1 < len(lines) else ""
        if lines[index] and nxt and set(nxt) <= {"-", "="} and len(nxt) == len(lines[index]):
            break  # the next section
        body.append(lines[index])
    joined = "\n".join(body).replace("\\\n", " ")
    commands = [line.strip().removeprefix("$ ") for line in joined.splitlines()]
    commands = [c for c in commands if c.startswith("curl ")]
    assert commands, f"no curl command under {title!r} in {page}"
    return commands


def run_curl(command: str, base_url: str, env: dict[str, str]) -> tuple[int, Any]:
    """Run a documented curl command against ``base_url``: ``(status, JSON body)``."""
    assert DOC_URL in command, command
    done = subprocess.run(
        ["bash", "-c", command.replace(DOC_URL, base_url) + " -s -w '\\n%{http_code}'"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body) if body else None


def run_section(
    page: str, title: str, base_url: str, env: dict[str, str], statuses: list[int], key_var: str | None = None
) -> list[Any]:
    """Run a section's curls; check each status; a ``raw_key`` answer is put in ``env[key_var]``."""
    bodies = []
    commands = section_curls(page, title)
    assert len(commands) == len(statuses), commands
    for command, expected in zip(commands, statuses, strict=True):
        status, body = run_curl(command, base_url, env)
        assert status == expected, (command, status, body)
        if status >= 400:
            assert body.get("detail") or (body["object"] == "error" and body["status"] == status), body
        if key_var and isinstance(body, dict) and "raw_key" in body:
            env[key_var] = body["raw_key"]
        bodies.append(body)
    return bodies


def run_client(file: str, base_url: str, env: dict[str, str], tmp_path: Path, cwd: Path | None = None) -> str:
    """Run an ``examples/clients`` file unchanged but for the address; its stdout."""
    source = (CLIENTS / file).read_text(encoding="utf-8")
    assert DOC_URL in source, file
    folder = cwd or tmp_path
    script = folder / file
    script.write_text(source.replace(DOC_URL, base_url), encoding="utf-8")
    if file.endswith(".py"):
        command = [sys.executable, str(script)]
    elif file.endswith(".mjs"):
        command = [require("node"), str(script)]
    else:
        command = [require("go"), "run", str(script)]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


# -- the example servers ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """An example app running as ``python examples/<name>.py`` on a real port."""

    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stderr(self) -> str:
        """Everything the server wrote so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, pattern: str) -> re.Match[str]:
        """Poll the server's output for ``pattern``; fail after the start timeout."""
        deadline = time.monotonic() + START_TIMEOUT
        while (match := re.search(pattern, self.stderr())) is None:
            if time.monotonic() > deadline or self.process.poll() is not None:
                pytest.fail(f"{pattern!r} never appeared:\n{self.stderr()[-3000:]}")
            time.sleep(0.05)
        return match

    def stop(self) -> None:
        """Stop the server and wait for it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Server]]:
    """Start an example on a free port with ``env`` (merged into a clean environment); stopped afterwards."""
    servers: list[Server] = []

    def starter(example: str, port_var: str, env: dict[str, str], cwd: Path | None = None) -> Server:
        port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDAUTH_", "FLASK_"))}
        log = tmp_path / f"{example}-{len(servers)}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, str(EXAMPLES / f"{example}.py")],
                cwd=cwd or tmp_path,
                env={**base, **env, port_var: str(port), "PYTHONUNBUFFERED": "1"},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        server = Server(process, f"http://127.0.0.1:{port}", log)
        servers.append(server)
        server.wait_for(re.escape(f"Running on http://127.0.0.1:{port}"))
        return server

    yield starter
    for server in servers:
        server.stop()


def client_env(**values: str) -> dict[str, str]:
    """The environment of a client command: this one, without our settings, plus ``values``."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDAUTH_", "FLASK_"))}
    return {**base, **values}


# -- coming from a single-token server -------------------------------------------------------------------------------

SINGLE = "coming-from-single-token.rst"
GRIP = "A token kept in a JSON settings file (Grip)"
PRAISON = "A token from the environment, new on every start (PraisonAI)"
GRIP_BANNER = r"AUTH TOKEN \(save this — shown only once \):\n(grip_[A-Za-z0-9_-]{43})\n"


def test_grip_guide(start: Callable[..., Server], tmp_path: Path) -> None:
    """Grip: the token is made in ~/.grip/config.json (other settings kept), printed once, and the clients work."""
    home = tmp_path / "home"
    settings = home / ".grip" / "config.json"
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"gateway": {"api": {"port": 8080}}, "agent": {"model": "local"}}))
    server = start("local_agent_grip", "GRIP_PORT", {"HOME": str(home)})
    token = server.wait_for(GRIP_BANNER).group(1)
    data = json.loads(settings.read_text())
    assert data == {"gateway": {"api": {"port": 8080, "auth_token": token}}, "agent": {"model": "local"}}
    assert stat.S_IMODE(settings.stat().st_mode) == 0o600

    env = client_env(GRIP_API_TOKEN=token)
    bodies = run_section(SINGLE, GRIP, server.url, env, [200, 200, 200, 401, 401])
    assert bodies[0] == {"reply": "You said: What time is it?"}
    assert bodies[3] == bodies[4] == {"detail": "Authentication required"}
    assert "You said: List files in the workspace" in run_client("grip_chat.py", server.url, env, tmp_path)
    assert "You said: Analyze this repository" in run_client("grip_chat.mjs", server.url, env, tmp_path)
    assert server.stderr().count(token) == 1  # the banner, and never again

    server.stop()
    again = start("local_agent_grip", "GRIP_PORT", {"HOME": str(home)})
    assert run_section(SINGLE, GRIP, again.url, env, [200, 200, 200, 401, 401])
    assert "AUTH TOKEN" not in again.stderr()


def test_praisonai_guide_with_a_token_from_the_environment(start: Callable[..., Server], tmp_path: Path) -> None:
    """PRAISONAI_API_TOKEN is the token: the guide's curl commands and requests client work, nothing is written."""
    server = start("local_agent_praisonai", "PRAISONAI_API_PORT", {"PRAISONAI_API_TOKEN": "your-secret-token"})
    env = client_env(PRAISONAI_API_TOKEN="your-secret-token")
    bodies = run_section(SINGLE, PRAISON, server.url, env, [200, 200, 200])
    assert bodies[2] == {"status": "healthy"}
    assert "What is artificial intelligence?" in run_client("praisonai_session.py", server.url, env, tmp_path)
    assert "generated API token" not in server.stderr()
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == []  # no instance folder, no token file


def test_praisonai_guide_new_token_each_start(start: Callable[..., Server], tmp_path: Path) -> None:
    """Without the variable each start prints a new token; the old one stops working; nothing is written."""
    banner = r"\[praisonai-api\] generated API token: (\S+)\n"
    first = start("local_agent_praisonai", "PRAISONAI_API_PORT", {})
    token1 = first.wait_for(banner).group(1)
    assert len(token1) == 43
    assert run_section(SINGLE, PRAISON, first.url, client_env(), [401, 401, 200])  # the literal token is not it
    url = first.url + "/agents"
    assert requests.get(url, headers={"Authorization": f"Bearer {token1}"}, timeout=30).status_code == 200
    first.stop()
    second = start("local_agent_praisonai", "PRAISONAI_API_PORT", {})
    token2 = second.wait_for(banner).group(1)
    assert token2 != token1
    for token, status in ((token1, 401), (token2, 200)):
        response = requests.get(second.url + "/agents", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert response.status_code == status
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".log")] == []


def test_praisonai_guide_auth_disabled(start: Callable[..., Server]) -> None:
    """PRAISONAI_API_AUTH=disabled lets requests through and warns once; GRIDAUTH_AUTH is not the switch here."""
    server = start("local_agent_praisonai", "PRAISONAI_API_PORT", {"PRAISONAI_API_AUTH": "disabled"})
    assert requests.get(server.url + "/agents", timeout=30).status_code == 200
    assert server.stderr().count("AUTHENTICATION IS DISABLED") == 1
    assert "PRAISONAI_API_AUTH=disabled" in server.stderr()
    assert "generated API token" not in server.stderr()

    other = start("local_agent_praisonai", "PRAISONAI_API_PORT", {"GRIDAUTH_AUTH": "disabled"})
    assert requests.get(other.url + "/agents", timeout=30).status_code == 401


# -- coming from Clerk / Supabase ------------------------------------------------------------------------------------

SAAS = "coming-from-clerk-supabase.rst"
CLERK = "Clerk: RS256 session tokens through a JWKS, ``grd_`` keys"
SUPABASE = "Supabase: HS256 access tokens with every scope, ``cgk_`` keys"


def test_clerk_guide(start: Callable[..., Server], tmp_path: Path) -> None:
    """A Clerk session JWT (through a loopback JWKS) makes a key for a script; both call the same routes."""
    key = rsa_key("clerk-1")
    issuer = "https://example.clerk.accounts.dev"
    with JWKSServer(key.jwk()) as jwks:
        server = start(
            "saas_clerk",
            "PORT",
            {
                "CLERK_ISSUER": issuer,
                "CLERK_JWKS_URL": jwks.url,
                "GRIDDY_SECRET_KEY": "griddy-" + "k" * 40,
                "GRIDDY_STORAGE_URI": f"sqlite:///{tmp_path}/griddy.db",
            },
        )
        now = int(time.time())
        session = key.sign(
            {
                "iss": issuer,
                "sub": "user_2abc",
                "iat": now,
                "exp": now + 300,
                "permissions": ["admin", "catalog:read", "holdings:write"],
            }
        )
        env = client_env(CLERK_SESSION_TOKEN=session)
        bodies = run_section(SAAS, CLERK, server.url, env, [201, 200, 200, 403, 200], key_var="GRIDDY_API_KEY")
    created = bodies[0]
    assert created["raw_key"].startswith("grd_live_") and created["owner"] == "user_2abc"
    assert bodies[1]["caller"] == "api_key" and bodies[2]["caller"] == "jwt"
    assert bodies[3]["message"] == "Missing required scope: holdings:write"
    assert [k["id"] for k in bodies[4]["data"]] == [created["id"]] and "raw_key" not in bodies[4]["data"][0]
    assert "AUTH TOKEN" not in server.stderr()
    assert not list(tmp_path.rglob("gridauth-token.json"))


def test_supabase_guide(start: Callable[..., Server], tmp_path: Path) -> None:
    """A Supabase access token (HS256) holds every scope and makes a ``cgk_`` key, which holds only its own."""
    secret = "super-secret-jwt-token-with-at-least-32-characters-long"
    server = start(
        "saas_supabase",
        "PORT",
        {
            "SUPABASE_URL": "https://xyz.supabase.co",
            "SUPABASE_JWT_SECRET": secret,
            "CHATGRID_SECRET_KEY": "chatgrid-" + "k" * 40,
            "CHATGRID_STORAGE_URI": f"sqlite:///{tmp_path}/chatgrid.db",
        },
    )
    now = int(time.time())
    claims = {"iss": "https://xyz.supabase.co/auth/v1", "aud": "authenticated", "sub": "4b0c", "exp": now + 300}
    env = client_env(SUPABASE_ACCESS_TOKEN=jwt.encode(claims, secret, algorithm="HS256"))
    bodies = run_section(SAAS, SUPABASE, server.url, env, [201, 201, 200, 403], key_var="CHATGRID_API_KEY")
    assert bodies[0]["raw_key"].startswith("cgk_live_") and bodies[0]["scopes"] == ["read", "write"]
    assert bodies[2] == {"object": "list", "data": [{"name": "roadmap", "owner": "4b0c"}]}
    assert bodies[3]["message"] == "Missing required scope: admin"
    for extra in ("/v1/me/me", "/v1/me/health", "/v1/me/openapi.json"):  # only the key routes are mounted
        headers = {"Authorization": f"Bearer {env['CHATGRID_API_KEY']}"}
        response = requests.get(server.url + extra, headers=headers, timeout=30)
        assert response.status_code == 404, extra


# -- signed trading requests -----------------------------------------------------------------------------------------

TRADING = "signed-trading-requests.rst"
ADMIN = "trading-admin-" + "t" * 32


@pytest.fixture
def trading(start: Callable[..., Server], tmp_path: Path) -> Server:
    """The trading example, with a known bootstrap token and its own SQLite file."""
    return start(
        "trading_api",
        "PORT",
        {"GRIDAUTH_API_TOKEN": ADMIN, "THEGRID_STORAGE_URI": f"sqlite:///{tmp_path}/thegrid.db"},
    )


def test_consumption_keys_through_the_sdks(trading: Server, tmp_path: Path) -> None:
    """A consumption key works with Bearer and x-api-key, through curl and the OpenAI and Anthropic SDKs."""
    env = client_env(GRID_ADMIN_TOKEN=ADMIN)
    bodies = run_section(TRADING, "Consumption keys", trading.url, env, [201, 200, 200, 403], key_var="GRID_API_KEY")
    assert bodies[1]["choices"][0]["message"]["content"] == "Echo: Hello"
    assert bodies[2]["content"][0]["text"] == "Echo: Hello"
    # Trading routes take signed requests only: even the bootstrap token, which holds every scope, gets 403.
    everything = requests.get(trading.url + "/v1/balances", headers={"Authorization": f"Bearer {ADMIN}"}, timeout=30)
    assert everything.status_code == 403 and everything.json()["code"] == "forbidden"
    assert run_client("thegrid_openai.py", trading.url, env, tmp_path).strip() == "Echo: Hello"
    assert run_client("thegrid_anthropic.py", trading.url, env, tmp_path).strip() == "Echo: Hello"

    from anthropic import Anthropic
    from anthropic import AuthenticationError as AnthropicAuthError
    from openai import AuthenticationError, OpenAI

    wrong = env["GRID_API_KEY"][:-1] + ("0" if env["GRID_API_KEY"][-1] != "0" else "1")
    with pytest.raises(AuthenticationError):
        OpenAI(base_url=trading.url + "/v1", api_key=wrong, max_retries=0).chat.completions.create(
            model="Text-Prime", messages=[{"role": "user", "content": "Hello"}]
        )
    with pytest.raises(AnthropicAuthError):
        Anthropic(base_url=trading.url, api_key=wrong, max_retries=0).messages.create(
            model="Text-Prime", max_tokens=16, messages=[{"role": "user", "content": "Hello"}]
        )


def register(trading: Server, public_key: str, tmp_path: Path) -> dict[str, Any]:
    """The guide's registration command, for ``public_key``."""
    env = client_env(GRID_ADMIN_TOKEN=ADMIN, GRID_TRADING_PUBLIC_KEY=public_key)
    (body,) = run_section(TRADING, "Trading keys", trading.url, env, [201])
    assert body["type"] == "signing" and "raw_key" not in body
    return dict(body)


def order_lines(output: str) -> list[tuple[int, dict[str, Any]]]:
    """The ``<status> <json>`` lines a signing client prints."""
    lines = [line.split(" ", 1) for line in output.strip().splitlines()]
    return [(int(status), json.loads(body)) for status, body in lines]


def test_signed_from_python(trading: Server, tmp_path: Path) -> None:
    """The cryptography + requests client places an order and reads balances; a repeated order is refused."""
    key = Ed25519PrivateKey.generate()
    registered = register(trading, public_key_of(key), tmp_path)
    env = client_env(GRID_TRADING_PRIVATE_KEY=base64.b64encode(key.private_bytes_raw()).decode())
    (order_status, order), (balance_status, balances) = order_lines(
        run_client("thegrid_sign.py", trading.url, env, tmp_path)
    )
    assert order_status == 201 and order["kind"] == "signature" and order["order"]["quantity"] == 1
    assert balance_status == 200 and balances["owner"] == registered["owner"]

    # The same helpers from flask_gridauth.client: an identical GET repeats, an identical order does not.
    body = '{"symbol": "GRID-A", "side": "sell", "quantity": 4}'
    headers = sign_request(key, "POST", "/v1/orders", body, version=1, header_prefix="X-TheGrid")
    post = requests.post(trading.url + "/v1/orders", data=body, headers=headers, timeout=30)
    assert post.status_code == 201
    replay = requests.post(trading.url + "/v1/orders", data=body, headers=headers, timeout=30)
    assert replay.status_code == 401 and replay.json()["message"] == "Signature already used"
    get = sign_request(key, "GET", "/v1/balances", version=1, header_prefix="X-TheGrid")
    assert [requests.get(trading.url + "/v1/balances", headers=get, timeout=30).status_code for _ in "ab"] == [200, 200]


def test_signed_from_node_with_tweetnacl(trading: Server, tmp_path: Path) -> None:
    """A tweetnacl key pair (the seed document's snippet) registers and signs from Node; Python loads it too."""
    folder = tweetnacl_dir()
    keygen = (
        "const nacl = require('tweetnacl'); const kp = nacl.sign.keyPair();"
        "console.log('private:', Buffer.from(kp.secretKey).toString('base64'));"
        "console.log('public:', Buffer.from(kp.publicKey).toString('base64'));"
    )
    out = subprocess.run([require("node"), "-e", keygen], cwd=folder, capture_output=True, text=True, check=True)
    pair = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    register(trading, pair["public"], tmp_path)
    env = client_env(GRID_TRADING_PRIVATE_KEY=pair["private"])
    results = order_lines(run_client("thegrid_sign.mjs", trading.url, env, tmp_path, cwd=folder))
    assert [status for status, _ in results] == [201, 200]
    assert results[0][1]["order"]["quantity"] == 2

    key = load_private_key(pair["private"])  # the 64-byte tweetnacl secret key, as is
    body = '{"symbol": "GRID-B", "side": "buy", "quantity": 5}'
    headers = sign_request(key, "POST", "/v1/orders", body, version=1, header_prefix="X-TheGrid")
    assert requests.post(trading.url + "/v1/orders", data=body, headers=headers, timeout=30).status_code == 201


@pytest.mark.skipif(shutil.which("go") is None, reason="go is not installed")
def test_signed_from_go(trading: Server, tmp_path: Path) -> None:
    """The Go client (standard library only) signs with Go's 64-byte private key."""
    key = Ed25519PrivateKey.generate()
    register(trading, public_key_of(key), tmp_path)
    go_key = key.private_bytes_raw() + base64.b64decode(public_key_of(key))
    env = client_env(GRID_TRADING_PRIVATE_KEY=base64.b64encode(go_key).decode(), GOFLAGS="-mod=mod")
    env.setdefault("GOCACHE", str(tmp_path / "gocache"))
    results = order_lines(run_client("thegrid_sign.go", trading.url, env, tmp_path))
    assert [status for status, _ in results] == [201, 200]
