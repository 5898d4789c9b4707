"""``api_keys_blueprint``: /health, /me, /openapi.json and the /api-keys routes.

Every route is a thin HTTP layer over :class:`~flask_gridauth.management.KeyManager`:
it guards the body (size, duplicate fields, NaN, one JSON object) and hands it
to the manager, which checks it against the one schema (:mod:`.schema`) and
applies its rules (owner isolation, no escalation); errors become JSON.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from .activity_routes import register_activity_routes
from .cursors import make_cursor, read_cursor
from .errors import InvalidRequest, PayloadTooLarge, StorageError, Unavailable, error_body
from .extension import get_state
from .leaks import register_routes as register_leak_routes
from .metrics_route import register_metrics_route
from .openapi import DEFAULT_SERVER, describe, openapi_document
from .principal import Principal, current_principal, scope_owner
from .records import KeyRecord
from .responses import own_errors, render_error
from .schema import check_limit
from .scopes import authenticated, public, require_manage_scope
from .strict_json import loads_strict

logger = logging.getLogger("flask_gridauth")


#: Largest body a management route reads; real bodies are a few hundred bytes.
MAX_BODY = 64 * 1024

_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


# -- error rendering ---------------------------------------------------------


def _storage_error(exc: StorageError) -> Any:
    """Storage down while managing keys: fail closed with 503."""
    logger.error("storage unavailable in %s: %s", request.endpoint, exc)
    return render_error(Unavailable())


def _internal_error(exc: HTTPException) -> Any:
    """An unexpected failure still answers JSON, without a stack trace."""
    response = jsonify(error_body(500, "internal_error", "Internal server error"))
    response.status_code = 500
    return response


# -- request parsing ---------------------------------------------------------


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False


def json_body(*, optional: bool = False) -> dict[str, Any]:
    """The request body as one JSON object, else 413/422; its fields are the schema's to check."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise PayloadTooLarge()
    configured = request.max_content_length
    if request.content_length is None and (configured is None or configured > MAX_BODY):
        # A streamed (chunked) body has no length to check first: stop reading one byte past the
        # limit (werkzeug then raises 413) instead of holding whatever the client keeps sending.
        request.max_content_length = MAX_BODY + 1
    try:
        data = request.get_data(cache=True)
    finally:
        request.max_content_length = configured
    if len(data) > MAX_BODY:
        raise PayloadTooLarge()
    if not data.strip():
        if optional:
            return {}
        raise InvalidRequest("the body must be a JSON object", field="body")
    if not request.is_json:
        raise InvalidRequest("the body must be JSON, sent with Content-Type: application/json", field="body")
    try:
        body = loads_strict(data)
    except (ValueError, RecursionError):
        raise InvalidRequest("the body is not valid JSON", field="body") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object", field="body")
    if _SURROGATE_ESCAPE.search(data) and _has_lone_surrogate(body):
        # "\ud800" alone is valid JSON text but no Unicode string: no storage could keep it.
        raise InvalidRequest("the body holds an unpaired surrogate escape", field="body")
    return body


def _location(key_id: str, *, replacing: str | None = None) -> str:
    """Where the new key lives, from the URL this request came to: no ``url_for``.

    An app may mount our views under URLs of its own (a second rule for the same
    view); the key is already created by then, so nothing here may fail and lose
    its raw key. The collection is the request path (``.../api-keys``), or, for a
    rotation, the path before the old key's id (``.../api-keys/<old id>/rotate``).
    """
    path = request.path.rstrip("/")
    if replacing is not None:
        cut = path.rfind(f"/{replacing}")
        path = path[:cut] if cut >= 0 else path.rpartition("/")[0]
    return f"{request.script_root}{path}/{key_id}"


def _created_headers(location: str, raw_key: str | None) -> dict[str, str]:
    """``Location``, and ``Cache-Control: no-store`` on a response that shows a raw key (RFC 9111)."""
    headers = {"Location": location}
    if raw_key is not None:
        # No proxy or browser cache may keep the one response that holds the secret.
        headers["Cache-Control"] = "no-store"
    return headers


def key_object(record: KeyRecord, raw_key: str | None = None) -> dict[str, Any]:
    """The public key object, with ``raw_key`` only on the response that created it."""
    data = record.to_dict()
    if raw_key is not None:
        data["raw_key"] = raw_key
    return data


# -- routes ------------------------------------------------------------------


