"""Regression tests for issue 14 (the outside security review): each one failed before its fix."""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jwt as pyjwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from flask_gridauth import ConfigurationError, RateLimited, Unauthorized, dashboard_blueprint, get_state
from flask_gridauth.client import public_key_of, sign_request
from flask_gridauth.dashboard.session import COOKIE_NAME
from flask_gridauth.keys import generate_key
from flask_gridauth.storage import sqlite_connections

from .conftest import TOKEN, bearer, build_app, create_key

# -- L5: a method the method table does not list needs write (fail closed) ------------------------------------------


def _method_app(tmp_path: Any, **config: Any) -> tuple[Flask, list[str]]:
    """A test app with an undecorated route that serves methods outside the default table."""
    app = build_app(str(tmp_path / "instance"), **config)
    ran: list[str] = []

    @app.route("/dav", methods=["GET", "PROPFIND", "PURGE", "OPTIONS"])
    def dav() -> dict[str, str]:
        from flask import request

        ran.append(request.method)
        return {"method": request.method}

    return app, ran


@pytest.mark.parametrize("method", ["PROPFIND", "PURGE", "OPTIONS"])
def test_unlisted_method_needs_write(tmp_path: Any, method: str) -> None:
    """A read-only key reaching an undecorated route with a method the table omits gets 403, a writer gets in."""
    app, ran = _method_app(tmp_path)
    client = app.test_client()
    _, reader = create_key(app, ["read"])
    response = client.open("/dav", method=method, headers=bearer(reader))
    assert response.status_code == 403
    assert response.get_json()["message"] == "Missing required scope: write"
    assert ran == []
    _, writer = create_key(app, ["write"])
    assert client.open("/dav", method=method, headers=bearer(writer)).status_code == 200
    assert ran == [method]
    assert client.get("/dav", headers=bearer(reader)).status_code == 200


def test_unlisted_method_needs_write_under_a_custom_table(tmp_path: Any) -> None:
    """A table naming only GET makes POST and DELETE need write, not nothing; HEAD follows GET."""
    app, ran = _method_app(tmp_path, GRIDAUTH_METHOD_SCOPES={"GET": "reports:read"})
    client = app.test_client()
    _, reporter = create_key(app, ["reports:read"])
    assert client.get("/items", headers=bearer(reporter)).status_code == 200
    assert client.head("/items", headers=bearer(reporter)).status_code == 200
    for method in ("POST", "DELETE", "PATCH"):
        assert client.open("/items", method=method, headers=bearer(reporter)).status_code == 403
    assert client.open("/dav", method="PURGE", headers=bearer(TOKEN)).status_code == 200


def test_method_table_none_still_turns_the_default_off(tmp_path: Any) -> None:
    """``GRIDAUTH_METHOD_SCOPES = None`` keeps its documented meaning: any credential, no scope."""
    app, _ = _method_app(tmp_path, GRIDAUTH_METHOD_SCOPES=None)
    _, outsider = create_key(app, ["billing:read"])
    assert app.test_client().open("/dav", method="PURGE", headers=bearer(outsider)).status_code == 200


# -- i1: the failed-authentication throttle never refuses a valid credential ----------------------------------------


@pytest.fixture
def throttled(make_app: Callable[..., Flask]) -> Flask:
    """An app on the current backend whose failed-authentication limit is 3 a minute."""
    return make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_FAILED_AUTH_LIMIT="3/minute")


