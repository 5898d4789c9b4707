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
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NoReturn, TypeGuard

from jwt import PyJWT, PyJWTError

from .. import config as c
from ..errors import ConfigurationError, Unauthorized
from ..keyfetch import LOOPBACK_HOSTS, check_key_url  # noqa: F401 - LOOPBACK_HOSTS stays importable here
from ..principal import Principal
from ..schema import MAX_NAME
from ..scopes import is_valid_scope
from .jwks import ALGORITHM_FAMILIES, JWKSCache
from .jwt_cache import VerifiedTokens
from .parse import MAX_CREDENTIAL_LENGTH

logger = logging.getLogger("flask_gridauth")

Expander = Callable[[Iterable[str]], frozenset[str]]

#: Shortest shared secret per HMAC algorithm, in bytes (RFC 7518, section 3.2).
HMAC_MIN_BYTES: dict[str, int] = {"HS256": 32, "HS384": 48, "HS512": 64}
#: Every algorithm an issuer may list.
SUPPORTED_ALGORITHMS = frozenset(HMAC_MIN_BYTES) | frozenset(ALGORITHM_FAMILIES)
#: Keys an issuer's dict may hold; anything else is a typo and a start-up error.
ISSUER_FIELDS = frozenset(
    {"issuer", "jwks_url", "secret", "algorithms", "audience", "scopes_claim", "all_scopes", "leeway", "owner_prefix"}
)
#: Longest ``owner_prefix`` an issuer may set.
MAX_OWNER_PREFIX = 64
#: What ``all_scopes: True`` grants.
ALL_SCOPES = ("admin", "write", "read")
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


@dataclass(frozen=True, slots=True)
class Issuer:
    """One configured issuer: its algorithms, key source and claim rules."""

    name: str
    algorithms: frozenset[str]
    audience: frozenset[str] | None
    scopes_claim: str
    base_scopes: tuple[str, ...]
    leeway: float
    secret: bytes | None
    jwks: JWKSCache | None
    #: Put before ``sub`` to form the owner (and the rate-limit identity): ``"clerk:"``.
    owner_prefix: str = ""

    def __repr__(self) -> str:
        # Never show the secret, even in a debugger or a traceback.
        return f"Issuer(name={self.name!r}, algorithms={sorted(self.algorithms)!r})"


class JWTVerifier:
    """Verifies JWTs from the issuers of ``GRIDAUTH_JWT_ISSUERS``."""

    def __init__(
        self,
        issuers: Iterable[Issuer],
        *,
        expand: Expander,
        reserved_owners: Iterable[str] = (),
        cache_ttl: float = 0,
    ) -> None:
        self.issuers: dict[str, Issuer] = {issuer.name: issuer for issuer in issuers}
        self._expand = expand
        #: Subjects refused because they name an owner that is not a JWT user's (the bootstrap token's).
        self.reserved_owners = frozenset(reserved_owners)
        #: Tokens that verified, for ``GRIDAUTH_JWT_CACHE_TTL`` seconds (``None``: every token verified in full).
        self.verified = VerifiedTokens(cache_ttl) if cache_ttl > 0 else None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, expand: Expander) -> JWTVerifier:
        """Build from ``GRIDAUTH_JWT_*`` and ``GRIDAUTH_JWKS_*``; :class:`ConfigurationError` if any is wrong."""
        leeway = _seconds(config[c.JWT_LEEWAY], c.JWT_LEEWAY, allow_zero=True)
        timeout = _seconds(config[c.JWKS_TIMEOUT], c.JWKS_TIMEOUT, allow_zero=False)
        ttl = _seconds(config[c.JWKS_CACHE_TTL], c.JWKS_CACHE_TTL, allow_zero=False)
        cooldown = _seconds(config[c.JWKS_REFETCH_COOLDOWN], c.JWKS_REFETCH_COOLDOWN, allow_zero=True)
        # A config built by hand (not by init_app) may leave it out: the documented default then.
        cache_ttl = _seconds(config.get(c.JWT_CACHE_TTL, c.DEFAULTS[c.JWT_CACHE_TTL]), c.JWT_CACHE_TTL, allow_zero=True)
        entries = config[c.JWT_ISSUERS]
        if not isinstance(entries, list | tuple):
            raise ConfigurationError(f"{c.JWT_ISSUERS} must be a list of dicts")
        issuers: list[Issuer] = []
        for index, entry in enumerate(entries):
            issuer = _issuer_from_config(index, entry, leeway=leeway, timeout=timeout, ttl=ttl, cooldown=cooldown)
            if any(other.name == issuer.name for other in issuers):
                raise ConfigurationError(f"{c.JWT_ISSUERS}: issuer {issuer.name!r} is listed twice")
            issuers.append(issuer)
        _warn_shared_namespaces(issuers)
        # A JWT whose sub were the bootstrap token's owner would see and change the keys the token made.
        owner = config.get(c.TOKEN_OWNER)
        reserved = (owner,) if isinstance(owner, str) else ()
        return cls(issuers, expand=expand, reserved_owners=reserved, cache_ttl=cache_ttl)

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


# -- configuration -------------------------------------------------------------


