"""What each route needs: public, or which scopes and credential kinds; looked up once per endpoint and method.

The decorators of :mod:`flask_gridauth.scopes` mark the views; this reads the
marks (and ``GRIDAUTH_METHOD_SCOPES``, ``GRIDAUTH_MANAGE_SCOPE``) the first
time a route is asked about, and keeps the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask import current_app

from .bounded_cache import BoundedCache
from .scopes import view_kinds, view_requirement

#: What a route needs: ``None`` when public, else ``(all of these scopes, any of these, kinds or None)``.
Requirement = tuple[tuple[str, ...], tuple[str, ...], frozenset[str] | None] | None
#: What :meth:`RouteRequirements.cached` gives for a route not looked up yet.
UNKNOWN: Any = object()
#: Most (endpoint, method) pairs kept: far more than an app has routes, so the bound is only a guard.
MAX_ROUTES = 10_000


class RouteRequirements:
    """The requirement of each of one app's routes, read from its views once."""

    def __init__(
        self,
        view_functions: Mapping[str, Callable[..., Any]],
        *,
        method_scopes: dict[str, str] | None,
        manage_scope: str,
        cache: BoundedCache[tuple[str | None, str], Requirement] | None = None,
    ) -> None:
        self.view_functions = view_functions
        self.method_scopes = method_scopes
        self.manage_scope = manage_scope
        self._known: BoundedCache[tuple[str | None, str], Requirement] = (
            cache if cache is not None else BoundedCache("route_requirements", MAX_ROUTES)
        )
        #: ``cached((endpoint, method), UNKNOWN)``: the request hook's look-up, no call of ours on a hit.
        self.cached = self._known.get

    def __len__(self) -> int:
        """How many (endpoint, method) pairs are known."""
        return len(self._known)

    def __call__(self, endpoint: str | None, method: str) -> Requirement:
        """What a route needs (``None`` when public), cached per endpoint and method."""
        cached = self._known.get((endpoint, method), UNKNOWN)
        if cached is not UNKNOWN:
            return cached
        if endpoint is None:
            # No route matched: authenticate, then let Flask answer 404/405. Not cached: the
            # method is the client's choice, and a cache keyed by it would grow without bound.
            return ((), (), None)
        result: Requirement = None
        if not _serves_static(endpoint):
            view = self.view_functions.get(endpoint)
            scopes = view_requirement(view, method, self.method_scopes, manage_scope=self.manage_scope)
            if scopes is not None:
                result = (*scopes, view_kinds(view))
        return self._known.put((endpoint, method), result)


def _serves_static(endpoint: str) -> bool:
    """Whether ``endpoint`` is Flask's static-file route of the app or of a blueprint.

    Only a real static folder makes it public: a view that merely happens to be
    named ``static`` is a private route like any other.
    """
    name, sep, leaf = endpoint.rpartition(".")
    if leaf != "static":
        return False
    owner = current_app.blueprints.get(name) if sep else current_app
    return owner is not None and owner.has_static_folder
