"""The OpenAPI 3.1 document of ``api_keys_blueprint``.

Built here from the same limits the code enforces, served at
``<prefix>/openapi.json``, and written to ``openapi.json`` beside this module
and to ``docs/reference/openapi.json`` by :func:`main` (a test checks that
both copies match what this module builds).
"""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

from .leaks import MAX_REVOKE_KEYS, MAX_SOURCE, MAX_TOKEN, MAX_TYPE, MAX_URL
from .management import MAX_DURATION, MAX_METADATA_BYTES, MAX_NAME, MAX_SCOPES
from .scopes import SCOPE_RE

#: Where the copy in the repository says the blueprint is mounted.
DEFAULT_SERVER = "/api/v1"
#: The scope grammar the code checks (:data:`~flask_gridauth.scopes.SCOPE_RE`), anchored.
SCOPE_PATTERN = f"^{SCOPE_RE.pattern}$"
KEY_ID_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"

_ERROR_DESCRIPTIONS = {
    "401": "No credential, or one that did not verify (`WWW-Authenticate: Bearer`).",
    "403": "Authenticated, but missing a scope, or granting one the caller does not hold.",
    "404": "No such key, or another owner's (the two are indistinguishable).",
    "413": "The body is larger than the blueprint accepts.",
    "422": "A bad body or query; `field` names the culprit.",
    "429": "Over a rate limit; `Retry-After` says when to try again.",
    "503": "Storage unreachable: the request was refused, never let through.",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: str) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status in statuses:
        responses[status] = {"$ref": f"#/components/responses/E{status}"}
    return responses


