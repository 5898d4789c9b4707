"""The table of key-management fields: each one's JSON Schema, check and operations.

One row per field (:class:`FieldSpec`) in :data:`FIELDS`. :mod:`flask_gridauth.schema`
parses input through the rows' checks; :func:`json_schema` builds the OpenAPI
document's request bodies from the same rows, so the two cannot disagree. The
checks themselves are in ``flask_gridauth.schema_fields``.

No module of Flask is imported here: the table belongs to the Flask-free core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from .keys import ENVIRONMENTS
from .records import REFILL_SECONDS
from .schema_fields import (
    MAX_ALLOWED_IPS,
    MAX_DURATION,
    MAX_METADATA_BYTES,
    MAX_NAME,
    MAX_QUOTA,
    MAX_RATE_LIMIT,
    MAX_SCOPE_LENGTH,
    MAX_SCOPES,
    NAME_PATTERN,
    OWNER_PATTERN,
    PUBLIC_KEY_PATTERN,
    RATE_LIMIT_PATTERN,
    Operation,
    check_allowed_ips,
    check_canary,
    check_duration,
    check_environment,
    check_expires_at,
    check_metadata,
    check_name,
    check_owner,
    check_public_key,
    check_quota,
    check_rate_limit,
    check_scopes,
    check_type,
)
from .scopes import SCOPE_RE

# -- the table ------------------------------------------------------------------------------


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
    """The JSON Schema (2020-12) of ``operation``'s input, built from :data:`~flask_gridauth.schema.FIELDS`."""
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
