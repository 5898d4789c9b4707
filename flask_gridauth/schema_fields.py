"""The per-field rules of the key-management input schema: bounds, patterns and checks.

Each ``check_*`` function takes one raw value and returns it checked (and
normalised), or raises :class:`~flask_gridauth.errors.InvalidRequest` naming the
field. The table that binds them to field names and operations, and the parsers,
live in :mod:`flask_gridauth.schema`, which re-exports every name defined here.

No module of Flask is imported here: the schema belongs to the Flask-free core.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from .errors import InvalidRequest
from .keys import ENVIRONMENTS, Environment
from .records import REFILL_SECONDS, KeyType, Quota, utcnow
from .scopes import is_valid_scope

MAX_NAME = 200
MAX_SCOPES = 50
MAX_SCOPE_LENGTH = 200
MAX_METADATA_BYTES = 4096
MAX_RATE_LIMIT = 100
MAX_PUBLIC_KEY = 1024
#: Longest lifetime or grace period accepted, in seconds (ten years).
MAX_DURATION = 10 * 365 * 24 * 3600
#: Largest number of requests one rate-limit window may allow.
MAX_RATE_AMOUNT = 10**9
#: Seconds per window unit, as ``limits`` counts them (its year is twelve 30-day months).
RATE_UNITS: dict[str, int] = {
    "second": 1,
    "minute": 60,
    "hour": 3600,
    "day": 86400,
    "month": 30 * 86400,
    "year": 12 * 30 * 86400,
}
#: Longest rate-limit window: one year.
MAX_RATE_WINDOW = RATE_UNITS["year"]

#: Page size of a key listing: default and bounds.
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
#: Longest pagination cursor accepted.
MAX_CURSOR = 512
#: What a key id looks like (anything else cannot exist: 404).
KEY_ID_PATTERN = r"[A-Za-z0-9_-]{1,100}"

Operation = Literal["create", "update", "rotate"]

# -- the character rules, as regular expressions Python and JSON Schema both read ---------------

# Control characters, line/paragraph separators, zero-width and bidi controls, BOM: never in a
# name, whatever the language. Written with \uXXXX escapes, which Python, ECMA 262 and Rust read alike.
_HIDDEN = r"\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
# Lone surrogates only reach Python (a CLI argument that is not UTF-8); JSON Schema never sees them.
_SURROGATES = r"\ud800-\udfff"
_SPACE = r" \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"


def _text_patterns(hidden: str) -> tuple[str, str]:
    visible = f"[^{hidden}{_SPACE}]"
    shown = f"[^{hidden}]"
    # A name holds at least one visible character; an owner also has no space at either end.
    return f"[{_SPACE}]*{visible}{shown}*", f"{visible}(?:{shown}*{visible})?"


NAME_PATTERN, OWNER_PATTERN = _text_patterns(_HIDDEN)
_NAME_RE, _OWNER_RE = (re.compile(p) for p in _text_patterns(_HIDDEN + _SURROGATES))
PUBLIC_KEY_PATTERN = r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]="
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def _up_to(high: int) -> str:
    """A regular expression for the whole numbers 1..``high``, without leading zeros."""
    digits = str(high)
    parts = [f"[1-9][0-9]{{0,{len(digits) - 2}}}"] if len(digits) > 1 else []
    for i, d in enumerate(digits):
        low = 1 if i == 0 else 0
        if int(d) > low:
            top = int(d) - 1
            span = f"[{low}-{top}]" if top > low else str(low)
            rest = len(digits) - i - 1
            parts.append(digits[:i] + span + (f"[0-9]{{{rest}}}" if rest else ""))
    parts.append(digits)
    return "(?:" + "|".join(parts) + ")"


def _rate_item() -> str:
    windows = "|".join(
        f"(?:{_up_to(MAX_RATE_WINDOW // seconds)} )?{unit}s?" if seconds < MAX_RATE_WINDOW else f"(?:1 )?{unit}s?"
        for unit, seconds in RATE_UNITS.items()
    )
    return f"{_up_to(MAX_RATE_AMOUNT)}(?:/| per )(?:{windows})"


#: ``100/minute``, ``5 per 10 seconds``, ``10/second;1000/day``: amount 1..10^9, window 1 s..1 year.
RATE_LIMIT_PATTERN = f"{_rate_item()}(?:;{_rate_item()}){{0,4}}"
_RATE_LIMIT_RE = re.compile(RATE_LIMIT_PATTERN)
_RATE_ITEM_RE = re.compile(r"([0-9]+)(?:/| per )(?:([0-9]+) )?([a-z]+?)s?")


# -- the rules ------------------------------------------------------------------------------


def _error(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{name} {message}", field=name)


def check_name(value: object, name: str = "name") -> str:
    """A key name: 1-200 characters, at least one visible, no control or invisible formatting."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not _NAME_RE.fullmatch(value):
        raise _error(name, f"must be 1-{MAX_NAME} printable characters")
    return value


