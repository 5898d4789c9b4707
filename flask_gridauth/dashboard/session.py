"""The dashboard's own signed session cookie.

Flask has one session cookie per app, and its flags (``SameSite``, path,
domain) are app-wide settings. The dashboard wants a stricter cookie than
many apps can live with (``SameSite=Strict`` breaks OAuth callbacks, for
one), so it keeps its state in a cookie of its own: Flask's signed-cookie
session machinery, under another name, salt and path. The app's own
``session`` and its settings are never read or changed.
"""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Flask, Response, g, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

#: Name of the dashboard's session cookie.
COOKIE_NAME = "gridauth_dashboard"
_G_SESSION = "_gridauth_dashboard_session"


class DashboardSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session with the dashboard's name, salt, path and flags."""

    salt = "gridauth-dashboard-session"
    digest_method = staticmethod(hashlib.sha256)

    def __init__(self, path: str) -> None:
        self.path = path

    def get_cookie_name(self, app: Flask) -> str:
        """A name of its own, so the app's session cookie is left alone."""
        return COOKIE_NAME

    def get_cookie_domain(self, app: Flask) -> str | None:
        """Host-only: never sent to sibling subdomains."""
        return None

    def get_cookie_path(self, app: Flask) -> str:
        """Only the dashboard's URLs receive the cookie."""
        return self.path

    def get_cookie_httponly(self, app: Flask) -> bool:
        """Scripts never read it."""
        return True

    def get_cookie_secure(self, app: Flask) -> bool:
        """``Secure`` whenever the request came over HTTPS."""
        return request.is_secure

    def get_cookie_samesite(self, app: Flask) -> str:
        """Never sent on a cross-site request: a first line of defence against CSRF."""
        return "Strict"

    def get_cookie_partitioned(self, app: Flask) -> bool:
        """Not partitioned: the dashboard is never embedded."""
        return False


def cookie_path(index_url: str) -> str:
    """The cookie path for a dashboard whose index is at ``index_url`` (``/dashboard/`` gives ``/dashboard``)."""
    return index_url.rstrip("/") or "/"


def open_dashboard_session(app: Flask, path: str) -> SecureCookieSession | None:
    """Load the dashboard session of this request into ``g``; ``None`` if the app has no ``SECRET_KEY``."""
    interface = DashboardSessionInterface(path)
    session = interface.open_session(app, request)
    setattr(g, _G_SESSION, (interface, session))
    return session


def dashboard_session() -> SecureCookieSession:
    """The current request's dashboard session (opened by the blueprint's ``before_request``)."""
    _, session = g.get(_G_SESSION, (None, None))
    if session is None:
        raise RuntimeError("the dashboard session is not open")
    return session  # type: ignore[no-any-return]


def save_dashboard_session(app: Flask, response: Response) -> None:
    """Write the dashboard session cookie if it changed."""
    interface: Any
    interface, session = g.get(_G_SESSION, (None, None))
    if interface is not None and session is not None:
        interface.save_session(app, session, response)
