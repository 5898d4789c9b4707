"""flask_gridauth.client: sign_request, GridSigner, key pairs, and ``flask gridauth keygen``."""

from __future__ import annotations

import base64
import hashlib
import stat
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from click.testing import CliRunner
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from flask import Flask

from flask_gridauth.cli import gridauth_cli
from flask_gridauth.cli_keygen import keygen
from flask_gridauth.client import (
    GridSigner,
    SigningKeyPair,
    generate_keypair,
    load_private_key,
    public_key_of,
    sign_request,
    write_private_key,
)
from flask_gridauth.credentials.signature import load_public_key

from .conftest import build_app

NOW = 1_750_000_000


@pytest.fixture
def key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def raw_public(key: Ed25519PrivateKey) -> bytes:
    """The raw 32-byte public key."""
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def verifies(key: Ed25519PrivateKey, signature_b64: str, message: bytes) -> bool:
    """Whether the signature header verifies ``message`` (checked with cryptography directly)."""
    try:
        Ed25519PublicKey.from_public_bytes(raw_public(key)).verify(base64.b64decode(signature_b64), message)
    except InvalidSignature:
        return False
    return True


def v2_message(ts: str, method: str, host: str, target: str, body: bytes) -> bytes:
    """The DESIGN.md version 2 string, built independently of the library."""
    return f"{ts}\n{method}\n{host}\n{target}\n{hashlib.sha256(body).hexdigest()}".encode()


# -- sign_request -----------------------------------------------------------------


def test_sign_request_v2_headers_and_message(key: Ed25519PrivateKey) -> None:
    """Version 2 (the default): four headers; the signature covers ts, METHOD, host, target and body hash."""
    headers = sign_request(key, "post", "https://API.example.com/orders?id=7&x=%20", b'{"q": 1}', timestamp=NOW)
    assert set(headers) == {"X-Grid-Signature", "X-Grid-Timestamp", "X-Grid-Fingerprint", "X-Grid-Signature-Version"}
    assert headers["X-Grid-Timestamp"] == str(NOW)
    assert headers["X-Grid-Signature-Version"] == "2"
    expected_fp = base64.b64encode(hashlib.sha256(raw_public(key)).digest()).decode().rstrip("=")
    assert headers["X-Grid-Fingerprint"] == expected_fp
    assert len(base64.b64decode(headers["X-Grid-Signature"], validate=True)) == 64
    message = v2_message(str(NOW), "POST", "api.example.com", "/orders?id=7&x=%20", b'{"q": 1}')
    assert verifies(key, headers["X-Grid-Signature"], message)


def test_sign_request_v1_message(key: Ed25519PrivateKey) -> None:
    """Version 1 signs ``<ts><METHOD><path with query><body>`` and works from a bare path."""
    headers = sign_request(key, "GET", "/boards?page=2", b"", version=1, timestamp=NOW)
    assert headers["X-Grid-Signature-Version"] == "1"
    assert verifies(key, headers["X-Grid-Signature"], f"{NOW}GET/boards?page=2".encode())
    full_url = sign_request(key, "PUT", "http://h.example/x", "é", version="1", timestamp=NOW)
    assert verifies(key, full_url["X-Grid-Signature"], f"{NOW}PUT/x".encode() + "é".encode())


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://Example.COM/a", "example.com"),
        ("http://example.com:80/a", "example.com"),
        ("https://example.com:443/a", "example.com"),
        ("https://example.com:8443/a", "example.com:8443"),
        ("http://example.com:443/a", "example.com:443"),
        ("http://127.0.0.1:5000/a", "127.0.0.1:5000"),
        ("http://[::1]:8080/a", "[::1]:8080"),
        ("http://user:pw@example.com/a", "example.com"),
    ],
)
def test_v2_host_is_what_http_clients_send(key: Ed25519PrivateKey, url: str, host: str) -> None:
    """The signed host is lowercase, without userinfo or the scheme's default port."""
    headers = sign_request(key, "GET", url, timestamp=NOW)
    assert verifies(key, headers["X-Grid-Signature"], v2_message(str(NOW), "GET", host, "/a", b""))


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("http://h/", "/"),
        ("http://h", "/"),
        ("http://h/a?", "/a"),
        ("http://h/a/%2F?q=%41#frag", "/a/%2F?q=%41"),
        ("http://h/a?x=1&x=2", "/a?x=1&x=2"),
    ],
)
def test_target_is_the_url_as_given(key: Ed25519PrivateKey, url: str, target: str) -> None:
    """The path and query are signed as given: encoding kept, no fragment, no lone ``?``, ``/`` for empty."""
    headers = sign_request(key, "GET", url, version=1, timestamp=NOW)
    assert verifies(key, headers["X-Grid-Signature"], f"{NOW}GET{target}".encode())


