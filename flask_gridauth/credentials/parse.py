"""Find the one credential of a request and tell its kind from its shape.

Everything here runs before any storage look-up or cryptography, and refuses
with a generic 401 anything non-ASCII, oversized, malformed or ambiguous.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import Unauthorized

#: A credential kind: ``api_key``, ``jwt``, ``signature``, ``token``, or an app's own (``@auth.verifier``).
CredentialKind = str

#: Longest credential looked at; anything longer is refused unread.
MAX_CREDENTIAL_LENGTH = 4096

#: Printable ASCII without whitespace (a bootstrap token may be any such string). Two
#: joined ``Authorization`` headers (``Bearer a, Bearer b``) hold a space and never parse.
TOKEN_RE = re.compile(r"[!-~]+")
JWT_RE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
#: The value of an app kind's own header: visible ASCII, no whitespace (so two joined headers never parse).
HEADER_VALUE_RE = re.compile(r"[\x21-\x7e]+")


@dataclass(frozen=True, slots=True)
class Credential:
    """A credential found in a request: its kind and its text (a key, token or JWT)."""

    kind: CredentialKind
    value: str

    def __repr__(self) -> str:
        # Never show the secret, even in a debugger or a traceback.
        return f"Credential(kind={self.kind!r})"


def _clean(value: str) -> str:
    """A header value that may hold a credential, else 401."""
    if len(value) > MAX_CREDENTIAL_LENGTH + 16:
        raise Unauthorized()
    token = value.strip(" \t")
    if not token or len(token) > MAX_CREDENTIAL_LENGTH or not TOKEN_RE.fullmatch(token):
        raise Unauthorized()
    return token


def bearer_token(authorization: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header; the scheme is case-insensitive."""
    scheme, _, rest = authorization.strip(" \t").partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized()
    return _clean(rest)


def _clean_header(value: str) -> str:
    """The value of an app kind's header, else 401."""
    token = value.strip(" \t")
    if not token or len(token) > MAX_CREDENTIAL_LENGTH or not HEADER_VALUE_RE.fullmatch(token):
        raise Unauthorized()
    return token


def parse_credential(
    environ: Mapping[str, Any],
    *,
    key_prefix: str,
    signature_headers: frozenset[str],
    custom_headers: Mapping[str, str] | None = None,
    custom_prefixes: tuple[tuple[str, str], ...] = (),
) -> Credential | None:
    """The request's single credential, ``None`` if it has none; 401 if it is unusable.

    ``signature_headers`` are the WSGI environ names (``HTTP_X_GRID_SIGNATURE``...)
    whose presence marks a signed request. A signed request carries no other
    credential; a bearer token and an ``x-api-key`` must be the same key.
    ``custom_headers`` maps the environ name of an app kind's own header to
    its kind: such a header is the request's only credential, too.
    ``custom_prefixes`` are ``(prefix, kind)`` of app kinds sent as a token.
    """
    authorization = environ.get("HTTP_AUTHORIZATION")
    api_key_header = environ.get("HTTP_X_API_KEY")
    signed = not signature_headers.isdisjoint(environ)

    if custom_headers:
        present = [name for name in custom_headers if name in environ]
        if present:
            if len(present) > 1 or signed or authorization is not None or api_key_header is not None:
                raise Unauthorized()
            name = present[0]
            return Credential(custom_headers[name], _clean_header(environ[name]))

    if signed:
        if authorization is not None or api_key_header is not None:
            raise Unauthorized()
        return Credential("signature", "")

    token = bearer_token(authorization) if authorization is not None else None
    if api_key_header is not None:
        header_key = _clean(api_key_header)
        if token is not None and not hmac.compare_digest(token.encode(), header_key.encode()):
            raise Unauthorized()
        if header_key.startswith(key_starts(key_prefix)):
            return Credential("api_key", header_key)
        for prefix, kind in custom_prefixes:
            if header_key.startswith(prefix):
                return Credential(kind, header_key)
        raise Unauthorized()
    if token is None:
        return None
    return classify_token(token, key_prefix, custom_prefixes)


def key_starts(key_prefix: str) -> tuple[str, str]:
    """What an API key with this prefix starts with: ``<prefix>_live_`` or ``<prefix>_test_``."""
    # Not cached: an lru_cache here saved 1,170 of 1,019,047 instructions per API-key request
    # (callgrind, api_key_memory without usage counting): 0.1%, nothing make bench could show.
    return f"{key_prefix}_live_", f"{key_prefix}_test_"


def classify_token(token: str, key_prefix: str, custom_prefixes: tuple[tuple[str, str], ...] = ()) -> Credential:
    """Tell an API key, a JWT, an app kind's prefixed token and the bootstrap token apart by shape alone."""
    if token.startswith(key_starts(key_prefix)):
        return Credential("api_key", token)
    for prefix, kind in custom_prefixes:
        if token.startswith(prefix):
            return Credential(kind, token)
    if token.startswith("eyJ"):
        if not JWT_RE.fullmatch(token):
            raise Unauthorized()
        return Credential("jwt", token)
    return Credential("token", token)