def test_valid_key_from_a_throttled_address_is_served(throttled: Flask) -> None:
    """Behind one NAT, an attacker's failures past the limit get 429, but a valid key from that address gets 200."""
    _, good = create_key(throttled)
    client = throttled.test_client()
    statuses = [client.get("/items", headers=bearer(generate_key("grd"))).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert client.get("/items", headers=bearer(good)).status_code == 200
    assert client.get("/items", headers=bearer(TOKEN)).status_code == 200
    refused = client.get("/items", headers=bearer(generate_key("grd")))
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert client.get("/items", headers=bearer(good)).status_code == 200


def test_malformed_credentials_past_the_limit_get_429_and_valid_ones_pass(throttled: Flask) -> None:
    """Malformed credentials count too; past the limit they are 429, and a valid key still passes."""
    _, good = create_key(throttled)
    client = throttled.test_client()
    statuses = [client.get("/items", headers=bearer("not a token")).status_code for _ in range(4)]
    assert statuses == [401, 401, 401, 429]
    assert client.get("/items", headers=bearer(good)).status_code == 200


def test_dashboard_sign_in_with_a_valid_key_from_a_throttled_address(throttled: Flask) -> None:
    """The verify_bearer path (dashboard sign-in) also serves a valid credential from a throttled address."""
    _, good = create_key(throttled, ["admin"])
    state = get_state(throttled)
    with throttled.test_request_context("/", environ_base={"REMOTE_ADDR": "192.0.2.9"}):
        for _ in range(3):
            with pytest.raises(Unauthorized):
                state.verify_bearer(generate_key("grd"))
        with pytest.raises(RateLimited):
            state.verify_bearer(generate_key("grd"))
        assert state.verify_bearer(good).owner == "alice"


# -- i2: JWT issuers whose sub values collide --------------------------------------------------------------------------

ISSUER_A = "https://a.issuer.test"
ISSUER_B = "https://b.issuer.test"
SECRET_A = "issuer-a-secret-" + "a" * 32
SECRET_B = "issuer-b-secret-" + "b" * 32


def _issuer(name: str, secret: str, **extra: Any) -> dict[str, Any]:
    """An all-scopes HS256 issuer entry."""
    return {"issuer": name, "secret": secret, "algorithms": ["HS256"], "all_scopes": True, **extra}


def _jwt(issuer: str, secret: str, sub: str) -> str:
    """A valid HS256 token of ``issuer`` for ``sub``."""
    return pyjwt.encode({"iss": issuer, "sub": sub, "exp": int(time.time()) + 600}, secret, algorithm="HS256")


def test_owner_prefix_keeps_colliding_subjects_apart(tmp_path: Any) -> None:
    """The same sub from two issuers is two owners once one issuer has an owner_prefix: no shared keys."""
    app = build_app(
        str(tmp_path / "instance"),
        GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix="clerk:"), _issuer(ISSUER_B, SECRET_B)],
    )
    client = app.test_client()
    a_user = bearer(_jwt(ISSUER_A, SECRET_A, "user_1"))
    b_user = bearer(_jwt(ISSUER_B, SECRET_B, "user_1"))
    assert client.get("/api/v1/me", headers=a_user).get_json()["owner"] == "clerk:user_1"
    assert client.get("/api/v1/me", headers=b_user).get_json()["owner"] == "user_1"
    created = client.post("/api/v1/api-keys", json={"name": "ci", "scopes": ["read"]}, headers=a_user)
    assert created.status_code == 201
    assert created.get_json()["owner"] == "clerk:user_1"
    key_id = created.get_json()["id"]
    assert client.get("/api/v1/api-keys", headers=b_user).get_json()["data"] == []
    assert client.get(f"/api/v1/api-keys/{key_id}", headers=b_user).status_code == 404
    assert client.get(f"/api/v1/api-keys/{key_id}", headers=a_user).status_code == 200


def test_owner_prefix_separates_rate_limit_counters(tmp_path: Any) -> None:
    """Two issuers' users with one sub count against separate JWT limits when one issuer has a prefix."""
    app = build_app(
        str(tmp_path / "instance"),
        GRIDAUTH_RATELIMIT_ENABLED=True,
        GRIDAUTH_RATELIMIT_JWT="2/minute",
        GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix="clerk:"), _issuer(ISSUER_B, SECRET_B)],
    )
    client = app.test_client()
    a_user = bearer(_jwt(ISSUER_A, SECRET_A, "user_1"))
    b_user = bearer(_jwt(ISSUER_B, SECRET_B, "user_1"))
    assert [client.get("/items", headers=a_user).status_code for _ in range(3)] == [200, 200, 429]
    assert client.get("/items", headers=b_user).status_code == 200


