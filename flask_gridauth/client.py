"""Sign requests for a flask_gridauth API from Python.

``sign_request`` returns the headers for one request. ``GridSigner`` signs
every request of a ``requests`` session or an ``httpx`` client; it needs the
``requests`` or ``httpx`` extra, imported only when ``GridSigner`` is first
used. ``generate_keypair`` makes a new key (``flask gridauth keygen`` uses it).

Only the public key ever leaves the client: register its base64 form, then
sign with the private key.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .wire import fingerprint, signed_message

if TYPE_CHECKING:
    import httpx
    import requests

__all__ = [
    "GridSigner",
    "SigningKeyPair",
    "generate_keypair",
    "load_private_key",
    "public_key_of",
    "sign_request",
    "write_private_key",
]

PrivateKeyInput = Ed25519PrivateKey | bytes | str
_DEFAULT_PORTS = {"http": 80, "https": 443}


_KEY_FORMS = (
    "an Ed25519 private key: the 32-byte seed or the 64-byte secret key (seed + public key) of"
    " tweetnacl, libsodium or Go, as raw bytes or standard base64, or a PKCS#8 PEM"
)


def _from_raw(raw: bytes) -> Ed25519PrivateKey:
    """A key from a 32-byte seed or a 64-byte seed-plus-public-key, checking the public half."""
    key = Ed25519PrivateKey.from_private_bytes(raw[:32])
    if len(raw) == 64:
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        if not hmac.compare_digest(public, raw[32:]):
            # Never echo the input: it is a secret.
            raise ValueError(
                "the 64-byte Ed25519 secret key is inconsistent: its last 32 bytes are not the public key"
                " of its first 32 (the seed); it may be truncated, corrupted or two keys joined"
            )
    return key


def load_private_key(private_key: PrivateKeyInput) -> Ed25519PrivateKey:
    """An Ed25519 private key from a key object, raw bytes, their base64, or a PKCS#8 PEM.

    Raw bytes and base64 may hold the 32-byte seed (Python's ``cryptography``,
    RFC 8032) or the 64-byte secret key that tweetnacl, libsodium and Go's
    ``crypto/ed25519`` print: the seed followed by the public key, whose second
    half must be the public key of the first. A ``ValueError`` never contains the key.
    """
    if isinstance(private_key, Ed25519PrivateKey):
        return private_key
    if isinstance(private_key, bytes | bytearray) and len(private_key) in (32, 64):
        return _from_raw(bytes(private_key))
    if isinstance(private_key, str):
        private_key = private_key.encode("ascii", "replace")
    if not isinstance(private_key, bytes | bytearray):
        raise TypeError(f"private_key must be {_KEY_FORMS}")
    stripped = bytes(private_key).strip()
    if stripped.startswith(b"-----BEGIN"):
        loaded = serialization.load_pem_private_key(stripped, password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise ValueError("the PEM does not hold an Ed25519 private key")
        return loaded
    try:
        raw = base64.b64decode(stripped, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) not in (32, 64):
        # Never echo the input: it is a secret.
        raise ValueError(f"private_key must be {_KEY_FORMS}")
    return _from_raw(raw)


def public_key_of(private_key: PrivateKeyInput) -> str:
    """The standard base64 of the raw public key: what the server registers."""
    raw = (
        load_private_key(private_key)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return base64.b64encode(raw).decode("ascii")


def _target(path: str, query: str) -> bytes:
    # The path with its query as sent; no "?" for an empty query.
    target = (path or "/") + ("?" + query if query else "")
    return target.encode("utf-8")


def _host(url: str) -> str:
    """The Host header HTTP clients send for ``url``: lowercase, default port dropped."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme.lower()):
        host = f"{host}:{parts.port}"
    return host


def _sign(
    key: Ed25519PrivateKey,
    *,
    method: str,
    host: str,
    target: bytes,
    body: bytes,
    version: str,
    timestamp: int | None,
    header_prefix: str,
    key_fingerprint: str,
) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else int(timestamp))
    if version == "2" and not host:
        raise ValueError("version 2 signs the host: give a full URL such as https://api.example.com/orders")
    message = signed_message(version, ts, method.upper(), host.lower(), target, body)
    signature = base64.b64encode(key.sign(message)).decode("ascii")
    return {
        f"{header_prefix}-Signature": signature,
        f"{header_prefix}-Timestamp": ts,
        f"{header_prefix}-Fingerprint": key_fingerprint,
        f"{header_prefix}-Signature-Version": version,
    }


def _version(version: int | str) -> str:
    value = str(version)
    if value not in ("1", "2"):
        raise ValueError("version must be 1 or 2")
    return value


