"""The 0.2 bootstrap-token options, through HTTP and through their public Python names."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import ConfigurationError, GridAuth
from flask_gridauth import config as c
from flask_gridauth.cli import gridauth_cli
from flask_gridauth.credentials import token as token_module
from flask_gridauth.credentials.token import BANNER, TokenSettings, rotate_token, validate_token

from .conftest import bearer

KEY = "grd_live_" + "0" * 48
WORKER = textwrap.dedent(
    """
    import json, sys
    from flask import Flask
    from flask_gridauth import GridAuth
    app = Flask("worker", instance_path=sys.argv[1])
    app.config.update(json.loads(sys.argv[2]))
    GridAuth(app)
    """
)


def make_app(instance: Path, **config: Any) -> Flask:
    """An app with one private route; config keys are given by their public names."""
    app = Flask(__name__, instance_path=str(instance))
    app.config.update({c.STORAGE_URI: "memory://", c.RATELIMIT_ENABLED: False}, **config)
    GridAuth(app)

    @app.get("/items")
    def items() -> dict[str, str]:
        return {"ok": "yes"}

    return app


def status(app: Flask, token: str) -> int:
    """The status of ``GET /items`` with ``token`` as the Bearer credential."""
    return app.test_client().get("/items", headers=bearer(token)).status_code


def banner_token(err: str, banner: str = BANNER) -> str:
    """The one token a banner printed on stderr."""
    before, after = banner.split("{token}")
    found = re.findall(re.escape(before) + r"(\S+)" + re.escape(after), err)
    assert len(found) == 1, err
    return str(found[0])


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No token or switch reaches a test from the environment unless it sets one."""
    for name in ("GRIDAUTH_API_TOKEN", "GRIDAUTH_AUTH", "MY_TOKEN", "MY_AUTH"):
        monkeypatch.delenv(name, raising=False)


# -- GRIDAUTH_API_TOKEN = False ------------------------------------------------------


def test_false_means_no_bootstrap_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    """False: nothing generated, printed or written, and not even the environment's token works."""
    monkeypatch.setenv("GRIDAUTH_API_TOKEN", "from-the-environment-0123456789")
    app = make_app(tmp_path / "inst", **{c.API_TOKEN: False})
    assert capsys.readouterr().err == ""
    assert not (tmp_path / "inst").exists()
    assert status(app, "from-the-environment-0123456789") == 401
    assert app.extensions["gridauth"].token_digest is None


def test_false_cannot_be_rotated(tmp_path: Path) -> None:
    """rotate-token on an app without a bootstrap token is a one-line error."""
    app = make_app(tmp_path / "inst", **{c.API_TOKEN: False})
    result = app.test_cli_runner().invoke(gridauth_cli, args=["rotate-token", "--yes"])
    assert result.exit_code == 1 and "no bootstrap token" in result.output and "Traceback" not in result.output


# -- GRIDAUTH_TOKEN_ENV and GRIDAUTH_AUTH_ENV ----------------------------------------


def test_token_env_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GRIDAUTH_TOKEN_ENV picks the variable; GRIDAUTH_API_TOKEN is then ignored."""
    monkeypatch.setenv("MY_TOKEN", "my-own-token-0123456789")
    monkeypatch.setenv("GRIDAUTH_API_TOKEN", "the-default-variable-0123456789")
    app = make_app(tmp_path / "inst", **{c.TOKEN_ENV: "MY_TOKEN"})
    assert status(app, "my-own-token-0123456789") == 200
    assert status(app, "the-default-variable-0123456789") == 401
    assert not (tmp_path / "inst" / "gridauth-token.json").exists()


def test_bad_token_env_name(tmp_path: Path) -> None:
    """GRIDAUTH_TOKEN_ENV must be a variable name."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_TOKEN_ENV"):
        make_app(tmp_path / "inst", **{c.TOKEN_ENV: "not a name"})


