"""Live fixtures: the example app in real WSGI servers, and a Redis server of the test's own.

- ``serve(**config)`` starts ``examples/quickstart.py``'s ``create_app(config)`` in
  werkzeug's threaded server on 127.0.0.1 and a free port, in a thread;
- ``gunicorn(config, workers=4)`` runs the same app under gunicorn as a subprocess
  (``tests/live/wsgi_app.py``, which tags each response with its worker's pid);
- ``own_redis`` starts a ``redis-server`` on a free port that a test may kill and
  restart (never the shared one at 6379).

Every wait is bounded; nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..conftest import bearer

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
LIVE_DIR = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent

#: The bootstrap token of every live app: random per run, so a test can look for it in any output.
TOKEN = "live-" + secrets.token_urlsafe(32)
#: Longest a server may take to start on a loaded 2-core machine.
START_TIMEOUT = 60.0
#: Timeout of every HTTP call a live test makes.
HTTP_TIMEOUT = 30.0

#: Config every live app starts from: rate limits on (as the example ships) but generous,
#: so that tests sending many bad credentials are not throttled unless they mean to be.
BASE_CONFIG: dict[str, Any] = {
    "GRIDAUTH_API_TOKEN": TOKEN,
    "GRIDAUTH_RATELIMIT_API_KEY": "10000/minute",
    "GRIDAUTH_FAILED_AUTH_LIMIT": "10000/minute",
}


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_example() -> ModuleType:
    """``examples/quickstart.py`` as a module (``examples`` is not a package)."""
    module = sys.modules.get("quickstart")
    if module is None:
        spec = importlib.util.spec_from_file_location("quickstart", EXAMPLES / "quickstart.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["quickstart"] = module
        spec.loader.exec_module(module)
    return module


def assert_error(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """``response`` is the JSON error body of DESIGN.md with this status; returns the body."""
    assert response.status_code == status, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["object"] == "error"
    assert body["status"] == status
    assert isinstance(body["message"], str) and body["message"]
    if code is not None:
        assert body["code"] == code
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    return body


# -- werkzeug in a thread ----------------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """werkzeug's handler without the access log (it would only add noise to test output)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Do not log each request."""


@dataclass
class LiveServer:
    """The example app served by werkzeug on 127.0.0.1 in a background thread."""

    app: Flask
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        """Base URL, without a trailing slash."""
        return f"http://127.0.0.1:{self.server.server_port}"

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


def start_live(app: Flask) -> LiveServer:
    """Serve ``app`` on a free loopback port until :meth:`LiveServer.stop`."""
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    live = LiveServer(app, server, thread)
    wait_until(lambda: _answers(live.url + "/"), START_TIMEOUT, "the werkzeug server")
    return live


def _answers(url: str) -> bool:
    try:
        requests.get(url, timeout=2)
    except requests.RequestException:
        return False
    return True


@pytest.fixture
def instance_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The example app's instance folder for this test (it reads ``GRIDAUTH_INSTANCE_PATH``)."""
    path = tmp_path / "instance"
    monkeypatch.setenv("GRIDAUTH_INSTANCE_PATH", str(path))
    return path


@pytest.fixture
def serve(instance_dir: Path) -> Iterator[Callable[..., LiveServer]]:
    """A factory: ``serve(**config)`` runs the example app in a real server; SQLite by default."""
    started: list[LiveServer] = []

    def factory(**config: Any) -> LiveServer:
        merged = {**BASE_CONFIG, "GRIDAUTH_STORAGE_URI": f"sqlite:///{instance_dir}/live.db", **config}
        live = start_live(load_example().create_app(merged))
        started.append(live)
        return live

    yield factory
    for live in started:
        live.stop()


@pytest.fixture
def live(serve: Callable[..., LiveServer]) -> LiveServer:
    """The example app on SQLite in a real server."""
    return serve()


# -- gunicorn ----------------------------------------------------------------------------------------------------------


@dataclass
class Gunicorn:
    """gunicorn running ``tests/live/wsgi_app.py`` with some workers; output goes to ``log``."""

    process: subprocess.Popen[bytes]
    log: Path
    workers: int
    url: str = ""
    _log_fh: Any = field(default=None, repr=False)

    def output(self) -> str:
        """Everything gunicorn and its workers wrote so far."""
        return self.log.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        """The pids of the master's current children (Linux ``/proc``)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            return {int(p) for p in children.read_text().split()}
        except OSError:
            return set()

    def terminate(self) -> None:
        """SIGTERM, without waiting: servers told together shut down together."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if self._log_fh is not None:
            self._log_fh.close()


def stop_all(servers: list[Gunicorn]) -> None:
    """Stop several gunicorns at once: all are told first, so their graceful shutdowns overlap."""
    for server in servers:
        server.terminate()
    for server in servers:
        server.stop()


