"""The dashboard's audit page, usage chart and "narrow to used scopes", and the key page's state buttons."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import get_state
from flask_gridauth.activity import HOUR, UsageCount, hour_of
from flask_gridauth.dashboard.audit_views import AUDIT_PAGE_SIZE
from flask_gridauth.dashboard.chart import nice_ceiling, usage_chart

from .conftest import bearer, create_key
from .test_dashboard import D, csrf_of, dapp, dclient, make_dash, sign_in

__all__ = ["dapp", "dclient", "make_dash"]  # fixtures shared with test_dashboard

#: The dashboard's policy before the chart and the audit page existed: they must not loosen it.
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
)
RECT_RE = re.compile(r'<rect class="bar bar-(\w+)" data-series="\w+" data-value="(\d+)"[^>]* height="([0-9.]+)"')


def key_path(key_id: str, **query: Any) -> str:
    """The dashboard page of one key."""
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{D}/keys/{key_id}" + (f"?{suffix}" if suffix else "")


def events(app: Flask, action: str | None = None, owner: str | None = None) -> list[Any]:
    """Audit events of ``owner`` (every owner by default), newest first."""
    with app.app_context():
        return get_state(app).audit.list(owner=owner, limit=100, action=action)


def post(client: Any, path: str, page: str, data: dict[str, Any] | None = None) -> Any:
    """POST ``data`` to ``path`` with the CSRF token of the dashboard page ``page``."""
    html = client.get(page).text
    return client.post(path, data={"csrf_token": csrf_of(html), **(data or {})})


def admin_client(app: Flask, owner: str) -> tuple[Any, Any]:
    """A client signed in with a new admin key of ``owner``; the key's record and the client."""
    record, raw = create_key(app, ["admin"], owner=owner, name=f"{owner} admin")
    client = app.test_client()
    assert sign_in(client, raw).status_code == 303
    return record, client


# -- the audit page -----------------------------------------------------------------


def test_nav_links_to_the_audit_page(dclient: Any) -> None:
    """Every signed-in page's navigation links to the audit log."""
    sign_in(dclient)
    assert f'href="{D}/audit">Audit log</a>' in dclient.get(f"{D}/").text


def test_audit_page_shows_events_newest_first(dapp: Flask, dclient: Any) -> None:
    """Creating, disabling and enabling a key appear on the audit page, newest first, with the actor."""
    record, _ = create_key(dapp, ["read"], owner="alice", name="audited")
    sign_in(dclient)
    post(dclient, f"{D}/keys/{record.id}/disable", key_path(record.id))
    post(dclient, f"{D}/keys/{record.id}/enable", key_path(record.id))
    page = dclient.get(f"{D}/audit")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    actions = re.findall(r'<tr class="audit-row" data-action="([^"]+)"', page.text)
    assert actions == ["key.enabled", "key.disabled", "dashboard.signed_in", "key.created"]
    assert "token <code>token</code>" in page.text  # the bootstrap-token actor of the dashboard changes
    assert f'href="{D}/keys/{record.id}"' in page.text
    assert " style=" not in page.text and "<style" not in page.text and "<script" not in page.text


def test_audit_page_filters_by_action_and_key(dapp: Flask, dclient: Any) -> None:
    """?action= and ?key= narrow the events; the form keeps the chosen filter."""
    first, _ = create_key(dapp, ["read"], owner="alice", name="first")
    second, _ = create_key(dapp, ["read"], owner="alice", name="second")
    sign_in(dclient)
    page = dclient.get(f"{D}/audit?action=key.created").text
    assert set(re.findall(r'data-action="([^"]+)"', page)) == {"key.created"}
    assert '<option value="key.created" selected>' in page
    page = dclient.get(f"{D}/audit?key={first.id}").text
    assert first.id in page and second.id not in page
    page = dclient.get(f"{D}/audit?key={first.id}&action=key.revoked").text
    assert "No events match these filters" in page


@pytest.mark.parametrize("query", ["action=key.deleted", "key=not%20a%20key", "cursor=forged-cursor-" + "A" * 40])
def test_audit_page_bad_filter_or_cursor_is_400(dclient: Any, query: str) -> None:
    """An unknown action, a malformed key id or a forged cursor is a 400 page, never a 500."""
    sign_in(dclient)
    response = dclient.get(f"{D}/audit?{query}")
    assert response.status_code == 400
    assert "audit-row" not in response.text