def test_bad_token_from_the_environment_names_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A short token in the named variable is an error naming the variable, never the value."""
    monkeypatch.setenv("MY_TOKEN", "tooshort")
    with pytest.raises(ConfigurationError, match="MY_TOKEN") as info:
        make_app(tmp_path / "inst", **{c.TOKEN_ENV: "MY_TOKEN"})
    assert "tooshort" not in str(info.value)


def test_auth_env_names_the_switch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GRIDAUTH_AUTH_ENV picks the variable whose value ``disabled`` turns authentication off."""
    monkeypatch.setenv("MY_AUTH", "Disabled")
    app = make_app(tmp_path / "inst", **{c.AUTH_ENV: "MY_AUTH", c.API_TOKEN: "token-0123456789abcdef"})
    assert app.config[c.ENABLED] is False
    assert status(app, "") == 200

    monkeypatch.delenv("MY_AUTH")
    monkeypatch.setenv("GRIDAUTH_AUTH", "disabled")  # no longer the switch
    other = make_app(tmp_path / "inst2", **{c.AUTH_ENV: "MY_AUTH", c.API_TOKEN: "token-0123456789abcdef"})
    assert other.config[c.ENABLED] is True
    assert other.test_client().get("/items").status_code == 401


def test_disabled_warning_printed_once(tmp_path: Path) -> None:
    """A fresh process with authentication disabled prints the warning exactly once."""
    env = {**os.environ, "GRIDAUTH_AUTH": "disabled"}
    config = json.dumps({c.STORAGE_URI: "memory://"})
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, str(tmp_path / "inst"), config], env=env, capture_output=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.decode().count("AUTHENTICATION IS DISABLED") == 1, proc.stderr


# -- GRIDAUTH_TOKEN_PREFIX and GRIDAUTH_TOKEN_BANNER ---------------------------------


def test_prefix_and_banner(tmp_path: Path, capsys: Any) -> None:
    """A generated token is ``<prefix><43 characters>``, printed in the configured banner."""
    banner = "AUTH TOKEN (save this — shown only once ):\n{token}"
    app = make_app(tmp_path / "inst", **{c.TOKEN_PREFIX: "grip_", c.TOKEN_BANNER: banner})
    err = capsys.readouterr().err
    token = banner_token(err, banner)
    assert re.fullmatch(r"grip_[A-Za-z0-9_-]{43}", token)
    assert err == banner.replace("{token}", token) + "\n"
    assert status(app, token) == 200


def test_banner_must_show_the_token(tmp_path: Path) -> None:
    """A banner without ``{token}`` would hide the only copy of the token."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_TOKEN_BANNER"):
        make_app(tmp_path / "inst", **{c.TOKEN_BANNER: "token made"})


@pytest.mark.parametrize("prefix", ["eyJ", "grd_live_", "has space", 7])
def test_bad_prefix(tmp_path: Path, prefix: object) -> None:
    """A prefix that would make every token read as a JWT or API key, or is not printable text, is refused."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_TOKEN_PREFIX"):
        make_app(tmp_path / "inst", **{c.TOKEN_PREFIX: prefix})


