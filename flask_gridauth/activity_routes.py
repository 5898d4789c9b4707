"""The blueprint's activity routes: ``GET /audit-events`` (and, with usage and metrics, their routes).

They are added to the blueprint by :func:`register_activity_routes`; the
helpers they share with the key routes (owner scoping, signed cursors, page
size) are imported from :mod:`flask_gridauth.blueprint` when a request runs.
Nothing here changes or deletes an audit event.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, request

from .activity import ACTIONS
from .cursors import make_cursor, read_cursor
from .errors import InvalidRequest
from .extension import get_state
from .openapi import QUERY, describe
from .principal import Principal, current_principal, scope_owner
from .schema import KEY_ID_PATTERN, check_limit
from .scopes import require_manage_scope

#: Longest ``target_id`` filter accepted (key ids are far shorter).
MAX_TARGET_ID = 100


def _action_filter() -> str | None:
    action = request.args.get("action")
    if action is not None and action not in ACTIONS:
        raise InvalidRequest("action must be one of: " + ", ".join(ACTIONS), field="action")
    return action


def _target_filter() -> str | None:
    target = request.args.get("target_id")
    # The same rule the OpenAPI document states (a key id), so the two cannot disagree.
    if target is not None and not re.fullmatch(KEY_ID_PATTERN, target):
        raise InvalidRequest(
            f"target_id must be a key id (1-{MAX_TARGET_ID} letters, digits, _ or -)", field="target_id"
        )
    return target


_NULLABLE: dict[str, Any] = {"type": ["string", "null"]}
#: The objects of the audit routes, for the OpenAPI document.
AUDIT_COMPONENTS: dict[str, dict[str, Any]] = {
    "AuditEvent": {
        "type": "object",
        "description": "One audit event: never a secret, never a hash.",
        "required": ["object", "id", "action", "actor", "target_id", "owner", "remote_addr", "created_at", "details"],
        "properties": {
            "object": {"const": "audit_event"},
            "id": {"type": "string"},
            "action": {"enum": list(ACTIONS)},
            "actor": {
                "type": "object",
                "required": ["kind", "id", "owner"],
                "properties": {"kind": {"type": "string"}, "id": {"type": "string"}, "owner": _NULLABLE},
            },
            "target_id": _NULLABLE,
            "owner": _NULLABLE,
            "remote_addr": _NULLABLE,
            "created_at": {"type": "string", "format": "date-time"},
            "details": {"type": "object"},
        },
    },
    "AuditEventList": {
        "type": "object",
        "required": ["object", "data", "has_more", "next_cursor"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/AuditEvent"}},
            "has_more": {"type": "boolean"},
            "next_cursor": _NULLABLE,
        },
    },
}
QUERY.setdefault("action", {"name": "action", "in": "query", "schema": {"enum": list(ACTIONS)}})
QUERY.setdefault(
    "target_id",
    {
        "name": "target_id",
        "in": "query",
        "description": "Only events about this key.",
        "schema": {"type": "string", "pattern": f"^{KEY_ID_PATTERN}$"},
    },
)


@describe(
    summary="The caller's audit events, newest first",
    ok=(200, "AuditEventList", "One page."),
    query=("limit", "cursor", "owner", "action", "target_id"),
    errors=("422",),
    components=AUDIT_COMPONENTS,
)
@require_manage_scope
def list_audit_events() -> dict[str, Any]:
    """The audit events of the caller's owner (every owner for the bootstrap token), newest first."""

    principal: Principal = current_principal._get_current_object()  # type: ignore[attr-defined]
    owner = scope_owner(principal)
    if "owner" in request.args:
        owner = get_state().keys.owner_for(principal, request.args["owner"])
    action, target_id = _action_filter(), _target_filter()
    limit = check_limit(request.args.get("limit"))
    cursor = request.args.get("cursor")
    before = read_cursor(cursor, owner) if cursor is not None else None
    # One extra row tells whether another page exists without a second query.
    events = get_state().audit.list(owner=owner, limit=limit + 1, before_seq=before, action=action, target_id=target_id)
    page = events[:limit]
    has_more = len(events) > limit
    return {
        "object": "list",
        "data": [e.to_dict() for e in page],
        "has_more": has_more,
        "next_cursor": make_cursor(page[-1].seq, owner) if has_more else None,
    }


#: Longest usage window, in days.
MAX_DAYS = 90
QUERY.setdefault(
    "days",
    {"name": "days", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DAYS, "default": 7}},
)
USAGE_COMPONENTS: dict[str, dict[str, Any]] = {
    "Usage": {
        "type": "object",
        "required": ["object", "key_id", "buckets", "scopes_held", "scopes_used", "unused_scopes"],
        "properties": {
            "object": {"const": "usage"},
            "key_id": {"type": "string"},
            "buckets": {
                "type": "array",
                "description": "One per hour of the window, oldest first.",
                "items": {
                    "type": "object",
                    "required": ["start", "allowed", "forbidden", "rate_limited"],
                    "properties": {
                        "start": {"type": "string", "format": "date-time"},
                        "allowed": {"type": "integer", "minimum": 0},
                        "forbidden": {"type": "integer", "minimum": 0},
                        "rate_limited": {"type": "integer", "minimum": 0},
                    },
                },
            },
            "scopes_held": {"type": "array", "items": {"type": "string"}},
            "scopes_used": {"type": "array", "items": {"type": "string"}},
            "unused_scopes": {"type": "array", "items": {"type": "string"}},
        },
    }
}


def _days() -> int:
    raw = request.args.get("days")
    if raw is None:
        return 7
    if not raw.isascii() or not raw.isdigit() or len(raw) > 3 or not 1 <= int(raw) <= MAX_DAYS:
        raise InvalidRequest(f"days must be a whole number from 1 to {MAX_DAYS}", field="days")
    return int(raw)


@describe(
    summary="A key's requests per hour, and the scopes it never used",
    ok=(200, "Usage", "The usage."),
    query=("days",),
    errors=("404", "422"),
    components=USAGE_COMPONENTS,
)
@require_manage_scope
def key_usage(key_id: str) -> dict[str, Any]:
    """Allowed, forbidden and rate-limited requests of a key per hour over ``?days`` (default 7)."""

    state = get_state()
    record = state.keys.get(key_id, owner=scope_owner(current_principal))
    return state.usage.report(record, days=_days(), expand=state.expand)


def register_activity_routes(blueprint: Blueprint) -> None:
    """Add the activity routes to ``blueprint`` (read-only: no route edits or deletes an event)."""
    blueprint.add_url_rule("/audit-events", view_func=list_audit_events, methods=["GET"])
    blueprint.add_url_rule("/api-keys/<key_id>/usage", view_func=key_usage, methods=["GET"])
