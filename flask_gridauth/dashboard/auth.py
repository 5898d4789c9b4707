"""Who is signed in to the dashboard.

The session never holds the credential (the cookie is signed, not
encrypted): only the principal's kind, id and owner, and when it signed in.
Every request re-loads that principal and re-checks it, so revoking or
expiring the key, or taking ``admin`` from it, ends the session at once.
A bootstrap-token session is bound to the token in force (an HMAC, under
the app's secret key, of the token's digest): a new token ends it.

Every sign-in is also a session kept in storage (its id is in the cookie,
only its SHA-256 in storage) and checked on every request, so signing out
ends the session for every copy of the cookie, "sign out everywhere" ends
every session of the owner, and ``flask gridauth rotate-token`` ends every
bootstrap-token session, on every process that shares the storage.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from flask import current_app, request

from .. import config as c
from ..credentials.api_key import principal_for
from ..errors import Forbidden, Unauthorized
from ..extension import GridAuthState, get_state
from ..principal import Principal
from ..records import utcnow
from .session import dashboard_session

logger = logging.getLogger("flask_gridauth")

#: Seconds a dashboard sign-in lasts, however active the session is.
SESSION_MAX_AGE = 12 * 3600
#: Credential kinds the sign-in form accepts (JWT users come through ``GRIDAUTH_DASHBOARD_PRINCIPAL``).
FORM_KINDS = ("token", "api_key")
#: The storage subject of every bootstrap-token session (``rotate-token`` ends them all).
TOKEN_SUBJECT = "token"  # noqa: S105 - a subject's name, not a secret


class SessionEnded(Exception):
    """The signed-in principal is no longer valid; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _token_binding(state: GridAuthState) -> str:
    digest = state.token_digest or b""
    key = current_app.secret_key
    secret = key.encode() if isinstance(key, str) else bytes(key or b"")
    return hmac.new(secret, b"gridauth-dashboard-token:" + digest, hashlib.sha256).hexdigest()


def check_sign_in(credential: str) -> Principal:
    """The principal of a credential typed into the sign-in form, or the error to show.

    The same verifiers as the API run (failures are logged and counted as
    failed authentications), then the key policy (its ``allowed_ips``); the
    principal must hold ``admin``.
    """
    state = get_state()
    principal = state.verify_bearer(credential)
    if principal.kind not in FORM_KINDS:
        raise Unauthorized("Sign in with the bootstrap token or an API key")
    if not principal.has_scope(state.manage_scope):
        raise Forbidden(f"This key does not hold the {state.manage_scope} scope")
    return principal


def session_subject(principal: Principal) -> str:
    """Whose sessions "sign out everywhere" ends together: the bootstrap token's, or one owner's."""
    return TOKEN_SUBJECT if principal.kind == "token" else "owner:" + principal.owner


def _session_key(session_id: str) -> str:
    # Storage holds only a hash: its contents never rebuild a cookie (which also needs the secret key).
    return hashlib.sha256(b"gridauth-dashboard-session:" + session_id.encode("ascii")).hexdigest()


def remember(principal: Principal) -> None:
    """Record the signed-in principal in the session and in storage: never the credential itself."""
    session_id = secrets.token_urlsafe(32)
    get_state().storage.add_session(  # StorageError propagates: the page answers 503, nobody is signed in
        _session_key(session_id), session_subject(principal), utcnow() + timedelta(seconds=SESSION_MAX_AGE)
    )
    entry: dict[str, Any] = {
        "kind": principal.kind,
        "id": principal.id,
        "owner": principal.owner,
        "t": int(time.time()),
        "s": session_id,
    }
    if principal.kind == "token":
        entry["b"] = _token_binding(get_state())
    dashboard_session()["principal"] = entry
    logger.info("dashboard sign-in: kind=%s id=%s owner=%s", principal.kind, principal.id, principal.owner)


def forget() -> None:
    """Sign out: end the stored session (every copy of the cookie), then drop everything the cookie holds."""
    session = dashboard_session()
    entry = session.get("principal")
    session_id = entry.get("s") if isinstance(entry, dict) else None
    session.clear()
    if isinstance(session_id, str) and session_id.isascii():
        get_state().storage.end_session(_session_key(session_id))


