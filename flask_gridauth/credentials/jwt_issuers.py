"""JWT issuers: what ``GRIDAUTH_JWT_ISSUERS`` may say, checked once at start-up.

Every error names the issuer and the setting, never a secret. The verifier
(:mod:`flask_gridauth.credentials.jwt`) only reads the :class:`Issuer` objects
built here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import config as c
from ..errors import ConfigurationError
from ..keyfetch import check_key_url
from .jwks import ALGORITHM_FAMILIES, JWKSCache

logger = logging.getLogger("flask_gridauth")

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


def issuers_from_config(config: Mapping[str, Any]) -> list[Issuer]:
    """The issuers of ``GRIDAUTH_JWT_ISSUERS`` with the ``GRIDAUTH_JWT_LEEWAY`` and ``GRIDAUTH_JWKS_*`` defaults."""
    leeway = seconds(config[c.JWT_LEEWAY], c.JWT_LEEWAY, allow_zero=True)
    timeout = seconds(config[c.JWKS_TIMEOUT], c.JWKS_TIMEOUT, allow_zero=False)
    ttl = seconds(config[c.JWKS_CACHE_TTL], c.JWKS_CACHE_TTL, allow_zero=False)
    cooldown = seconds(config[c.JWKS_REFETCH_COOLDOWN], c.JWKS_REFETCH_COOLDOWN, allow_zero=True)
    entries = config[c.JWT_ISSUERS]
    if not isinstance(entries, list | tuple):
        raise ConfigurationError(f"{c.JWT_ISSUERS} must be a list of dicts")
    issuers: list[Issuer] = []
    for index, entry in enumerate(entries):
        issuer = _issuer_from_config(index, entry, leeway=leeway, timeout=timeout, ttl=ttl, cooldown=cooldown)
        if any(other.name == issuer.name for other in issuers):
            raise ConfigurationError(f"{c.JWT_ISSUERS}: issuer {issuer.name!r} is listed twice")
        issuers.append(issuer)
    warn_shared_namespaces(issuers)
    return issuers


def seconds(value: object, name: str, *, allow_zero: bool) -> float:
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
        leeway=seconds(entry["leeway"], f"{where}: 'leeway'", allow_zero=True) if "leeway" in entry else leeway,
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


def warn_shared_namespaces(issuers: list[Issuer]) -> None:
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