def test_generated_token_that_reads_as_another_kind_is_drawn_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A random draw that starts like a JWT (or an API key) is thrown away."""
    draws = iter(["eyJ" + "a" * 40, "b" * 43, "_live_" + "0" * 42, "c" * 43])
    monkeypatch.setattr(token_module.secrets, "token_urlsafe", lambda n: next(draws))
    assert TokenSettings.from_config({}, key_prefix="grd").new_token() == "b" * 43
    assert TokenSettings.from_config({c.TOKEN_PREFIX: "grd"}, key_prefix="grd").new_token() == "grd" + "c" * 43


# -- GRIDAUTH_TOKEN_PERSIST ------------------------------------------------------------


def test_not_persisted_new_token_each_start(tmp_path: Path, capsys: Any) -> None:
    """PERSIST False: every start prints a new token, the old one stops working, nothing is written."""
    first = make_app(tmp_path / "inst", **{c.TOKEN_PERSIST: False})
    token1 = banner_token(capsys.readouterr().err)
    second = make_app(tmp_path / "inst", **{c.TOKEN_PERSIST: False})
    token2 = banner_token(capsys.readouterr().err)
    assert token1 != token2
    assert status(first, token1) == 200 and status(second, token2) == 200
    assert status(second, token1) == 401
    assert not (tmp_path / "inst").exists()


def test_not_persisted_cannot_be_rotated(tmp_path: Path) -> None:
    """rotate-token says there is no file to rotate."""
    settings = TokenSettings.from_config({c.TOKEN_PERSIST: False, c.TOKEN_FILE: str(tmp_path / "t")}, "grd")
    with pytest.raises(ConfigurationError, match="PERSIST"):
        rotate_token(settings)


# -- GRIDAUTH_TOKEN_FILE_KEY -----------------------------------------------------------


def grip_config(tmp_path: Path) -> Path:
    """A Grip-style ``config.json`` that holds other settings, readable by all (0644)."""
    path = tmp_path / ".grip" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"gateway": {"host": "127.0.0.1", "api": {"port": 8080}}, "model": "x"}))
    path.chmod(0o644)
    return path


def test_file_key_keeps_other_settings(tmp_path: Path, capsys: Any) -> None:
    """The token is written at the dotted path; every other setting is kept; the file becomes 0600."""
    path = grip_config(tmp_path)
    options = {c.TOKEN_FILE: str(path), c.TOKEN_FILE_KEY: "gateway.api.auth_token", c.TOKEN_PREFIX: "grip_"}
    app = make_app(tmp_path / "inst", **options)
    token = banner_token(capsys.readouterr().err)
    data = json.loads(path.read_text())
    assert data == {"gateway": {"host": "127.0.0.1", "api": {"port": 8080, "auth_token": token}}, "model": "x"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert status(app, token) == 200
    assert [n for n in os.listdir(path.parent) if n != "config.json"] == []

    again = make_app(tmp_path / "inst", **options)
    assert capsys.readouterr().err == ""
    assert status(again, token) == 200


def test_file_key_uses_a_token_set_by_hand(tmp_path: Path, capsys: Any) -> None:
    """A token the user put at the path is used as it is; nothing is generated or rewritten."""
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"gateway": {"api": {"auth_token": "your-secret-token-here"}}}))
    path.chmod(0o600)
    before = path.read_bytes()
    app = make_app(tmp_path / "inst", **{c.TOKEN_FILE: str(path), c.TOKEN_FILE_KEY: "gateway.api.auth_token"})
    assert capsys.readouterr().err == ""
    assert status(app, "your-secret-token-here") == 200
    assert path.read_bytes() == before


def test_file_key_created_when_absent(tmp_path: Path, capsys: Any) -> None:
    """No settings file yet: one is made holding only the token at its path."""
    path = tmp_path / "new" / "settings.json"
    make_app(tmp_path / "inst", **{c.TOKEN_FILE: str(path), c.TOKEN_FILE_KEY: "api.token"})
    token = banner_token(capsys.readouterr().err)
    assert json.loads(path.read_text()) == {"api": {"token": token}}


@pytest.mark.parametrize(
    ("content", "match"),
    [('{"gateway": "flat"}', "gateway in the token file"), ("{not json", "not valid JSON"), ("[1]", "JSON object")],
)
def test_file_key_unusable_file_is_left_alone(tmp_path: Path, content: str, match: str) -> None:
    """A settings file we cannot write into safely is an error, and the file is not touched."""
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(ConfigurationError, match=match):
        make_app(tmp_path / "inst", **{c.TOKEN_FILE: str(path), c.TOKEN_FILE_KEY: "gateway.api.auth_token"})
    assert path.read_text() == content


def test_bad_file_key(tmp_path: Path) -> None:
    """The key must be a dotted path."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_TOKEN_FILE_KEY"):
        make_app(tmp_path / "inst", **{c.TOKEN_FILE_KEY: "gateway..api"})


def test_file_key_workers_agree(tmp_path: Path) -> None:
    """Four processes starting at once on one settings file agree on one token, printed once."""
    path = grip_config(tmp_path)
    config = json.dumps(
        {
            c.STORAGE_URI: "memory://",
            c.TOKEN_FILE: str(path),
            c.TOKEN_FILE_KEY: "gateway.api.auth_token",
            c.TOKEN_PREFIX: "grip_",
        }
    )
    env = {k: v for k, v in os.environ.items() if k not in ("GRIDAUTH_API_TOKEN", "GRIDAUTH_AUTH")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(tmp_path / "inst"), config],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    errs = [p.communicate(timeout=60)[1].decode() for p in procs]
    assert all(p.returncode == 0 for p in procs), errs
    token = json.loads(path.read_text())["gateway"]["api"]["auth_token"]
    printed = [e for e in errs if "AUTH TOKEN" in e]
    assert len(printed) == 1 and banner_token(printed[0]) == token
    assert json.loads(path.read_text())["model"] == "x"