def forget_everywhere(principal: Principal) -> int:
    """Sign out everywhere: end every stored session of ``principal``'s subject, this one included."""
    ended = get_state().storage.end_sessions(session_subject(principal))
    forget()
    logger.info("dashboard sign-out everywhere: kind=%s owner=%s sessions=%d", principal.kind, principal.owner, ended)
    return ended


def _check_stored(entry: dict[str, Any], subject: str) -> None:
    """:class:`SessionEnded` unless the session of ``entry`` is still live in storage, for ``subject``."""
    session_id = entry.get("s")
    if not isinstance(session_id, str) or not session_id.isascii():
        raise SessionEnded("Sign in again.")
    stored = get_state().storage.session_subject(_session_key(session_id))  # StorageError: 503
    if stored is None or not hmac.compare_digest(stored.encode(), subject.encode()):
        raise SessionEnded("You were signed out. Sign in again.")


def session_is_live(entry: object) -> bool:
    """Whether the cookie's sign-in ``entry`` is still a live stored session (not signed out, not expired)."""
    if not isinstance(entry, dict):
        return False
    subject = TOKEN_SUBJECT if entry.get("kind") == "token" else "owner:" + str(entry.get("owner"))
    try:
        _check_stored(entry, subject)
    except SessionEnded:
        return False
    return True


def _restore(entry: dict[str, Any]) -> Principal:
    state = get_state()
    kind, key_id, owner, signed_in = entry.get("kind"), entry.get("id"), entry.get("owner"), entry.get("t")
    if not isinstance(signed_in, int) or not 0 <= time.time() - signed_in <= SESSION_MAX_AGE:
        raise SessionEnded("Your session has expired. Sign in again.")
    if kind == "token":
        binding = entry.get("b")
        if (
            state.token_digest is None
            or not isinstance(binding, str)
            or not hmac.compare_digest(binding.encode(), _token_binding(state).encode())
        ):
            raise SessionEnded("The bootstrap token has changed. Sign in again.")
        _check_stored(entry, session_subject(state.token_principal))
        return state.token_principal
    if kind == "api_key" and isinstance(key_id, str):
        record = state.storage.get(key_id)  # StorageError propagates: the page answers 503
        if record is None or record.type != "api_key" or record.owner != owner:
            raise SessionEnded("Your key no longer exists. Sign in again.")
        try:
            state.policy.check_restored(record, request.remote_addr)
        except (Unauthorized, Forbidden) as exc:
            raise SessionEnded(f"{exc.message}. Sign in again.") from None
        principal = principal_for(record, "api_key", state.expand)
        if not principal.has_scope(state.manage_scope):
            raise SessionEnded(f"Your key no longer holds the {state.manage_scope} scope. Sign in again.")
        _check_stored(entry, session_subject(principal))
        return principal
    raise SessionEnded("Sign in again.")


def app_principal() -> Principal | None:
    """The principal ``GRIDAUTH_DASHBOARD_PRINCIPAL`` returns, if the app configured one."""
    supplier: Callable[[], Principal | None] | None = current_app.config.get(c.DASHBOARD_PRINCIPAL)
    if supplier is None:
        return None
    principal = supplier()
    if principal is not None and not isinstance(principal, Principal):
        raise TypeError("GRIDAUTH_DASHBOARD_PRINCIPAL must return a Principal or None")
    return principal


def signed_in_principal() -> Principal | None:
    """The dashboard's principal for this request, or ``None`` when nobody is signed in.

    Raises :class:`SessionEnded` (after clearing the session) when a stored
    sign-in is no longer valid.
    """
    state = get_state()
    if not state.enabled:
        return state.disabled_principal
    supplied = app_principal()
    if supplied is not None:
        return supplied
    entry = dashboard_session().get("principal")
    if entry is None:
        return None
    try:
        if not isinstance(entry, dict):
            raise SessionEnded("Sign in again.")
        return _restore(entry)
    except SessionEnded:
        forget()
        raise
