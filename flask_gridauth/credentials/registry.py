"""One verifier protocol, and the per-app registry the request hook asks.

Every credential kind, ours and an app's, is an object with a ``kind`` and a
``verify(credential, request)`` that returns the :class:`~flask_gridauth.Principal`
or raises (``Unauthorized`` for a credential that does not verify). The
registry (Authlib's ``register_token_validator`` is the model) maps a kind to
its verifier, and knows which headers and token prefixes an app's own kinds
arrive by, so that :func:`~flask_gridauth.credentials.parse.parse_credential`
can keep the one-credential rule for them too.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Collection, Iterable
from re import Pattern
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import Unauthorized, Unavailable
from ..principal import Principal
from .api_key import verify_api_key
from .parse import Credential
from .token import verify_token

if TYPE_CHECKING:
    from flask import Request

    from ..storage import Storage
    from .jwt import JWTVerifier
    from .signature import SignatureVerifier

#: The kinds this package defines; an app's own kind takes another name.
BUILTIN_KINDS = frozenset({"api_key", "jwt", "signature", "token", "disabled"})
#: An app's kind: lower-case letters, digits and ``_``, starting with a letter.
KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: A header an app's kind arrives in: a plain HTTP token.
HEADER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")
#: Headers that carry other things (or other credentials): never an app kind's header.
RESERVED_HEADERS = frozenset({"authorization", "x-api-key", "cookie", "host", "content-type", "content-length"})
#: A token prefix: what an RFC 6750 token may start with, 2 to 32 characters.
PREFIX_RE = re.compile(r"[A-Za-z0-9\-._~+/]{2,32}")

logger = logging.getLogger("flask_gridauth")

Expander = Callable[[Iterable[str]], frozenset[str]]
#: An app's verifier function: the credential's text in, the principal (or ``None``) out.
VerifierFunction = Callable[[str], Principal | None]


@runtime_checkable
class CredentialVerifier(Protocol):
    """What every credential kind is: a name and a way to verify a credential of it."""

    #: The kind's name, as ``Principal.kind`` shows it.
    kind: str

    def verify(self, credential: Credential, request: Request) -> Principal:
        """The principal of ``credential``; raise ``Unauthorized`` when it does not verify."""
        ...


class FunctionVerifier:
    """An app's own kind, from a function ``(value: str) -> Principal | None``.

    ``None`` is a 401, and so is any exception of the function but
    ``Unauthorized`` and ``Unavailable`` (a 503, its backend is down): only the
    kind and the exception's type are logged, never its text, which may hold
    the credential. The principal's kind is the registered one (a function
    cannot claim to be the bootstrap token), ``"*"`` is dropped from its scopes
    (only the bootstrap token is a superuser), and its scopes are expanded by the
    app's implication table, so it passes the same scope checks as every kind.
    """

    def __init__(self, kind: str, function: VerifierFunction, expand: Expander) -> None:
        self.kind = kind
        self.function = function
        self.expand = expand

    def verify(self, credential: Credential, request: Request) -> Principal:
        """Call the function on the credential's text; ``None`` is ``Unauthorized``."""
        try:
            principal = self.function(credential.value)
        except (Unauthorized, Unavailable):
            raise
        except Exception as exc:  # noqa: BLE001 - an app's function that cannot decide refuses
            logger.error("the verifier of kind %s raised %s: answering 401", self.kind, type(exc).__name__)
            raise Unauthorized() from None
        if principal is None:
            raise Unauthorized()
        if not isinstance(principal, Principal):
            raise TypeError(f"the verifier of {self.kind!r} must return a Principal or None")
        scopes = principal.scopes
        if isinstance(scopes, str):
            raise TypeError(f"the verifier of {self.kind!r} returned scopes as a string; give a set of names")
        # "*" is the bootstrap token's: an app's kind never gets every scope or every owner's keys.
        kept = [scope for scope in scopes if scope != "*"]
        return dataclasses.replace(principal, kind=self.kind, scopes=self.expand(kept))


@dataclasses.dataclass(frozen=True, slots=True)
class Route:
    """Where a registered kind arrives: a header of its own, or a token prefix (or both)."""

    kind: str
    header: str | None = None
    prefix: str | None = None


