"""Ed25519-signed requests: wire formats, every refusal, replay, registration and the examples."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask, request
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import make_server
from werkzeug.test import Client

from flask_gridauth.client import GridSigner, generate_keypair, public_key_of, sign_request, write_private_key
from flask_gridauth.credentials import signature as sigmod
from flask_gridauth.errors import ConfigurationError, InvalidRequest
from flask_gridauth.records import KeyRecord, utcnow

from .conftest import TOKEN, bearer, build_app, load_example

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
VECTORS = Path(__file__).resolve().parent / "vectors" / "wycheproof_ed25519_test.json"
NOW = 1_750_000_000


# -- helpers ------------------------------------------------------------------


#: The documented snippet (docs/guide/signed-requests.rst includes it from examples/sign_client.py).
snippet = load_example("sign_client")


def add_routes(app: Flask) -> Flask:
    """Routes that show what the view sees: the body, a path parameter, a namespaced scope."""

    @app.route("/echo", methods=["GET", "POST", "PUT"])
    def echo() -> dict[str, Any]:
        return {"body": request.get_data(as_text=True), "json": request.get_json(silent=True)}

    @app.route("/echo/<path:rest>", methods=["GET", "POST"])
    def echo_path(rest: str) -> dict[str, Any]:
        return {"rest": rest, "args": request.args.to_dict()}

    return app


@pytest.fixture
def sapp(tmp_path: Path) -> Flask:
    """A memory-backed test app with the echo routes."""
    return add_routes(build_app(str(tmp_path / "instance")))


@pytest.fixture
def key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def register(app: Flask, key: Ed25519PrivateKey, scopes: list[str] | None = None, **kwargs: Any) -> KeyRecord:
    """Register ``key``'s public key through the Python API."""
    with app.app_context():
        record: KeyRecord = app.extensions["gridauth"].keys.register_signing_key(
            name=kwargs.pop("name", "signer"),
            public_key=public_key_of(key),
            scopes=scopes or ["read", "write"],
            owner=kwargs.pop("owner", "alice"),
            **kwargs,
        )
    return record


def fix_clock(app: Flask, now: float = NOW) -> None:
    """Freeze the verifier's clock so timestamp tests never depend on the second they run in."""
    app.extensions["gridauth"].signatures.clock = lambda: now


def fp(key: Ed25519PrivateKey) -> str:
    """The key's fingerprint, computed independently of the library."""
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(hashlib.sha256(raw).digest()).decode().rstrip("=")