def test_audit_page_pages_with_cursors(dapp: Flask, dclient: Any) -> None:
    """More than a page of events pages with the sealed cursor, newest first, without repeats or gaps."""
    for n in range(AUDIT_PAGE_SIZE + 5):
        create_key(dapp, ["read"], owner="alice", name=f"key {n}")
    sign_in(dclient)
    first = dclient.get(f"{D}/audit?action=key.created").text
    older = re.search(r'href="([^"]+)" rel="next">Older events', first)
    assert older is not None
    second = dclient.get(older.group(1).replace("&amp;", "&")).text
    assert "(older page)" in second and 'rel="next"' not in second
    names = re.findall(r"<dt>name</dt><dd>([^<]+)</dd>", first) + re.findall(r"<dt>name</dt><dd>([^<]+)</dd>", second)
    assert names == [f"key {n}" for n in reversed(range(AUDIT_PAGE_SIZE + 5))]


def test_owner_sees_only_their_own_events(dapp: Flask) -> None:
    """An admin key of alice sees alice's events only, even filtering on bob's key or with bob's cursor."""
    bob_key, _ = create_key(dapp, ["read"], owner="bob", name="bob secret project")
    _, alice = admin_client(dapp, "alice")
    create_key(dapp, ["read"], owner="alice", name="alice key")
    page = alice.get(f"{D}/audit").text
    assert "alice key" in page
    assert "bob secret project" not in page and bob_key.id not in page
    assert "Owner</th>" not in page
    assert "No events match" in alice.get(f"{D}/audit?key={bob_key.id}").text

    for n in range(AUDIT_PAGE_SIZE + 1):
        create_key(dapp, ["read"], owner="bob", name=f"bob {n}")
    _, bob = admin_client(dapp, "bob")
    older = re.search(r'href="([^"]+)" rel="next">Older events', bob.get(f"{D}/audit").text)
    assert older is not None
    assert alice.get(older.group(1).replace("&amp;", "&")).status_code == 400


def test_bootstrap_token_sees_every_owner(dapp: Flask, dclient: Any) -> None:
    """The bootstrap token's audit page has every owner's events and an owner column."""
    create_key(dapp, ["read"], owner="alice", name="alice key")
    create_key(dapp, ["read"], owner="bob", name="bob key")
    sign_in(dclient)
    page = dclient.get(f"{D}/audit").text
    assert "alice key" in page and "bob key" in page and "Owner</th>" in page


# -- the usage chart ------------------------------------------------------------------


def test_nice_ceiling() -> None:
    """The y scale rounds the tallest bar up to 1, 2 or 5 times a power of ten."""
    assert [nice_ceiling(v) for v in (0, 1, 2, 3, 7, 10, 11, 26, 180, 501)] == [1, 1, 2, 5, 10, 10, 20, 50, 200, 1000]


def test_chart_geometry_per_hour_and_per_day() -> None:
    """Hourly buckets give one bar each, stacked to scale; a day's bar adds its hours up."""
    buckets = [
        {"start": f"2023-11-14T{h:02d}:00:00.000Z", "allowed": 0, "forbidden": 0, "rate_limited": 0} for h in range(24)
    ]
    buckets[3].update(allowed=6, forbidden=3, rate_limited=1)
    buckets[10].update(allowed=5)
    chart = usage_chart(buckets, "hour")
    assert len(chart.buckets) == 24
    bars = [bar for b in chart.buckets for bar in b.bars]
    assert [(b.series, b.value) for b in bars] == [
        ("allowed", 6),
        ("forbidden", 3),
        ("rate_limited", 1),
        ("allowed", 5),
    ]
    plot = chart.bottom - chart.top
    assert bars[0].height == pytest.approx(plot * 6 / 10, abs=0.01)  # scale 10: the tallest stack fills the plot
    assert bars[0].y + bars[0].height == pytest.approx(chart.bottom, abs=0.01)
    assert bars[2].y == pytest.approx(chart.top, abs=0.02)
    assert [label for _, label in chart.y_ticks] == [0, 5, 10]
    assert [b.tick for b in chart.buckets if b.tick] == ["00:00", "06:00", "12:00", "18:00"]
    assert chart.busiest is not None and chart.busiest.label == "2023-11-14 03:00 UTC"
    assert chart.totals == {"allowed": 11, "forbidden": 3, "rate_limited": 1}

    next_day = [{**b, "start": b["start"].replace("14T", "15T")} for b in buckets]
    daily = usage_chart(buckets + next_day, "day")
    assert [b.label for b in daily.buckets] == ["2023-11-14 (UTC)", "2023-11-15 (UTC)"]
    assert [b.total for b in daily.buckets] == [15, 15]
    empty = usage_chart([{**b, "allowed": 0, "forbidden": 0, "rate_limited": 0} for b in buckets], "hour")
    assert empty.total == 0 and empty.busiest is None and not any(b.bars for b in empty.buckets)


