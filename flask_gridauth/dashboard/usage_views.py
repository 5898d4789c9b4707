"""A key's usage on its page (the chart, the scopes it never used) and "narrow to used scopes".

The figures come from the usage service (:meth:`UsageCounter.report
<flask_gridauth.usage.UsageCounter.report>`, the same object as ``GET
/api-keys/<id>/usage``); the narrowing is a scope change through
:meth:`KeyManager.update <flask_gridauth.KeyManager.update>`, so it follows
the API's rules (scopes only shrink) and is audited as ``key.updated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import request
from werkzeug.wrappers import Response as BaseResponse

from ..errors import InvalidRequest
from ..extension import get_state
from ..principal import scope_owner
from ..records import KeyRecord
from ..scopes import public
from .chart import usage_chart
from .pages import dashboard_blueprint, record_of, redirect_to, set_notice, signed_in_admin

#: The usage windows the key page offers, in days: one day is drawn per hour, the others per day.
WINDOWS = (1, 7, 30)
#: The window the key page shows first.
DEFAULT_WINDOW = 7


def window_days(raw: str | None) -> int:
    """The ``days`` of a key page or a narrow form: one of :data:`WINDOWS` (a 422 page otherwise)."""
    if raw is None or raw == "":
        return DEFAULT_WINDOW
    if raw not in {str(w) for w in WINDOWS}:
        raise InvalidRequest("days must be one of " + ", ".join(str(w) for w in WINDOWS), field="days")
    return int(raw)


def _report(record: KeyRecord, days: int) -> dict[str, Any]:
    state = get_state()
    return state.usage.report(record, days=days, expand=state.expand)


def narrowed_scopes(report: Mapping[str, Any]) -> list[str] | None:
    """The scopes a key narrowed to what it used keeps, in its order; ``None`` when it used none at all."""
    unused = set(report["unused_scopes"])
    kept = [s for s in report["scopes_held"] if s not in unused]
    # Scopes used through a grant the key no longer holds credit nothing: it would keep no scope.
    return kept if report["scopes_used"] and kept else None


def usage_context(record: KeyRecord, days: int | None) -> dict[str, Any]:
    """The key page's usage: the report, its chart, the window, and what narrowing would keep."""
    days = days or DEFAULT_WINDOW
    report = _report(record, days)
    return {
        "usage": report,
        "chart": usage_chart(report["buckets"], "hour" if days == 1 else "day"),
        "days": days,
        "windows": WINDOWS,
        "narrow_to": narrowed_scopes(report),
    }


def _codes(scopes: list[str]) -> str:
    return " ".join(scopes)


@dashboard_blueprint.post("/keys/<key_id>/narrow")
@public
def narrow_key(key_id: str) -> BaseResponse:
    """Take from a key the scopes its requests never needed over the window shown (``days``).

    Refused, with a message and no change, when the key used no scope at all
    in the window (it would keep nothing) or used every scope it holds.
    """
    principal = signed_in_admin()
    record = record_of(key_id, principal)
    days = window_days(request.form.get("days"))
    kept = narrowed_scopes(_report(record, days))
    window = "day" if days == 1 else f"{days} days"
    if kept is None:
        set_notice(f"Not narrowed: the key used no scope in the last {window}, so it would keep none. Nothing changed.")
    elif kept == list(record.scopes):
        set_notice(f"Not narrowed: the key used every scope it holds in the last {window}. Nothing changed.")
    else:
        removed = [s for s in record.scopes if s not in kept]
        updated = get_state().keys.update(record.id, owner=scope_owner(principal), by=principal, scopes=kept)
        set_notice(f"Narrowed the key “{updated.name}” to {_codes(list(updated.scopes))}; removed {_codes(removed)}.")
    return redirect_to(".key_page", key_id=record.id, days=days)


__all__ = ["DEFAULT_WINDOW", "WINDOWS", "narrow_key", "narrowed_scopes", "usage_context", "window_days"]
