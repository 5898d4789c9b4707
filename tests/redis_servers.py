"""Throw-away Redis servers for tests: a 3-master cluster and a master + replica + sentinel.

Started from the ``redis-server`` binary on free ports under a temporary
folder, and stopped (killed) by :meth:`Servers.stop`. Without the binary a
test is skipped, except under ``CI=true``, where it fails.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def binary(name: str) -> str:
    """The path of ``name``; skips (fails under CI) when it is missing."""
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{name} is required in CI")
        pytest.skip(f"{name} is not installed")
    return path


def _answers(port: int, command: str, expect: bytes) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            sock.sendall(command.encode() + b"\r\n")
            return expect in sock.recv(65536)
    except OSError:
        return False


def wait_for(check: object, what: str, deadline: float = 30.0) -> None:
    """Poll ``check()`` until it is true; fail naming ``what`` after ``deadline`` seconds."""
    end = time.monotonic() + deadline
    while not check():  # type: ignore[operator]
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


class Servers:
    """The redis-server processes of one topology."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.processes: dict[int, subprocess.Popen[bytes]] = {}

    def start(self, port: int, *args: str, config: str | None = None) -> int:
        """Start one server (or sentinel, with ``config``) on ``port`` and wait until it answers PING."""
        workdir = self.folder / str(port)
        workdir.mkdir(parents=True, exist_ok=True)
        command = [binary("redis-server")]
        if config is not None:
            conf = workdir / "sentinel.conf"
            conf.write_text(config)
            command += [str(conf), "--sentinel"]
        command += ["--port", str(port), "--bind", HOST, "--dir", str(workdir), "--save", "", "--appendonly", "no"]
        command += list(args)
        self.processes[port] = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: _answers(port, "PING", b"+PONG"), f"redis-server on port {port}")
        return port

    def kill(self, port: int) -> None:
        """Kill one server at once (SIGKILL): a crash, not a shutdown."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)

    def stop(self) -> None:
        """Kill every server started here."""
        for port in list(self.processes):
            self.kill(port)


def start_cluster(servers: Servers, masters: int = 3) -> list[int]:
    """A cluster of ``masters`` masters (no replicas), every slot covered; its ports."""
    # The cluster bus would be the port + 10000 unless named: name a free one (free ports can be > 55535).
    ports = [
        servers.start(
            free_port(),
            "--cluster-enabled",
            "yes",
            "--cluster-node-timeout",
            "2000",
            "--cluster-port",
            str(free_port()),
        )
        for _ in range(masters)
    ]
    subprocess.run(
        [binary("redis-cli"), "--cluster", "create", *(f"{HOST}:{p}" for p in ports), "--cluster-yes"],
        check=True,
        capture_output=True,
        timeout=60,
    )
    for port in ports:
        wait_for(lambda port=port: _answers(port, "CLUSTER INFO", b"cluster_state:ok"), f"cluster node {port}")
    return ports


def start_sentinel(servers: Servers, service: str = "gridauth") -> tuple[int, int, int]:
    """A master, a replica of it and one sentinel watching them (quorum 1); their ports."""
    master = servers.start(free_port())
    replica = servers.start(free_port(), "--replicaof", HOST, str(master))
    wait_for(lambda: _answers(replica, "INFO replication", b"master_link_status:up"), "the replica to sync")
    config = (
        f"sentinel monitor {service} {HOST} {master} 1\n"
        f"sentinel down-after-milliseconds {service} 1000\n"
        f"sentinel failover-timeout {service} 10000\n"
        f"sentinel parallel-syncs {service} 1\n"
    )
    sentinel = servers.start(free_port(), config=config)
    wait_for(lambda: _answers(sentinel, f"SENTINEL replicas {service}", b"slave"), "the sentinel to see the replica")
    return master, replica, sentinel
