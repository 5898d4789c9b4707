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

The per-field bounds, patterns and ``check_*`` functions live in
``flask_gridauth.schema_fields``; every one of them is re-exported here.

No module of Flask is imported here: the schema belongs to the Flask-free core.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from .errors import InvalidRequest
from .keys import ENVIRONMENTS, Environment
from .records import REFILL_SECONDS, KeyType, Quota
from .schema_fields import (
    DEFAULT_LIMIT,
    KEY_ID_PATTERN,
    MAX_ALLOWED_IPS,
    MAX_CURSOR,
    MAX_DURATION,
    MAX_LIMIT,
    MAX_METADATA_BYTES,
    MAX_NAME,
    MAX_PUBLIC_KEY,
    MAX_QUOTA,
    MAX_RATE_AMOUNT,
    MAX_RATE_LIMIT,
    MAX_RATE_WINDOW,
    MAX_SCOPE_LENGTH,
    MAX_SCOPES,
    NAME_PATTERN,
    OWNER_PATTERN,
    PUBLIC_KEY_PATTERN,
    RATE_LIMIT_PATTERN,
    RATE_UNITS,
    Operation,
    _error,
    check_allowed_ips,
    check_canary,
    check_duration,
    check_environment,
    check_expires_at,
    check_limit,
    check_metadata,
    check_name,
    check_owner,
    check_public_key,
    check_quota,
    check_rate_limit,
    check_scopes,
    check_type,
    normalise_cidrs,
    rate_limit_windows,
)

# Every public name, those of schema_fields.py included (re-exported from here).
__all__ = [
    "DEFAULT_LIMIT",
    "FIELDS",
    "FieldSpec",
    "KEY_ID_PATTERN",
    "KeyChanges",
    "MAX_ALLOWED_IPS",
    "MAX_CURSOR",
    "MAX_DURATION",
    "MAX_LIMIT",
    "MAX_METADATA_BYTES",
    "MAX_NAME",
    "MAX_PUBLIC_KEY",
    "MAX_QUOTA",
    "MAX_RATE_AMOUNT",
    "MAX_RATE_LIMIT",
    "MAX_RATE_WINDOW",
    "MAX_SCOPES",
    "MAX_SCOPE_LENGTH",
    "NAME_PATTERN",
    "NewKey",
    "OWNER_PATTERN",
    "Operation",
    "PUBLIC_KEY_PATTERN",
    "RATE_LIMIT_PATTERN",
    "RATE_UNITS",
    "Rotation",
    "UNSET",
    "check_allowed_ips",
    "check_canary",
    "check_duration",
    "check_environment",
    "check_expires_at",
    "check_limit",
    "check_metadata",
    "check_name",
    "check_owner",
    "check_public_key",
    "check_quota",
    "check_rate_limit",
    "check_scopes",
    "check_type",
    "json_schema",
    "normalise_cidrs",
    "parse",
    "parse_create",
    "parse_rotation",
    "parse_update",
    "rate_limit_windows",
]
from .scopes import SCOPE_RE

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