def test_sign_request_defaults_and_prefix(key: Ed25519PrivateKey) -> None:
    """The timestamp defaults to now; ``header_prefix`` renames every header."""
    before = int(time.time())
    headers = sign_request(key, "GET", "http://h/x", header_prefix="X-Acme")
    after = int(time.time())
    assert set(headers) == {"X-Acme-Signature", "X-Acme-Timestamp", "X-Acme-Fingerprint", "X-Acme-Signature-Version"}
    assert before <= int(headers["X-Acme-Timestamp"]) <= after


def test_sign_request_refuses_bad_arguments(key: Ed25519PrivateKey) -> None:
    """Unknown versions, and version 2 without a host, are ValueErrors."""
    with pytest.raises(ValueError, match="version"):
        sign_request(key, "GET", "http://h/x", version=3)
    with pytest.raises(ValueError, match="host"):
        sign_request(key, "GET", "/x", version=2)


# -- private keys -------------------------------------------------------------------


def test_private_key_forms(key: Ed25519PrivateKey) -> None:
    """An object, raw bytes, base64 (str or bytes) and PKCS#8 PEM (str or bytes) all load to the same key."""
    raw = key.private_bytes_raw()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    forms: list[Any] = [key, raw, base64.b64encode(raw).decode(), base64.b64encode(raw), pem, pem.decode()]
    for form in forms:
        assert load_private_key(form).private_bytes_raw() == raw
        assert sign_request(form, "GET", "/x", version=1, timestamp=NOW) == sign_request(
            key, "GET", "/x", version=1, timestamp=NOW
        )
    assert public_key_of(raw) == base64.b64encode(raw_public(key)).decode()


@pytest.mark.parametrize(
    "bad",
    [b"\x01" * 31, b"\x01" * 33, "c2VjcmV0LW5vdC1hLWtleQ==", "not base64 at all!", "é" * 44],
)
def test_bad_private_keys_never_echo_the_secret(bad: bytes | str) -> None:
    """A wrong private key is a ValueError whose message does not contain the input."""
    with pytest.raises(ValueError) as info:
        load_private_key(bad)
    text = bad if isinstance(bad, str) else bad.decode("latin-1")
    assert text not in str(info.value)


def test_non_ed25519_pem_and_wrong_types_are_refused() -> None:
    """A PEM of another key type is a ValueError; a non-key object is a TypeError."""
    x25519 = X25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_private_key(x25519)
    with pytest.raises(TypeError):
        load_private_key(12345)  # type: ignore[arg-type]


def test_generate_keypair() -> None:
    """A new pair: a public key the server accepts, its fingerprint, and a private key that is never shown."""
    pair = generate_keypair()
    assert isinstance(pair, SigningKeyPair)
    encoded, fingerprint = load_public_key(pair.public_key)
    assert encoded == pair.public_key
    assert fingerprint == pair.fingerprint
    assert "private_key" not in repr(pair)
    raw = pair.private_key.private_bytes_raw()
    assert base64.b64encode(raw).decode() not in repr(pair)
    assert load_private_key(pair.private_pem()).private_bytes_raw() == raw
    assert generate_keypair().public_key != pair.public_key


