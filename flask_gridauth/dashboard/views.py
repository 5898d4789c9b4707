"""``dashboard_blueprint``: sign-in, the key list, create, rotate, revoke and signing keys.

Every view is ``@public`` to the GridAuth hook and does its own session-based
sign-in (see :mod:`.auth`). Every rule about keys is the KeyManager's; the
views only translate forms and show its errors.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, current_app, g, make_response, redirect, render_template, request, url_for
from flask.blueprints import BlueprintSetupState
from werkzeug.wrappers import Response as BaseResponse

from ..audit import Actor
from ..errors import Conflict, Forbidden, GridAuthError, InvalidRequest, NotFound, StorageError, Unauthorized
from ..extension import get_state
from ..principal import Principal, scope_owner
from ..records import KeyRecord, utcnow
from ..scopes import public
from .auth import (
    SessionEnded,
    check_sign_in,
    forget,
    forget_everywhere,
    remember,
    session_is_live,
    signed_in_principal,
)
from .csrf import CSRFError, check_csrf, csrf_token, once_token, renew_csrf, use_once_token
from .forms import (
    GRACE_CHOICES,
    MAX_DAYS,
    error_field,
    form_allowed_ips,
    form_expires_in,
    form_grace_period,
    form_quota,
    form_scopes,
    scope_catalog,
)
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
_SEQ = re.compile(r"[0-9]{1,18}")
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


def _page(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> Response:
    response = make_response(render_template(f"gridauth/{template}", **context), status)
    response.headers.update(headers or {})
    return response


def _error_page(status: int, title: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return _page("error.html", status, headers, title=title, message=message)


def _principal() -> Principal:
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
    return _error_page(
        409,
        "Form already submitted",
        "This form was already sent, so nothing was done again. A key is shown only once: if you did not copy"
        " it, revoke it and create another.",
    )


@dashboard_blueprint.errorhandler(CSRFError)
def _csrf_failed(exc: CSRFError) -> Response:
    return _error_page(
        400,
        "Form refused",
        "This form did not come from this dashboard session, or it has expired. Go back, reload the page and"
        " try again.",
    )


@dashboard_blueprint.errorhandler(NoSecretKey)
def _no_secret_key(exc: NoSecretKey) -> Response:
    return _error_page(503, "Dashboard unavailable", "The dashboard needs the application's SECRET_KEY to be set.")


@dashboard_blueprint.errorhandler(StorageError)
def _storage_down(exc: StorageError) -> Response:
    return _error_page(503, "Storage unavailable", "The key storage is not answering. Try again shortly.")


@dashboard_blueprint.errorhandler(GridAuthError)
def _gridauth_error(exc: GridAuthError) -> Response:
    return _error_page(exc.status, type(exc).description or "Error", exc.message, exc.extra_headers)


# -- sign-in --------------------------------------------------------------------


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
        return _page("sign_in.html", notice=session.pop("notice", None))
    credential = request.form.get("credential", "").strip()
    if not credential:
        return _page("sign_in.html", 422, error="Enter the bootstrap token or an API key.")
    try:
        principal = check_sign_in(credential)
    except Unauthorized as exc:
        # A real key's holder may read "revoked" or "expired"; anyone else reads the generic refusal.
        generic = exc.message == Unauthorized.description
        message = "That token or key was not accepted." if generic else exc.message + "."
        return _page("sign_in.html", 401, error=message)
    except GridAuthError as exc:
        return _page("sign_in.html", exc.status, exc.extra_headers, error=exc.message + ".")
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


# -- keys -----------------------------------------------------------------------


@dashboard_blueprint.get("/")
@public
def index() -> Response:
    """The owner's keys, newest first, a page at a time (``?before=<seq>``)."""
    principal = _principal()
    before_arg = request.args.get("before")
    before: int | None = None
    if before_arg is not None:
        if not _SEQ.fullmatch(before_arg):
            return _error_page(400, "Bad page", "That page of the list does not exist.")
        before = int(before_arg)
    records = get_state().keys.list(owner=scope_owner(principal), limit=PAGE_SIZE + 1, before_seq=before)
    has_more = len(records) > PAGE_SIZE
    records = records[:PAGE_SIZE]
    return _page(
        "keys.html",
        records=records,
        now=utcnow(),
        next_before=records[-1].seq if has_more else None,
        paged=before is not None,
        show_owner=principal.is_superuser,
        notice=dashboard_session().pop("notice", None),
    )


def _form_context(catalog: dict[str, str] | None, **extra: Any) -> dict[str, Any]:
    return {"catalog": catalog, "max_days": MAX_DAYS, "form": request.form, **extra}


def _refusal(exc: GridAuthError) -> dict[str, Any]:
    field = error_field(exc) if isinstance(exc, InvalidRequest) else None
    return {"error": exc.message, "error_field": field}


@dashboard_blueprint.route("/keys/new", methods=["GET", "POST"])
@public
def create_key() -> Response:
    """The create form; a success shows the raw key once, in this response only."""
    principal = _principal()
    catalog = scope_catalog(current_app.config)
    if request.method == "GET":
        return _page("create.html", **_form_context(catalog, once=once_token()))
    form = request.form
    try:
        use_once_token(form.get("once"))
    except CSRFError:
        raise FormReused() from None
    try:
        record, raw_key = get_state().keys.create(
            name=form.get("name", ""),
            scopes=form_scopes(form, catalog),
            owner=principal.owner,
            by=principal,
            environment=form.get("environment", "live"),
            expires_in=form_expires_in(form),
            canary=form.get("canary") == "on",
        )
    except (InvalidRequest, Forbidden) as exc:
        return _page("create.html", exc.code, **_form_context(catalog, once=once_token(), **_refusal(exc)))
    return _page("key_created.html", 201, record=record, raw_key=raw_key, rotated=None)


