"""0.2 signed requests: GRIDAUTH_SIGNATURE_REPLAY, the symmetric window, 64-byte secret keys, client-side keygen."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from flask import Flask

from flask_gridauth import ConfigurationError
from flask_gridauth import config as c
from flask_gridauth.client import load_private_key, public_key_of, sign_request

from .conftest import build_app
from .node_support import tweetnacl_dir

NOW = 1_750_000_000
URL = "http://localhost/items"


def signing_app(tmp_path: Path, key: Ed25519PrivateKey, **config: Any) -> Flask:
    """A test app with ``key`` registered for read and write."""
    app = build_app(str(tmp_path / "instance"), **config)
    with app.app_context():
        app.extensions["gridauth"].keys.register_signing_key(
            name="signer", public_key=public_key_of(key), scopes=["read", "write"], owner="alice"
        )
    return app


def set_clock(app: Flask, now: float) -> None:
    """Inject the verifier's clock."""
    app.extensions["gridauth"].signatures.clock = lambda: now


def message(response: Any) -> str:
    """The ``message`` of a JSON error body."""
    return str(response.get_json()["message"])


@pytest.fixture
def key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


# -- GRIDAUTH_SIGNATURE_REPLAY -------------------------------------------------------


def test_default_refuses_every_replay_with_its_own_message(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """By default an identical signed GET is refused the second time, saying why."""
    app = signing_app(tmp_path, key)
    assert app.config[c.SIGNATURE_REPLAY] == "all"
    client = app.test_client()
    headers = sign_request(key, "GET", URL)
    assert client.get("/items", headers=headers).status_code == 200
    again = client.get("/items", headers=headers)
    assert again.status_code == 401 and message(again) == "Signature already used"
    assert again.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("version", ["1", "2"])
def test_unsafe_allows_repeated_safe_requests(tmp_path: Path, key: Ed25519PrivateKey, version: str) -> None:
    """``"unsafe"``: an identical GET (and HEAD) inside one second passes every time."""
    app = signing_app(tmp_path, key, **{c.SIGNATURE_REPLAY: "unsafe"})
    client = app.test_client()
    headers = sign_request(key, "GET", URL, version=version)
    assert [client.get("/items", headers=headers).status_code for _ in range(3)] == [200, 200, 200]
    head = sign_request(key, "HEAD", URL, version=version)
    assert [client.head("/items", headers=head).status_code for _ in range(2)] == [200, 200]


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_unsafe_still_refuses_replays_of_unsafe_methods(tmp_path: Path, key: Ed25519PrivateKey, method: str) -> None:
    """``"unsafe"``: a repeated POST, PUT, PATCH or DELETE is refused with "Signature already used"."""
    app = signing_app(tmp_path, key, **{c.SIGNATURE_REPLAY: "unsafe"})
    client = app.test_client()
    headers = sign_request(key, method, URL, b"order-1")
    assert client.open("/items", method=method, data=b"order-1", headers=headers).status_code == 200
    again = client.open("/items", method=method, data=b"order-1", headers=headers)
    assert again.status_code == 401 and message(again) == "Signature already used"


def test_unsafe_replay_on_redis_across_apps(tmp_path: Path, redis_uri: str, key: Ed25519PrivateKey) -> None:
    """Under ``"unsafe"`` two processes sharing Redis both accept a repeated GET and refuse a repeated POST."""
    first = signing_app(tmp_path / "a", key, GRIDAUTH_STORAGE_URI=redis_uri, **{c.SIGNATURE_REPLAY: "unsafe"})
    second = build_app(str(tmp_path / "b"), GRIDAUTH_STORAGE_URI=redis_uri, **{c.SIGNATURE_REPLAY: "unsafe"})
    get = sign_request(key, "GET", URL)
    assert first.test_client().get("/items", headers=get).status_code == 200
    assert second.test_client().get("/items", headers=get).status_code == 200
    post = sign_request(key, "POST", URL, b"x")
    assert first.test_client().post("/items", data=b"x", headers=post).status_code == 200
    assert message(second.test_client().post("/items", data=b"x", headers=post)) == "Signature already used"


def test_a_forged_replay_is_still_generic(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Only a valid signature can earn the replay message: a bad one reusing used headers is generic."""
    app = signing_app(tmp_path, key)
    client = app.test_client()
    headers = sign_request(key, "POST", URL, b"a")
    assert client.post("/items", data=b"a", headers=headers).status_code == 200
    assert message(client.post("/items", data=b"b", headers=headers)) == "Authentication required"


@pytest.mark.parametrize("value", ["none", "ALL", None, True])
def test_bad_replay_mode(tmp_path: Path, value: object) -> None:
    """Anything but "all" or "unsafe" is a configuration error."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_SIGNATURE_REPLAY"):
        build_app(str(tmp_path), **{c.SIGNATURE_REPLAY: value})


# -- the window is symmetric -----------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.25, 0.999])
@pytest.mark.parametrize("tolerance", [5, 30])
def test_window_is_symmetric(tmp_path: Path, key: Ed25519PrivateKey, fraction: float, tolerance: int) -> None:
    """Exactly ``tolerance`` seconds early or late pass; one more either way does not, at any instant of a second."""
    app = signing_app(tmp_path, key, **{c.SIGNATURE_TOLERANCE: tolerance})
    set_clock(app, NOW + fraction)
    client = app.test_client()
    results = {
        delta: client.get("/items", headers=sign_request(key, "GET", URL, timestamp=NOW + delta)).status_code
        for delta in (-tolerance - 1, -tolerance, tolerance, tolerance + 1)
    }
    assert results == {-tolerance - 1: 401, -tolerance: 200, tolerance: 200, tolerance + 1: 401}


# -- 64-byte secret keys ---------------------------------------------------------------


def secret_key_64(key: Ed25519PrivateKey) -> bytes:
    """What tweetnacl's ``secretKey``, libsodium's ``sk`` and Go's ``ed25519.PrivateKey`` hold: seed + public."""
    return key.private_bytes_raw() + base64.b64decode(public_key_of(key))


def test_64_byte_secret_key_forms(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Raw, base64 str and base64 bytes of the 64-byte form load to the same key, and its signatures verify."""
    full = secret_key_64(key)
    for form in (full, bytearray(full), base64.b64encode(full).decode(), base64.b64encode(full)):
        assert load_private_key(form).private_bytes_raw() == key.private_bytes_raw()
    app = signing_app(tmp_path, key)
    headers = sign_request(base64.b64encode(full).decode(), "POST", URL, b"{}")
    assert app.test_client().post("/items", data=b"{}", headers=headers).status_code == 200


def test_node_tweetnacl_output_loads() -> None:
    """A key pair printed by the seed document's tweetnacl snippet signs requests we accept (node required in CI)."""
    folder = tweetnacl_dir()
    script = (
        "const nacl = require('tweetnacl'); const kp = nacl.sign.keyPair();"
        "console.log('private:', Buffer.from(kp.secretKey).toString('base64'));"
        "console.log('public:', Buffer.from(kp.publicKey).toString('base64'));"
    )
    out = subprocess.run(["node", "-e", script], cwd=folder, capture_output=True, text=True, timeout=60, check=True)
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    private = load_private_key(lines["private"])
    assert public_key_of(private) == lines["public"]


def test_inconsistent_64_byte_key_is_refused_without_echo(key: Ed25519PrivateKey) -> None:
    """A 64-byte key whose second half is not the seed's public key is a ValueError that shows no key material."""
    other = Ed25519PrivateKey.generate()
    bad = key.private_bytes_raw() + base64.b64decode(public_key_of(other))
    for form in (bad, base64.b64encode(bad).decode()):
        with pytest.raises(ValueError, match="not the public key") as info:
            load_private_key(form)
        text = str(info.value)
        for secret in (base64.b64encode(bad).decode(), base64.b64encode(key.private_bytes_raw()).decode()):
            assert secret not in text and secret[:16] not in text
        assert bad.hex()[:16] not in text


@pytest.mark.parametrize("size", [31, 33, 48, 63, 65, 96])
def test_other_lengths_are_refused(size: int) -> None:
    """Only 32 and 64 bytes are keys."""
    with pytest.raises(ValueError, match="32-byte seed or the 64-byte"):
        load_private_key(base64.b64encode(os.urandom(size)).decode())


# -- keygen is client-side -------------------------------------------------------------

SERVER_APP = textwrap.dedent(
    """
    import os
    from flask import Flask
    from flask_gridauth import GridAuth
    app = Flask(__name__, instance_path=os.path.abspath("instance"))
    GridAuth(app)
    """
)


def test_keygen_does_not_start_the_server_side(tmp_path: Path) -> None:
    """``flask gridauth keygen`` on a fresh instance folder: no banner, no token file, no instance folder."""
    (tmp_path / "server.py").write_text(SERVER_APP)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GRIDAUTH_", "FLASK_"))}
    flask = Path(sys.executable).with_name("flask")
    proc = subprocess.run(
        [str(flask), "--app", "server", "gridauth", "keygen", "--out", "k.pem"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "AUTH TOKEN" not in proc.stdout + proc.stderr
    assert proc.stderr == ""
    assert "public key:" in proc.stdout and "fingerprint:" in proc.stdout
    assert not (tmp_path / "instance").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == ["k.pem", "server.py"]
    assert load_private_key((tmp_path / "k.pem").read_bytes())

    # The server-side commands of the same group still load the app.
    listed = subprocess.run(
        [str(flask), "--app", "server", "gridauth", "list-keys"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert listed.returncode == 0 and "No keys." in listed.stdout
    assert "AUTH TOKEN" in listed.stderr and (tmp_path / "instance" / "gridauth-token.json").exists()