def _seconds(value: object, name: str, *, allow_zero: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigurationError(f"{name} must be a number of seconds")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigurationError(f"{name} must be {'zero or more' if allow_zero else 'more than zero'} seconds")
    return float(value)


def _issuer_from_config(
    index: int, entry: object, *, leeway: float, timeout: float, ttl: float, cooldown: float
) -> Issuer:
    """One :class:`Issuer` from its dict; every error names the issuer, never the secret."""
    where = f"{c.JWT_ISSUERS}[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigurationError(f"{where} must be a dict")
    name = entry.get("issuer")
    if not isinstance(name, str) or not name:
        raise ConfigurationError(f"{where}: 'issuer' must be a non-empty string (the exact 'iss' of its tokens)")
    where = f"{c.JWT_ISSUERS} issuer {name!r}"

    unknown = set(entry) - ISSUER_FIELDS
    if unknown:
        names = ", ".join(sorted(repr(k) if isinstance(k, str) else "a non-string key" for k in unknown))
        raise ConfigurationError(f"{where}: unknown setting(s) {names}; expected some of {sorted(ISSUER_FIELDS)}")

    algorithms = entry.get("algorithms")
    if not isinstance(algorithms, list | tuple | set | frozenset) or not algorithms:
        raise ConfigurationError(f"{where}: 'algorithms' must be a non-empty list such as ['RS256']")
    for alg in algorithms:
        if not isinstance(alg, str):
            raise ConfigurationError(f"{where}: 'algorithms' must list algorithm names such as 'RS256'")
        if alg.lower() == "none":
            raise ConfigurationError(f"{where}: algorithm 'none' is never accepted")
        if alg not in SUPPORTED_ALGORITHMS:
            raise ConfigurationError(
                f"{where}: unsupported algorithm {alg!r}; use some of {sorted(SUPPORTED_ALGORITHMS)}"
            )
    algs = frozenset(algorithms)

    has_url, has_secret = "jwks_url" in entry, "secret" in entry
    if has_url == has_secret:
        raise ConfigurationError(f"{where}: give exactly one of 'jwks_url' (RS/PS/ES/EdDSA) or 'secret' (HS)")
    secret: bytes | None = None
    jwks: JWKSCache | None = None
    if has_secret:
        wrong = sorted(algs - set(HMAC_MIN_BYTES))
        if wrong:
            raise ConfigurationError(f"{where}: a 'secret' verifies HS256/HS384/HS512 only, not {wrong}")
        secret = _secret(entry["secret"], algs, where)
    else:
        wrong = sorted(algs & set(HMAC_MIN_BYTES))
        if wrong:
            raise ConfigurationError(f"{where}: a 'jwks_url' serves public keys; {wrong} need a 'secret'")
        url = _jwks_url(entry["jwks_url"], where)
        jwks = JWKSCache(url, issuer=name, algorithms=algs, timeout=timeout, ttl=ttl, cooldown=cooldown)

    return Issuer(
        name=name,
        algorithms=algs,
        audience=_audience(entry.get("audience"), where),
        scopes_claim=_scopes_claim(entry.get("scopes_claim", "permissions"), where),
        base_scopes=_all_scopes(entry.get("all_scopes", False), where),
        leeway=_seconds(entry["leeway"], f"{where}: 'leeway'", allow_zero=True) if "leeway" in entry else leeway,
        secret=secret,
        jwks=jwks,
        owner_prefix=_owner_prefix(entry.get("owner_prefix", ""), where, "owner_prefix" in entry),
    )


def _owner_prefix(value: object, where: str, given: bool) -> str:
    if not given:
        return ""
    if (
        not isinstance(value, str)
        or not 0 < len(value) <= MAX_OWNER_PREFIX
        or not value.isprintable()
        or value != value.strip()
    ):
        raise ConfigurationError(
            f"{where}: 'owner_prefix' must be 1 to {MAX_OWNER_PREFIX} printable characters without surrounding"
            " spaces, such as 'clerk:'"
        )
    return value


def _warn_shared_namespaces(issuers: list[Issuer]) -> None:
    """Warn once per group of issuers whose subjects become owners with the same prefix (or none).

    Two identity providers may both issue ``sub: "user_1"`` for different
    people; without distinct prefixes they would share one owner's keys and
    rate-limit counters.
    """
    groups: dict[str, list[str]] = {}
    for issuer in issuers:
        groups.setdefault(issuer.owner_prefix, []).append(issuer.name)
    for prefix, names in groups.items():
        if len(names) > 1:
            logger.warning(
                "JWT issuers %s share one owner namespace (%s): the same sub from two of them is one owner, with"
                " the same keys and rate limits; give each an owner_prefix such as 'clerk:' in GRIDAUTH_JWT_ISSUERS",
                ", ".join(repr(n) for n in names),
                f"owner_prefix {prefix!r}" if prefix else "no owner_prefix",
            )


def _secret(value: object, algorithms: frozenset[str], where: str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    if not isinstance(value, bytes):
        raise ConfigurationError(f"{where}: 'secret' must be a string or bytes")
    needed = max(HMAC_MIN_BYTES[alg] for alg in algorithms)
    if len(value) < needed:
        # The length needed is public; the secret and its length are not repeated.
        raise ConfigurationError(f"{where}: 'secret' is too short; {sorted(algorithms)} need at least {needed} bytes")
    return value


def _jwks_url(value: object, where: str) -> str:
    return check_key_url(value, f"{where}: 'jwks_url'")


def _audience(value: object, where: str) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str) and value:
        return frozenset({value})
    if isinstance(value, list | tuple) and value and all(isinstance(a, str) and a for a in value):
        return frozenset(value)
    raise ConfigurationError(f"{where}: 'audience' must be a non-empty string or list of strings")


def _scopes_claim(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{where}: 'scopes_claim' must be a claim name such as 'permissions' or 'scope'")
    return value


def _all_scopes(value: object, where: str) -> tuple[str, ...]:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{where}: 'all_scopes' must be True or False")
    return ALL_SCOPES if value else ()
