"""The bootstrap token: configured, from its file, or generated once and shared by every worker."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import GridAuth
from flask_gridauth.credentials.token import BANNER
from flask_gridauth.errors import ConfigurationError

from .conftest import bearer

APP_SNIPPET = textwrap.dedent(
    """
    import sys
    from flask import Flask
    from flask_gridauth import GridAuth
    app = Flask("worker", instance_path=sys.argv[1])
    app.config["GRIDAUTH_STORAGE_URI"] = "memory://"
    GridAuth(app)
    """
)


def make_app(instance: Path, **config: Any) -> Flask:
    """An app whose token comes from the file or generation (no GRIDAUTH_API_TOKEN)."""
    app = Flask(__name__, instance_path=str(instance))
    app.config.update(GRIDAUTH_STORAGE_URI="memory://", GRIDAUTH_RATELIMIT_ENABLED=False, **config)
    GridAuth(app)

    @app.get("/items")
    def items() -> dict[str, str]:
        return {"ok": "yes"}

    return app


@pytest.fixture(autouse=True)
def no_env_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment never supplies a token unless a test says so."""
    monkeypatch.delenv("GRIDAUTH_API_TOKEN", raising=False)


def read_token(instance: Path) -> str:
    """The token kept in the instance folder's token file."""
    return str(json.loads((instance / "gridauth-token.json").read_text())["token"])


def test_generated_once_printed_once(tmp_path: Path, capsys: Any) -> None:
    """A first start generates, saves and prints the token; the second start prints nothing."""
    app = make_app(tmp_path / "inst")
    err = capsys.readouterr().err
    token = read_token(tmp_path / "inst")
    assert err.strip() == BANNER.format(token=token)
    assert len(token) >= 43
    assert app.test_client().get("/items", headers=bearer(token)).status_code == 200

    again = make_app(tmp_path / "inst")
    assert capsys.readouterr().err == ""
    assert again.test_client().get("/items", headers=bearer(token)).status_code == 200


def test_token_file_is_private(tmp_path: Path) -> None:
    """The token file is created with mode 0600."""
    make_app(tmp_path / "inst")
    mode = stat.S_IMODE(os.stat(tmp_path / "inst" / "gridauth-token.json").st_mode)
    assert mode == 0o600


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """GRIDAUTH_API_TOKEN in the environment wins, and nothing is generated or printed."""
    monkeypatch.setenv("GRIDAUTH_API_TOKEN", "env-token-abcdefghijklmnop")
    app = make_app(tmp_path / "inst")
    assert not (tmp_path / "inst" / "gridauth-token.json").exists()
    assert capsys.readouterr().err == ""
    client = app.test_client()
    assert client.get("/items", headers=bearer("env-token-abcdefghijklmnop")).status_code == 200


def test_config_overrides_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GRIDAUTH_API_TOKEN in app.config wins over the environment."""
    monkeypatch.setenv("GRIDAUTH_API_TOKEN", "env-token-abcdefghijklmnop")
    app = make_app(tmp_path / "inst", GRIDAUTH_API_TOKEN="config-token-abcdefghijklmnop")
    client = app.test_client()
    assert client.get("/items", headers=bearer("config-token-abcdefghijklmnop")).status_code == 200
    assert client.get("/items", headers=bearer("env-token-abcdefghijklmnop")).status_code == 401


def test_custom_token_file(tmp_path: Path) -> None:
    """GRIDAUTH_TOKEN_FILE moves the file."""
    path = tmp_path / "elsewhere" / "tok.json"
    make_app(tmp_path / "inst", GRIDAUTH_TOKEN_FILE=str(path))
    assert json.loads(path.read_text())["token"]


def test_corrupt_token_file_is_clear_error(tmp_path: Path) -> None:
    """A token file that is not valid is a start-up error naming the path, not the content."""
    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "gridauth-token.json").write_text('{"token": "has spaces in it"}')
    with pytest.raises(ConfigurationError) as info:
        make_app(inst)
    assert str(inst / "gridauth-token.json") in str(info.value)
    assert "has spaces" not in str(info.value)


def test_read_only_filesystem_is_clear_error(tmp_path: Path) -> None:
    """A token file on a read-only filesystem (/proc, read-only even for root) names the path."""
    with pytest.raises(ConfigurationError, match="/proc/gridauth-test"):
        make_app(tmp_path / "inst", GRIDAUTH_TOKEN_FILE="/proc/gridauth-test/tok.json")


def test_unwritable_token_path_is_clear_error(tmp_path: Path) -> None:
    """A token file under a path that is a regular file is a start-up error naming it."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigurationError, match="blocker"):
        make_app(tmp_path / "inst", GRIDAUTH_TOKEN_FILE=str(blocker / "tok.json"))


def test_four_workers_share_one_token(tmp_path: Path) -> None:
    """Four processes starting at once agree on one token, and exactly one prints it."""
    inst = tmp_path / "shared"
    env = {k: v for k, v in os.environ.items() if k != "GRIDAUTH_API_TOKEN"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APP_SNIPPET, str(inst)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outputs]
    token = read_token(inst)
    printed = [err.decode() for _, err in outputs if b"AUTH TOKEN" in err]
    assert len(printed) == 1
    assert token in printed[0]
    assert not [n for n in os.listdir(inst) if n.endswith(".tmp")]


def test_short_configured_token_warns(tmp_path: Path, caplog: Any) -> None:
    """A configured token of 16-31 characters works but logs a warning that never shows the token."""
    caplog.set_level("WARNING", logger="flask_gridauth")
    app = make_app(tmp_path / "inst", GRIDAUTH_API_TOKEN="short-token-0123")
    assert app.test_client().get("/items", headers=bearer("short-token-0123")).status_code == 200
    messages = [r.getMessage() for r in caplog.records]
    assert any("shorter than 32" in m for m in messages)
    assert not any("short-token" in m for m in messages)


def test_long_configured_token_does_not_warn(tmp_path: Path, caplog: Any) -> None:
    """A long configured token starts quietly."""
    caplog.set_level("WARNING", logger="flask_gridauth")
    make_app(tmp_path / "inst", GRIDAUTH_API_TOKEN="x" * 40)
    assert not [r for r in caplog.records if "shorter than" in r.getMessage()]