def _fingerprint_of(key: Ed25519PrivateKey) -> str:
    return fingerprint(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def sign_request(
    private_key: PrivateKeyInput,
    method: str,
    url: str,
    body: bytes | str = b"",
    *,
    version: int | str = 2,
    timestamp: int | None = None,
    header_prefix: str = "X-Grid",
) -> dict[str, str]:
    """The signature headers for one request.

    ``url`` is the URL exactly as it will be sent, already percent-encoded
    (``https://api.example.com/orders?id=7``); a bare path (``/orders?id=7``)
    is enough for version 1. ``body`` is the raw body (a ``str`` is sent as
    UTF-8). ``timestamp`` defaults to now.
    """
    key = load_private_key(private_key)
    parts = urlsplit(url)
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    return _sign(
        key,
        method=method,
        host=_host(url) if parts.netloc else "",
        target=_target(parts.path, parts.query),
        body=data,
        version=_version(version),
        timestamp=timestamp,
        header_prefix=header_prefix,
        key_fingerprint=_fingerprint_of(key),
    )


class _SignerCore:
    """What ``GridSigner`` does for each HTTP library; the library base classes are added lazily."""

    #: httpx reads a streamed body before calling ``auth_flow``: the signature covers it.
    requires_request_body = True

    def __init__(self, private_key: PrivateKeyInput, *, version: int | str = 2, header_prefix: str = "X-Grid") -> None:
        self._key = load_private_key(private_key)
        self.version = _version(version)
        self.header_prefix = header_prefix
        self.fingerprint = _fingerprint_of(self._key)

    def __repr__(self) -> str:
        return f"GridSigner(fingerprint={self.fingerprint!r}, version={self.version!r})"

    def _headers(self, method: str, host: str, target: bytes, body: bytes) -> dict[str, str]:
        return _sign(
            self._key,
            method=method,
            host=host,
            target=target,
            body=body,
            version=self.version,
            timestamp=None,
            header_prefix=self.header_prefix,
            key_fingerprint=self.fingerprint,
        )

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        """Sign a ``requests`` request (the ``requests.auth.AuthBase`` protocol)."""
        body: Any = r.body
        if body is None:
            data = b""
        elif isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("latin-1")  # how http.client sends a str body
        else:
            raise TypeError("GridSigner signs bodies held in memory (bytes or str), not files or generators")
        url = r.url or ""
        parts = urlsplit(url)
        host = r.headers.get("Host") or _host(url)
        r.headers.update(self._headers(r.method or "GET", host, _target(parts.path, parts.query), data))
        return r

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign an ``httpx`` request (the ``httpx.Auth`` protocol)."""
        target = request.url.raw_path
        if target.endswith(b"?"):
            target = target[:-1]
        host = request.headers.get("Host") or _host(str(request.url))
        request.headers.update(self._headers(request.method, host, target, request.content))
        yield request


def _grid_signer_class() -> type[_SignerCore]:
    bases: list[type] = [_SignerCore]
    try:
        from requests.auth import AuthBase
    except ImportError:
        pass
    else:
        bases.append(AuthBase)
    try:
        from httpx import Auth
    except ImportError:
        pass
    else:
        bases.append(Auth)
    return type(
        "GridSigner",
        tuple(bases),
        {
            "__module__": __name__,
            "__doc__": "Sign every request: ``auth=GridSigner(private_key)`` for requests and httpx alike.",
        },
    )


if TYPE_CHECKING:
    GridSigner = _SignerCore
else:

    def __getattr__(name: str) -> Any:
        # GridSigner subclasses requests' AuthBase and httpx.Auth, whichever is installed;
        # both are optional extras, so the class is built on first use.
        if name == "GridSigner":
            cls = _grid_signer_class()
            globals()["GridSigner"] = cls
            return cls
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class SigningKeyPair:
    """A new Ed25519 key pair: register ``public_key``, keep ``private_key`` on the client."""

    private_key: Ed25519PrivateKey = field(repr=False)
    #: Standard base64 of the raw 32-byte public key.
    public_key: str
    #: What ``<P>-Fingerprint`` carries.
    fingerprint: str

    def private_pem(self) -> bytes:
        """The private key as an unencrypted PKCS#8 PEM (readable by OpenSSL and Node)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


def generate_keypair() -> SigningKeyPair:
    """A fresh Ed25519 key pair from the operating system's random source."""
    key = Ed25519PrivateKey.generate()
    return SigningKeyPair(private_key=key, public_key=public_key_of(key), fingerprint=_fingerprint_of(key))


def write_private_key(path: str | os.PathLike[str], keypair: SigningKeyPair) -> None:
    """Write the private key as PEM to a new file with mode 0600; an existing file raises ``FileExistsError``."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        os.fchmod(fd, 0o600)  # the umask may only have narrowed it; make it exact
        fh.write(keypair.private_pem())
        fh.flush()
        os.fsync(fd)
