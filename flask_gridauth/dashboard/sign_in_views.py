"""The dashboard's sign-in and sign-out pages."""

from __future__ import annotations

from flask import Response, redirect, request, url_for
from werkzeug.wrappers import Response as BaseResponse

from ..audit import Actor
from ..errors import GridAuthError, Unauthorized
from ..extension import get_state
from ..scopes import public
from .auth import SessionEnded, check_sign_in, forget, forget_everywhere, remember, session_is_live, signed_in_principal
from .csrf import renew_csrf
from .pages import dashboard_blueprint, page
from .session import dashboard_session


@dashboard_blueprint.route("/sign-in", methods=["GET", "POST"])
@public
def sign_in() -> Response | BaseResponse:
    """The sign-in form: the bootstrap token or an API key holding ``admin``."""
    session = dashboard_session()
    if request.method == "GET":
        try:
            if signed_in_principal() is not None:
                return redirect(url_for(".index"), 303)
        except SessionEnded as exc:
            session["notice"] = exc.reason
        return page("sign_in.html", notice=session.pop("notice", None))
    credential = request.form.get("credential", "").strip()
    if not credential:
        return page("sign_in.html", 422, error="Enter the bootstrap token or an API key.")
    try:
        principal = check_sign_in(credential)
    except Unauthorized as exc:
        # A real key's holder may read "revoked" or "expired"; anyone else reads the generic refusal.
        generic = exc.message == Unauthorized.description
        message = "That token or key was not accepted." if generic else exc.message + "."
        return page("sign_in.html", 401, error=message)
    except GridAuthError as exc:
        return page("sign_in.html", exc.status, exc.extra_headers, error=exc.message + ".")
    forget()
    renew_csrf()
    remember(principal)
    get_state().audit.record("dashboard.signed_in", target_id=principal.id, owner=principal.owner, by=principal)
    return redirect(url_for(".index"), 303)


@dashboard_blueprint.post("/sign-out")
@public
def sign_out() -> BaseResponse:
    """End this session (every copy of its cookie); with ``everywhere``, every session of the owner."""
    notice = "You are signed out."
    entry = dashboard_session().get("principal")
    # Only a session still live in storage is recorded: a replayed cookie of an ended one writes nothing.
    if isinstance(entry, dict) and isinstance(entry.get("id"), str) and session_is_live(entry):
        who = Actor(kind=str(entry.get("kind")), id=entry["id"], owner=entry.get("owner"))
        get_state().audit.record("dashboard.signed_out", target_id=who.id, owner=who.owner, by=who)
    if request.form.get("everywhere"):
        try:
            principal = signed_in_principal()
        except SessionEnded:
            principal = None
        # Only a live form sign-in may end its owner's other sessions.
        if principal is not None and "principal" in dashboard_session():
            forget_everywhere(principal)
            notice = "You are signed out everywhere."
    forget()
    dashboard_session()["notice"] = notice
    return redirect(url_for(".sign_in"), 303)