def check_owner(value: object, name: str = "owner") -> str:
    """An owner name: like a key name, with no space at either end."""
    if not isinstance(value, str) or len(value) > MAX_NAME or not _OWNER_RE.fullmatch(value):
        raise _error(name, f"must be 1-{MAX_NAME} printable characters, without spaces at either end")
    return value


def check_scopes(value: object, name: str = "scopes") -> tuple[str, ...]:
    """1-50 scope names; duplicates are dropped, order kept."""
    if not isinstance(value, list | tuple) or not 1 <= len(value) <= MAX_SCOPES:
        raise _error(name, f"must be a list of 1-{MAX_SCOPES} scope names")
    if not all(is_valid_scope(scope) for scope in value):
        raise _error(name, "holds an invalid scope name")
    return tuple(dict.fromkeys(value))


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)  # JSON Schema's integer: 60.0 is 60
    return None


def check_duration(value: object, name: str, *, low: int = 1) -> int:
    """Whole seconds from ``low`` to ten years."""
    seconds = _whole(value)
    if seconds is None or not low <= seconds <= MAX_DURATION:
        raise _error(name, f"must be a whole number of seconds from {low} to {MAX_DURATION}")
    return seconds


def check_expires_at(value: object, name: str = "expires_at") -> datetime:
    """An RFC 3339 time (or an aware ``datetime``) in the future, at most ten years away."""
    if isinstance(value, str) and len(value) <= 64 and _RFC3339.fullmatch(value):
        try:
            value = datetime.fromisoformat(value.upper())
        except ValueError:
            raise _error(name, "must be an RFC 3339 time such as 2030-01-01T00:00:00Z") from None
    if not isinstance(value, datetime):
        raise _error(name, "must be an RFC 3339 time such as 2030-01-01T00:00:00Z")
    value = value if value.tzinfo else value.replace(tzinfo=UTC)
    try:
        value = value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59-23:59 is past year 9999 in UTC
        raise _error(name, "is out of range") from None
    now = utcnow()
    if value <= now:
        raise _error(name, "must be in the future")
    if value > now + timedelta(seconds=MAX_DURATION):
        raise _error(name, "must be at most ten years away")
    return value


def rate_limit_windows(value: str) -> list[tuple[int, int]]:
    """``(amount, window seconds)`` of each item of a limit string that :func:`check_rate_limit` accepted."""
    windows = []
    for item in value.split(";"):
        match = _RATE_ITEM_RE.fullmatch(item)
        if match is None or match.group(3) not in RATE_UNITS:
            raise ValueError("not a rate limit accepted by the schema")
        windows.append((int(match.group(1)), int(match.group(2) or 1) * RATE_UNITS[match.group(3)]))
    return windows


