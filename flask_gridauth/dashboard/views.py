"""``dashboard_blueprint`` with every page on it.

The blueprint and what all pages share are in :mod:`.pages`; importing the
page modules here puts their routes on it: sign-in (:mod:`.sign_in_views`),
keys (:mod:`.key_views`), usage and narrowing (:mod:`.usage_views`) and the
audit log (:mod:`.audit_views`).
"""

from __future__ import annotations

from .audit_views import audit_page
from .key_views import (
    create_key,
    disable_key,
    enable_key,
    index,
    key_page,
    register_signing_key,
    revoke_key,
    rotate_key,
)
from .pages import PAGE_SIZE, SECURITY_HEADERS, dashboard_blueprint
from .sign_in_views import sign_in, sign_out
from .usage_views import narrow_key

#: Every page's view, by the module that puts it on the blueprint.
VIEWS = (
    sign_in,
    sign_out,
    index,
    create_key,
    key_page,
    rotate_key,
    revoke_key,
    disable_key,
    enable_key,
    register_signing_key,
    narrow_key,
    audit_page,
)

__all__ = ["PAGE_SIZE", "SECURITY_HEADERS", "VIEWS", "dashboard_blueprint"]
