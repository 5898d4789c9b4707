"""CSRF tokens bound to the dashboard session, and single-use form tokens.

Each session holds a random nonce; a form's token is that nonce signed with
the app's secret key (itsdangerous, with a time limit). A token is accepted
only with the session it was made for, so a token lifted from one browser is
useless in another, and a forged one fails the signature.

Forms that reveal a raw key also carry a single-use token: reloading the page
that shows the key re-posts the form, and the second post is refused instead
of quietly minting (and showing) another key.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import current_app
from itsdangerous import BadData, URLSafeTimedSerializer

from .session import dashboard_session

#: Seconds a CSRF token stays valid (a form left open longer must be reloaded).
CSRF_MAX_AGE = 12 * 3600
#: At most this many unused single-use tokens are kept per session (oldest dropped).
MAX_ONCE_TOKENS = 20
_SALT = "gridauth-dashboard-csrf"


class CSRFError(Exception):
    """A form arrived without a valid CSRF token, or a single-use token was reused."""


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_SALT)  # type: ignore[arg-type]


def _nonce() -> str:
    session = dashboard_session()
    nonce = session.get("csrf")
    if not isinstance(nonce, str):
        nonce = secrets.token_hex(16)
        session["csrf"] = nonce
    return nonce


def csrf_token() -> str:
    """The CSRF token for forms of the current session."""
    return _serializer().dumps(_nonce())


def check_csrf(token: object) -> None:
    """Accept ``token`` only if it was made for this session's nonce; else :class:`CSRFError`."""
    nonce = dashboard_session().get("csrf")
    if not isinstance(token, str) or not token or not isinstance(nonce, str) or len(token) > 200:
        raise CSRFError("missing CSRF token")
    try:
        signed: Any = _serializer().loads(token, max_age=CSRF_MAX_AGE)
    except BadData:
        raise CSRFError("invalid CSRF token") from None
    if not isinstance(signed, str) or not hmac.compare_digest(signed.encode(), nonce.encode()):
        raise CSRFError("CSRF token of another session")


def renew_csrf() -> None:
    """Start a new nonce (at sign-in and sign-out), invalidating every earlier token."""
    session = dashboard_session()
    session["csrf"] = secrets.token_hex(16)
    session.pop("once", None)


def once_token() -> str:
    """A new single-use token for a form that reveals a secret."""
    session = dashboard_session()
    token = secrets.token_hex(16)
    pending = [t for t in session.get("once", []) if isinstance(t, str)]
    session["once"] = [*pending, token][-MAX_ONCE_TOKENS:]
    return token


def use_once_token(token: object) -> None:
    """Consume ``token``; a missing, unknown or already used one is :class:`CSRFError`."""
    session = dashboard_session()
    pending = [t for t in session.get("once", []) if isinstance(t, str)]
    if not isinstance(token, str) or not any(hmac.compare_digest(token.encode(), t.encode()) for t in pending):
        raise CSRFError("form already submitted")
    session["once"] = [t for t in pending if t != token]