def check_rate_limit(value: object, name: str = "rate_limit") -> str | None:
    """``None``, or a limit such as ``100/minute``: amount 1 to 10^9, window 1 second to 1 year."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_RATE_LIMIT or not _RATE_LIMIT_RE.fullmatch(value):
        raise _error(
            name,
            f"must be a limit such as '100/minute': 1 to {MAX_RATE_AMOUNT} requests per 1 second to 1 year",
        )
    return value


def check_metadata(value: object, name: str = "metadata") -> dict[str, Any]:
    """A JSON object of at most 4 KB (``None`` is an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(name, "must be a JSON object")
    try:
        size = len(json.dumps(value).encode())
    except (TypeError, ValueError, RecursionError):
        raise _error(name, "must be a JSON object") from None
    if size > MAX_METADATA_BYTES:
        raise _error(name, f"must be at most {MAX_METADATA_BYTES} bytes of JSON")
    return dict(value)


def check_environment(value: object, name: str = "environment") -> Environment:
    """``live`` or ``test``."""
    if not isinstance(value, str) or value not in ENVIRONMENTS:
        raise _error(name, "must be 'live' or 'test'")
    return value


def check_type(value: object, name: str = "type") -> KeyType:
    """``api_key`` or ``signing``."""
    if value not in ("api_key", "signing"):
        raise _error(name, "must be 'api_key' or 'signing'")
    return value


def check_public_key(value: object, name: str = "public_key") -> str:
    """The shape of a public key (standard base64 of 32 bytes); the curve checks come at registration."""
    if not isinstance(value, str) or not re.fullmatch(PUBLIC_KEY_PATTERN, value):
        raise _error(name, "must be the base64 of a 32-byte Ed25519 public key")
    return value


def check_limit(value: str | None, name: str = "limit") -> int:
    """A page size from a query string: digits only, 1 to 100 (default 20)."""
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or len(value) > 3 or not 1 <= int(value) <= MAX_LIMIT:
        raise _error(name, f"must be a whole number from 1 to {MAX_LIMIT}")
    return int(value)


#: Largest quota a key may hold, and the most CIDRs in an address allowlist.
MAX_QUOTA = 10**12
MAX_ALLOWED_IPS = 100


def normalise_cidrs(value: object, name: str = "allowed_ips") -> tuple[str, ...]:
    """A list of up to 100 IPv4/IPv6 addresses or CIDRs, as normalised networks; ``ValueError`` naming why.

    Host bits are allowed and cleared (``strict=False``): ``10.1.2.3/8`` is
    ``10.0.0.0/8``, and the key object shows the network that is enforced. A
    bare address is a /32 (IPv4) or /128 (IPv6).
    """
    if not isinstance(value, list | tuple) or len(value) > MAX_ALLOWED_IPS:
        raise ValueError(f"{name} must be a list of at most {MAX_ALLOWED_IPS} IPv4 or IPv6 CIDRs")
    networks: list[str] = []
    for item in value:
        if not isinstance(item, str) or not 1 <= len(item) <= 64 or not item.isascii():
            raise ValueError(f"{name} must hold IPv4 or IPv6 CIDRs such as 203.0.113.0/24")
        try:
            network = ipaddress.ip_network(item.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{name} must hold IPv4 or IPv6 CIDRs such as 203.0.113.0/24") from None
        networks.append(str(network))
    return tuple(dict.fromkeys(networks))


def check_allowed_ips(value: object, name: str = "allowed_ips") -> tuple[str, ...]:
    """Up to 100 IPv4/IPv6 addresses or CIDRs, normalised (host bits cleared); empty: anywhere."""
    try:
        return normalise_cidrs(value, name)
    except ValueError as exc:
        raise InvalidRequest(str(exc), field=name) from None


def check_quota(value: object, name: str = "quota") -> Quota | None:
    """``{"limit": N, "refill": {"amount": M, "interval": "hour"|"day"|"month"} | null}``, or ``None``."""
    if value is None:
        return None
    shape = (
        f'must be {{"limit": 1..{MAX_QUOTA}, "refill": null or'
        ' {"amount": 1..limit, "interval": "hour", "day" or "month"}}'
    )
    if not isinstance(value, Mapping) or set(value) - {"limit", "refill"} or "limit" not in value:
        raise _error(name, shape)
    limit = value["limit"]
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_QUOTA:
        raise _error(name, shape)
    refill = value.get("refill")
    if refill is None:
        return Quota(limit)
    if not isinstance(refill, Mapping) or set(refill) != {"amount", "interval"}:
        raise _error(name, shape)
    amount, interval = refill["amount"], refill["interval"]
    if isinstance(amount, bool) or not isinstance(amount, int) or not 1 <= amount <= limit:
        raise _error(name, shape)
    if interval not in REFILL_SECONDS:
        raise _error(name, shape)
    return Quota(limit, amount, interval)


def check_canary(value: object, name: str = "canary") -> bool:
    """``true`` or ``false``."""
    if not isinstance(value, bool):
        raise _error(name, "must be true or false")
    return value
