"""``flask gridauth ...`` through the test CLI runner and once as a real ``flask`` subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask

from flask_gridauth.cli import gridauth_cli, parse_duration
from flask_gridauth.records import utcnow

from .conftest import TOKEN, bearer, build_app, create_key

RAW_KEY_RE = re.compile(r"grd_(live|test)_[0-9a-f]{48}")


def run(app: Flask, *args: str, input: str | None = None) -> Any:
    """Invoke ``flask gridauth <args>`` on ``app``."""
    return app.test_cli_runner().invoke(gridauth_cli, args=[*args], input=input)


def assert_clean_failure(result: Any, message: str) -> None:
    """Exit status 1, a single ``Error:`` line naming the problem, and no traceback."""
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and message in lines[0], result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)


# -- create-key -----------------------------------------------------------------


def test_create_key_prints_the_raw_key_once(app: Flask) -> None:
    """create-key prints the raw key exactly once, and that key works."""
    result = run(app, "create-key", "--name", "nightly", "--scopes", "read,write", "--owner", "ops")
    assert result.exit_code == 0, result.output
    keys = RAW_KEY_RE.findall(result.output)
    assert len(keys) == 1
    raw = RAW_KEY_RE.search(result.output).group(0)  # type: ignore[union-attr]
    assert "nightly" in result.output and "owner=ops" in result.output
    body = app.test_client().get("/api/v1/me", headers=bearer(raw)).get_json()
    assert body["owner"] == "ops" and set(body["scopes"]) == {"read", "write"}


def test_create_key_options(app: Flask) -> None:
    """--expires, --environment and --rate-limit reach the key; --quiet prints only the key."""
    result = run(
        app, "create-key", "--name", "n", "--scopes", "read", "--expires", "30d", "--environment", "test",
        "--rate-limit", "10/minute", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    raw = result.output.strip()
    assert RAW_KEY_RE.fullmatch(raw) and raw.startswith("grd_test_")
    with app.app_context():
        record = app.extensions["gridauth"].keys.storage.find(hashlib.sha256(raw.encode()).hexdigest())
    assert record.owner == "admin" and record.rate_limit == "10/minute"
    assert abs(record.expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scopes", "read"], "--name is required"),
        (["--name", "n"], "--scopes is required"),
        (["--name", "n", "--scopes", ","], "scopes"),
        (["--name", "n", "--scopes", "read write"], "scopes"),
        (["--name", "n", "--scopes", "read", "--expires", "30x"], "--expires"),
        (["--name", "n", "--scopes", "read", "--expires", "9" * 40], "--expires"),
        (["--name", "n", "--scopes", "read", "--expires", "0"], "expires_in"),
        (["--name", "n", "--scopes", "read", "--expires", "100000w"], "expires_in"),
        (["--name", "n", "--scopes", "read", "--environment", "prod"], "environment"),
        (["--name", "n", "--scopes", "read", "--rate-limit", "lots"], "rate_limit"),
        (["--name", "x" * 300, "--scopes", "read"], "name"),
    ],
)
def test_create_key_bad_arguments(app: Flask, args: list[str], message: str) -> None:
    """A bad argument is one Error line and exit status 1, and creates nothing."""
    assert_clean_failure(run(app, "create-key", *args), message)
    assert "No keys." in run(app, "list-keys").output


@pytest.mark.parametrize(
    ("text", "seconds"), [("3600", 3600), ("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("2W", 1209600)]
)
def test_parse_duration(text: str, seconds: int) -> None:
    """Durations take an optional s/m/h/d/w unit."""
    assert parse_duration(text, "--expires") == seconds


# -- list-keys, revoke, rotate -----------------------------------------------------


def test_list_keys_is_a_table_without_secrets(app: Flask) -> None:
    """list-keys shows every owner's keys (or one owner's), never a raw key or a hash."""
    alice, alice_raw = create_key(app, ["read"], owner="alice", name="alice key")
    bob, bob_raw = create_key(app, ["write"], owner="bob", name="bob key")
    result = run(app, "list-keys")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "TYPE"]
    # Newest first.
    assert bob.id in lines[1] and alice.id in lines[2]
    for raw in (alice_raw, bob_raw):
        assert raw not in result.output and hashlib.sha256(raw.encode()).hexdigest() not in result.output
    only_alice = run(app, "list-keys", "--owner", "alice").output
    assert alice.id in only_alice and bob.id not in only_alice


def test_revoke(app: Flask) -> None:
    """revoke ID stops the key at once; an unknown id is a clean error."""
    record, raw = create_key(app, ["read"])
    result = run(app, "revoke", record.id)
    assert result.exit_code == 0 and f"Revoked {record.id}" in result.output
    assert app.test_client().get("/items", headers=bearer(raw)).status_code == 401
    assert_clean_failure(run(app, "revoke", "key_nope"), "API key not found")


def test_rotate_with_grace(app: Flask) -> None:
    """rotate ID --grace 1h prints the new key once; both keys work during the grace period."""
    record, old_raw = create_key(app, ["read"])
    result = run(app, "rotate", record.id, "--grace", "1h")
    assert result.exit_code == 0, result.output
    assert len(RAW_KEY_RE.findall(result.output)) == 1
    new_raw = RAW_KEY_RE.search(result.output).group(0)  # type: ignore[union-attr]
    assert new_raw != old_raw and old_raw not in result.output
    client = app.test_client()
    assert client.get("/items", headers=bearer(old_raw)).status_code == 200
    assert client.get("/items", headers=bearer(new_raw)).status_code == 200
    with app.app_context():
        old = app.extensions["gridauth"].keys.get(record.id)
    assert abs(old.expires_at - (utcnow() + timedelta(hours=1))) < timedelta(minutes=1)


def test_rotate_bad_arguments(app: Flask) -> None:
    """A bad --grace or an unknown id is a clean error."""
    record, _ = create_key(app, ["read"])
    assert_clean_failure(run(app, "rotate", record.id, "--grace", "soon"), "--grace")
    assert_clean_failure(run(app, "rotate", "key_nope"), "API key not found")


def test_storage_down_is_a_clean_error(tmp_path: Any) -> None:
    """With Redis unreachable every key command ends with one Error line, no traceback."""
    app = build_app(str(tmp_path), GRIDAUTH_STORAGE_URI="redis://127.0.0.1:1/0", GRIDAUTH_STORAGE_TIMEOUT=0.5)
    assert_clean_failure(run(app, "list-keys"), "storage unavailable")
    assert_clean_failure(run(app, "create-key", "--name", "n", "--scopes", "read"), "storage unavailable")
    assert_clean_failure(run(app, "revoke", "key_x"), "storage unavailable")


# -- routes ---------------------------------------------------------------------------


def test_routes_lists_access_of_every_rule(tmp_path: Any) -> None:
    """routes shows public, the scopes of decorators and of method defaults, and any-of rules."""
    app = build_app(str(tmp_path))
    result = run(app, "routes")
    assert result.exit_code == 0, result.output
    rows: dict[tuple[str, str], str] = {}
    for line in result.output.splitlines()[1:]:
        parts = re.split(r"\s{2,}", line.strip())
        if len(parts) == 4:
            rows[(parts[0], parts[1])] = parts[2]
    assert rows[("/api/v1/health", "GET,HEAD")] == "public"
    assert rows[("/api/v1/openapi.json", "GET,HEAD")] == "public"
    assert rows[("/open", "GET,HEAD")] == "public"
    assert rows[("/static/<path:filename>", "GET,HEAD")] == "public"
    assert rows[("/api/v1/me", "GET,HEAD")] == "authenticated (no scope)"
    assert rows[("/api/v1/api-keys", "GET,HEAD")] == rows[("/api/v1/api-keys", "POST")] == "scopes: admin"
    assert rows[("/api/v1/api-keys/<key_id>", "DELETE")] == "scopes: admin"
    assert rows[("/items", "GET,HEAD")] == "scopes: read"
    assert rows[("/items", "DELETE,PATCH,POST,PUT")] == "scopes: write"
    assert rows[("/holdings", "POST")] == "scopes: holdings:write"
    assert rows[("/either", "GET,HEAD")] == "any of: billing:read, reports:read"
    assert "OPTIONS" in result.output.splitlines()[-1]


def test_routes_follows_method_scopes_config(tmp_path: Any) -> None:
    """With GRIDAUTH_METHOD_SCOPES = None an undecorated route needs only a credential."""
    app = build_app(str(tmp_path), GRIDAUTH_METHOD_SCOPES=None)
    output = run(app, "routes").output
    assert re.search(r"^/items\s+DELETE,GET,HEAD,PATCH,POST,PUT\s+authenticated \(no scope\)", output, re.M)


# -- rotate-token -------------------------------------------------------------------------


def test_rotate_token_refuses_a_configured_token(tmp_path: Any) -> None:
    """A token from config or environment cannot be rotated from the CLI."""
    app = build_app(str(tmp_path))
    assert_clean_failure(run(app, "rotate-token", "--yes"), "GRIDAUTH_API_TOKEN")


def test_rotate_token_replaces_the_file(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """rotate-token writes a new token (0600), prints it once, and a restarted app takes only it."""
    monkeypatch.delenv("GRIDAUTH_API_TOKEN", raising=False)
    token_file = tmp_path / "token.json"
    token_file.write_text(json.dumps({"token": TOKEN}))
    app = build_app(str(tmp_path), GRIDAUTH_API_TOKEN=None, GRIDAUTH_TOKEN_FILE=str(token_file))
    declined = run(app, "rotate-token", input="n\n")
    assert declined.exit_code != 0 and "Traceback" not in declined.output
    assert json.loads(token_file.read_text())["token"] == TOKEN
    result = run(app, "rotate-token", "--yes")
    assert result.exit_code == 0, result.output
    new = json.loads(token_file.read_text())["token"]
    assert new != TOKEN and result.output.count(new) == 1 and "Restart" in result.output
    assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
    restarted = build_app(str(tmp_path), GRIDAUTH_API_TOKEN=None, GRIDAUTH_TOKEN_FILE=str(token_file)).test_client()
    assert restarted.get("/api/v1/me", headers=bearer(new)).status_code == 200
    assert restarted.get("/api/v1/me", headers=bearer(TOKEN)).status_code == 401


# -- a real ``flask`` process ----------------------------------------------------------------

APP_MODULE = """
import os

