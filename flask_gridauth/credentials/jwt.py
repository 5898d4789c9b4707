"""JWT sign-in: verify a token from one of the configured issuers and build its principal.

Cheap checks come first and are ours: the size and shape, the header, the
unverified ``iss`` that picks the issuer by exact match, the algorithm (one of
that issuer's), the types of the time claims, ``exp`` (so an expired token
never costs a JWKS fetch), and the key (the issuer's shared
secret, or its JWKS by ``kid``, from our cache). PyJWT's ``decode_complete``
then verifies the signature and the registered claims (``exp``, ``nbf``,
``iat``, ``iss``, ``aud``, with the issuer's leeway). Every failure is the
same generic 401, so the order reveals nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, NoReturn, TypeGuard

from jwt import PyJWT, PyJWTError

from .. import config as c
from ..bounded_cache import BoundedCache, MakeCache
from ..errors import Unauthorized
from ..keyfetch import LOOPBACK_HOSTS  # noqa: F401 - stays importable here
from ..principal import Principal
from ..schema import MAX_NAME
from ..scopes import is_valid_scope
from .jwks import ALGORITHM_FAMILIES
from .jwt_cache import MAX_ENTRIES, VerifiedTokens

# The issuers' configuration lives in jwt_issuers.py; these names stay importable from here.
from .jwt_issuers import (  # noqa: F401
    ALL_SCOPES,
    HMAC_MIN_BYTES,
    ISSUER_FIELDS,
    MAX_OWNER_PREFIX,
    SUPPORTED_ALGORITHMS,
    Issuer,
    issuers_from_config,
    seconds,
)
from .parse import MAX_CREDENTIAL_LENGTH

logger = logging.getLogger("flask_gridauth")

Expander = Callable[[Iterable[str]], frozenset[str]]

#: Longest ``sub`` accepted: it becomes the owner of the keys this user creates, and
#: owner names follow the same rule as key names.
MAX_SUBJECT_LENGTH = MAX_NAME

#: Registered claims every token must carry (``sub`` too: it names the owner).
REQUIRED_CLAIMS = ("exp", "iss", "sub")
#: Claims that must be a NumericDate when present. PyJWT reads them with ``int()``,
#: which would take ``"1700000000"`` or ``true``; RFC 7519 says a JSON number.
TIME_CLAIMS = ("exp", "nbf", "iat")

_DECODER = PyJWT()
_OPTIONS_WITH_AUD: Any = {"require": list(REQUIRED_CLAIMS), "verify_aud": True}
_OPTIONS_WITHOUT_AUD: Any = {"require": list(REQUIRED_CLAIMS), "verify_aud": False}
_JWT_RE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


class JWTVerifier:
    """Verifies JWTs from the issuers of ``GRIDAUTH_JWT_ISSUERS``."""

    def __init__(
        self,
        issuers: Iterable[Issuer],
        *,
        expand: Expander,
        reserved_owners: Iterable[str] = (),
        cache_ttl: float = 0,
        make_cache: MakeCache = BoundedCache,
    ) -> None:
        self.issuers: dict[str, Issuer] = {issuer.name: issuer for issuer in issuers}
        self._expand = expand
        #: Subjects refused because they name an owner that is not a JWT user's (the bootstrap token's).
        self.reserved_owners = frozenset(reserved_owners)
        #: Tokens that verified, for ``GRIDAUTH_JWT_CACHE_TTL`` seconds (``None``: every token verified in full).
        # Kept: a JWT request costs 1,013,858 instructions with it and 1,484,667 without
        # (callgrind, jwt_hs256 and jwt_hs256_full): -470,809, 32%.
        self.verified = (
            VerifiedTokens(cache_ttl, entries=make_cache("jwt_verified", MAX_ENTRIES)) if cache_ttl > 0 else None
        )

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, expand: Expander, make_cache: MakeCache = BoundedCache
    ) -> JWTVerifier:
        """Build from ``GRIDAUTH_JWT_*`` and ``GRIDAUTH_JWKS_*``; :class:`ConfigurationError` if any is wrong."""
        issuers = issuers_from_config(config)
        # A config built by hand (not by init_app) may leave it out: the documented default then.
        cache_ttl = seconds(config.get(c.JWT_CACHE_TTL, c.DEFAULTS[c.JWT_CACHE_TTL]), c.JWT_CACHE_TTL, allow_zero=True)
        # A JWT whose sub were the bootstrap token's owner would see and change the keys the token made.
        owner = config.get(c.TOKEN_OWNER)
        reserved = (owner,) if isinstance(owner, str) else ()
        return cls(issuers, expand=expand, reserved_owners=reserved, cache_ttl=cache_ttl, make_cache=make_cache)

    def verify(self, token: str) -> Principal:
        """The token's principal, or :class:`Unauthorized` with the generic message.

        :class:`~flask_gridauth.errors.Unavailable` (503) when the issuer's JWKS
        has never been fetched successfully (its endpoint is down or hangs).
        """
        if len(token) > MAX_CREDENTIAL_LENGTH or not _JWT_RE.fullmatch(token):
            _reject("malformed")
        if self.verified is None:
            return self._verify(token)
        digest = self.verified.digest(token)
        principal = self.verified.get(digest)
        if principal is None:
            principal = self._verify(token)
            exp = (principal.claims or {})["exp"]  # PyJWT made exp required
            self.verified.put(digest, principal, float(exp) + self.leeway_of(principal))
        return principal

    def leeway_of(self, principal: Principal) -> float:
        """The leeway of the issuer that signed ``principal``'s token."""
        return self.issuers[(principal.claims or {})["iss"]].leeway

    def _verify(self, token: str) -> Principal:
        """The whole verification of a well-formed token: issuer routing, cheap checks, then PyJWT."""
        header_b64, payload_b64, _ = token.split(".")
        try:
            # Parsed here for routing and the cheap checks; PyJWT parses and verifies again.
            header = json.loads(_b64decode(header_b64))
            payload = json.loads(_b64decode(payload_b64))
        except (ValueError, binascii.Error, RecursionError):  # JSON and UTF-8 errors are ValueErrors
            _reject("malformed")
        if type(header) is not dict or type(payload) is not dict:
            _reject("malformed")

        iss = payload.get("iss")
        issuer = self.issuers.get(iss) if type(iss) is str else None
        if issuer is None:
            _reject("unknown issuer")
        alg = header.get("alg")
        if type(alg) is not str or alg not in issuer.algorithms:
            _reject("algorithm not accepted", issuer)
        # No header extension is understood, so any "crit" is unknown (RFC 7515, 4.1.11);
        # "b64": false (RFC 7797) would change what is signed. jwk/jku/x5u/x5c are never read.
        if "crit" in header or header.get("b64", True) is not True:
            _reject("unsupported header", issuer)
        kid = header.get("kid")
        if kid is not None and type(kid) is not str:
            _reject("malformed kid", issuer)

        for claim in TIME_CLAIMS:
            if claim in payload and not _is_time(payload[claim]):
                _reject(f"malformed {claim}", issuer)
        # Before the key is looked up, so an expired token never costs a JWKS fetch;
        # PyJWT checks exp again, with every other claim, once the signature holds.
        if "exp" in payload and payload["exp"] <= time.time() - issuer.leeway:
            _reject("expired", issuer)

        key: Any = issuer.secret
        if issuer.jwks is not None:  # start-up made sure an issuer has exactly one of the two
            found = issuer.jwks.key(kid)
            if found.family != ALGORITHM_FAMILIES[alg] or (found.alg is not None and found.alg != alg):
                _reject("key does not fit the algorithm", issuer)
            key = found.key
        try:
            decoded = _DECODER.decode_complete(
                token,
                key,
                algorithms=[alg],
                options=_OPTIONS_WITHOUT_AUD if issuer.audience is None else _OPTIONS_WITH_AUD,
                audience=issuer.audience,
                issuer=issuer.name,
                leeway=issuer.leeway,
            )
        except PyJWTError as exc:
            _reject(_reason(exc), issuer)
        except (ValueError, TypeError):  # a key PyJWT cannot use for this algorithm
            _reject("key does not fit the algorithm", issuer)
        payload = decoded["payload"]
        subject = _subject(payload.get("sub"), issuer)
        owner = issuer.owner_prefix + subject
        if len(owner) > MAX_SUBJECT_LENGTH:
            _reject("sub too long once the issuer's owner_prefix is added", issuer)
        if owner in self.reserved_owners:
            _reject("sub names the bootstrap token's owner (GRIDAUTH_TOKEN_OWNER)", issuer)

        return Principal(
            kind="jwt",
            id=owner,
            owner=owner,
            scopes=self._expand(issuer.base_scopes + scopes_from_claim(payload.get(issuer.scopes_claim))),
            claims=MappingProxyType(payload),
        )