def test_rotate_token_inside_settings_file(tmp_path: Path) -> None:
    """``flask gridauth rotate-token`` replaces the token at the dotted path and keeps the rest."""
    path = grip_config(tmp_path)
    options = {c.TOKEN_FILE: str(path), c.TOKEN_FILE_KEY: "gateway.api.auth_token", c.TOKEN_PREFIX: "grip_"}
    app = make_app(tmp_path / "inst", **options)
    old = json.loads(path.read_text())["gateway"]["api"]["auth_token"]
    result = app.test_cli_runner().invoke(gridauth_cli, args=["rotate-token", "--yes"])
    assert result.exit_code == 0, result.output
    data = json.loads(path.read_text())
    new = data["gateway"]["api"]["auth_token"]
    assert new != old and new.startswith("grip_") and result.output.count(new) == 1
    assert data["gateway"]["host"] == "127.0.0.1" and data["model"] == "x"
    assert status(make_app(tmp_path / "inst", **options), new) == 200


# -- a token file others can read ----------------------------------------------------


@pytest.mark.parametrize("file_key", [None, "gateway.api.auth_token"])
def test_readable_token_file_warns_with_its_mode(tmp_path: Path, caplog: Any, file_key: str | None) -> None:
    """A token file readable by group or others is used, with a warning naming its mode, never the token."""
    caplog.set_level("WARNING", logger="flask_gridauth")
    secret = "hand-made-token-0123456789abcdef"
    path = tmp_path / "token.json"
    content = {"gateway": {"api": {"auth_token": secret}}} if file_key else {"token": secret}
    path.write_text(json.dumps(content))
    path.chmod(0o644)
    app = make_app(tmp_path / "inst", **{c.TOKEN_FILE: str(path), c.TOKEN_FILE_KEY: file_key})
    assert status(app, secret) == 200
    messages = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("0644" in m and str(path) in m for m in messages), messages
    assert not any(secret in m for m in messages)


def test_private_token_file_does_not_warn(tmp_path: Path, caplog: Any) -> None:
    """A 0600 token file starts quietly."""
    caplog.set_level("WARNING", logger="flask_gridauth")
    make_app(tmp_path / "inst")
    make_app(tmp_path / "inst")
    assert not [r for r in caplog.records if "mode" in r.getMessage()]


# -- what a configured token may be ----------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["x" * 16, "x" * 4096, "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", "ABCdef0123456789==", "eyXnot-a-jwt-0123456789"],
)
def test_any_printable_token_works(tmp_path: Path, token: str) -> None:
    """16 to 4096 printable ASCII characters without whitespace are a token that works over HTTP."""
    app = make_app(tmp_path / "inst", **{c.API_TOKEN: token})
    assert status(app, token) == 200
    assert status(app, token[:-1] + ("y" if token[-1] != "y" else "z")) == 401


@pytest.mark.parametrize(
    "token",
    [
        "x" * 15,
        "x" * 4097,
        "has a space-0123456789",
        "tab\there-0123456789",
        "caf\u00e9-0123456789abcdef",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl",
        "eyJ-starts-like-a-jwt-0123",
        KEY,
        "grd_test_" + "a" * 48,
        "",
        12345678901234567890,
    ],
)
def test_unusable_configured_token_is_refused(tmp_path: Path, token: object) -> None:
    """A token that is too short or long, not printable ASCII, or read as a JWT or API key is a config error."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_API_TOKEN") as info:
        make_app(tmp_path / "inst", **{c.API_TOKEN: token})
    if isinstance(token, str) and len(token) > 3:
        assert token not in str(info.value)


def test_key_shape_depends_on_the_key_prefix(tmp_path: Path) -> None:
    """Only API keys of the configured prefix collide: with prefix ``acme`` a ``grd_live_`` token is fine."""
    app = make_app(tmp_path / "inst", **{c.API_TOKEN: KEY, c.KEY_PREFIX: "acme"})
    assert status(app, KEY) == 200
    with pytest.raises(ConfigurationError):
        validate_token("acme_live_" + "0" * 48, "here", "acme")


def test_token_file_shaped_like_a_key_is_refused(tmp_path: Path) -> None:
    """A token file holding a key-shaped token is an error naming the file, not the token."""
    path = tmp_path / "token.json"
    path.write_text(json.dumps({"token": KEY}))
    with pytest.raises(ConfigurationError, match="token.json") as info:
        make_app(tmp_path / "inst", **{c.TOKEN_FILE: str(path)})
    assert KEY not in str(info.value)


@pytest.mark.parametrize("prefix", ["Bad_Prefix", "", 3, "x" * 17])
def test_key_prefix_error_is_a_configuration_error(tmp_path: Path, prefix: object) -> None:
    """A bad GRIDAUTH_KEY_PREFIX raises ConfigurationError itself, naming the key."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_KEY_PREFIX"):
        make_app(tmp_path / "inst", **{c.KEY_PREFIX: prefix})