class VerifierRegistry:
    """The credential kinds one app accepts, by name; held in the app's state."""

    def __init__(self) -> None:
        self._verifiers: dict[str, CredentialVerifier] = {}
        #: WSGI environ name (``HTTP_X_PARTNER_TOKEN``) -> kind, for kinds that arrive in a header.
        self.headers: dict[str, str] = {}
        #: ``(prefix, kind)`` for kinds that arrive as a Bearer token (or ``x-api-key``) with a prefix.
        self.prefixes: tuple[tuple[str, str], ...] = ()
        #: The environ names of :attr:`headers`, for the one-credential check.
        self.header_environ: frozenset[str] = frozenset()

    def register(self, verifier: CredentialVerifier, *, header: str | None = None, prefix: str | None = None) -> None:
        """Add ``verifier`` under its kind (replacing one of that name), arriving by ``header``/``prefix``."""
        kind = verifier.kind
        self._verifiers[kind] = verifier
        self.headers = {name: k for name, k in self.headers.items() if k != kind}
        self.prefixes = tuple((p, k) for p, k in self.prefixes if k != kind)
        if header is not None:
            self.headers[environ_name(header)] = kind
        if prefix is not None:
            # Longest prefix first, so ``oat_live_`` is tried before ``oat_``.
            self.prefixes = tuple(sorted((*self.prefixes, (prefix, kind)), key=lambda item: -len(item[0])))
        self.header_environ = frozenset(self.headers)

    def get(self, kind: str) -> CredentialVerifier | None:
        """The verifier of ``kind``, or ``None`` when this app does not accept it."""
        return self._verifiers.get(kind)

    def remove(self, kind: str) -> None:
        """Stop accepting ``kind`` (e.g. the bootstrap token when it is turned off)."""
        self._verifiers.pop(kind, None)

    @property
    def kinds(self) -> frozenset[str]:
        """Every kind this app accepts."""
        return frozenset(self._verifiers)


def environ_name(header: str) -> str:
    """The WSGI environ key of an HTTP header: ``X-Partner-Token`` -> ``HTTP_X_PARTNER_TOKEN``."""
    return "HTTP_" + header.upper().replace("-", "_")


def check_custom_kind(kind: object, header: object, prefix: object, *, key_prefix: str) -> None:
    """Refuse, at registration, a kind name, header or prefix that could shadow another credential."""
    if not isinstance(kind, str) or not KIND_RE.fullmatch(kind):
        raise ValueError("a verifier's kind is 1-32 lower-case letters, digits or _, starting with a letter")
    if kind in BUILTIN_KINDS:
        raise ValueError(f"{kind!r} is a built-in credential kind; give your own kind another name")
    if header is None and prefix is None:
        raise TypeError("say where the credential arrives: header='X-Your-Header' and/or prefix='yourprefix_'")
    if header is not None and (
        not isinstance(header, str) or not HEADER_RE.fullmatch(header) or header.lower() in RESERVED_HEADERS
    ):
        raise ValueError("header must be an HTTP header name of its own (not Authorization, x-api-key, Cookie...)")
    if prefix is not None:
        if not isinstance(prefix, str) or not PREFIX_RE.fullmatch(prefix):
            raise ValueError("prefix must be 2-32 token characters, such as 'oat_'")
        starts = (f"{key_prefix}_live_", f"{key_prefix}_test_", "eyJ")
        if any(s.startswith(prefix) or prefix.startswith(s) for s in starts):
            raise ValueError(f"prefix {prefix!r} would also match API keys or JWTs; choose one that cannot")


# -- our four kinds, as objects of the one protocol -----------------------------


class ApiKeyKind:
    """``api_key``: checksum first, then one look-up by the key's SHA-256."""

    kind = "api_key"

    def __init__(
        self,
        *,
        pattern: Pattern[str],
        storage: Storage,
        expand: Expander,
        environments: Collection[str] | None = None,
    ) -> None:
        self.pattern = pattern
        self.storage = storage
        self.expand = expand
        self.environments = environments

    def verify(self, credential: Credential, request: Request) -> Principal:
        """The key's principal, or 401."""
        return verify_api_key(
            credential.value,
            pattern=self.pattern,
            storage=self.storage,
            expand=self.expand,
            environments=self.environments,
        )


class JWTKind:
    """``jwt``: routed to the configured issuer its ``iss`` names."""

    kind = "jwt"

    def __init__(self, verifier: JWTVerifier) -> None:
        self.verifier = verifier

    def verify(self, credential: Credential, request: Request) -> Principal:
        """The token's principal, or 401."""
        return self.verifier.verify(credential.value)


class SignatureKind:
    """``signature``: an Ed25519-signed request; the credential is the request itself."""

    kind = "signature"

    def __init__(
        self,
        verifier: SignatureVerifier,
        *,
        storage: Storage,
        expand: Expander,
    ) -> None:
        self.verifier = verifier
        self.storage = storage
        self.expand = expand

    def verify(self, credential: Credential, request: Request) -> Principal:
        """The signing key's principal, or 401."""
        return self.verifier.verify(request, storage=self.storage, expand=self.expand)


class TokenKind:
    """``token``: the bootstrap token, compared in constant time with its digest."""

    kind = "token"

    def __init__(self, digest: bytes, principal: Principal) -> None:
        self.digest = digest
        self.principal = principal

    def verify(self, credential: Credential, request: Request) -> Principal:
        """The bootstrap principal, or 401."""
        return verify_token(credential.value, self.digest, self.principal)
