"""The audit page: the signed-in owner's audit events, newest first, filtered and paged.

The same events and scoping as ``GET /audit-events``: an owner sees the events
of its own keys, the bootstrap token every owner's. Pages continue with the
API's sealed, owner-bound cursors (:mod:`flask_gridauth.cursors`), so a cursor
of one owner is refused for another. Nothing here changes an event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from flask import Response, request

from ..activity import ACTIONS
from ..cursors import make_cursor, read_cursor
from ..errors import InvalidRequest
from ..extension import get_state
from ..principal import scope_owner
from ..schema import KEY_ID_PATTERN
from ..scopes import public
from .pages import dashboard_blueprint, error_page, page, signed_in_admin

#: Events per page of the audit page.
AUDIT_PAGE_SIZE = 25
#: Actions whose target is a key (the page links them to the key's page).
KEY_ACTIONS = frozenset(a for a in ACTIONS if a.startswith(("key.", "signing_key.")))


def details_text(details: Mapping[str, Any]) -> list[tuple[str, str]]:
    """An event's details as (name, value) pairs to show: strings as they are, the rest as compact JSON."""
    return [
        (str(name), value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "), sort_keys=True))
        for name, value in details.items()
    ]


@dashboard_blueprint.get("/audit")
@public
def audit_page() -> Response:
    """Audit events, newest first; ``?action=`` and ``?key=`` filter, ``?cursor=`` continues."""
    principal = signed_in_admin()
    owner = scope_owner(principal)
    action = request.args.get("action") or None
    if action is not None and action not in ACTIONS:
        return error_page(400, "Bad filter", "There is no such action in the audit log.")
    key = request.args.get("key", "").strip() or None
    if key is not None and not re.fullmatch(KEY_ID_PATTERN, key):
        return error_page(400, "Bad filter", "That is not a key id.")
    cursor = request.args.get("cursor") or None
    try:
        before = read_cursor(cursor, owner) if cursor is not None else None
    except InvalidRequest:
        return error_page(400, "Bad page", "That page of the audit log does not exist (or has expired).")
    events = get_state().audit.list(
        owner=owner, limit=AUDIT_PAGE_SIZE + 1, before_seq=before, action=action, target_id=key
    )
    shown = events[:AUDIT_PAGE_SIZE]
    next_cursor = make_cursor(shown[-1].seq, owner) if len(events) > AUDIT_PAGE_SIZE else None
    return page(
        "audit.html",
        events=shown,
        actions=ACTIONS,
        key_actions=KEY_ACTIONS,
        action=action,
        key=key,
        paged=cursor is not None,
        next_cursor=next_cursor,
        show_owner=principal.is_superuser,
        details_text=details_text,
    )


__all__ = ["AUDIT_PAGE_SIZE", "audit_page", "details_text"]
