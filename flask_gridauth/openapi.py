"""The OpenAPI 3.1 document of a key-management blueprint, generated, never written by hand.

Paths and methods come from the app's URL map (only the routes a blueprint
really mounts, under the prefix it is mounted at); request bodies and query
parameters come from the one input schema (:mod:`flask_gridauth.schema`); what
each route needs comes from its scope marks. A view describes its responses
with :func:`describe`. The docs build writes the document of
``api_keys_blueprint`` mounted at ``/api/v1`` beside the HTML
(:func:`flask_gridauth.blueprint.default_document`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask

from .responses import UNMATCHED_ATTR
from .schema import DEFAULT_LIMIT, FIELDS, KEY_ID_PATTERN, MAX_CURSOR, MAX_LIMIT, json_schema
from .scopes import view_requirement

#: Where the documented copy mounts the blueprint.
DEFAULT_SERVER = "/api/v1"
#: The attribute :func:`describe` leaves on a view.
OPENAPI_ATTR = "_gridauth_openapi"

F = TypeVar("F", bound=Callable[..., Any])

_ERROR_DESCRIPTIONS = {
    "401": "No credential, or one that did not verify (`WWW-Authenticate: Bearer`).",
    "403": "Authenticated, but missing a scope, or granting one the caller does not hold.",
    "404": "No such key, or another owner's (the two are indistinguishable).",
    "409": "The key changed meanwhile (already rotated or revoked).",
    "413": "The body is larger than the blueprint accepts.",
    "422": "A bad body or query; `field` names the culprit.",
    "429": "Over a rate limit; `Retry-After` says when to try again.",
    "503": "Storage unreachable: the request was refused, never let through.",
}
_PRIVATE_ERRORS = ("401", "403", "429", "503")


def describe(
    *,
    summary: str,
    ok: tuple[int, str, str] = (200, "", "OK"),
    body: str | None = None,
    body_required: bool = True,
    query: tuple[str, ...] = (),
    headers: tuple[dict[str, Any], ...] = (),
    errors: tuple[str, ...] = (),
    components: Mapping[str, dict[str, Any]] | None = None,
) -> Callable[[F], F]:
    """Describe a view for the OpenAPI document.

    ``ok`` is ``(status, component schema name, description)``. ``body`` is an
    operation of the input schema (``"create"``, ``"update"``, ``"rotate"``) or
    the name of a schema in ``components`` (for routes outside key management,
    which keep their rules beside their code). ``query`` names :data:`QUERY`
    parameters; ``headers`` are header parameters; ``errors`` the statuses it
    may answer beyond those every private route may.
    """

    def decorator(view: F) -> F:
        info = {
            "summary": summary,
            "ok": ok,
            "body": body,
            "body_required": body_required,
            "query": query,
            "headers": headers,
            "errors": errors,
            "components": dict(components or {}),
        }
        setattr(view, OPENAPI_ATTR, info)
        return view

    return decorator


#: Query parameters a view may read, by name.
QUERY: dict[str, dict[str, Any]] = {
    "limit": {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
    },
    "cursor": {
        "name": "cursor",
        "in": "query",
        "description": "`next_cursor` of the previous page (opaque; a forged one is 422).",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR},
    },
    "owner": {
        "name": "owner",
        "in": "query",
        "description": "Bootstrap token only: one owner's keys (default: every owner's).",
        "schema": dict(FIELDS["owner"].schema),
    },
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _output_schemas() -> dict[str, Any]:
    """What the routes answer: built from the input fields where they are the same."""
    timestamp = {"type": ["string", "null"], "format": "date-time"}
    strings = {"type": "array", "items": {"type": "string"}}
    key_properties: dict[str, Any] = {
        "object": {"const": "api_key"},
        "id": {"type": "string"},
        "name": {"type": "string"},
        "type": {"enum": ["api_key", "signing"]},
        "prefix": {"type": "string", "description": "The first characters, to recognise the key."},
        "scopes": strings,
        "environment": {"type": "string"},
        "owner": {"type": "string"},
        "status": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "expires_at": timestamp,
        "revoked_at": timestamp,
        "last_used_at": timestamp,
        "rate_limit": {"type": ["string", "null"]},
        "metadata": {"type": "object"},
        "fingerprint": {"type": "string", "description": "Signing keys only."},
        "public_key": {"type": "string", "description": "Signing keys only: standard base64."},
        "disabled_at": {**timestamp, "description": "When the key was disabled; null while enabled."},
        "allowed_ips": {**strings, "description": "CIDRs the key may be used from; empty: anywhere."},
        "quota": {
            "type": ["object", "null"],
            "description": "The usage quota, with the units `remaining` now.",
            "properties": {
                "limit": {"type": "integer"},
                "refill": {
                    "type": ["object", "null"],
                    "properties": {"amount": {"type": "integer"}, "interval": {"enum": ["hour", "day", "month"]}},
                },
                "remaining": {"type": ["integer", "null"]},
            },
        },
        "canary": {"type": "boolean", "description": "A canary key never authorises anything."},
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
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"enum": ["ok", "unavailable"]}}},
        "Principal": {
            "type": "object",
            "required": ["object", "kind", "id", "owner", "scopes"],
            "properties": {
                "object": {"const": "principal"},
                "kind": {"type": "string"},
                "id": {"type": "string"},
                "owner": {"type": "string"},
                "scopes": {**strings, "description": "Expanded scopes."},
            },
        },
        "ApiKey": {
            "type": "object",
            "description": "A key: never its secret, never its hash.",
            "required": [k for k in key_properties if k not in ("fingerprint", "public_key", "rate_limit", "metadata")],
            "properties": key_properties,
        },
        "CreatedApiKey": {
            "allOf": [
                _ref("ApiKey"),
                {
                    "type": "object",
                    "properties": {
                        "raw_key": {"type": "string", "description": "The secret, shown in this response only."},
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
        "OpenAPI": {"type": "object"},
        "Object": {"type": "object"},
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


_PARAM = re.compile(r"<(?:(?P<converter>[a-z]+)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")


def _path(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """An OpenAPI path and its path parameters from a werkzeug rule."""
    parameters: list[dict[str, Any]] = []

    def replace(match: re.Match[str]) -> str:
        name = match.group("name")
        schema: dict[str, Any] = {"type": "string"}
        if match.group("converter") == "int":
            schema = {"type": "integer", "minimum": 0}
        elif name == "key_id":
            schema = {"type": "string", "pattern": f"^{KEY_ID_PATTERN}$"}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _PARAM.sub(replace, rule), parameters


def _operation(view: Any, method: str, endpoint: str, manage_scope: str) -> dict[str, Any]:
    info: Mapping[str, Any] = getattr(view, OPENAPI_ATTR, None) or {
        "summary": ((view.__doc__ or endpoint).strip().splitlines() or [endpoint])[0],
        "ok": (200, "Object", "OK"),
        "body": None,
        "body_required": False,
        "query": (),
        "headers": (),
        "errors": ("404", "422"),
        "components": {},
    }
    requirement = view_requirement(view, method, {}, manage_scope=manage_scope)
    status, schema_name, description = info["ok"]
    operation: dict[str, Any] = {
        "operationId": endpoint.rpartition(".")[2] + ("" if method == "GET" else f"_{method.lower()}"),
        "summary": info["summary"],
    }
    if requirement is None:
        operation["security"] = []
    else:
        needs = list(requirement[0])
        if requirement[1]:
            needs.append("any of " + ", ".join(requirement[1]))
        operation["description"] = "Needs: " + (", ".join(needs) if needs else "any valid credential") + "."
    parameters = [QUERY[name] for name in info["query"]] + list(info["headers"])
    if parameters:
        operation["parameters"] = parameters
    if info["body"]:
        operation["requestBody"] = {
            "required": info["body_required"],
            "content": {"application/json": {"schema": _ref(_BODY_NAMES.get(info["body"], info["body"]))}},
        }
    responses: dict[str, Any] = {
        str(status): _json(_ref(schema_name), description) if schema_name else {"description": description}
    }
    statuses = set(info["errors"])
    if requirement is not None:
        statuses.update(_PRIVATE_ERRORS)
    if info["body"]:
        statuses.update(("413", "422"))
    for code in sorted(statuses):
        responses[code] = {"$ref": f"#/components/responses/E{code}"}
    operation["responses"] = responses
    return operation


_BODY_NAMES = {"create": "CreateApiKey", "update": "UpdateApiKey", "rotate": "RotateApiKey"}


def openapi_document(app: Flask, blueprint: str, url_prefix: str, *, server: str | None = None) -> dict[str, Any]:
    """The document of the routes ``blueprint`` mounts under ``url_prefix`` in ``app``.

    ``server`` is the URL the document names (default: ``url_prefix``).
    """
    from . import __version__

    manage_scope = str(app.config.get("GRIDAUTH_MANAGE_SCOPE", "admin"))
    prefix = url_prefix.rstrip("/")
    paths: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        owner, _, leaf = rule.endpoint.rpartition(".")
        # Private endpoints (the blueprint's JSON 404/405 fallbacks) are no operations.
        if owner != blueprint or leaf.startswith("_") or not rule.rule.startswith(prefix + "/"):
            continue
        view = app.view_functions[rule.endpoint]
        if getattr(view, UNMATCHED_ATTR, False):
            continue  # the blueprint's fallback for unknown paths and methods: not an operation
        path, parameters = _path(rule.rule[len(prefix) :])
        item = paths.setdefault(path, {})
        if parameters:
            item["parameters"] = parameters
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            item[method.lower()] = _operation(view, method, rule.endpoint, manage_scope)
        extra.update(getattr(view, OPENAPI_ATTR, {}).get("components", {}))
    schemas = {**_output_schemas(), **extra}
    for operation, name in _BODY_NAMES.items():
        schemas[name] = json_schema(operation)  # type: ignore[arg-type]
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "flask_gridauth key management",
            "version": __version__,
            "description": (
                "The routes of the key-management blueprint. Send an API key, a JWT or the bootstrap token as"
                " `Authorization: Bearer <credential>`, or an API key as `x-api-key`. Every error is the JSON"
                " `Error` object."
            ),
        },
        "servers": [{"url": server if server is not None else (prefix or "/")}],
        "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`grd_live_…`), a JWT, or the bootstrap token.",
                },
                "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": schemas,
            "responses": _responses(),
        },
    }


def openapi_json(document: Mapping[str, Any]) -> str:
    """A document as JSON text (sorted keys, two-space indent)."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