from flask import Flask

from flask_gridauth import GridAuth, api_keys_blueprint

app = Flask(__name__, instance_path=os.environ["GRIDAUTH_TEST_INSTANCE"])
app.config["GRIDAUTH_STORAGE_URI"] = "sqlite:///gridauth.db"
GridAuth(app)
app.register_blueprint(api_keys_blueprint, url_prefix="/api/v1")
"""


def test_real_flask_subprocess(tmp_path: Any) -> None:
    """``flask --app <module> gridauth ...`` works end to end in a fresh process, on SQLite."""
    (tmp_path / "cliapp.py").write_text(textwrap.dedent(APP_MODULE))
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDAUTH_", "FLASK_"))}
    env.update(PYTHONPATH=str(tmp_path), GRIDAUTH_TEST_INSTANCE=str(instance))

    def flask(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(  # noqa: S603 - our own interpreter and fixed arguments
            [sys.executable, "-m", "flask", "--app", "cliapp", "gridauth", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    created = flask("create-key", "--name", "from shell", "--scopes", "read", "--expires", "12h", "--quiet")
    assert created.returncode == 0, created.stderr
    raw = created.stdout.strip()
    assert RAW_KEY_RE.fullmatch(raw)
    assert (instance / "gridauth.db").exists() and (instance / "gridauth-token.json").exists()
    listed = flask("list-keys")
    assert listed.returncode == 0 and "from shell" in listed.stdout and raw not in listed.stdout
    routes = flask("routes")
    assert routes.returncode == 0 and re.search(r"/api/v1/api-keys\s+POST\s+scopes: admin", routes.stdout)
    bad = flask("create-key", "--name", "n", "--scopes", "read", "--environment", "prod")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == ["Error: environment must be 'live' or 'test' (--environment)"]
    key_id = listed.stdout.splitlines()[1].split()[0]
    revoked = flask("revoke", key_id)
    assert revoked.returncode == 0 and key_id in revoked.stdout