def _schemas() -> dict[str, Any]:
    timestamp = {"type": ["string", "null"], "format": "date-time"}
    scopes = {
        "type": "array",
        "minItems": 1,
        "maxItems": MAX_SCOPES,
        "items": {"type": "string", "pattern": SCOPE_PATTERN, "maxLength": 200},
    }
    name = {"type": "string", "minLength": 1, "maxLength": MAX_NAME, "pattern": r"^[\x21-\x7e][\x20-\x7e]*$"}
    rate_limit = {"type": ["string", "null"], "maxLength": 100, "examples": ["100/minute"]}
    metadata = {
        "type": ["object", "null"],
        "maxProperties": 20,
        "description": f"Any JSON object of at most {MAX_METADATA_BYTES} bytes.",
    }
    return {
        "Error": {
            "type": "object",
            "required": ["object", "status", "code", "message"],
            "properties": {
                "object": {"const": "error"},
                "status": {"type": "integer"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string", "description": "The offending field (422 only)."},
            },
        },
        "Health": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"enum": ["ok", "unavailable"]}},
        },
        "Principal": {
            "type": "object",
            "required": ["object", "kind", "id", "owner", "scopes"],
            "properties": {
                "object": {"const": "principal"},
                "kind": {"enum": ["api_key", "jwt", "signature", "token", "disabled"]},
                "id": {"type": "string"},
                "owner": {"type": "string"},
                "scopes": {"type": "array", "items": {"type": "string"}, "description": "Expanded scopes."},
            },
        },
        "ApiKey": {
            "type": "object",
            "description": "A key: never its secret, never its hash.",
            "required": [
                "object",
                "id",
                "name",
                "type",
                "prefix",
                "scopes",
                "environment",
                "owner",
                "status",
                "created_at",
                "expires_at",
                "revoked_at",
                "last_used_at",
            ],
            "properties": {
                "object": {"const": "api_key"},
                "id": {"type": "string"},
                "name": {"type": "string"},
                "type": {"enum": ["api_key", "signing"]},
                "prefix": {"type": "string", "description": "The first characters, to recognise the key."},
                "scopes": {"type": "array", "items": {"type": "string"}},
                "environment": {"enum": ["live", "test"]},
                "owner": {"type": "string"},
                "status": {"enum": ["active", "expired", "revoked"]},
                "created_at": {"type": "string", "format": "date-time"},
                "expires_at": timestamp,
                "revoked_at": timestamp,
                "last_used_at": timestamp,
                "rate_limit": {"type": ["string", "null"]},
                "metadata": {"type": "object"},
                "fingerprint": {"type": "string", "description": "Signing keys only."},
                "public_key": {"type": "string", "description": "Signing keys only: standard base64."},
            },
        },
        "CreatedApiKey": {
            "allOf": [
                _ref("ApiKey"),
                {
                    "type": "object",
                    "properties": {
                        "raw_key": {
                            "type": "string",
                            "description": "The secret, shown in this response only (API keys, not signing keys).",
                        },
                        "rotated_from": {"type": "string", "description": "Rotation only: the id of the old key."},
                    },
                },
            ]
        },
        "ApiKeyList": {
            "type": "object",
            "required": ["object", "data", "has_more", "next_cursor"],
            "properties": {
                "object": {"const": "list"},
                "data": {"type": "array", "items": _ref("ApiKey")},
                "has_more": {"type": "boolean"},
                "next_cursor": {"type": ["string", "null"]},
            },
        },
        "CreateApiKey": {
            "type": "object",
            "additionalProperties": False,
            "required": ["name", "scopes"],
            "properties": {
                "name": name,
                "scopes": scopes,
                "expires_in": {"type": "integer", "minimum": 1, "maximum": MAX_DURATION, "description": "Seconds."},
                "expires_at": {"type": "string", "format": "date-time", "description": "Instead of expires_in."},
                "environment": {"enum": ["live", "test"], "default": "live"},
                "rate_limit": rate_limit,
                "metadata": metadata,
                "owner": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_NAME,
                    "pattern": r"^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$",
                    "description": "Bootstrap token only (others may only name their own owner).",
                },
                "type": {"enum": ["api_key", "signing"], "default": "api_key"},
                "public_key": {
                    "type": "string",
                    "maxLength": 1024,
                    "description": 'With "type": "signing": standard base64 of a 32-byte Ed25519 public key.',
                },
            },
        },
        "UpdateApiKey": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "name": name,
                "scopes": {**scopes, "description": "May only shrink."},
                "rate_limit": rate_limit,
                "metadata": metadata,
            },
        },
        "RevokeLeaked": {
            "type": "object",
            "additionalProperties": False,
            "required": ["keys"],
            "properties": {
                "keys": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": MAX_REVOKE_KEYS,
                    "items": {"type": "string", "minLength": 1, "maxLength": MAX_TOKEN},
                    "description": "Raw keys found where they must not be.",
                }
            },
        },
        "RevocationReport": {
            "type": "object",
            "required": ["object", "received"],
            "description": "The same whatever existed: it never says which keys were real.",
            "properties": {"object": {"const": "revocation_report"}, "received": {"type": "integer"}},
        },
        "SecretScanningAlert": {
            "type": "array",
            "minItems": 1,
            "description": "GitHub's secret-scanning partner alert.",
            "items": {
                "type": "object",
                "required": ["token", "type"],
                "properties": {
                    "token": {"type": "string", "maxLength": MAX_TOKEN},
                    "type": {"type": "string", "maxLength": MAX_TYPE},
                    "url": {"type": "string", "maxLength": MAX_URL},
                    "source": {"type": "string", "maxLength": MAX_SOURCE},
                },
            },
        },
        "SecretScanningResult": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["token_hash", "token_type", "label"],
                "properties": {
                    "token_hash": {"type": "string", "description": "Hex SHA-256 of the token."},
                    "token_type": {"type": "string"},
                    "label": {"enum": ["true_positive", "false_positive"]},
                },
            },
        },
        "RotateApiKey": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "grace_period": {
                    "type": "integer",
                    "minimum": 0,
                    "maximum": MAX_DURATION,
                    "default": 0,
                    "description": "Seconds the old key keeps working.",
                }
            },
        },
    }


