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
``flask_gridauth.schema_fields``, the table of fields and the JSON Schema built
from it in ``flask_gridauth.schema_table``; every one of their public names is
re-exported here.

No module of Flask is imported here: the schema belongs to the Flask-free core.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from .errors import InvalidRequest
from .keys import Environment
from .records import KeyType, Quota
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
from .schema_table import FIELDS, FieldSpec, json_schema

# Every public name, those of schema_fields.py and schema_table.py included (re-exported from here).
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
