"""The key pages: the list, create, one key (with its quota, allowlist and usage), rotate, revoke,
disable, enable, and the signing-key form.

Every rule about keys is the KeyManager's; the views only translate forms and
show its errors.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, request
from werkzeug.wrappers import Response as BaseResponse

from ..errors import Conflict, Forbidden, InvalidRequest, NotFound
from ..extension import get_state
from ..principal import scope_owner
from ..records import KeyRecord, utcnow
from ..scopes import public
from .csrf import CSRFError, once_token, use_once_token
from .forms import (
    GRACE_CHOICES,
    MAX_DAYS,
    form_allowed_ips,
    form_expires_in,
    form_grace_period,
    form_quota,
    form_scopes,
    scope_catalog,
)
from .pages import (
    PAGE_SIZE,
    SEQ,
    FormReused,
    dashboard_blueprint,
    error_page,
    page,
    record_of,
    redirect_to,
    refusal,
    set_notice,
    signed_in_admin,
    take_notice,
)
from .usage_views import usage_context, window_days


@dashboard_blueprint.get("/")
@public
def index() -> Response:
    """The owner's keys, newest first, a page at a time (``?before=<seq>``)."""
    principal = signed_in_admin()
    before_arg = request.args.get("before")
    before: int | None = None
    if before_arg is not None:
        if not SEQ.fullmatch(before_arg):
            return error_page(400, "Bad page", "That page of the list does not exist.")
        before = int(before_arg)
    records = get_state().keys.list(owner=scope_owner(principal), limit=PAGE_SIZE + 1, before_seq=before)
    has_more = len(records) > PAGE_SIZE
    records = records[:PAGE_SIZE]
    return page(
        "keys.html",
        records=records,
        now=utcnow(),
        next_before=records[-1].seq if has_more else None,
        paged=before is not None,
        show_owner=principal.is_superuser,
        notice=take_notice(),
    )


def _form_context(catalog: dict[str, str] | None, **extra: Any) -> dict[str, Any]:
    return {"catalog": catalog, "max_days": MAX_DAYS, "form": request.form, **extra}


@dashboard_blueprint.route("/keys/new", methods=["GET", "POST"])
@public
def create_key() -> Response:
    """The create form; a success shows the raw key once, in this response only."""
    principal = signed_in_admin()
    catalog = scope_catalog(current_app.config)
    if request.method == "GET":
        return page("create.html", **_form_context(catalog, once=once_token()))
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
        return page("create.html", exc.code, **_form_context(catalog, once=once_token(), **refusal(exc)))
    return page("key_created.html", 201, record=record, raw_key=raw_key, rotated=None)


@dashboard_blueprint.route("/keys/<key_id>", methods=["GET", "POST"])
@public
def key_page(key_id: str) -> Response | BaseResponse:
    """One key: its environment, state, quota and allowlist; a form edits the quota and the allowlist.

    The quota is only sent when the form changes it: setting a quota starts it
    full, so re-saving an unchanged one must not refill it.
    """
    principal = signed_in_admin()
    record = record_of(key_id, principal)
    if request.method == "GET":
        return page("key.html", **_key_context(record, days=window_days(request.args.get("days"))))
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
        return page("key.html", exc.code, **_key_context(record, form=form), **refusal(exc))
    set_notice(f"Saved the key “{updated.name}” ({updated.prefix}…).")
    return redirect_to(".key_page", key_id=updated.id)


def _key_context(record: KeyRecord, form: Any = None, days: int | None = None) -> dict[str, Any]:
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
        "notice": take_notice(),
        **usage_context(record, days),
    }


def _back(record: KeyRecord) -> BaseResponse:
    """After disable or enable: back to the key page if the button was there, else to the list."""
    if request.form.get("back") == "key":
        return redirect_to(".key_page", key_id=record.id)
    return redirect_to(".index")


@dashboard_blueprint.route("/keys/<key_id>/rotate", methods=["GET", "POST"])
@public
def rotate_key(key_id: str) -> Response:
    """Confirm a rotation and pick a grace period; a success shows the new raw key once."""
    principal = signed_in_admin()
    record = record_of(key_id, principal)
    context: dict[str, Any] = {"record": record, "grace_choices": GRACE_CHOICES}
    if request.method == "GET":
        return page("rotate.html", once=once_token(), **context)
    try:
        use_once_token(request.form.get("once"))
    except CSRFError:
        raise FormReused() from None
    keys = get_state().keys
    try:
        grace = form_grace_period(request.form)
        new, raw_key = keys.rotate(record.id, owner=scope_owner(principal), by=principal, grace_period=grace)
    except (InvalidRequest, Forbidden, Conflict) as exc:
        return page("rotate.html", exc.code, once=once_token(), **context, **refusal(exc))
    try:
        old = keys.get(record.id, owner=scope_owner(principal))
    except NotFound:
        old = record
    return page("key_created.html", 201, record=new, raw_key=raw_key, rotated=old)


@dashboard_blueprint.route("/keys/<key_id>/revoke", methods=["GET", "POST"])
@public
def revoke_key(key_id: str) -> Response | BaseResponse:
    """Confirm, then revoke at once."""
    principal = signed_in_admin()
    record = record_of(key_id, principal)
    if request.method == "GET":
        return page("revoke.html", record=record)
    revoked = get_state().keys.revoke(record.id, owner=scope_owner(principal), by=principal)
    set_notice(f"Revoked the key “{revoked.name}” ({revoked.prefix}…).")
    return redirect_to(".index")


@dashboard_blueprint.post("/keys/<key_id>/disable")
@public
def disable_key(key_id: str) -> BaseResponse:
    """Switch a key off (reversibly); the list and the key page offer to enable it again."""
    principal = signed_in_admin()
    record = get_state().keys.disable(record_of(key_id, principal).id, owner=scope_owner(principal), by=principal)
    set_notice(f"Disabled the key “{record.name}” ({record.prefix}…). Enable it to use it again.")
    return _back(record)


@dashboard_blueprint.post("/keys/<key_id>/enable")
@public
def enable_key(key_id: str) -> BaseResponse:
    """Switch a disabled key back on."""
    principal = signed_in_admin()
    record = get_state().keys.enable(record_of(key_id, principal).id, owner=scope_owner(principal), by=principal)
    set_notice(f"Enabled the key “{record.name}” ({record.prefix}…) again.")
    return _back(record)


@dashboard_blueprint.route("/signing-keys/new", methods=["GET", "POST"])
@public
def register_signing_key() -> Response:
    """Register an Ed25519 public key and show its fingerprint."""
    principal = signed_in_admin()
    catalog = scope_catalog(current_app.config)
    if request.method == "GET":
        return page("signing_new.html", **_form_context(catalog))
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
        return page("signing_new.html", exc.code, **_form_context(catalog, **refusal(exc)))
    return page("signing_created.html", 201, record=record)