def _record(key_id: str, principal: Principal) -> KeyRecord:
    return get_state().keys.get(key_id, owner=scope_owner(principal))


@dashboard_blueprint.route("/keys/<key_id>", methods=["GET", "POST"])
@public
def key_page(key_id: str) -> Response | BaseResponse:
    """One key: its environment, state, quota and allowlist; a form edits the quota and the allowlist.

    The quota is only sent when the form changes it: setting a quota starts it
    full, so re-saving an unchanged one must not refill it.
    """
    principal = _principal()
    record = _record(key_id, principal)
    if request.method == "GET":
        return _page("key.html", **_key_context(record))
    form = request.form
    changes: dict[str, Any] = {}
    try:
        allowed_ips = form_allowed_ips(form)
        if tuple(allowed_ips) != record.allowed_ips:
            changes["allowed_ips"] = allowed_ips
        quota = form_quota(form)
        if quota != (record.quota.spec() if record.quota is not None else None):
            changes["quota"] = quota
        updated = get_state().keys.update(record.id, owner=scope_owner(principal), by=principal, **changes)
    except (InvalidRequest, Forbidden) as exc:
        return _page("key.html", exc.code, **_key_context(record, form=form), **_refusal(exc))
    dashboard_session()["notice"] = f"Saved the key “{updated.name}” ({updated.prefix}…)."
    return redirect(url_for(".key_page", key_id=updated.id), 303)


def _key_context(record: KeyRecord, form: Any = None) -> dict[str, Any]:
    now = utcnow()
    quota = record.quota
    if form is None:
        refill = quota.spec()["refill"] if quota is not None else None
        form = {
            "allowed_ips": "\n".join(record.allowed_ips),
            "quota_limit": str(quota.limit) if quota is not None else "",
            "refill_amount": str(refill["amount"]) if refill else "",
            "refill_interval": refill["interval"] if refill else "",
        }
    return {
        "record": record,
        "key_status": record.status(now),
        "remaining": quota.available(now) if quota is not None else None,
        "form": form,
        "intervals": ("hour", "day", "month"),
        "notice": dashboard_session().pop("notice", None),
    }


@dashboard_blueprint.route("/keys/<key_id>/rotate", methods=["GET", "POST"])
@public
def rotate_key(key_id: str) -> Response:
    """Confirm a rotation and pick a grace period; a success shows the new raw key once."""
    principal = _principal()
    record = _record(key_id, principal)
    context: dict[str, Any] = {"record": record, "grace_choices": GRACE_CHOICES}
    if request.method == "GET":
        return _page("rotate.html", once=once_token(), **context)
    try:
        use_once_token(request.form.get("once"))
    except CSRFError:
        raise FormReused() from None
    keys = get_state().keys
    try:
        grace = form_grace_period(request.form)
        new, raw_key = keys.rotate(record.id, owner=scope_owner(principal), by=principal, grace_period=grace)
    except (InvalidRequest, Forbidden, Conflict) as exc:
        return _page("rotate.html", exc.code, once=once_token(), **context, **_refusal(exc))
    try:
        old = keys.get(record.id, owner=scope_owner(principal))
    except NotFound:
        old = record
    return _page("key_created.html", 201, record=new, raw_key=raw_key, rotated=old)


@dashboard_blueprint.route("/keys/<key_id>/revoke", methods=["GET", "POST"])
@public
def revoke_key(key_id: str) -> Response | BaseResponse:
    """Confirm, then revoke at once."""
    principal = _principal()
    record = _record(key_id, principal)
    if request.method == "GET":
        return _page("revoke.html", record=record)
    revoked = get_state().keys.revoke(record.id, owner=scope_owner(principal), by=principal)
    dashboard_session()["notice"] = f"Revoked the key “{revoked.name}” ({revoked.prefix}…)."
    return redirect(url_for(".index"), 303)


@dashboard_blueprint.post("/keys/<key_id>/disable")
@public
def disable_key(key_id: str) -> BaseResponse:
    """Switch a key off (reversibly); the list offers to enable it again."""
    principal = _principal()
    record = get_state().keys.disable(_record(key_id, principal).id, owner=scope_owner(principal), by=principal)
    dashboard_session()["notice"] = f"Disabled the key “{record.name}” ({record.prefix}…). Enable it to use it again."
    return redirect(url_for(".index"), 303)


@dashboard_blueprint.post("/keys/<key_id>/enable")
@public
def enable_key(key_id: str) -> BaseResponse:
    """Switch a disabled key back on."""
    principal = _principal()
    record = get_state().keys.enable(_record(key_id, principal).id, owner=scope_owner(principal), by=principal)
    dashboard_session()["notice"] = f"Enabled the key “{record.name}” ({record.prefix}…) again."
    return redirect(url_for(".index"), 303)


@dashboard_blueprint.route("/signing-keys/new", methods=["GET", "POST"])
@public
def register_signing_key() -> Response:
    """Register an Ed25519 public key and show its fingerprint."""
    principal = _principal()
    catalog = scope_catalog(current_app.config)
    if request.method == "GET":
        return _page("signing_new.html", **_form_context(catalog))
    form = request.form
    try:
        record = get_state().keys.register_signing_key(
            name=form.get("name", ""),
            public_key=form.get("public_key", "").strip(),
            scopes=form_scopes(form, catalog),
            owner=principal.owner,
            by=principal,
            expires_in=form_expires_in(form),
        )
    except (InvalidRequest, Forbidden) as exc:
        return _page("signing_new.html", exc.code, **_form_context(catalog, **_refusal(exc)))
    return _page("signing_created.html", 201, record=record)


__all__ = ["dashboard_blueprint"]
