"""The authenticated caller of a request: :class:`Principal` and ``current_principal``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from flask import g
from werkzeug.local import LocalProxy

from .context import G_PRINCIPAL
from .scopes import scope_granted

if TYPE_CHECKING:
    from .records import KeyRecord

#: ``api_key``, ``jwt``, ``signature``, ``token``, ``disabled``, or the kind of an app's own verifier.
PrincipalKind = str

#: The kinds whose ``"*"`` scope makes a superuser: the bootstrap token and disabled authentication.
SUPERUSER_KINDS = frozenset({"token", "disabled"})

#: Attribute of ``flask.g`` that holds the request's principal.
G_ATTR = G_PRINCIPAL


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request, and what it may do.

    ``scopes`` is already expanded through the implication table, so
    ``has_scope`` is a set look-up (plus the ``x:*`` wildcard).
    """

    kind: PrincipalKind
    id: str
    owner: str
    scopes: frozenset[str]
    claims: Mapping[str, Any] | None = None
    key: KeyRecord | None = field(default=None, repr=False)
    #: ``"live"`` or ``"test"`` for an API key; ``None`` for every other kind.
    environment: str | None = None

    def has_scope(self, name: str) -> bool:
        """Whether this principal holds ``name``, exactly or through a wildcard."""
        return scope_granted(self.scopes, name)

    @property
    def is_superuser(self) -> bool:
        """The bootstrap token (or disabled auth): sees and manages every owner's keys.

        Both the kind and the ``"*"`` scope are needed: another kind holding
        ``"*"`` (an app's verifier, a hand-built principal) is no superuser.
        """
        return self.kind in SUPERUSER_KINDS and "*" in self.scopes

    def to_dict(self) -> dict[str, Any]:
        """The public view of this principal, as ``/me`` shows it."""
        return {
            "object": "principal",
            "kind": self.kind,
            "id": self.id,
            "owner": self.owner,
            "scopes": sorted(self.scopes),
            "environment": self.environment,
        }


def _get_principal() -> Principal:
    principal = g.get(G_ATTR)
    if principal is None:
        raise RuntimeError(
            "No principal for this request. Is GridAuth initialised on this app"
            " (GridAuth(app) or auth.init_app(app)), and is this route public?"
        )
    return cast(Principal, principal)


#: The :class:`Principal` of the current request.
current_principal: Principal = cast(Principal, LocalProxy(_get_principal))


def scope_owner(principal: Principal) -> str | None:
    """The owner whose keys ``principal`` may read and change: ``None`` means every owner."""
    return None if principal.is_superuser else principal.owner