def test_two_issuers_in_one_sub_namespace_warn_at_start_up(tmp_path: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Two issuers without owner_prefix (or with the same one) log a warning naming both; distinct prefixes do not."""
    with caplog.at_level(logging.WARNING, logger="flask_gridauth"):
        build_app(
            str(tmp_path / "one"), GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A), _issuer(ISSUER_B, SECRET_B)]
        )
    shared = [r for r in caplog.records if r.name == "flask_gridauth" and "owner_prefix" in r.getMessage()]
    assert len(shared) == 1
    assert ISSUER_A in shared[0].getMessage() and ISSUER_B in shared[0].getMessage()
    assert SECRET_A not in caplog.text and SECRET_B not in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_gridauth"):
        build_app(
            str(tmp_path / "two"),
            GRIDAUTH_JWT_ISSUERS=[
                _issuer(ISSUER_A, SECRET_A, owner_prefix="a:"),
                _issuer(ISSUER_B, SECRET_B, owner_prefix="a:"),
            ],
        )
    assert any("owner_prefix" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="flask_gridauth"):
        build_app(
            str(tmp_path / "three"),
            GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix="a:"), _issuer(ISSUER_B, SECRET_B)],
        )
        build_app(str(tmp_path / "four"), GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A)])
    assert not any("owner_prefix" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("prefix", ["", " x:", "x: ", 7, "a" * 65, "tab\t:"])
def test_owner_prefix_must_be_a_short_printable_string(tmp_path: Any, prefix: object) -> None:
    """An owner_prefix that is empty, padded, not a string, too long or unprintable is refused at start-up."""
    with pytest.raises(ConfigurationError, match="owner_prefix"):
        build_app(str(tmp_path / "instance"), GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix=prefix)])


def test_owner_prefix_applies_to_the_reserved_owner_check(tmp_path: Any) -> None:
    """A prefixed owner is checked against GRIDAUTH_TOKEN_OWNER as a whole: 'admin' with prefix 'x:' is fine."""
    app = build_app(str(tmp_path / "instance"), GRIDAUTH_JWT_ISSUERS=[_issuer(ISSUER_A, SECRET_A, owner_prefix="x:")])
    response = app.test_client().get("/api/v1/me", headers=bearer(_jwt(ISSUER_A, SECRET_A, "admin")))
    assert response.status_code == 200
    assert response.get_json()["owner"] == "x:admin"


# -- M3: a Redis restarted from an older snapshot ---------------------------------------------------------------------


class OwnRedis:
    """A redis-server of this test's own on a free port, with its data directory; killed, never shut down."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        self.directory = directory
        self.appendonly = appendonly
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def uri(self) -> str:
        """The storage URI of this server."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start the server on its data directory and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("redis-server is required in CI")
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary and fixed arguments
            [
                binary,
                "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                "--save", "", "--appendonly", "yes" if self.appendonly else "no", "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=1)
        deadline = time.monotonic() + 20
        while True:
            try:
                if client.ping():
                    break
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def save(self) -> None:
        """Write a snapshot now (``SAVE``)."""
        client = redis.Redis(port=self.port)
        client.save()
        client.close()

    def crash(self) -> None:
        """SIGKILL the server: nothing written since the last snapshot survives."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    """A private redis-server (snapshot only), killed after the test."""
    server = OwnRedis(tmp_path / "redis-data")
    server.directory.mkdir()
    server.start()
    yield server
    if server.process is not None:
        server.crash()


def _signed_app(tmp_path: Path, uri: str) -> tuple[Flask, Ed25519PrivateKey]:
    """An app on ``uri`` with a registered signing key."""
    app = build_app(str(tmp_path / "instance"), GRIDAUTH_STORAGE_URI=uri)
    key = Ed25519PrivateKey.generate()
    with app.app_context():
        app.extensions["gridauth"].keys.register_signing_key(
            name="signer", public_key=public_key_of(key), scopes=["read", "write"], owner="alice"
        )
    return app, key


def test_replay_after_a_redis_restart_from_an_older_snapshot_is_refused(tmp_path: Path, own_redis: OwnRedis) -> None:
    """A signature used after the last snapshot is refused after a crash and restart, though the claim was lost."""
    app, key = _signed_app(tmp_path, own_redis.uri)
    own_redis.save()  # the snapshot holds the key, not the claim made next
    client = app.test_client()
    headers, status = _first_accepted_signature(client, key)
    assert status == 200
    replay = client.post("/items", data=b"{}", headers=headers)
    assert replay.status_code == 401  # the replay cache works
    assert replay.get_json()["message"] == "Signature already used"
    own_redis.crash()
    own_redis.start()
    deadline = time.monotonic() + 20
    while True:  # the first requests after the restart may meet the dead pooled connections
        response = client.post("/items", data=b"{}", headers=headers)
        if response.status_code != 503 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert response.status_code == 401
    assert "restarted" in response.get_json()["message"]
    # A request signed after the restart is served: the refusal lasts at most the tolerance.
    _, status = _first_accepted_signature(client, key)
    assert status == 200
    get_state(app).storage.close()


def _first_accepted_signature(client: Any, key: Ed25519PrivateKey) -> tuple[dict[str, str], int]:
    """Sign fresh POSTs until one is served (a signature from the server's first second is refused); the last try."""
    deadline = time.monotonic() + 20
    while True:
        headers = sign_request(key, "POST", "http://localhost/items", b"{}")
        status = int(client.post("/items", data=b"{}", headers=headers).status_code)
        if status == 200 or time.monotonic() > deadline:
            return headers, status
        time.sleep(0.1)


def test_redis_without_append_only_file_warns_on_first_connect(
    tmp_path: Path, own_redis: OwnRedis, caplog: pytest.LogCaptureFixture
) -> None:
    """A snapshot-only Redis key store logs one warning on first contact; starting the app contacts nothing."""
    with caplog.at_level(logging.WARNING, logger="flask_gridauth"):
        app = build_app(str(tmp_path / "instance"), GRIDAUTH_STORAGE_URI=own_redis.uri)
        assert not [r for r in caplog.records if "append-only" in r.getMessage()]
        for _ in range(3):
            assert app.test_client().get("/api/v1/health").status_code == 200
        get_state(app).storage.close()
    warnings = [r for r in caplog.records if "append-only" in r.getMessage()]
    assert len(warnings) == 1
    assert "PostgreSQL" in warnings[0].getMessage()
    assert str(own_redis.port) in warnings[0].getMessage()


def test_redis_with_append_only_file_does_not_warn(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A Redis that keeps an append-only file gets no durability warning."""
    server = OwnRedis(tmp_path / "aof-data", appendonly=True)
    server.directory.mkdir()
    server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="flask_gridauth"):
            app = build_app(str(tmp_path / "instance"), GRIDAUTH_STORAGE_URI=server.uri)
            assert app.test_client().get("/api/v1/health").status_code == 200
            get_state(app).storage.close()
        assert not [r for r in caplog.records if "append-only" in r.getMessage()]
    finally:
        server.crash()


# -- M2: dashboard sign-out ends the session for every copy of the cookie ---------------------------------------------

DASH = "/dashboard"
DASH_SECRET = "dashboard-tests-secret-key-0123456789abcdef"
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def dash(make_app: Callable[..., Flask]) -> Flask:
    """A dashboard app on the current backend."""
    app = make_app(SECRET_KEY=DASH_SECRET)
    app.register_blueprint(dashboard_blueprint, url_prefix=DASH)
    return app


def _csrf(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _signed_in(app: Flask, credential: str = TOKEN) -> Any:
    """A test client signed in to the dashboard with ``credential``."""
    client = app.test_client()
    page = client.get(f"{DASH}/sign-in")
    response = client.post(f"{DASH}/sign-in", data={"csrf_token": _csrf(page.text), "credential": credential})
    assert response.status_code == 303
    assert client.get(f"{DASH}/").status_code == 200
    return client


def _copy(source: Any, app: Flask) -> Any:
    """A second client holding a copy of ``source``'s dashboard cookie (a stolen cookie)."""
    cookie = source.get_cookie(COOKIE_NAME, path=DASH)
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(COOKIE_NAME, cookie.value, path=DASH)
    return thief


def test_copied_cookie_is_refused_after_sign_out(dash: Flask) -> None:
    """A copy of the dashboard cookie taken before sign-out is refused after it, on every backend."""
    owner = _signed_in(dash)
    thief = _copy(owner, dash)
    assert thief.get(f"{DASH}/").status_code == 200  # the copy works while the session lives
    page = owner.get(f"{DASH}/")
    assert owner.post(f"{DASH}/sign-out", data={"csrf_token": _csrf(page.text)}).status_code == 303
    refused = thief.get(f"{DASH}/")
    assert refused.status_code == 303
    assert refused.headers["Location"].endswith(f"{DASH}/sign-in")
    assert thief.get(f"{DASH}/keys/new").status_code == 303


def test_sign_out_everywhere_ends_every_session_of_the_owner(dash: Flask) -> None:
    """'Sign out everywhere' ends the owner's other sessions too (other keys of that owner included), no one else's."""
    _, first = create_key(dash, ["admin"], owner="alice")
    _, second = create_key(dash, ["admin"], owner="alice")
    _, other = create_key(dash, ["admin"], owner="bob")
    laptop, phone, bob = _signed_in(dash, first), _signed_in(dash, second), _signed_in(dash, other)
    copy = _copy(laptop, dash)
    page = laptop.get(f"{DASH}/")
    response = laptop.post(f"{DASH}/sign-out", data={"csrf_token": _csrf(page.text), "everywhere": "1"})
    assert response.status_code == 303
    for client in (laptop, phone, copy):
        assert client.get(f"{DASH}/").status_code == 303
    assert bob.get(f"{DASH}/").status_code == 200


def test_plain_sign_out_leaves_other_sessions(dash: Flask) -> None:
    """A plain sign-out ends this session (and its copies) but not another device's session of the same owner."""
    laptop, phone = _signed_in(dash), _signed_in(dash)
    page = laptop.get(f"{DASH}/")
    laptop.post(f"{DASH}/sign-out", data={"csrf_token": _csrf(page.text)})
    assert laptop.get(f"{DASH}/").status_code == 303
    assert phone.get(f"{DASH}/").status_code == 200


def test_rotate_token_ends_every_token_session(dash: Flask, tmp_path: Path) -> None:
    """`flask gridauth rotate-token` ends every bootstrap-token session at once, running servers included."""
    dash.config["GRIDAUTH_TOKEN_FILE"] = str(tmp_path / "token.json")
    token_session = _signed_in(dash)
    copy = _copy(token_session, dash)
    _, admin_key = create_key(dash, ["admin"])
    key_session = _signed_in(dash, admin_key)
    runner = dash.test_cli_runner()
    state = get_state(dash)
    api_token = dash.config["GRIDAUTH_API_TOKEN"]
    dash.config["GRIDAUTH_API_TOKEN"] = None  # rotate-token refuses a configured token
    try:
        result = runner.invoke(args=["gridauth", "rotate-token", "--yes"])
    finally:
        dash.config["GRIDAUTH_API_TOKEN"] = api_token
    assert result.exit_code == 0, result.output
    assert state.token_digest is not None  # this server still holds the old token ...
    assert token_session.get(f"{DASH}/").status_code == 303  # ... but its token sessions ended
    assert copy.get(f"{DASH}/").status_code == 303
    assert key_session.get(f"{DASH}/").status_code == 200


# -- L6: a SQLite file deleted or replaced under a running server; durable revocations -------------------------------


def _sqlite_app(tmp_path: Path) -> tuple[Flask, Path, str]:
    """An app on a SQLite file of its own, with one key written; the app, the file's path and the key's id."""
    db = tmp_path / "keys.db"
    app = build_app(str(tmp_path / "instance"), GRIDAUTH_STORAGE_URI=f"sqlite:///{db}")
    record, _ = create_key(app)
    assert app.test_client().get("/api/v1/health").status_code == 200
    return app, db, record.id


def _remove_database(db: Path) -> None:
    """Delete the database file and its WAL companions, as an operator's rm would."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)


def test_deleted_sqlite_file_makes_health_and_writes_503(tmp_path: Path) -> None:
    """After the file is deleted, /health and a key creation answer 503 instead of 200 and a 201 into nothing."""
    app, db, _ = _sqlite_app(tmp_path)
    client = app.test_client()
    _remove_database(db)
    assert client.get("/api/v1/health").status_code == 503
    created = client.post("/api/v1/api-keys", json={"name": "lost", "scopes": ["read"]}, headers=bearer(TOKEN))
    assert created.status_code == 503
    assert not db.exists()  # nothing silently recreated an empty database under the running server


def test_deleted_sqlite_file_makes_requests_503(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads check the file too (at most once per interval; the interval is zero here): a key request gets 503."""
    monkeypatch.setattr(sqlite_connections, "IDENTITY_CHECK_INTERVAL", 0.0)
    db = tmp_path / "keys.db"
    app = build_app(str(tmp_path / "instance"), GRIDAUTH_STORAGE_URI=f"sqlite:///{db}")
    _, raw = create_key(app)
    client = app.test_client()
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    _remove_database(db)
    assert client.get("/items", headers=bearer(raw)).status_code == 503


def test_replaced_sqlite_file_makes_health_503(tmp_path: Path) -> None:
    """A file swapped in at the path (a restored backup: another inode) is refused, not half-used."""
    app, db, key_id = _sqlite_app(tmp_path)
    backup = tmp_path / "backup.db"
    with sqlite3.connect(db) as source, sqlite3.connect(backup) as target:
        source.backup(target)
    os.replace(backup, db)
    assert app.test_client().get("/api/v1/health").status_code == 503
    revoke = app.test_client().delete(f"/api/v1/api-keys/{key_id}", headers=bearer(TOKEN))
    assert revoke.status_code == 503  # never acknowledged into the old, unlinked file


def test_sqlite_management_writes_commit_with_synchronous_full(tmp_path: Path) -> None:
    """A revocation (every management write) commits under synchronous=FULL; the hot path stays NORMAL."""
    app, _, _ = _sqlite_app(tmp_path)
    record, _ = create_key(app)
    storage = get_state(app).storage
    statements: list[str] = []
    storage._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    with app.app_context():
        get_state(app).keys.revoke(record.id, owner=record.owner)
    commits = [i for i, sql in enumerate(statements) if sql.strip().upper() == "COMMIT"]
    assert commits
    before = [s.upper().replace(" ", "") for s in statements[: commits[0]]]
    assert "PRAGMASYNCHRONOUS=FULL" in before
    assert statements[commits[0] + 1].upper().replace(" ", "") == "PRAGMASYNCHRONOUS=NORMAL"
    assert storage._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # type: ignore[attr-defined]  # NORMAL