def start_gunicorn(
    config: dict[str, Any], *, cwd: Path, workers: int = 4, env: dict[str, str] | None = None
) -> Gunicorn:
    """Start gunicorn on a free loopback port and wait until every worker answers."""
    server = spawn_gunicorn(config, cwd=cwd, workers=workers, env=env)
    wait_ready([server])
    return server


def spawn_gunicorn(
    config: dict[str, Any], *, cwd: Path, workers: int = 4, env: dict[str, str] | None = None
) -> Gunicorn:
    """Start gunicorn on a free loopback port without waiting (see :func:`wait_ready`)."""
    binary = BIN / "gunicorn"
    if not binary.exists():
        pytest.fail(f"gunicorn is not installed next to {sys.executable}")
    log = cwd / f"gunicorn-{secrets.token_hex(4)}.log"
    fh = log.open("wb")
    full_env = {
        **os.environ,
        "GRIDAUTH_LIVE_CONFIG": json.dumps(config),
        "GRIDAUTH_INSTANCE_PATH": str(cwd / "instance"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    command = [
        str(binary),
        "--workers",
        str(workers),
        "--bind",
        "127.0.0.1:0",
        "--pythonpath",
        f"{LIVE_DIR},{EXAMPLES},{ROOT}",
        "--no-control-socket",
        "--graceful-timeout",
        "5",
        "--timeout",
        "60",
        "wsgi_app:app",
    ]
    process = subprocess.Popen(command, cwd=cwd, env=full_env, stdout=fh, stderr=subprocess.STDOUT)
    return Gunicorn(process, log, workers, _log_fh=fh)


def wait_ready(servers: list[Gunicorn]) -> None:
    """Wait until every worker of each server answers; stop them all if one does not start.

    Servers spawned together boot together, which on two cores is quicker than one after another.
    """
    try:
        for server in servers:
            _wait_ready(server)
    except BaseException:
        stop_all(servers)
        raise


def _wait_ready(server: Gunicorn) -> None:
    process, workers = server.process, server.workers
    wait_until(lambda: "Listening at:" in server.output() or process.poll() is not None, START_TIMEOUT, "gunicorn")
    match = re.search(r"Listening at: (http://127\.0\.0\.1:\d+)", server.output())
    if process.poll() is not None or match is None:
        pytest.fail("gunicorn did not start:\n" + server.output()[-3000:])
    server.url = match.group(1)
    wait_until(
        lambda: len(re.findall(r"Booting worker with pid", server.output())) >= workers and _answers(server.url),
        START_TIMEOUT,
        f"{workers} workers",
    )


@pytest.fixture
def gunicorn(tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    """A factory: ``gunicorn(config, workers=4)`` runs the example app under gunicorn in ``tmp_path``."""
    started: list[Gunicorn] = []

    def factory(config: dict[str, Any], workers: int = 4, env: dict[str, str] | None = None) -> Gunicorn:
        server = start_gunicorn(config, cwd=tmp_path, workers=workers, env=env)
        started.append(server)
        return server

    yield factory
    stop_all(started)


# -- a redis-server of the test's own ----------------------------------------------------------------------------------


@dataclass
class RedisProcess:
    """A ``redis-server`` on a free loopback port, with its data folder, that a test may kill and restart."""

    port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its storage URI (database 0: the whole server belongs to this test)."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) on the same port; it loads ``dump.rdb`` from its folder if one was saved."""
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(self.up, 20, f"redis-server on port {self.port}")

    def up(self) -> bool:
        """Whether it answers PING."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def save(self) -> None:
        """Write a snapshot now (``SAVE``), so a restart brings the keys back."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as sock:
            sock.sendall(b"SAVE\r\n")
            assert sock.recv(16).startswith(b"+OK")

    def kill(self) -> None:
        """SIGKILL: the abrupt failure, with no goodbye to connected clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    """A running ``redis-server`` of this test's own; fails in CI, skips elsewhere, when there is none."""
    if shutil.which("redis-server") is None and not Path("/usr/bin/redis-server").exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is required in CI")
        pytest.skip("redis-server is not installed")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisProcess(free_port(), directory)
    server.start()
    yield server
    server.kill()


# -- helpers shared by the live tests ----------------------------------------------------------------------------------


def create_key(base_url: str, credential: str = TOKEN, **body: Any) -> dict[str, Any]:
    """Create a key through ``POST /api/v1/api-keys``; returns the 201 body (with ``raw_key``)."""
    body.setdefault("name", "live key")
    body.setdefault("scopes", ["read"])
    response = requests.post(f"{base_url}/api/v1/api-keys", json=body, headers=bearer(credential), timeout=HTTP_TIMEOUT)
    assert response.status_code == 201, response.text[:300]
    data: dict[str, Any] = response.json()
    return data