def _responses() -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, description in _ERROR_DESCRIPTIONS.items():
        response = _json(_ref("Error"), description)
        if status == "401":
            response["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if status == "429":
            response["headers"] = {"Retry-After": {"schema": {"type": "string"}}}
        responses[f"E{status}"] = response
    return responses


def _paths() -> dict[str, Any]:
    key_id = {
        "name": "key_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string", "pattern": KEY_ID_PATTERN},
    }
    public: list[dict[str, Any]] = []
    admin_errors = ("401", "403", "404", "429", "503")
    return {
        "/health": {
            "get": {
                "operationId": "health",
                "summary": "Whether storage answers",
                "security": public,
                "responses": {
                    "200": _json(_ref("Health"), "Storage answers."),
                    "503": _json(_ref("Health"), "Storage does not answer."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": public,
                "responses": {"200": _json({"type": "object"}, "The OpenAPI document.")},
            }
        },
        "/me": {
            "get": {
                "operationId": "me",
                "summary": "The caller (any valid credential)",
                "responses": {"200": _json(_ref("Principal"), "The principal."), **_errors("401", "429", "503")},
            }
        },
        "/api-keys": {
            "post": {
                "operationId": "createApiKey",
                "summary": "Create an API key or register a signing key (scope admin)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("CreateApiKey")}}},
                "responses": {
                    "201": _json(_ref("CreatedApiKey"), "Created; `raw_key` is shown this once."),
                    **_errors("401", "403", "413", "422", "429", "503"),
                },
            },
            "get": {
                "operationId": "listApiKeys",
                "summary": "The caller's keys, newest first (scope admin)",
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20},
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "description": "`next_cursor` of the previous page (signed; a forged one is 422).",
                        "schema": {"type": "string", "maxLength": 512},
                    },
                    {
                        "name": "owner",
                        "in": "query",
                        "description": "Bootstrap token only: one owner's keys (default: every owner's).",
                        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_NAME},
                    },
                ],
                "responses": {
                    "200": _json(_ref("ApiKeyList"), "One page."),
                    **_errors("401", "403", "422", "429", "503"),
                },
            },
        },
        "/api-keys/revoke-leaked": {
            "post": {
                "operationId": "revokeLeakedKeys",
                "summary": "Revoke keys found leaked (public; counted as failed authentications)",
                "security": public,
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("RevokeLeaked")}}},
                "responses": {
                    "202": _json(_ref("RevocationReport"), "Received; every existing key among them is revoked."),
                    **_errors("413", "422", "429", "503"),
                },
            }
        },
        "/secret-scanning": {
            "post": {
                "operationId": "secretScanningAlert",
                "summary": "GitHub secret-scanning alerts (public, signed by GitHub; on with a keys URL)",
                "security": public,
                "parameters": [
                    {"name": name, "in": "header", "required": True, "schema": {"type": "string", "maxLength": 256}}
                    for name in ("Github-Public-Key-Identifier", "Github-Public-Key-Signature")
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("SecretScanningAlert")}},
                },
                "responses": {
                    "200": _json(_ref("SecretScanningResult"), "One label per token, in order."),
                    "404": _json(_ref("Error"), "Secret scanning is off (no `GRIDAUTH_SECRET_SCANNING_KEYS_URL`)."),
                    **_errors("401", "413", "422", "503"),
                },
            }
        },
        "/api-keys/{key_id}": {
            "parameters": [key_id],
            "get": {
                "operationId": "getApiKey",
                "summary": "One key (scope admin)",
                "responses": {"200": _json(_ref("ApiKey"), "The key."), **_errors(*admin_errors)},
            },
            "patch": {
                "operationId": "updateApiKey",
                "summary": "Rename, re-label, re-limit or narrow a key (scope admin)",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("UpdateApiKey")}}},
                "responses": {
                    "200": _json(_ref("ApiKey"), "The updated key."),
                    **_errors(*admin_errors, "413", "422"),
                },
            },
            "delete": {
                "operationId": "revokeApiKey",
                "summary": "Revoke a key at once; revoking twice is fine (scope admin)",
                "responses": {"200": _json(_ref("ApiKey"), "The revoked key."), **_errors(*admin_errors)},
            },
        },
        "/api-keys/{key_id}/rotate": {
            "parameters": [key_id],
            "post": {
                "operationId": "rotateApiKey",
                "summary": "A new secret; the old key lasts grace_period seconds (scope admin)",
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": _ref("RotateApiKey")}},
                },
                "responses": {
                    "201": _json(_ref("CreatedApiKey"), "The new key; `raw_key` is shown this once."),
                    **_errors(*admin_errors, "413", "422"),
                },
            },
        },
    }


@functools.lru_cache(maxsize=8)
def _document(server: str) -> str:
    from . import __version__

    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "flask_gridauth key management",
            "version": __version__,
            "description": (
                "The routes of `api_keys_blueprint`. Send an API key, a JWT or the bootstrap token as"
                " `Authorization: Bearer <credential>`, or an API key as `x-api-key`. Every error is"
                " the JSON `Error` object."
            ),
        },
        "servers": [{"url": server}],
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`grd_live_…`), a JWT, or the bootstrap token.",
                },
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": _schemas(),
            "responses": _responses(),
        },
    }
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def openapi_json(server: str = DEFAULT_SERVER) -> str:
    """The document as JSON text (sorted keys, two-space indent), for ``server``."""
    return _document(server)


def openapi_document(server: str = DEFAULT_SERVER) -> dict[str, Any]:
    """The document as a fresh dict, with ``server`` as its only server URL."""
    document: dict[str, Any] = json.loads(_document(server))
    return document


def main(argv: list[str]) -> int:
    """Write the document to each path in ``argv`` (or print it)."""
    text = openapi_json()
    if not argv:
        sys.stdout.write(text)
    for path in argv:
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    return 0