def test_write_private_key_is_0600_and_exclusive(tmp_path: Path) -> None:
    """The key file is created with mode 0600 and never overwritten."""
    pair = generate_keypair()
    path = tmp_path / "key.pem"
    write_private_key(path, pair)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path.read_bytes()).private_bytes_raw() == pair.private_key.private_bytes_raw()
    before = path.read_bytes()
    with pytest.raises(FileExistsError):
        write_private_key(path, generate_keypair())
    assert path.read_bytes() == before


# -- GridSigner ---------------------------------------------------------------------


def test_grid_signer_is_an_auth_class_for_both_libraries(key: Ed25519PrivateKey) -> None:
    """GridSigner is a requests AuthBase and an httpx Auth, and its repr shows no secret."""
    signer = GridSigner(key)
    assert isinstance(signer, requests.auth.AuthBase)
    assert isinstance(signer, httpx.Auth)
    assert base64.b64encode(key.private_bytes_raw()).decode() not in repr(signer)
    assert signer.fingerprint in repr(signer)
    with pytest.raises(ValueError):
        GridSigner(key, version=7)


def test_grid_signer_signs_a_requests_request(key: Ed25519PrivateKey) -> None:
    """A prepared requests request gets v2 headers over its final URL, Host and body."""
    prepared = requests.Request("POST", "http://Api.Example:8080/o rders", params={"q": "a b"}, data=b"xyz").prepare()
    GridSigner(key)(prepared)
    ts = prepared.headers["X-Grid-Timestamp"]
    message = v2_message(ts, "POST", "api.example:8080", "/o%20rders?q=a+b", b"xyz")
    assert verifies(key, prepared.headers["X-Grid-Signature"], message)
    streamed = requests.Request("POST", "http://h/x", data=iter([b"a"])).prepare()
    with pytest.raises(TypeError):
        GridSigner(key)(streamed)


def test_grid_signer_signs_an_httpx_request(key: Ed25519PrivateKey) -> None:
    """An httpx request gets v1 headers over its raw path and a body it streams."""
    request = httpx.Request("PUT", "http://h.example/a%2Fb", params={"k": "v w"}, content=iter([b"pa", b"rt"]))
    flow = GridSigner(key, version=1).sync_auth_flow(request)
    signed = next(flow)
    ts = signed.headers["X-Grid-Timestamp"]
    assert verifies(key, signed.headers["X-Grid-Signature"], f"{ts}PUT/a%2Fb?k=v+w".encode() + b"part")
    assert signed.headers["X-Grid-Signature-Version"] == "1"


# -- flask gridauth keygen ------------------------------------------------------------


def test_keygen_command(tmp_path: Path) -> None:
    """keygen writes a 0600 PEM, prints the public key and fingerprint, and refuses to overwrite."""
    out = tmp_path / "signing.pem"
    result = CliRunner().invoke(keygen, ["--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    private = load_private_key(out.read_bytes())
    public = public_key_of(private)
    encoded, fingerprint = load_public_key(public)
    assert f"public key:  {public}" in result.output
    assert f"fingerprint: {fingerprint}" in result.output
    assert base64.b64encode(private.private_bytes_raw()).decode() not in result.output
    assert "PRIVATE KEY-----" not in result.output
    before = out.read_bytes()
    again = CliRunner().invoke(keygen, ["--out", str(out)])
    assert again.exit_code != 0
    assert "already exists" in again.output
    assert out.read_bytes() == before


def test_keygen_is_a_gridauth_subcommand(tmp_path: Path) -> None:
    """``flask gridauth keygen`` runs from an app's CLI."""
    app: Flask = build_app(str(tmp_path / "instance"))
    out = tmp_path / "k.pem"
    result = app.test_cli_runner().invoke(gridauth_cli, args=["keygen", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "fingerprint: " in result.output
