"""The dashboard's blueprint, its request plumbing, and the helpers every page shares.

The pages themselves are in :mod:`.sign_in_views`, :mod:`.key_views` and
:mod:`.activity_views`; :mod:`.views` imports them all so their routes are on
the blueprint before an app registers it. Every view is ``@public`` to the
GridAuth hook and does its own session-based sign-in (see :mod:`.auth`).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, make_response, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response as BaseResponse

from ..errors import Forbidden, GridAuthError, InvalidRequest, StorageError
from ..extension import get_state
from ..principal import Principal, scope_owner
from ..records import KeyRecord
from .auth import SessionEnded, signed_in_principal
from .csrf import CSRFError, check_csrf, csrf_token
from .forms import error_field, scope_catalog
from .session import cookie_path, dashboard_session, open_dashboard_session, save_dashboard_session

#: Keys per page of the list.
PAGE_SIZE = 20
#: Sent with every dashboard page: no inline script or style, never framed, forms post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
}
_STATIC = "gridauth_dashboard.static"
#: A page marker of the key list (a ``seq``).
SEQ = re.compile(r"[0-9]{1,18}")
_G_PRINCIPAL = "_gridauth_dashboard_principal"

dashboard_blueprint = Blueprint(
    "gridauth_dashboard", __name__, template_folder="templates", static_folder="static", static_url_path="/static"
)


class NeedSignIn(Exception):
    """Nobody is signed in: the view answers with a redirect to the sign-in page."""


class FormReused(CSRFError):
    """A single-use form was posted twice (typically a reload of the page that showed a key)."""


class NoSecretKey(Exception):
    """The app has no ``SECRET_KEY``, so the dashboard cannot sign its cookie."""


@dashboard_blueprint.record_once
def _check_config(setup: BlueprintSetupState) -> None:
    # Fail at start-up, not on the first request, when the catalog is malformed.
    scope_catalog(setup.app.config)


# -- request plumbing ---------------------------------------------------------


@dashboard_blueprint.before_request
def _open_session() -> None:
    if request.endpoint == _STATIC:
        return
    if not current_app.secret_key:
        raise NoSecretKey()
    open_dashboard_session(current_app, cookie_path(url_for(".index")))
    if request.method == "POST":
        check_csrf(request.form.get("csrf_token"))


@dashboard_blueprint.after_request
def _finish(response: Response) -> Response:
    if request.endpoint != _STATIC:
        save_dashboard_session(current_app, response)
        # Every page is about one signed-in person's keys: never cache any of it.
        response.headers["Cache-Control"] = "no-store"
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


@dashboard_blueprint.context_processor
def _template_helpers() -> dict[str, Any]:
    principal: Principal | None = g.get(_G_PRINCIPAL)
    return {
        "csrf_token": csrf_token,
        "principal": principal,
        # Only a sign-in made on the form can be signed out of here (not the app's own login).
        "can_sign_out": principal is not None and "principal" in dashboard_session(),
        "auth_enabled": get_state().enabled,
        "when": _when,
    }


def _when(value: datetime | None, empty: str = "—") -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else empty


def page(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> Response:
    response = make_response(render_template(f"gridauth/{template}", **context), status)
    response.headers.update(headers or {})
    return response


def error_page(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return page("error.html", status, headers, title=title, message=message)


def signed_in_admin() -> Principal:
    """The signed-in principal holding ``admin``; else the sign-in redirect or a 403 page."""
    try:
        principal = signed_in_principal()
    except SessionEnded as exc:
        dashboard_session()["notice"] = exc.reason
        raise NeedSignIn() from None
    if principal is None:
        raise NeedSignIn()
    setattr(g, _G_PRINCIPAL, principal)
    scope = get_state().manage_scope
    if not principal.has_scope(scope):
        raise Forbidden(f"Managing keys needs the {scope} scope")
    return principal


# -- errors ---------------------------------------------------------------------


@dashboard_blueprint.errorhandler(NeedSignIn)
def _need_sign_in(exc: NeedSignIn) -> BaseResponse:
    return redirect(url_for(".sign_in"), 303)


@dashboard_blueprint.errorhandler(FormReused)
def _form_reused(exc: FormReused) -> Response:
    return error_page(
        409,
        "Form already submitted",
        "This form was already sent, so nothing was done again. A key is shown only once: if you did not copy"
        " it, revoke it and create another.",
    )


@dashboard_blueprint.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError) -> Response:
    return error_page(
        400,
        "Form refused",
        "This form did not come from this dashboard session, or it has expired. Go back, reload the page and"
        " try again.",
    )


@dashboard_blueprint.errorhandler(NoSecretKey)
def _no_secret_key(exc: NoSecretKey) -> Response:
    return error_page(503, "Dashboard unavailable", "The dashboard needs the application's SECRET_KEY to be set.")


@dashboard_blueprint.errorhandler(StorageError)
def _storage_down(exc: StorageError) -> Response:
    return error_page(503, "Storage unavailable", "The key storage is not answering. Try again shortly.")


@dashboard_blueprint.errorhandler(GridAuthError)
def _gridauth_error(exc: GridAuthError) -> Response:
    return error_page(exc.status, type(exc).description or "Error", exc.message, exc.extra_headers)


# -- shared by the pages --------------------------------------------------------


def refusal(exc: GridAuthError) -> dict[str, Any]:
    """The template context of a refused form: the KeyManager's message and the field it is about."""
    field = error_field(exc) if isinstance(exc, InvalidRequest) else None
    return {"error": exc.message, "error_field": field}


def record_of(key_id: str, principal: Principal) -> KeyRecord:
    """The key ``key_id`` if ``principal`` may see it; else the 404 page."""
    return get_state().keys.get(key_id, owner=scope_owner(principal))


def set_notice(text: str) -> None:
    """A message for the next page shown (after a redirect)."""
    dashboard_session()["notice"] = text


def take_notice() -> str | None:
    """The message left for this page, once."""
    notice: str | None = dashboard_session().pop("notice", None)
    return notice


def redirect_to(endpoint: str, **values: Any) -> BaseResponse:
    """A 303 to a dashboard page (after a POST)."""
    return redirect(url_for(endpoint, **values), 303)