def seed_usage(app: Flask, key_id: str, hours_ago: int, **counts: Any) -> None:
    """Usage counts for ``key_id`` in the hour ``hours_ago`` hours before this one, written to storage."""
    with app.app_context():
        get_state(app).storage.add_usage([UsageCount(key_id, hour_of(time.time()) - hours_ago * HOUR, **counts)])


def test_key_page_draws_the_usage_chart(dapp: Flask, dclient: Any) -> None:
    """The key page has an inline SVG chart of the window, with a title, a text summary and no style."""
    record, raw = create_key(dapp, ["read", "write"], owner="alice")
    for _ in range(3):
        assert dclient.get("/items", headers=bearer(raw)).status_code == 200
    assert dclient.get("/admin-only", headers=bearer(raw)).status_code == 403
    seed_usage(dapp, record.id, 5, allowed=4, rate_limited=2)
    sign_in(dclient)
    html = dclient.get(key_path(record.id, days=1)).text
    svg = html[html.index('<svg class="usage-chart"') : html.index("</svg>", html.index("usage-chart")) + 6]
    assert '<title id="usage-chart-title">Requests per hour over the last 24 hours</title>' in svg
    assert svg.count('<g class="bucket"') == 24
    bars = [(series, int(value), float(height)) for series, value, height in RECT_RE.findall(svg)]
    assert sorted((s, v) for s, v, _ in bars) == [("allowed", 3), ("allowed", 4), ("forbidden", 1), ("rate_limited", 2)]
    heights = {(s, v): h for s, v, h in bars}
    assert heights[("allowed", 4)] == pytest.approx(2 * heights[("rate_limited", 2)], abs=0.02)
    assert "Over the last 24 hours: 10 requests, 7 allowed, 1 forbidden and 2 rate-limited." in html
    assert " style=" not in html and "<style" not in html and "<script" not in html
    for path in (key_path(record.id), f"{D}/audit"):
        assert dclient.get(path).headers["Content-Security-Policy"] == STRICT_CSP


def test_key_page_windows(dapp: Flask, dclient: Any) -> None:
    """Seven days are drawn per day (the default), one day per hour; another window is a 422 page."""
    record, _ = create_key(dapp, ["read"], owner="alice")
    seed_usage(dapp, record.id, 48, allowed=2)
    sign_in(dclient)
    html = dclient.get(key_path(record.id)).text
    assert "Requests per day over the last 7 days" in html
    assert html.count('<g class="bucket"') in (7, 8)  # UTC dates the 168 hours touch
    assert "Over the last 7 days: 2 requests" in html
    assert dclient.get(key_path(record.id, days=3)).status_code == 422


# -- least privilege ---------------------------------------------------------------


def test_never_used_scope_is_shown_and_narrowed(dapp: Flask, dclient: Any) -> None:
    """A key that only read says it never used write; the button narrows it, audited with the dashboard actor."""
    record, raw = create_key(dapp, ["read", "write"], owner="alice")
    assert dclient.get("/items", headers=bearer(raw)).status_code == 200
    sign_in(dclient)
    page = dclient.get(key_path(record.id)).text
    assert "This key never used <code>write</code> in the last 7 days." in page
    assert 'id="narrow-scopes"' in page
    response = post(dclient, f"{D}/keys/{record.id}/narrow", key_path(record.id), {"days": "7"})
    assert response.status_code == 303
    assert response.headers["Location"].endswith(key_path(record.id, days=7))
    with dapp.app_context():
        assert get_state(dapp).keys.get(record.id).scopes == ("read",)
    assert dclient.get("/items", headers=bearer(raw)).status_code == 200
    assert dclient.post("/items", headers=bearer(raw)).status_code == 403
    event = events(dapp, "key.updated")[0]
    assert event.target_id == record.id and event.owner == "alice"
    assert event.actor.kind == "token"
    assert event.details["scopes"] == {"from": ["read", "write"], "to": ["read"]}
    assert "Narrowed the key" in dclient.get(key_path(record.id)).text


