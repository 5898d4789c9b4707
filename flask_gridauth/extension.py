"""The :class:`GridAuth` extension: ``init_app``, the per-app state it builds, and its decorators."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from flask import Flask, current_app

from . import config as c
from . import responses
from .credentials.registry import VerifierFunction
from .errors import ErrorInfo, GridAuthError
from .keypolicy import cost
from .management import KeyManager
from .state import GridAuthState, Requirement
from .storage import Storage

logger = logging.getLogger("flask_gridauth")

P = ParamSpec("P")
R = TypeVar("R")

#: What ``GridAuth(storage=...)`` takes: called with each app, it returns that app's storage.
StorageFactory = Callable[[Flask], Storage]


__all__ = ["GridAuth", "GridAuthState", "Requirement", "StorageFactory", "get_state"]


def get_state(app: Flask | None = None) -> GridAuthState:
    """The :class:`GridAuthState` of ``app`` (default: the current app)."""
    app = app or current_app
    try:
        return app.extensions["gridauth"]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError(
            "GridAuth is not initialised on this app. Did you forget GridAuth(app) or auth.init_app(app)?"
        ) from None


class GridAuth:
    """Authenticate every request of a Flask app.

    ``GridAuth(app)`` or ``auth = GridAuth()`` then ``auth.init_app(app)``. One
    ``GridAuth`` can serve several apps; each app gets its own storage.
    ``storage`` is a factory ``(app) -> Storage`` called once per app by
    ``init_app``, replacing the backend ``GRIDAUTH_STORAGE_URI`` would build.
    """

    def __init__(self, app: Flask | None = None, *, storage: StorageFactory | None = None) -> None:
        if isinstance(storage, Storage) or (storage is not None and not callable(storage)):
            # A single instance would be shared by every app this GridAuth serves (0.1 did that).
            raise TypeError(
                "GridAuth(storage=...) takes a factory called once per app, not a storage object:"
                " pass storage=lambda app: MyStorage(...) so that two apps never share one"
            )
        self._storage_factory = storage
        #: The function ``@error_handler`` registered, if any.
        self.error_handler_function: responses.ErrorHandler | None = None
        #: ``@verifier`` registrations: kind -> (function, header, prefix), for every app, now and later.
        self._verifiers: dict[str, tuple[VerifierFunction, str | None, str | None]] = {}
        self._states: weakref.WeakSet[GridAuthState] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set config defaults, build this app's state and register the request hooks."""
        if "gridauth" in app.extensions:
            raise RuntimeError("GridAuth is already initialised on this app; create one GridAuth per app.")
        c.apply_defaults(app)
        storage = None
        if self._storage_factory is not None:
            storage = self._storage_factory(app)
            if not isinstance(storage, Storage):
                raise TypeError(f"the storage factory returned {type(storage).__name__}, not a Storage")
        prefixes = tuple(prefix for _, _, prefix in self._verifiers.values() if isinstance(prefix, str))
        state = GridAuthState(app, storage, self, kind_prefixes=prefixes)
        for kind, (function, header, prefix) in self._verifiers.items():
            state.add_verifier(kind, function, header=header, prefix=prefix)
        self._states.add(state)
        app.extensions["gridauth"] = state
        app.before_request(state.before_request)
        app.after_request(state.after_request)
        if app.config[c.USAGE]:
            app.after_request(state.usage.after_request)  # counts per key and hour; see flask_gridauth.usage
        if GridAuthError not in app.error_handler_spec[None][None]:
            # Filed under no status: an app's handler for the status (401) or its werkzeug class comes first.
            app.register_error_handler(GridAuthError, responses.render_error)
        if not state.enabled:
            message = (
                "flask_gridauth: AUTHENTICATION IS DISABLED"
                f" (GRIDAUTH_ENABLED=False or {app.config[c.AUTH_ENV]}=disabled):"
                " every request is let through with every scope. Never run like this where others can connect."
            )
            logger.warning(message)  # once: a RuntimeWarning as well printed it twice

    def error_handler(self, f: Callable[[ErrorInfo], R]) -> Callable[[ErrorInfo], R]:
        """Shape every error of the extension and its blueprints (as Flask-HTTPAuth's ``error_handler``).

        ``f`` receives an :class:`~flask_gridauth.errors.ErrorInfo` (``.status``,
        ``.code``, ``.message``, ``.error``) and returns a response value; a 200
        status becomes the error's. The headers the error owes
        (``WWW-Authenticate``, ``Retry-After``, ``X-RateLimit-*``) are added.
        An app's ``@app.errorhandler(401)`` still comes first.
        """
        self.error_handler_function = f
        return f

    def verifier(
        self, kind: str, *, header: str | None = None, prefix: str | None = None
    ) -> Callable[[VerifierFunction], VerifierFunction]:
        """Register a credential kind of the app's own: a function ``(value: str) -> Principal | None``.

        ``header="X-Partner-Token"`` takes that header's value; ``prefix="oat_"``
        takes a Bearer token (or ``x-api-key``) that starts with the prefix.
        ``None`` or :class:`~flask_gridauth.errors.Unauthorized` is a 401; the
        one-credential rule holds (the header beside any other credential is a
        401, and a failing credential never falls through). The returned
        :class:`~flask_gridauth.principal.Principal` takes ``kind`` as its kind,
        has its scopes expanded by the implication table and passes the same
        scope checks and rate limits (``GRIDAUTH_RATELIMIT_JWT``'s default) as
        every other kind. A bad name, header or prefix is a ``ValueError`` here.
        """

        def decorator(function: VerifierFunction) -> VerifierFunction:
            for state in list(self._states):
                state.add_verifier(kind, function, header=header, prefix=prefix)
            self._verifiers[kind] = (function, header, prefix)
            return function

        return decorator

    @property
    def keys(self) -> KeyManager:
        """The current app's :class:`~flask_gridauth.management.KeyManager`."""
        return get_state().keys

    def storage(self, app: Flask | None = None) -> Storage:
        """The storage backend of ``app`` (default: the current app)."""
        return get_state(app).storage

    def cost(self, units: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """A request to this route uses ``units`` of an API key's quota instead of one."""
        return cost(units)

    def limit(self, *limits: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Add a route limit such as ``"10/minute"``, counted per credential."""
        from .ratelimit import mark_route_limit

        return mark_route_limit(*limits)