def v1_headers(key: Ed25519PrivateKey, ts: str, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    """Version 1 headers over an arbitrary timestamp string."""
    message = ts.encode("utf-8") + method.encode() + path.encode() + body
    return {
        "X-Grid-Signature": base64.b64encode(key.sign(message)).decode(),
        "X-Grid-Timestamp": ts,
        "X-Grid-Fingerprint": fp(key),
    }


def unauthorized(response: Any) -> bool:
    """A generic JSON 401 with ``WWW-Authenticate``."""
    return (
        response.status_code == 401
        and response.get_json()
        == {
            "object": "error",
            "status": 401,
            "code": "unauthorized",
            "message": "Authentication required",
        }
        and response.headers.get("WWW-Authenticate") == "Bearer"
    )


def replayed(response: Any) -> bool:
    """A JSON 401 with ``WWW-Authenticate`` that says the signature was used before."""
    return (
        response.status_code == 401
        and response.get_json()
        == {"object": "error", "status": 401, "code": "unauthorized", "message": "Signature already used"}
        and response.headers.get("WWW-Authenticate") == "Bearer"
    )


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Run ``app`` on a real HTTP server on 127.0.0.1 and a free port; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


# -- success paths ------------------------------------------------------------


def test_documented_snippet_through_test_client(make_app: Callable[..., Flask], key: Ed25519PrivateKey) -> None:
    """The documented version 1 snippet is accepted on every backend, and the view can read the body."""
    app = add_routes(make_app())
    record = register(app, key)
    body = b'{"symbol": "ACME", "quantity": 10}'
    headers = snippet.signed_headers(key, "POST", "/echo?side=buy", body)
    response = app.test_client().post("/echo?side=buy", data=body, headers=headers, content_type="application/json")
    assert response.status_code == 200
    assert response.get_json() == {"body": body.decode(), "json": {"symbol": "ACME", "quantity": 10}}
    me = app.test_client().get("/api/v1/me", headers=snippet.signed_headers(key, "GET", "/api/v1/me"))
    assert me.status_code == 200
    assert me.get_json()["kind"] == "signature"
    assert me.get_json()["id"] == record.id
    assert me.get_json()["owner"] == "alice"
    with app.app_context():
        assert app.extensions["gridauth"].keys.get(record.id).last_used_at is not None


def test_view_reads_form_and_json_after_verification(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """The verified body is handed back to the view: form fields and JSON parse as usual."""
    register(sapp, key)

    @sapp.post("/form")
    def form() -> dict[str, Any]:
        return {"form": request.form.to_dict(), "raw": request.get_data(as_text=True)}

    client = sapp.test_client()
    body = b"symbol=ACME&quantity=10"
    headers = {
        **sign_request(key, "POST", "http://localhost/form", body),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    response = client.post("/form", data=body, headers=headers)
    assert response.status_code == 200
    assert response.get_json()["form"] == {"symbol": "ACME", "quantity": "10"}
    body = b'{"a": [1, 2]}'
    headers = sign_request(key, "POST", "http://localhost/echo", body)
    response = client.post("/echo", data=body, headers=headers, content_type="application/json")
    assert response.get_json() == {"body": body.decode(), "json": {"a": [1, 2]}}


def test_client_helper_through_test_client(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """``sign_request`` (version 2 by default) is accepted."""
    register(sapp, key)
    headers = sign_request(key, "PUT", "http://localhost/echo?a=1&b=%20x", b"payload")
    response = sapp.test_client().put("/echo?a=1&b=%20x", data=b"payload", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["body"] == "payload"


def test_real_server_with_snippet_requests_and_httpx(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """Over real HTTP: the snippet, GridSigner with requests and with httpx, both versions, encoded paths."""
    register(sapp, key)
    with serve(sapp) as base:
        body = json.dumps({"n": 1}).encode()
        response = requests.post(
            base + "/echo", data=body, headers=snippet.signed_headers(key, "POST", "/echo", body), timeout=10
        )
        assert response.status_code == 200, response.text
        with requests.Session() as session:
            for version in (1, 2):
                session.auth = GridSigner(key, version=version)
                got = session.post(base + "/echo", json={"v": version}, timeout=10)
                assert got.status_code == 200, got.text
                assert got.json()["json"] == {"v": version}
                got = session.get(base + f"/echo/a%2Fb%7E/c?x=%20y&v={version}", timeout=10)
                assert got.status_code == 200, got.text
                assert got.json() == {"rest": "a/b~/c", "args": {"x": " y", "v": str(version)}}
        for version in (1, 2):
            with httpx.Client(base_url=base, auth=GridSigner(key, version=version), timeout=10) as client:
                got = client.post("/echo", content=b"raw bytes " + str(version).encode())
                assert got.status_code == 200, got.text
                assert got.json()["body"] == f"raw bytes {version}"
                got = client.get("/echo/%C3%A9t%C3%A9", params={"q": "a b", "v": version})
                assert got.status_code == 200, got.text
                assert got.json()["rest"] == "été"


def test_httpx_streamed_body_is_signed(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A body httpx streams (a generator) is read before signing and still reaches the view."""
    register(sapp, key)

    def chunks() -> Iterator[bytes]:
        yield b"first,"
        yield b"second"

    with serve(sapp) as base, httpx.Client(base_url=base, auth=GridSigner(key), timeout=10) as client:
        got = client.post("/echo", content=chunks())
    assert got.status_code == 200, got.text
    assert got.json()["body"] == "first,second"


def test_absolute_form_request_target(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A request line in absolute form (as sent to a proxy) signs the path and query only."""
    register(sapp, key)
    with serve(sapp) as base:
        host, port = base.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            headers = sign_request(key, "GET", base + "/echo?q=1")
            conn.request("GET", base + "/echo?q=1", headers=headers)
            response = conn.getresponse()
            assert response.status == 200, response.read()
            response.read()
        finally:
            conn.close()


def test_mounted_under_a_prefix(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """Under DispatcherMiddleware the full path the client sent (with the mount prefix) is signed."""
    register(sapp, key)
    client = Client(DispatcherMiddleware(Flask("root"), {"/api": sapp}))
    headers = sign_request(key, "GET", "http://localhost/api/echo?x=1")
    assert client.get("/api/echo?x=1", headers=headers).status_code == 200
    wrong = sign_request(key, "GET", "http://localhost/echo?x=1")
    assert client.get("/api/echo?x=1", headers=wrong).status_code == 401


def test_prefix_stripped_by_a_proxy_is_restored(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """When a proxy strips the prefix (SCRIPT_NAME set, raw target without it), the prefix is put back."""
    register(sapp, key)
    headers = sign_request(key, "GET", "http://localhost/api/echo")
    response = sapp.test_client().get("/echo", headers=headers, environ_overrides={"SCRIPT_NAME": "/api"})
    assert response.status_code == 200


def test_path_rebuilt_without_raw_uri(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A server that gives no RAW_URI/REQUEST_URI: the target is rebuilt from PATH_INFO, re-quoted."""
    register(sapp, key)
    headers = sign_request(key, "GET", "http://localhost/echo/a%20b%25c?q=%41")
    response = sapp.test_client().get(
        "/echo/a%20b%25c?q=%41", headers=headers, environ_overrides={"RAW_URI": "", "REQUEST_URI": ""}
    )
    assert response.status_code == 200
    assert response.get_json() == {"rest": "a b%c", "args": {"q": "A"}}


def test_trailing_question_mark_is_not_signed(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A request sent as ``/echo?`` verifies against the target ``/echo``."""
    register(sapp, key)
    headers = sign_request(key, "GET", "http://localhost/echo")
    response = sapp.test_client().get("/echo?", headers=headers, environ_overrides={"RAW_URI": "/echo?"})
    assert response.status_code == 200


def test_custom_header_prefix(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """``GRIDAUTH_SIGNATURE_HEADER_PREFIX`` renames the headers; the default names are then not signed headers."""
    app = build_app(str(tmp_path), GRIDAUTH_SIGNATURE_HEADER_PREFIX="X-Acme-Sig")
    register(app, key)
    client = app.test_client()
    headers = sign_request(key, "GET", "http://localhost/items", header_prefix="X-Acme-Sig")
    assert client.get("/items", headers=headers).status_code == 200
    assert client.get("/items", headers=sign_request(key, "GET", "http://localhost/items")).status_code == 401


# -- tampering ----------------------------------------------------------------

ORIGINAL = ("POST", "/echo/ab?q=abc", b'{"n": 1}')
TAMPERED = {
    "body": ("POST", "/echo/ab?q=abc", b'{"n": 2}'),
    "body appended": ("POST", "/echo/ab?q=abc", b'{"n": 1} '),
    "path": ("POST", "/echo/ac?q=abc", b'{"n": 1}'),
    "path encoding": ("POST", "/echo/%61b?q=abc", b'{"n": 1}'),
    "query": ("POST", "/echo/ab?q=abd", b'{"n": 1}'),
    "query dropped byte": ("POST", "/echo/ab?q=ab", b'{"n": 1}'),
    "method": ("GET", "/echo/ab?q=abc", b'{"n": 1}'),
}


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize("change", sorted(TAMPERED))
def test_single_byte_changes_are_refused(sapp: Flask, key: Ed25519PrivateKey, version: str, change: str) -> None:
    """A signature for one request does not verify for a request one byte different."""
    register(sapp, key)
    method, path, body = ORIGINAL
    headers = sign_request(key, method, "http://localhost" + path, body, version=version)
    t_method, t_path, t_body = TAMPERED[change]
    response = sapp.test_client().open(t_path, method=t_method, data=t_body, headers=headers)
    assert unauthorized(response)


@pytest.mark.parametrize("version", ["1", "2"])
@pytest.mark.parametrize(("delta", "status"), [(-31, 401), (31, 401), (-29, 200), (29, 200), (0, 200)])
def test_timestamp_tolerance(sapp: Flask, key: Ed25519PrivateKey, version: str, delta: int, status: int) -> None:
    """Timestamps within 30 s of the server clock either way pass; 31 s away is 401."""
    register(sapp, key)
    fix_clock(sapp)
    headers = sign_request(key, "GET", "http://localhost/items", version=version, timestamp=NOW + delta)
    assert sapp.test_client().get("/items", headers=headers).status_code == status


def test_tolerance_is_configurable(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """``GRIDAUTH_SIGNATURE_TOLERANCE`` moves the boundary."""
    app = build_app(str(tmp_path), GRIDAUTH_SIGNATURE_TOLERANCE=5)
    register(app, key)
    fix_clock(app)
    client = app.test_client()
    assert (
        client.get("/items", headers=sign_request(key, "GET", "http://localhost/items", timestamp=NOW - 5)).status_code
        == 200
    )
    assert (
        client.get("/items", headers=sign_request(key, "GET", "http://localhost/items", timestamp=NOW - 6)).status_code
        == 401
    )


ODD_TIMESTAMPS = {
    "plus sign": f"+{NOW}",
    "minus sign": f"-{NOW}",
    "dot": f"{NOW}.0",
    "leading space": f" {NOW}",
    "trailing space": f"{NOW} ",
    "tab": f"{NOW}\t",
    "underscore": f"{NOW:_}",
    "exponent": "1.75e9",
    "integer exponent": "175e7",
    "hex": hex(NOW),
    "leading zero": f"0{NOW}",
    "empty": "",
    "arabic-indic digits": str(NOW).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
    "fullwidth digits": str(NOW).translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    "superscript digits": str(NOW).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")),
    "milliseconds": str(NOW * 1000),
}


@pytest.mark.parametrize("form", sorted(ODD_TIMESTAMPS))
def test_odd_timestamp_forms_are_refused(sapp: Flask, key: Ed25519PrivateKey, form: str) -> None:
    """Only plain ASCII decimal seconds are a timestamp, even when the signature over that text is valid."""
    register(sapp, key)
    fix_clock(sapp)
    ts = ODD_TIMESTAMPS[form]
    headers = v1_headers(key, ts, "GET", "/items")
    timestamp = headers.pop("X-Grid-Timestamp")
    # Pass the value straight into the WSGI environ: some forms are not latin-1 header text.
    response = sapp.test_client().get("/items", headers=headers, environ_overrides={"HTTP_X_GRID_TIMESTAMP": timestamp})
    assert unauthorized(response)


def test_plain_timestamp_with_the_same_setup_passes(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """The control for the odd forms: the same request with a plain timestamp is accepted."""
    register(sapp, key)
    fix_clock(sapp)
    headers = v1_headers(key, str(NOW), "GET", "/items")
    timestamp = headers.pop("X-Grid-Timestamp")
    response = sapp.test_client().get("/items", headers=headers, environ_overrides={"HTTP_X_GRID_TIMESTAMP": timestamp})
    assert response.status_code == 200


def _signature_with(key: Ed25519PrivateKey, chars: str) -> tuple[dict[str, str], str]:
    """Headers whose base64 signature contains one of ``chars`` (tries a bounded number of paths)."""
    for i in range(500):
        path = f"/echo?i={i}"
        headers = sign_request(key, "GET", "http://localhost" + path)
        if any(c in headers["X-Grid-Signature"] for c in chars):
            return headers, path
    raise AssertionError("no signature with those characters in 500 tries")


def _mutations(signature_b64: str) -> dict[str, str]:
    raw = base64.b64decode(signature_b64)
    last = signature_b64[85]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sloppy = alphabet[alphabet.index(last) + 1]  # same bytes, non-zero padding bits
    return {
        "appended junk": signature_b64 + "AAAA",
        "appended text": signature_b64 + "x",
        "63 bytes": base64.b64encode(raw[:63]).decode(),
        "65 bytes": base64.b64encode(raw + b"\0").decode(),
        "all zeros": base64.b64encode(bytes(64)).decode(),
        "no padding": signature_b64.rstrip("="),
        "non-canonical padding bits": signature_b64[:85] + sloppy + "==",
        "leading space": " " + signature_b64,
        "embedded newline": signature_b64[:40] + "\n" + signature_b64[40:],
        "hex": raw.hex(),
        "empty": "",
        "flipped bit": base64.b64encode(bytes([raw[0] ^ 1]) + raw[1:]).decode(),
    }


@pytest.mark.parametrize(
    "mutation",
    sorted(_mutations(base64.b64encode(bytes(range(64))).decode())),
)
def test_malformed_signatures_are_refused(sapp: Flask, key: Ed25519PrivateKey, mutation: str) -> None:
    """Junk, wrong lengths, all zeros and second spellings of a valid signature are 401."""
    register(sapp, key)
    headers, path = _signature_with(key, "ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # any signature will do
    value = _mutations(headers.pop("X-Grid-Signature"))[mutation]
    # Straight into the environ: some mutations are not valid header text for the test client.
    response = sapp.test_client().get(path, headers=headers, environ_overrides={"HTTP_X_GRID_SIGNATURE": value})
    assert unauthorized(response)


def test_urlsafe_alphabet_is_refused(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A valid signature spelled in the URL-safe alphabet is 401; the standard spelling then passes."""
    register(sapp, key)
    headers, path = _signature_with(key, "+/")
    standard = headers["X-Grid-Signature"]
    headers["X-Grid-Signature"] = standard.replace("+", "-").replace("/", "_")
    client = sapp.test_client()
    assert unauthorized(client.get(path, headers=headers))
    headers["X-Grid-Signature"] = standard
    assert client.get(path, headers=headers).status_code == 200


@pytest.mark.parametrize(
    "missing",
    [
        ("X-Grid-Signature",),
        ("X-Grid-Timestamp",),
        ("X-Grid-Fingerprint",),
        ("X-Grid-Signature", "X-Grid-Timestamp"),
        ("X-Grid-Signature", "X-Grid-Fingerprint"),
    ],
)
def test_missing_headers_are_401(sapp: Flask, key: Ed25519PrivateKey, missing: tuple[str, ...]) -> None:
    """A signed request missing any of its headers is a generic 401, never anonymous."""
    register(sapp, key)
    headers = sign_request(key, "GET", "http://localhost/items")
    for name in missing:
        del headers[name]
    assert unauthorized(sapp.test_client().get("/items", headers=headers))


@pytest.mark.parametrize(
    "fingerprint",
    ["", "short", "A" * 44, "A" * 43 + "=", "B" * 43, "-" * 43, "é" * 43, "AAAA AAAA"],
)
def test_malformed_fingerprints_are_401(sapp: Flask, key: Ed25519PrivateKey, fingerprint: str) -> None:
    """A fingerprint that is not 43 characters of canonical unpadded base64 is 401."""
    register(sapp, key)
    headers = sign_request(key, "GET", "http://localhost/items")
    headers.pop("X-Grid-Fingerprint")
    response = sapp.test_client().get(
        "/items", headers=headers, environ_overrides={"HTTP_X_GRID_FINGERPRINT": fingerprint}
    )
    assert unauthorized(response)


@pytest.mark.parametrize("version", ["0", "3", "", "v2", " 2", "2.0", "1\n"])
def test_unknown_versions_are_401(sapp: Flask, key: Ed25519PrivateKey, version: str) -> None:
    """Only versions 1 and 2 exist."""
    register(sapp, key)
    headers = sign_request(key, "GET", "http://localhost/items", version=2)
    headers.pop("X-Grid-Signature-Version")
    response = sapp.test_client().get(
        "/items", headers=headers, environ_overrides={"HTTP_X_GRID_SIGNATURE_VERSION": version}
    )
    assert unauthorized(response)


def test_absent_version_means_version_1(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """Without ``X-Grid-Signature-Version`` the v1 string is verified, and a v2 signature fails."""
    register(sapp, key)
    client = sapp.test_client()
    v2 = sign_request(key, "GET", "http://localhost/items?a=1", version=2)
    v2.pop("X-Grid-Signature-Version")
    assert unauthorized(client.get("/items?a=1", headers=v2))
    v1 = sign_request(key, "GET", "http://localhost/items?a=2", version=1)
    v1.pop("X-Grid-Signature-Version")
    assert client.get("/items?a=2", headers=v1).status_code == 200


def test_versions_config_restricts(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """``GRIDAUTH_SIGNATURE_VERSIONS = ("2",)`` refuses version 1."""
    app = build_app(str(tmp_path), GRIDAUTH_SIGNATURE_VERSIONS=("2",))
    register(app, key)
    client = app.test_client()
    assert unauthorized(client.get("/items", headers=sign_request(key, "GET", "http://localhost/items", version=1)))
    assert (
        client.get("/items", headers=sign_request(key, "GET", "http://localhost/items", version=2)).status_code == 200
    )


def test_signed_request_with_another_credential_is_401(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A signed request that also carries a bearer token or an x-api-key is refused (one credential)."""
    register(sapp, key)
    client = sapp.test_client()
    headers = sign_request(key, "GET", "http://localhost/items")
    assert unauthorized(client.get("/items", headers={**headers, **bearer(TOKEN)}))
    assert unauthorized(client.get("/items", headers={**headers, "x-api-key": "grd_live_" + "0" * 48}))


# -- v1 vs v2 -----------------------------------------------------------------


def test_v1_boundary_slide_after_use_is_401(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """Bytes slid from the query into the body give the same v1 string; the replay cache refuses it."""
    register(sapp, key)
    client = sapp.test_client()
    body = b"cd"
    headers = snippet.signed_headers(key, "POST", "/echo?q=ab", body)
    ts = headers["X-Grid-Timestamp"]
    # The slid request has exactly the same v1 signed string.
    assert ts.encode() + b"POST/echo?q=ab" + b"cd" == ts.encode() + b"POST/echo?q=a" + b"bcd"
    assert client.post("/echo?q=ab", data=body, headers=headers).status_code == 200
    slid = client.post("/echo?q=a", data=b"bcd", headers=headers)
    assert replayed(slid)


def test_v2_separates_query_and_body(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A v2 signature never verifies a slid request, even one never seen before."""
    register(sapp, key)
    headers = sign_request(key, "POST", "http://localhost/echo?q=ab", b"cd", version=2)
    assert unauthorized(sapp.test_client().post("/echo?q=a", data=b"bcd", headers=headers))


def test_v2_with_a_different_host_is_401(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """v2 binds the Host: the same headers sent to another host fail; v1 does not sign the host."""
    register(sapp, key)
    client = sapp.test_client()
    v2 = sign_request(key, "GET", "http://api.example.com/items", version=2)
    assert unauthorized(client.get("/items", headers=v2, base_url="http://evil.example.com"))
    v2 = sign_request(key, "GET", "http://api.example.com/items?x=1", version=2)
    assert client.get("/items?x=1", headers=v2, base_url="http://API.example.com").status_code == 200
    v1 = sign_request(key, "GET", "/items", version=1)
    assert client.get("/items", headers=v1, base_url="http://evil.example.com").status_code == 200


def test_v2_without_host_is_401(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A v2 request with no Host header cannot be verified."""
    register(sapp, key)
    headers = sign_request(key, "GET", "http://localhost/items", version=2)
    response = sapp.test_client().get("/items", headers=headers, environ_overrides={"HTTP_HOST": ""})
    assert unauthorized(response)


# -- replay -------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_replay_is_refused_on_every_backend(
    make_app: Callable[..., Flask], key: Ed25519PrivateKey, version: str
) -> None:
    """The same signed request twice: 200, then 401 (memory, SQLite, Redis)."""
    app = add_routes(make_app())
    register(app, key)
    client = app.test_client()
    headers = sign_request(key, "POST", "http://localhost/echo", b"order", version=version)
    assert client.post("/echo", data=b"order", headers=headers).status_code == 200
    assert replayed(client.post("/echo", data=b"order", headers=headers))


def test_replay_across_two_apps_sharing_redis(tmp_path: Path, redis_uri: str, key: Ed25519PrivateKey) -> None:
    """A signature used on one process is refused on another that shares the Redis."""
    first = build_app(str(tmp_path / "a"), GRIDAUTH_STORAGE_URI=redis_uri)
    second = build_app(str(tmp_path / "b"), GRIDAUTH_STORAGE_URI=redis_uri)
    register(first, key)
    headers = sign_request(key, "GET", "http://localhost/items")
    assert first.test_client().get("/items", headers=headers).status_code == 200
    assert replayed(second.test_client().get("/items", headers=headers))
    fresh = sign_request(key, "GET", "http://localhost/items?again=1")
    assert second.test_client().get("/items?again=1", headers=fresh).status_code == 200


def test_refused_signatures_do_not_fill_the_replay_cache(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A request refused for a bad signature does not burn the signature: the genuine request still passes."""
    register(sapp, key)
    client = sapp.test_client()
    headers = sign_request(key, "POST", "http://localhost/echo", b"genuine")
    assert unauthorized(client.post("/echo", data=b"forged", headers=headers))
    assert client.post("/echo", data=b"genuine", headers=headers).status_code == 200


# -- keys and scopes ----------------------------------------------------------


def test_unknown_fingerprint_is_401(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A well-formed signature by a key nobody registered is 401."""
    headers = sign_request(key, "GET", "http://localhost/items")
    assert unauthorized(sapp.test_client().get("/items", headers=headers))


def test_revoked_and_expired_keys_are_401(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A revoked or expired signing key is 401; only a valid signer reads why."""
    record = register(sapp, key)
    client = sapp.test_client()
    with sapp.app_context():
        sapp.extensions["gridauth"].keys.revoke(record.id)
    response = client.get("/items", headers=sign_request(key, "GET", "http://localhost/items"))
    assert response.status_code == 401
    assert response.get_json()["message"] == "API key has been revoked"
    forged = sign_request(Ed25519PrivateKey.generate(), "GET", "http://localhost/items?x=1")
    forged["X-Grid-Fingerprint"] = fp(key)
    assert unauthorized(client.get("/items?x=1", headers=forged))

    other = Ed25519PrivateKey.generate()
    expiring = register(sapp, other, name="expiring")
    sapp.extensions["gridauth"].storage.update(expiring.id, {"expires_at": utcnow().replace(year=2020)})
    response = client.get("/items", headers=sign_request(other, "GET", "http://localhost/items"))
    assert response.status_code == 401
    assert response.get_json()["message"] == "API key has expired"


def test_api_key_hash_is_not_a_fingerprint(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A fingerprint that matches an API key's lookup (wrong type) is never treated as a signing key."""
    from .conftest import create_key

    record, _ = create_key(sapp, ["read"])
    headers = sign_request(key, "GET", "http://localhost/items")
    headers["X-Grid-Fingerprint"] = base64.b64encode(bytes.fromhex(record.lookup)).decode().rstrip("=")
    assert unauthorized(sapp.test_client().get("/items", headers=headers))


def test_read_only_key_on_a_write_route_is_403(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """A signing key with ``read`` signs GETs but gets 403 on a POST."""
    register(sapp, key, scopes=["read"])
    client = sapp.test_client()
    assert client.get("/items", headers=sign_request(key, "GET", "http://localhost/items")).status_code == 200
    response = client.post("/items", data=b"{}", headers=sign_request(key, "POST", "http://localhost/items", b"{}"))
    assert response.status_code == 403
    assert response.get_json()["message"] == "Missing required scope: write"


def test_namespaced_scope(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """Scopes of a signing key work like an API key's: ``holdings:write`` opens /holdings."""
    register(sapp, key, scopes=["holdings:write"])
    headers = sign_request(key, "POST", "http://localhost/holdings", b"{}")
    assert sapp.test_client().post("/holdings", data=b"{}", headers=headers).status_code == 200


# -- bodies, storage, logs ----------------------------------------------------


def test_body_over_max_content_length_is_413(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Above ``MAX_CONTENT_LENGTH`` a signed request is a JSON 413; at the limit it passes."""
    app = add_routes(build_app(str(tmp_path), MAX_CONTENT_LENGTH=1024))
    register(app, key)
    client = app.test_client()
    big = b"x" * 1025
    response = client.post("/echo", data=big, headers=sign_request(key, "POST", "http://localhost/echo", big))
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"
    exact = b"y" * 1024
    response = client.post("/echo", data=exact, headers=sign_request(key, "POST", "http://localhost/echo", exact))
    assert response.status_code == 200


def test_chunked_body_over_the_limit_is_413(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """A body sent without Content-Length (chunked) is bounded too, over real HTTP."""
    app = add_routes(build_app(str(tmp_path), MAX_CONTENT_LENGTH=1024))
    register(app, key)
    body = b"z" * 4000
    headers = sign_request(key, "POST", "http://localhost/echo", body, version=1)

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 500):
            yield body[i : i + 500]

    exact = b"e" * 1024
    exact_headers = sign_request(key, "POST", "http://localhost/echo", exact, version=1)
    with serve(app) as base:
        response = requests.post(base + "/echo", data=chunks(), headers=headers, timeout=10)
        assert response.status_code == 413
        assert response.json()["code"] == "payload_too_large"
        response = requests.post(
            base + "/echo", data=iter([exact[:600], exact[600:]]), headers=exact_headers, timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()["body"] == exact.decode()


def test_default_body_bound_without_max_content_length(
    sapp: Flask, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``MAX_CONTENT_LENGTH`` unset, signed bodies are still bounded (``DEFAULT_MAX_BODY``)."""
    monkeypatch.setattr(sigmod, "DEFAULT_MAX_BODY", 100)
    register(sapp, key)
    body = b"b" * 101
    response = sapp.test_client().post(
        "/echo", data=body, headers=sign_request(key, "POST", "http://localhost/echo", body)
    )
    assert response.status_code == 413


def test_storage_down(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """Malformed signed requests are 401 without touching storage; well-formed ones get 503 when it is down."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    app = build_app(str(tmp_path), GRIDAUTH_STORAGE_URI=f"redis://127.0.0.1:{port}/0", GRIDAUTH_STORAGE_TIMEOUT=0.5)
    client = app.test_client()
    headers = sign_request(key, "GET", "http://localhost/items")
    broken = {**headers, "X-Grid-Signature": "A" * 10}
    assert unauthorized(client.get("/items", headers=broken))
    response = client.get("/items", headers=headers)
    assert response.status_code == 503
    assert response.get_json()["code"] == "unavailable"


def test_no_signature_or_private_key_in_logs(
    sapp: Flask, key: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    """Accepted, refused, replayed and stale requests log no signature, and no private key appears anywhere."""
    caplog.set_level(logging.DEBUG)
    register(sapp, key)
    client = sapp.test_client()
    seen: list[str] = []
    good = sign_request(key, "POST", "http://localhost/echo", b"x")
    seen.append(good["X-Grid-Signature"])
    assert client.post("/echo", data=b"x", headers=good).status_code == 200
    assert client.post("/echo", data=b"x", headers=good).status_code == 401
    bad = sign_request(key, "POST", "http://localhost/echo", b"y")
    seen.append(bad["X-Grid-Signature"])
    assert client.post("/echo", data=b"tampered", headers=bad).status_code == 401
    stale = sign_request(key, "GET", "http://localhost/items", timestamp=int(time.time()) - 3600)
    seen.append(stale["X-Grid-Signature"])
    response = client.get("/items", headers=stale)
    assert response.status_code == 401
    private_raw = key.private_bytes_raw()
    secrets_ = [*seen, base64.b64encode(private_raw).decode(), private_raw.hex()]
    text = caplog.text + " ".join(str(r.args) for r in caplog.records)
    assert "signed request refused" in text  # the operator does learn why
    for secret in secrets_:
        assert secret not in text
        assert secret[:20] not in text
        assert secret not in response.get_data(as_text=True)


# -- configuration ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("GRIDAUTH_SIGNATURE_HEADER_PREFIX", ""),
        ("GRIDAUTH_SIGNATURE_HEADER_PREFIX", "X Grid"),
        ("GRIDAUTH_SIGNATURE_HEADER_PREFIX", "X_Grid"),
        ("GRIDAUTH_SIGNATURE_HEADER_PREFIX", "X-Grid-"),
        ("GRIDAUTH_SIGNATURE_HEADER_PREFIX", 5),
        ("GRIDAUTH_SIGNATURE_TOLERANCE", 0),
        ("GRIDAUTH_SIGNATURE_TOLERANCE", -30),
        ("GRIDAUTH_SIGNATURE_TOLERANCE", "30"),
        ("GRIDAUTH_SIGNATURE_TOLERANCE", True),
        ("GRIDAUTH_SIGNATURE_TOLERANCE", 30.5),
        ("GRIDAUTH_SIGNATURE_TOLERANCE", 100_000),
        ("GRIDAUTH_SIGNATURE_VERSIONS", ()),
        ("GRIDAUTH_SIGNATURE_VERSIONS", "12"),
        ("GRIDAUTH_SIGNATURE_VERSIONS", ("1", "3")),
        ("GRIDAUTH_SIGNATURE_VERSIONS", None),
    ],
)
def test_bad_configuration_fails_at_start(tmp_path: Path, name: str, value: object) -> None:
    """A bad ``GRIDAUTH_SIGNATURE_*`` value is a ConfigurationError at ``init_app``."""
    with pytest.raises(ConfigurationError):
        build_app(str(tmp_path), **{name: value})


def test_integer_versions_are_accepted(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """``GRIDAUTH_SIGNATURE_VERSIONS = [2]`` means version 2."""
    app = build_app(str(tmp_path), GRIDAUTH_SIGNATURE_VERSIONS=[2])
    register(app, key)
    assert (
        app.test_client().get("/items", headers=sign_request(key, "GET", "http://localhost/items")).status_code == 200
    )


# -- registration ---------------------------------------------------------------

#: The eight points of small order, canonically encoded (identity, order 2, two of order 4, four of order 8).
SMALL_ORDER = [
    "0100000000000000000000000000000000000000000000000000000000000000",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0000000000000000000000000000000000000000000000000000000000000080",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
]
#: Non-canonical encodings: y = p, y = p + 1, x = 0 with the sign bit set ("negative zero").
NON_CANONICAL = [
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "0100000000000000000000000000000000000000000000000000000000000080",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
]
#: y = 2 is not the y of any curve point.
NOT_ON_CURVE = "0200000000000000000000000000000000000000000000000000000000000000"
#: The base point plus a point of order 8: on the curve, canonical, but not of prime order.
MIXED_ORDER = "98519eadf35b995233b51b5cd23e9cc5a28b639b5a4af0ec903cb960d81b7819"


def _b64(hex_value: str) -> str:
    return base64.b64encode(bytes.fromhex(hex_value)).decode()


def _refused(app: Flask, public_key: object) -> InvalidRequest:
    with app.app_context(), pytest.raises(InvalidRequest) as info:
        app.extensions["gridauth"].keys.register_signing_key(
            name="bad", public_key=public_key, scopes=["read"], owner="alice"
        )
    return info.value


@pytest.mark.parametrize("hex_key", SMALL_ORDER + NON_CANONICAL + [NOT_ON_CURVE, MIXED_ORDER])
def test_weak_public_keys_are_refused(sapp: Flask, hex_key: str) -> None:
    """Small-order, mixed-order, non-canonical and off-curve keys are 422 on ``public_key``."""
    error = _refused(sapp, _b64(hex_key))
    assert error.code == 422
    assert error.field == "public_key"


def _valid_public_key_b64() -> str:
    return public_key_of(Ed25519PrivateKey.generate())


BAD_ENCODINGS: dict[str, Callable[[], object]] = {
    "31 bytes": lambda: base64.b64encode(bytes(range(1, 32))).decode(),
    "33 bytes": lambda: base64.b64encode(base64.b64decode(_valid_public_key_b64()) + b"\0").decode(),
    "no padding": lambda: _valid_public_key_b64().rstrip("="),
    "hex": lambda: base64.b64decode(_valid_public_key_b64()).hex(),
    "whitespace": lambda: " " + _valid_public_key_b64(),
    "newline": lambda: _valid_public_key_b64() + "\n",
    "non-ascii": lambda: "é" * 44,
    "empty": lambda: "",
    "not a string": lambda: 12345,
    "none": lambda: None,
    "bytes": lambda: _valid_public_key_b64().encode(),
    "list": lambda: [_valid_public_key_b64()],
    "pem": lambda: "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAfU0Of2FTpptiQrUiq77mhf2kQg+INLEIw72uNp71Sfo=\n",
}


@pytest.mark.parametrize("case", sorted(BAD_ENCODINGS))
def test_badly_encoded_public_keys_are_refused(sapp: Flask, case: str) -> None:
    """Anything but strict standard base64 of 32 bytes is 422 on ``public_key``."""
    assert _refused(sapp, BAD_ENCODINGS[case]()).field == "public_key"


def test_urlsafe_and_sloppy_base64_keys_are_refused(sapp: Flask) -> None:
    """A real key in the URL-safe alphabet, or with non-zero padding bits, is refused."""
    for _ in range(200):
        encoded = _valid_public_key_b64()
        if "+" in encoded or "/" in encoded:
            break
    else:
        raise AssertionError("no key with + or / in 200 tries")
    assert _refused(sapp, encoded.replace("+", "-").replace("/", "_")).field == "public_key"
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    sloppy = encoded[:42] + alphabet[alphabet.index(encoded[42]) + 1] + "="
    assert base64.b64decode(sloppy) == base64.b64decode(encoded)
    assert _refused(sapp, sloppy).field == "public_key"


def test_registration_returns_fingerprint_and_refuses_duplicates(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """The record's fingerprint is base64 (no padding) of SHA-256 of the raw key; the same key twice is 422."""
    record = register(sapp, key)
    assert record.type == "signing"
    assert record.fingerprint == fp(key)
    assert len(record.fingerprint) == 43
    assert record.public_key == public_key_of(key)
    assert record.to_dict()["fingerprint"] == fp(key)
    with sapp.app_context(), pytest.raises(InvalidRequest) as info:
        sapp.extensions["gridauth"].keys.register_signing_key(
            name="again", public_key=public_key_of(key), scopes=["read"], owner="bob"
        )
    assert info.value.field == "public_key"


def test_registration_over_http(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """``POST /api/v1/api-keys`` with ``"type": "signing"`` registers a key that then signs; a weak key is 422."""
    client = sapp.test_client()
    body = {"type": "signing", "name": "trader", "public_key": public_key_of(key), "scopes": ["read"]}
    response = client.post("/api/v1/api-keys", json=body, headers=bearer(TOKEN))
    assert response.status_code == 201, response.get_json()
    assert response.get_json()["fingerprint"] == fp(key)
    assert "raw_key" not in response.get_json()
    assert client.get("/items", headers=sign_request(key, "GET", "http://localhost/items")).status_code == 200
    weak = {**body, "public_key": _b64(SMALL_ORDER[4])}
    response = client.post("/api/v1/api-keys", json=weak, headers=bearer(TOKEN))
    assert response.status_code == 422
    assert response.get_json()["field"] == "public_key"


def test_stored_key_that_does_not_match_its_fingerprint_is_401(sapp: Flask, key: Ed25519PrivateKey) -> None:
    """If storage held a public key whose hash is not the fingerprint, the request is refused."""
    record = register(sapp, key)
    assert sigmod.public_key_object(record.fingerprint or "", public_key_of(Ed25519PrivateKey.generate())) is None
    assert sigmod.public_key_object(record.fingerprint or "", public_key_of(key)) is not None


# -- Wycheproof -----------------------------------------------------------------


@pytest.fixture(scope="module")
def wycheproof() -> dict[str, Any]:
    """Project Wycheproof's Ed25519 vectors, kept in tests/vectors with their licence."""
    data: dict[str, Any] = json.loads(VECTORS.read_text())
    return data


def test_wycheproof_public_keys_register(wycheproof: dict[str, Any]) -> None:
    """Every Wycheproof public key is a valid, prime-order, canonical key: registration accepts it."""
    keys = {group["publicKey"]["pk"] for group in wycheproof["testGroups"]}
    assert len(keys) > 10
    for hex_key in keys:
        encoded, fingerprint = sigmod.load_public_key(_b64(hex_key))
        assert encoded == _b64(hex_key)
        assert fingerprint == base64.b64encode(hashlib.sha256(bytes.fromhex(hex_key)).digest()).decode().rstrip("=")


def test_wycheproof_verification_decisions(wycheproof: dict[str, Any]) -> None:
    """For every vector our verifier accepts exactly the signatures Wycheproof marks valid."""
    checked = 0
    for group in wycheproof["testGroups"]:
        encoded, fingerprint = sigmod.load_public_key(_b64(group["publicKey"]["pk"]))
        public_key = sigmod.public_key_object(fingerprint, encoded)
        assert public_key is not None
        for case in group["tests"]:
            signature = bytes.fromhex(case["sig"])
            expected = case["result"] == "valid"
            header_ok = sigmod._decode_signature(base64.b64encode(signature).decode()) is not None
            decision = header_ok and sigmod.verify_ed25519(public_key, signature, bytes.fromhex(case["msg"]))
            assert decision is expected, f"tcId {case['tcId']}: {case['comment']}"
            checked += 1
    assert checked == wycheproof["numberOfTests"]


def test_malleable_twin_refused_through_a_request(sapp: Flask) -> None:
    """A Wycheproof-style forgery (S + L, the malleable twin of a valid signature) is refused over HTTP."""
    key = Ed25519PrivateKey.generate()
    register(sapp, key)
    headers = sign_request(key, "GET", "http://localhost/items")
    raw = base64.b64decode(headers["X-Grid-Signature"])
    order = 2**252 + 27742317777372353535851937790883648493
    s_plus_l = (int.from_bytes(raw[32:], "little") + order).to_bytes(32, "little")
    twin = {**headers, "X-Grid-Signature": base64.b64encode(raw[:32] + s_plus_l).decode()}
    client = sapp.test_client()
    assert unauthorized(client.get("/items", headers=twin))
    assert client.get("/items", headers=headers).status_code == 200


# -- the examples -----------------------------------------------------------------


@pytest.fixture
def example_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """examples/quickstart.py on a real server, with a registered signing key: ``(base URL, key file)``."""
    monkeypatch.setenv("GRIDAUTH_INSTANCE_PATH", str(tmp_path / "instance"))
    quickstart = load_example("quickstart")
    app = quickstart.create_app(
        {"GRIDAUTH_STORAGE_URI": "memory://", "GRIDAUTH_API_TOKEN": TOKEN, "GRIDAUTH_RATELIMIT_ENABLED": False}
    )
    keypair = generate_keypair()
    key_file = tmp_path / "client-key.pem"
    write_private_key(key_file, keypair)
    with app.app_context():
        app.extensions["gridauth"].keys.register_signing_key(
            name="example", public_key=keypair.public_key, scopes=["trade", "read"], owner="alice"
        )
    with serve(app) as base:
        yield base, key_file


def test_python_example_client(example_server: tuple[str, Path]) -> None:
    """examples/sign_client.py signs by hand, with requests and with httpx, and every call succeeds."""
    base, key_file = example_server
    env = {**os.environ, "GRIDAUTH_URL": base, "GRIDAUTH_KEY_FILE": str(key_file), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "sign_client.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": 201 ") == 3
    assert '"by": "signature"' in result.stdout or '"by":"signature"' in result.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not on PATH")
def test_node_example_client(example_server: tuple[str, Path]) -> None:
    """examples/node_client.mjs (node:crypto only) signs v2 and v1 requests the server accepts."""
    base, key_file = example_server
    env = {**os.environ, "GRIDAUTH_URL": base, "GRIDAUTH_KEY_FILE": str(key_file)}
    node = shutil.which("node") or "node"
    result = subprocess.run(
        [node, str(EXAMPLES / "node_client.mjs")], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "POST /orders (v2): 201" in result.stdout
    assert "GET /boards?page=1 (v1): 200" in result.stdout