def scopes_from_claim(value: object) -> tuple[str, ...]:
    """The scopes of a claim: a JSON list of strings, or a space-delimited string (OAuth ``scope``).

    Anything else gives no scopes, and items that are not valid scope names
    are dropped; a string is split on spaces, never substring-matched.
    """
    if type(value) is str:
        items: Iterable[object] = value.split(" ")
    elif type(value) is list:
        items = value
    else:
        return ()
    return tuple(item for item in items if is_valid_scope(item))  # type: ignore[misc]


def _reject(reason: str, issuer: Issuer | None = None) -> NoReturn:
    # The reason is a fixed string and the issuer comes from the configuration:
    # nothing the caller sent reaches the log.
    logger.debug("JWT rejected: %s (issuer %s)", reason, issuer.name if issuer else "-")
    raise Unauthorized()


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _is_time(value: object) -> TypeGuard[int | float]:
    """A NumericDate: an int, or a finite float; never a bool or a string."""
    if type(value) is int:
        return True
    return type(value) is float and math.isfinite(value)


def _reason(exc: PyJWTError) -> str:
    """A fixed string for the log: PyJWT's class name, never its message (which may quote the token)."""
    return "PyJWT: " + type(exc).__name__


def _subject(sub: object, issuer: Issuer) -> str:
    """The ``sub`` as an owner name: printable, 1-200 characters, no surrounding whitespace."""
    # A log line or a key listing can show it.
    if type(sub) is not str or not 0 < len(sub) <= MAX_SUBJECT_LENGTH or not sub.isprintable() or sub != sub.strip():
        _reject("missing or malformed sub", issuer)
    return sub