def test_narrow_as_an_owner_admin_key_is_audited_with_that_key(dapp: Flask) -> None:
    """Narrowing from an owner's admin-key session records that key as the actor."""
    admin, client = admin_client(dapp, "alice")
    record, raw = create_key(dapp, ["read", "write"], owner="alice")
    client.get("/items", headers=bearer(raw))
    assert post(client, f"{D}/keys/{record.id}/narrow", key_path(record.id)).status_code == 303
    event = events(dapp, "key.updated")[0]
    assert (event.actor.kind, event.actor.id, event.actor.owner) == ("api_key", admin.id, "alice")


def test_narrow_needs_csrf(dapp: Flask, dclient: Any) -> None:
    """Narrowing without the CSRF token is refused and changes nothing."""
    record, raw = create_key(dapp, ["read", "write"], owner="alice")
    dclient.get("/items", headers=bearer(raw))
    sign_in(dclient)
    response = dclient.post(f"{D}/keys/{record.id}/narrow", data={"days": "7"})
    assert response.status_code == 400 and "Form refused" in response.text
    with dapp.app_context():
        assert get_state(dapp).keys.get(record.id).scopes == ("read", "write")
    assert events(dapp, "key.updated") == []


def test_narrow_refused_when_no_scope_was_used(dapp: Flask, dclient: Any) -> None:
    """A key that used no scope is not narrowed (it would keep none): a message, no change, no event."""
    record, raw = create_key(dapp, ["read", "write"], owner="alice")
    assert dclient.get("/admin-only", headers=bearer(raw)).status_code == 403  # counted, but no scope used
    sign_in(dclient)
    page = dclient.get(key_path(record.id)).text
    assert "This key used no scope in the last 7 days" in page and 'id="narrow-scopes"' not in page
    response = post(dclient, f"{D}/keys/{record.id}/narrow", key_path(record.id))
    assert response.status_code == 303
    assert "Not narrowed: the key used no scope" in dclient.get(response.headers["Location"]).text
    with dapp.app_context():
        assert get_state(dapp).keys.get(record.id).scopes == ("read", "write")
    assert events(dapp, "key.updated") == []


def test_narrow_refused_when_every_scope_was_used(dapp: Flask, dclient: Any) -> None:
    """A key that used every scope it holds is not changed."""
    record, raw = create_key(dapp, ["read"], owner="alice")
    dclient.get("/items", headers=bearer(raw))
    sign_in(dclient)
    assert "This key used every scope it holds" in dclient.get(key_path(record.id)).text
    response = post(dclient, f"{D}/keys/{record.id}/narrow", key_path(record.id))
    assert "Nothing changed" in dclient.get(response.headers["Location"]).text
    assert events(dapp, "key.updated") == []


def test_narrow_another_owners_key_is_404(dapp: Flask) -> None:
    """An owner's admin key can neither see nor narrow another owner's key."""
    bob_key, raw = create_key(dapp, ["read", "write"], owner="bob")
    dapp.test_client().get("/items", headers=bearer(raw))
    _, alice = admin_client(dapp, "alice")
    assert alice.get(key_path(bob_key.id)).status_code == 404
    response = post(alice, f"{D}/keys/{bob_key.id}/narrow", f"{D}/")
    assert response.status_code == 404
    with dapp.app_context():
        assert get_state(dapp).keys.get(bob_key.id).scopes == ("read", "write")


# -- state buttons on the key page -------------------------------------------------


def test_key_page_disables_and_enables(dapp: Flask, dclient: Any) -> None:
    """The key page's Disable and Enable buttons switch the key and come back to the page."""
    record, raw = create_key(dapp, ["read"], owner="alice")
    sign_in(dclient)
    page = dclient.get(key_path(record.id)).text
    assert 'id="disable-key"' in page and 'id="enable-key"' not in page
    response = post(dclient, f"{D}/keys/{record.id}/disable", key_path(record.id), {"back": "key"})
    assert response.headers["Location"].endswith(key_path(record.id))
    assert dclient.get("/items", headers=bearer(raw)).status_code == 401
    page = dclient.get(key_path(record.id)).text
    assert "status-disabled" in page and 'id="enable-key"' in page
    post(dclient, f"{D}/keys/{record.id}/enable", key_path(record.id), {"back": "key"})
    assert dclient.get("/items", headers=bearer(raw)).status_code == 200
    assert [e.action for e in events(dapp)[:2]] == ["key.enabled", "key.disabled"]
