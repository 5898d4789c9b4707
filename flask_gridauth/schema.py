"""The one schema of key-management input: every field's rule, written once.

:class:`~flask_gridauth.management.KeyManager` parses everything it is given
through :func:`parse`; the blueprint, the dashboard and the CLI only translate
their input into the field names below and show the errors. The OpenAPI
document is generated from the same table (:func:`json_schema`), so the code and
the document cannot disagree.

Why not pydantic or msgspec: both emit JSON Schema, but neither is among this
project's allowed dependencies (flask, limits, cryptography, pyjwt,
itsdangerous), and every rule here is one regular expression or one range that
Python and JSON Schema read alike. Plain dataclasses and one table of
:class:`FieldSpec` are enough, and the table *is* the documentation.

No module of Flask is imported here: the schema belongs to the Flask-free core.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

from .errors import InvalidRequest
from .keys import ENVIRONMENTS, Environment
from .records import REFILL_SECONDS, KeyType, Quota, utcnow
from .scopes import SCOPE_RE, is_valid_scope

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


# -- the table ------------------------------------------------------------------------------

_NULLABLE = "nullable"


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One input field: its JSON Schema, its check, and the operations that take it."""

    name: str
    schema: dict[str, Any]
    check: Callable[[Any], Any]
    operations: frozenset[Operation]
    description: str = ""
    required: frozenset[Operation] = frozenset()


def _spec(
    name: str,
    schema: dict[str, Any],
    check: Callable[[Any], Any],
    operations: str,
    description: str = "",
    required: str = "",
) -> FieldSpec:
    return FieldSpec(
        name,
        schema,
        check,
        frozenset(cast("list[Operation]", operations.split())),
        description,
        frozenset(cast("list[Operation]", required.split())),
    )


#: Every field any key-management operation takes; the OpenAPI document follows by itself.
FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "name",
            {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": f"^{NAME_PATTERN}$"},
            check_name,
            "create update",
            "What the key is for: at least one visible character, no control characters.",
            required="create",
        ),
        _spec(
            "scopes",
            {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_SCOPES,
                "items": {"type": "string", "pattern": f"^{SCOPE_RE.pattern}$", "maxLength": MAX_SCOPE_LENGTH},
            },
            check_scopes,
            "create update",
            "Scopes the key holds; the caller must hold each. On update they may only shrink.",
            required="create",
        ),
        _spec(
            "owner",
            {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": f"^{OWNER_PATTERN}$"},
            check_owner,
            "create",
            "Whose key it is; only the bootstrap token may name another owner than its own.",
        ),
        _spec(
            "type",
            {"enum": ["api_key", "signing"], "default": "api_key"},
            check_type,
            "create",
            "`signing` registers an Ed25519 public key instead of creating a secret.",
        ),
        _spec(
            "environment",
            {"enum": list(ENVIRONMENTS), "default": "live"},
            check_environment,
            "create",
            "API keys only.",
        ),
        _spec(
            "expires_in",
            {"type": "integer", "minimum": 1, "maximum": MAX_DURATION},
            lambda v: check_duration(v, "expires_in"),
            "create",
            "Seconds from now (instead of expires_at).",
        ),
        _spec(
            "expires_at",
            {"type": "string", "format": "date-time"},
            check_expires_at,
            "create",
            "An RFC 3339 time in the future, at most ten years away (instead of expires_in).",
        ),
        _spec(
            "rate_limit",
            {
                "type": ["string", "null"],
                "maxLength": MAX_RATE_LIMIT,
                "pattern": f"^{RATE_LIMIT_PATTERN}$",
                "examples": ["100/minute", "10/second;1000/day"],
            },
            check_rate_limit,
            "create update",
            "Requests per window, 1 to 10^9 per 1 second to 1 year; never more than the caller's own limit."
            " null: the default of API keys.",
        ),
        _spec(
            "metadata",
            {"type": ["object", "null"], "x-max-bytes": MAX_METADATA_BYTES},
            check_metadata,
            "create update",
            f"Any JSON object of at most {MAX_METADATA_BYTES} bytes.",
        ),
        _spec(
            "public_key",
            {"type": "string", "pattern": f"^{PUBLIC_KEY_PATTERN}$"},
            check_public_key,
            "create",
            'With "type": "signing": standard base64 of a 32-byte Ed25519 public key of prime order.',
        ),
        _spec(
            "allowed_ips",
            {
                "type": "array",
                "maxItems": MAX_ALLOWED_IPS,
                "items": {"type": "string", "minLength": 1, "maxLength": 64},
                "examples": [["203.0.113.0/24", "2001:db8::/32"]],
            },
            check_allowed_ips,
            "create update",
            "IPv4 and IPv6 addresses or CIDRs the key may be used from (host bits are cleared); empty: anywhere."
            " A request from elsewhere gets 403.",
        ),
        _spec(
            "quota",
            {
                "type": ["object", "null"],
                "additionalProperties": False,
                "required": ["limit"],
                "properties": {
                    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_QUOTA},
                    "refill": {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "required": ["amount", "interval"],
                        "properties": {
                            "amount": {"type": "integer", "minimum": 1, "maximum": MAX_QUOTA},
                            "interval": {"enum": list(REFILL_SECONDS)},
                        },
                    },
                },
            },
            check_quota,
            "create update",
            "Units the key may use (one per request, more on routes with a cost); the refill adds `amount`"
            " per interval (a month is 30 days), up to `limit`. Setting it starts the count afresh."
            " Never more than the caller's own quota. null: no quota.",
        ),
        _spec(
            "canary",
            {"type": "boolean", "default": False},
            check_canary,
            "create",
            "A canary key never authorises anything: each use is a generic 401 and raises an alarm.",
        ),
        _spec(
            "grace_period",
            {"type": "integer", "minimum": 0, "maximum": MAX_DURATION, "default": 0},
            lambda v: check_duration(v, "grace_period", low=0),
            "rotate",
            "Seconds the old key keeps working.",
        ),
    )
}

