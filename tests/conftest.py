"""Shared fixtures: an app factory per storage backend, real Redis, known credentials."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from flask import Flask, request
from flask.cli import FlaskGroup
from flask.testing import FlaskCliRunner
from hypothesis import HealthCheck, settings

from flask_gridauth import GridAuth, api_keys_blueprint, current_principal, public, require_any_scope, require_scope

# One setting per hypothesis property, chosen by profile: short in `make test`, long in `make bench`.
settings.register_profile("default", max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile(
    "long",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


class FlaskCommandRunner(FlaskCliRunner):
    """``app.test_cli_runner()`` that finds commands as ``flask`` itself does.

    The ``gridauth`` group is registered only through the ``flask.commands``
    entry point (as flask-limiter's is), which ``flask``'s own group loads and
    ``app.cli`` does not: by default this runner invokes such a group.
    """

    def invoke(self, cli: Any = None, args: Any = None, **kwargs: Any) -> Any:
        """Run ``args`` under a ``FlaskGroup`` for the app unless a command is given."""
        if cli is None:
            cli = FlaskGroup(create_app=lambda: self.app, load_dotenv=False, set_debug_flag=False)
        return super().invoke(cli, args, **kwargs)


Flask.test_cli_runner_class = FlaskCommandRunner

#: The bootstrap token every test app accepts.
TOKEN = "test-bootstrap-token-0123456789abcdef"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
BACKENDS = ("memory", "sqlite", "redis", "postgres")
POSTGRES_HOST, POSTGRES_PORT = "127.0.0.1", 5432
#: Apps built during the current test; their storages are closed after it (a PostgreSQL pool holds threads).
_BUILT_APPS: list[Flask] = []
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _redis_up(host: str = REDIS_HOST, port: int = REDIS_PORT) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server() -> str:
    """A real Redis at 127.0.0.1:6379: the running one, else one we start; skip only outside CI."""
    if not _redis_up():
        binary = shutil.which("redis-server")
        if binary:
            subprocess.run(
                [binary, "--daemonize", "yes", "--bind", REDIS_HOST, "--port", str(REDIS_PORT), "--save", ""],
                check=False,
                capture_output=True,
            )
            for _ in range(50):
                if _redis_up():
                    break
                time.sleep(0.1)
    if not _redis_up():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Redis is required in CI but nothing answers at 127.0.0.1:6379")
        pytest.skip("no Redis at 127.0.0.1:6379 and redis-server could not be started")
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/15"


@pytest.fixture
def redis_uri(redis_server: str) -> Iterator[str]:
    """A Redis storage URI with a key prefix of its own, deleted after the test.

    A unique prefix (not FLUSHDB) keeps tests that run at the same time apart.
    """
    yield from prefixed_redis_uri(redis_server)


def prefixed_redis_uri(redis_server: str) -> Iterator[str]:
    """Yield a Redis URI under a fresh key prefix, then delete every key under it."""
    import redis

    prefix = f"gridauth-test-{uuid.uuid4().hex[:12]}"
    yield f"{redis_server}?key_prefix={prefix}"
    client = redis.Redis.from_url(redis_server)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _postgres_admin() -> Any:
    import psycopg

    return psycopg.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user="postgres", dbname="postgres", autocommit=True, connect_timeout=3
    )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A database of this test session's own on the real PostgreSQL at 127.0.0.1:5432, dropped at the end."""
    try:
        admin = _postgres_admin()
    except Exception as exc:  # psycopg missing or nothing listening
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required in CI but 127.0.0.1:5432 did not answer: {type(exc).__name__}")
        pytest.skip("no PostgreSQL at 127.0.0.1:5432")
    name = f"gridauth_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@{POSTGRES_HOST}:{POSTGRES_PORT}/{name}"
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_uri(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL storage URI with a schema of this test's own (dropped afterwards)."""
    yield from schema_postgres_uri(postgres_server)


def schema_postgres_uri(postgres_server: str) -> Iterator[str]:
    """Yield a PostgreSQL URI in a fresh schema of the session's database, then drop the schema."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_server}?schema={schema}&pool_min_size=1&pool_max_size=4"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def storage_uri_for(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The storage URI of one backend, isolated to this test."""
    if backend == "memory":
        return "memory://"
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/gridauth.db"
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_uri"))
    return str(request.getfixturevalue("redis_uri"))


#: For a test whose requests are all answered before storage is reached (the bootstrap token, a credential
#: refused for its shape, a body refused for its syntax): run on one backend, since four say no more. Each
#: such test passes with the PostgreSQL and Redis backends pointed at a port where nothing listens.
storage_free = pytest.mark.parametrize("backend", ["memory"])


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Each storage backend in turn."""
    return str(request.param)


@pytest.fixture
def storage_uri(backend: str, request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """The storage URI of the current backend."""
    return storage_uri_for(backend, request, tmp_path)


def build_app(instance_path: str, **config: Any) -> Flask:
    """A test app: the blueprint at /api/v1 and routes for each kind of requirement."""
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(
        TESTING=True,
        GRIDAUTH_API_TOKEN=TOKEN,
        GRIDAUTH_STORAGE_URI="memory://",
        GRIDAUTH_RATELIMIT_ENABLED=False,
    )
    app.config.update(config)
    GridAuth(app)
    _BUILT_APPS.append(app)
    app.register_blueprint(api_keys_blueprint, url_prefix="/api/v1")

    @app.route("/items", methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"])
    def items() -> dict[str, Any]:
        return {"owner": current_principal.owner, "kind": current_principal.kind, "method": request.method}

    @app.post("/holdings")
    @require_scope("holdings:write")
    def holdings() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/admin-only")
    @require_scope("admin")
    def admin_only() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/both")
    @require_scope("read", "reports:read")
    def both() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/either")
    @require_any_scope("billing:read", "reports:read")
    def either() -> dict[str, Any]:
        return {"ok": True}

    @app.get("/open")
    @public
    def open_route() -> dict[str, Any]:
        return {"public": True}

    return app


@pytest.fixture(scope="session", autouse=True)
def _no_gridauth_environ() -> Iterator[None]:
    """Flask-style isolation: the suite never sees the caller's GRIDAUTH_* environment.

    ``GRIDAUTH_AUTH=disabled pytest`` or ``GRIDAUTH_API_TOKEN=x pytest`` would
    otherwise turn authentication off, or change the token, in every test app.
    A test that needs such a variable sets it with ``monkeypatch``.
    """
    patch = pytest.MonkeyPatch()
    for name in [n for n in os.environ if n.startswith("GRIDAUTH_")]:
        patch.delenv(name)
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _reset_gridauth_environ(_no_gridauth_environ: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts without GRIDAUTH_* variables, whatever an earlier one left behind."""
    for name in [n for n in os.environ if n.startswith("GRIDAUTH_")]:
        monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _close_built_storages(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Close every app's usage counter and storage, and every PostgreSQL pool a test opened however it was built.

    A test that makes its own Flask app (a second app on the same storage, a storage
    factory) never reaches ``_BUILT_APPS``; an open pool per such test soon spends
    PostgreSQL's ``max_connections`` for the whole run.
    """
    opened: list[Any] = []
    counters: list[Any] = []
    from flask_gridauth.usage import UsageCounter

    counter_init = UsageCounter.__init__

    def tracking_counter(self: Any, *args: Any, **kwargs: Any) -> None:
        counter_init(self, *args, **kwargs)
        counters.append(self)

    monkeypatch.setattr(UsageCounter, "__init__", tracking_counter)
    try:
        from flask_gridauth.storage.postgres import PostgresStorage
    except ImportError:  # psycopg not installed: no pool can be opened either
        PostgresStorage = None  # noqa: N806
    if PostgresStorage is not None:
        original = PostgresStorage.__init__

        def tracking(self: Any, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            opened.append(self)

        monkeypatch.setattr(PostgresStorage, "__init__", tracking)
    yield
    for counter in counters:  # before the storages close: their counts have nowhere to go afterwards
        counter.close()
    while _BUILT_APPS:
        state = _BUILT_APPS.pop().extensions.get("gridauth")
        if state is not None:
            state.storage.close()
    for storage in opened:
        storage.close()


@pytest.fixture
def make_app(tmp_path: Any, storage_uri: str) -> Callable[..., Flask]:
    """A factory of test apps on the current backend; keyword arguments are config."""

    def factory(**config: Any) -> Flask:
        config.setdefault("GRIDAUTH_STORAGE_URI", storage_uri)
        return build_app(str(tmp_path / "instance"), **config)

    return factory


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """A test app on the current backend."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> Any:
    """A test client of ``app``."""
    return app.test_client()


def create_key(app: Flask, scopes: list[str] | None = None, owner: str = "alice", **kwargs: Any) -> tuple[Any, str]:
    """Create an API key through the Python API: ``(record, raw_key)``."""
    with app.app_context():
        return app.extensions["gridauth"].keys.create(
            name=kwargs.pop("name", "test key"), scopes=scopes or ["read"], owner=owner, **kwargs
        )


def bearer(raw: str) -> dict[str, str]:
    """An Authorization header for ``raw``."""
    return {"Authorization": f"Bearer {raw}"}


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` afresh as a module (``examples`` is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