@describe(summary="Whether storage answers", ok=(200, "Health", "Storage answers."), errors=("503",))
@public
def health() -> tuple[dict[str, Any], int]:
    """200 when storage answers, else 503."""
    try:
        get_state().storage.ping()
    except StorageError:
        return {"status": "unavailable"}, 503
    return {"status": "ok"}, 200


@describe(summary="This document", ok=(200, "OpenAPI", "The OpenAPI document."))
@public
def openapi() -> Response:
    """The OpenAPI 3.1 document of the routes this blueprint mounts, with its mount point as the server URL."""
    rule = request.url_rule.rule if request.url_rule is not None else "/openapi.json"
    prefix = rule[: -len("/openapi.json")]
    document = openapi_document(
        current_app, request.blueprint or "", prefix, server=request.script_root + prefix or "/"
    )
    return jsonify(document)


@describe(summary="The caller (any valid credential)", ok=(200, "Principal", "The principal."))
@authenticated
def me() -> dict[str, Any]:
    """The caller's principal: any valid credential may ask, whatever its scopes."""
    return current_principal.to_dict()


@describe(
    summary="Create an API key or register a signing key",
    ok=(201, "CreatedApiKey", "Created; `raw_key` is shown this once."),
    body="create",
)
@require_manage_scope
def create_key() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Create an API key (201 with ``raw_key``, shown this once) or register a signing key."""
    principal: Principal = current_principal._get_current_object()  # type: ignore[attr-defined]
    record, raw_key = get_state().keys.create_from(json_body(), by=principal)
    return key_object(record, raw_key), 201, _created_headers(_location(record.id), raw_key)


@describe(
    summary="The caller's keys, newest first",
    ok=(200, "ApiKeyList", "One page."),
    query=("limit", "cursor", "owner"),
    errors=("422",),
)
@require_manage_scope
def list_keys() -> dict[str, Any]:
    """The caller's keys newest first, a page at a time (``limit``, ``cursor``)."""
    principal: Principal = current_principal._get_current_object()  # type: ignore[attr-defined]
    owner = scope_owner(principal)
    if "owner" in request.args:
        owner = get_state().keys.owner_for(principal, request.args["owner"])
    limit = check_limit(request.args.get("limit"))
    cursor = request.args.get("cursor")
    before = read_cursor(cursor, owner) if cursor is not None else None
    # One extra row tells whether another page exists without a second query.
    records = get_state().keys.list(owner=owner, limit=limit + 1, before_seq=before)
    page = records[:limit]
    has_more = len(records) > limit
    return {
        "object": "list",
        "data": [key_object(r) for r in page],
        "has_more": has_more,
        "next_cursor": make_cursor(page[-1].seq, owner) if has_more else None,
    }


@describe(summary="One key", ok=(200, "ApiKey", "The key."), errors=("404",))
@require_manage_scope
def get_key(key_id: str) -> dict[str, Any]:
    """One key object; another owner's key is 404, like a missing one."""
    return key_object(get_state().keys.get(key_id, owner=scope_owner(current_principal)))


@describe(
    summary="Rename, re-label, re-limit or narrow a key",
    ok=(200, "ApiKey", "The updated key."),
    body="update",
    errors=("404",),
)
@require_manage_scope
def update_key(key_id: str) -> dict[str, Any]:
    """Change a key's name, metadata or rate limit, or narrow its scopes."""
    principal: Principal = current_principal._get_current_object()  # type: ignore[attr-defined]
    record = get_state().keys.update_from(key_id, json_body(), owner=scope_owner(principal), by=principal)
    return key_object(record)


@describe(
    summary="Revoke a key at once; revoking twice is fine", ok=(200, "ApiKey", "The revoked key."), errors=("404",)
)
@require_manage_scope
def revoke_key(key_id: str) -> dict[str, Any]:
    """Revoke a key at once (200 with the revoked key); revoking it again changes nothing."""
    principal: Principal = current_principal._get_current_object()  # type: ignore[attr-defined]
    return key_object(get_state().keys.revoke(key_id, owner=scope_owner(principal), by=principal))


