"""Per-owner overrides of ``GRIDAUTH_RATELIMIT_OWNER``: the part of :class:`~flask_gridauth.KeyManager` that sets them.

Only the operator (the CLI, ``by=None``) and the bootstrap token change an
override: an owner's own key raising its owner-wide budget would be the
escalation the rate-limit ceilings exist to prevent. The owner and the limit
go through the one schema (:func:`~flask_gridauth.schema.check_owner`,
:func:`~flask_gridauth.schema.check_rate_limit`: 1 to 10^9 requests per 1
second to 1 year, up to five limits joined by ``;``), and every change is
audited as ``owner.limit_updated``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .audit import Actor, AuditLog
from .errors import Forbidden, InvalidRequest
from .grants import owner_for
from .principal import Principal
from .schema import check_owner, check_rate_limit

if TYPE_CHECKING:
    from .storage import Storage

logger = logging.getLogger("flask_gridauth")


class OwnerLimitManagement:
    """Set, read and clear an owner's override of ``GRIDAUTH_RATELIMIT_OWNER`` (a base of ``KeyManager``)."""

    storage: Storage
    audit: AuditLog
    #: Called after this process changed an override, so its own rate limits read them again at once.
    owner_limit_listeners: list[Callable[[], None]]

    def get_owner_limit(self, owner: str, *, by: Principal | None = None) -> str | None:
        """``owner``'s override (``None``: it counts against ``GRIDAUTH_RATELIMIT_OWNER``); 403 for another owner's."""
        return self.storage.get_owner_limit(owner_for(by, check_owner(owner)))

    def set_owner_limit(self, owner: str, limit: str, *, by: Principal | Actor | None = None) -> str:
        """Give ``owner`` its own owner-wide limit, such as ``"100/minute"`` or ``"10/second;1000/day"``."""
        owner = check_owner(owner)
        checked = check_rate_limit(limit, "limit")
        if checked is None:
            raise InvalidRequest("limit is required (clear_owner_limit removes an override)", field="limit")
        self._change_owner_limit(owner, checked, by)
        return checked

    def clear_owner_limit(self, owner: str, *, by: Principal | Actor | None = None) -> None:
        """Remove ``owner``'s override: its requests count against ``GRIDAUTH_RATELIMIT_OWNER`` again."""
        self._change_owner_limit(check_owner(owner), None, by)

    def _change_owner_limit(self, owner: str, limit: str | None, by: Principal | Actor | None) -> None:
        if isinstance(by, Principal) and not by.is_superuser:
            raise Forbidden("Only the operator or the bootstrap token may change an owner's rate limit")
        previous = self.storage.get_owner_limit(owner)
        self.storage.set_owner_limit(owner, limit)
        for listener in self.owner_limit_listeners:
            listener()
        logger.info("owner rate limit %s: owner=%s limit=%s", "set" if limit else "cleared", owner, limit)
        self.audit.record(
            "owner.limit_updated", target_id=None, owner=owner, by=by, details={"limit": limit, "previous": previous}
        )