_UNSET: Any = object()


# -- the parsed forms -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewKey:
    """A checked ``create`` input: an API key or (``type="signing"``) a signing key."""

    name: str
    scopes: tuple[str, ...]
    owner: str | None = None
    type: KeyType = "api_key"
    environment: Environment = "live"
    expires_in: int | None = None
    expires_at: datetime | None = None
    rate_limit: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    public_key: str | None = None
    allowed_ips: tuple[str, ...] = ()
    quota: Quota | None = None
    canary: bool = False

    def expiry(self, now: datetime) -> datetime | None:
        """When the key expires, measured from ``now``."""
        if self.expires_in is not None:
            return now + timedelta(seconds=self.expires_in)
        return self.expires_at


@dataclass(frozen=True, slots=True)
class KeyChanges:
    """A checked ``update`` input: only the fields given are set (the rest stay ``UNSET``)."""

    name: str = _UNSET
    scopes: tuple[str, ...] = _UNSET
    rate_limit: str | None = _UNSET
    metadata: dict[str, Any] = _UNSET
    allowed_ips: tuple[str, ...] = _UNSET
    quota: Quota | None = _UNSET

    def given(self) -> dict[str, Any]:
        """The fields to change."""
        names = ("name", "scopes", "rate_limit", "metadata", "allowed_ips", "quota")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not _UNSET}


@dataclass(frozen=True, slots=True)
class Rotation:
    """A checked ``rotate`` input."""

    grace_period: int = 0


UNSET: Any = _UNSET


def _field_label(name: object) -> str:
    """A field name fit to appear in an error body; anything odd is reported as ``body``."""
    return name if isinstance(name, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name) else "body"


def _checked(operation: Operation, data: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted((k for k in data if k not in FIELDS or operation not in FIELDS[k].operations), key=str)
    if unknown:
        raise InvalidRequest("unknown field", field=_field_label(unknown[0]))
    for spec in FIELDS.values():
        if operation in spec.required and spec.name not in data:
            raise _error(spec.name, "is required")
    return {name: FIELDS[name].check(value) for name, value in data.items()}


def _mapping(data: object) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidRequest("the body must be a JSON object", field="body")
    return data


def parse_create(data: Mapping[str, Any]) -> NewKey:
    """Check a ``create`` input (field name to value), or raise the 422 naming the field."""
    if "expires_in" in _mapping(data) and "expires_at" in data:
        raise _error("expires_in", "and expires_at cannot both be given")
    checked = _checked("create", data)
    if checked.get("type") == "signing":
        if "public_key" not in checked:
            raise _error("public_key", 'is required with "type": "signing"')
        if "environment" in checked:
            raise _error("environment", "is not a field of signing keys")
        if checked.get("canary"):
            raise _error("canary", "is for API keys only")
    elif "public_key" in checked:
        raise _error("public_key", 'needs "type": "signing"')
    return NewKey(**checked)


def parse_update(data: Mapping[str, Any]) -> KeyChanges:
    """Check an ``update`` input, or raise the 422 naming the field."""
    return KeyChanges(**_checked("update", _mapping(data)))


def parse_rotation(data: Mapping[str, Any]) -> Rotation:
    """Check a ``rotate`` input, or raise the 422 naming the field."""
    return Rotation(**_checked("rotate", _mapping(data)))


def parse(operation: Operation, data: Mapping[str, Any]) -> NewKey | KeyChanges | Rotation:
    """Check ``data`` for ``operation``, or raise the 422 naming the field."""
    parsers: dict[str, Callable[[Mapping[str, Any]], NewKey | KeyChanges | Rotation]] = {
        "create": parse_create,
        "update": parse_update,
        "rotate": parse_rotation,
    }
    return parsers[operation](data)


# -- JSON Schema ------------------------------------------------------------------------------


def _object(operation: Operation, names: list[str], **extra: Any) -> dict[str, Any]:
    properties = {}
    for name in names:
        spec = FIELDS[name]
        properties[name] = {**spec.schema, "description": spec.description} if spec.description else dict(spec.schema)
    required = [n for n in names if operation in FIELDS[n].required]
    schema: dict[str, Any] = {"type": "object", "additionalProperties": False, "properties": properties}
    if required:
        schema["required"] = required
    schema.update(extra)
    return schema


def json_schema(operation: Operation) -> dict[str, Any]:
    """The JSON Schema (2020-12) of ``operation``'s input, built from :data:`FIELDS`."""
    names = [n for n, spec in FIELDS.items() if operation in spec.operations]
    if operation != "create":
        return _object(operation, names)
    both = {"not": {"required": ["expires_in", "expires_at"]}}
    api_key = _object(
        operation,
        [n for n in names if n != "public_key"],
        **both,
    )
    api_key["properties"]["type"] = {**api_key["properties"]["type"], "enum": ["api_key"]}
    signing = _object(operation, [n for n in names if n not in ("environment", "canary")], **both)
    signing["properties"]["type"] = {**signing["properties"]["type"], "const": "signing"}
    del signing["properties"]["type"]["enum"], signing["properties"]["type"]["default"]
    signing["required"] = [*signing.get("required", []), "type", "public_key"]
    return {"oneOf": [api_key, signing]}