@describe(
    summary="A new secret; the old key lasts grace_period seconds",
    ok=(201, "CreatedApiKey", "The new key; `raw_key` is shown this once."),
    body="rotate",
    body_required=False,
    errors=("404", "409"),
)
@require_manage_scope
def rotate_key(key_id: str) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A new secret for a key (201 with ``raw_key``); the old one lasts ``grace_period`` seconds."""
    body = json_body(optional=True)
    principal: Principal = current_principal._get_current_object()  # type: ignore[attr-defined]
    new, raw_key = get_state().keys.rotate_from(key_id, body, owner=scope_owner(principal), by=principal)
    data = key_object(new, raw_key)
    data["rotated_from"] = key_id
    return data, 201, _created_headers(_location(new.id, replacing=key_id), raw_key)


def _no_body_fields() -> None:
    """An optional body that, if sent, must be an empty JSON object (422 naming the first field)."""
    body = json_body(optional=True)
    if body:
        first = sorted(body)[0]
        raise InvalidRequest("unknown field", field=first if re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", first) else "body")


@describe(
    summary="Switch a key off, reversibly; its holder gets 401 until it is enabled",
    ok=(200, "ApiKey", "The disabled key."),
    errors=("404", "413", "422"),
)
@require_manage_scope
def disable_key(key_id: str) -> dict[str, Any]:
    """Switch a key off until it is enabled again (200 with the key); its holder gets 401 meanwhile."""
    _no_body_fields()
    principal: Principal = current_principal._get_current_object()  # type: ignore[attr-defined]
    return key_object(get_state().keys.disable(key_id, owner=scope_owner(principal), by=principal))


@describe(summary="Switch a disabled key back on", ok=(200, "ApiKey", "The key."), errors=("404", "413", "422"))
@require_manage_scope
def enable_key(key_id: str) -> dict[str, Any]:
    """Switch a disabled key back on (200 with the key)."""
    _no_body_fields()
    principal: Principal = current_principal._get_current_object()  # type: ignore[attr-defined]
    return key_object(get_state().keys.enable(key_id, owner=scope_owner(principal), by=principal))


# -- the blueprint -----------------------------------------------------------

#: ``(rule, view, methods, option)`` of every route; ``option`` is the factory argument that turns it off.
_ROUTES: tuple[tuple[str, Callable[..., Any], tuple[str, ...], str | None], ...] = (
    ("/health", health, ("GET",), "health"),
    ("/openapi.json", openapi, ("GET",), "openapi"),
    ("/me", me, ("GET",), "me"),
    ("/api-keys", create_key, ("POST",), None),
    ("/api-keys", list_keys, ("GET",), None),
    ("/api-keys/<key_id>", get_key, ("GET",), None),
    ("/api-keys/<key_id>", update_key, ("PATCH",), None),
    ("/api-keys/<key_id>", revoke_key, ("DELETE",), None),
    ("/api-keys/<key_id>/rotate", rotate_key, ("POST",), None),
    ("/api-keys/<key_id>/disable", disable_key, ("POST",), None),
    ("/api-keys/<key_id>/enable", enable_key, ("POST",), None),
)


def make_api_keys_blueprint(
    *, health: bool = True, me: bool = True, openapi: bool = True, name: str = "gridauth"
) -> Blueprint:
    """A key-management blueprint with only the routes asked for.

    The ``/api-keys`` routes are always there (they need ``GRIDAUTH_MANAGE_SCOPE``);
    ``health``, ``me`` and ``openapi`` add ``/health``, ``/me`` and
    ``/openapi.json``. ``/api-keys/`` and ``/api-keys`` are the same route.
    ``name`` is the blueprint's name (two blueprints in one app need two names).
    """
    options = {"health": health, "me": me, "openapi": openapi}
    blueprint = Blueprint(name, __name__)
    for rule, view, methods, option in _ROUTES:
        if option is None or options[option]:
            blueprint.add_url_rule(rule, view_func=view, methods=list(methods), strict_slashes=False)
    register_leak_routes(blueprint)  # POST /secret-scanning and POST /api-keys/revoke-leaked
    register_activity_routes(blueprint)  # GET /audit-events (and the usage and metrics routes)
    register_metrics_route(blueprint)  # GET /metrics: 404 unless GRIDAUTH_METRICS
    blueprint.register_error_handler(StorageError, _storage_error)
    blueprint.register_error_handler(500, _internal_error)
    # Last: its fallback routes cover the stems of every route above.
    own_errors(blueprint)
    return blueprint


#: The blueprint with every route: ``/health``, ``/me``, ``/openapi.json`` and ``/api-keys``.
api_keys_blueprint = make_api_keys_blueprint()


def default_document() -> dict[str, Any]:
    """The document of ``api_keys_blueprint`` mounted at ``/api/v1`` in a bare app (for the docs)."""
    app = Flask("flask_gridauth.openapi")
    app.register_blueprint(api_keys_blueprint, url_prefix=DEFAULT_SERVER)
    return openapi_document(app, api_keys_blueprint.name, DEFAULT_SERVER)
