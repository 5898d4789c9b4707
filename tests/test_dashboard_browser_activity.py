"""The dashboard's usage chart, narrowing and audit page in headless Chromium, with no CSP violation."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from flask_gridauth import get_state

from .conftest import TOKEN, bearer
from .dashboard_browser_support import (
    Site,
    chromium,
    csp_watch,
    page,
    seed_usage,
    sign_in,
    site,
)

pytestmark = pytest.mark.browser
__all__ = ["chromium", "page", "site"]  # fixtures from dashboard_browser_support


def test_usage_chart_and_narrowing_in_chromium(site: Site, page: Any) -> None:
    """The key page's SVG chart renders its bars to scale under the CSP, and "Narrow to used scopes" works."""
    errors = csp_watch(page)
    record, raw = site.create_key(["read", "holdings:write"], "carol", "chart key")
    seed_usage(site, record.id, 3, allowed=12, forbidden=3, rate_limited=5)
    for _ in range(4):
        assert site.api(raw) == 200
    assert requests.post(site.base + "/orders", headers=bearer(raw), json={}, timeout=10).status_code == 403
    sign_in(site, page, TOKEN)
    response = page.goto(f"{site.dashboard}/keys/{record.id}?days=1")
    assert response is not None and response.status == 200
    assert "unsafe-inline" not in response.headers["content-security-policy"]

    chart = page.locator("#usage-chart")
    assert chart.get_attribute("role") == "img"
    assert page.text_content("#usage-chart-title") == "Requests per hour over the last 24 hours"
    assert page.locator("#usage-chart g.bucket").count() == 24
    bars = page.eval_on_selector_all(
        "#usage-chart rect.bar",
        """rects => rects.map(r => ({
            series: r.dataset.series, value: Number(r.dataset.value),
            height: r.getBoundingClientRect().height, width: r.getBoundingClientRect().width,
            fill: getComputedStyle(r).fill}))""",
    )
    # The seeded hour (12, 3, 5) and this hour's real requests (4 allowed, 1 forbidden): five segments.
    assert sorted((b["series"], b["value"]) for b in bars) == [
        ("allowed", 4),
        ("allowed", 12),
        ("forbidden", 1),
        ("forbidden", 3),
        ("rate_limited", 5),
    ]
    assert all(b["width"] > 5 and b["height"] > 1 for b in bars), bars
    # Drawn to scale in rendered pixels: 12 allowed stand 12/5 as tall as 5 rate-limited.
    height = {(b["series"], b["value"]): b["height"] for b in bars}
    assert height[("allowed", 12)] / height[("rate_limited", 5)] == pytest.approx(12 / 5, rel=0.02)
    assert height[("allowed", 12)] / height[("allowed", 4)] == pytest.approx(3, rel=0.02)
    assert {b["fill"] for b in bars if b["series"] == "allowed"} == {"rgb(30, 122, 60)"}
    assert page.inner_text("#usage-summary").startswith("Over the last 24 hours: 25 requests, 16 allowed")
    page.locator("figure.chart").screenshot(path=str(site.shots / "usage-chart.png"))
    page.screenshot(path=str(site.shots / "key-page.png"), clip={"x": 0, "y": 0, "width": 900, "height": 440})

    assert "This key never used holdings:write in the last 24 hours." in page.inner_text("#never-used")
    page.locator(".least-privilege").screenshot(path=str(site.shots / "least-privilege.png"))
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#narrow-scopes")
    assert posted.value.status == 303
    page.wait_for_selector("text=Narrowed the key")
    assert page.inner_text("#scopes-held") == "read"
    assert site.api(raw) == 200
    assert errors == [], errors


def test_audit_page_in_chromium(site: Site, page: Any) -> None:
    """The audit page lists a key's events newest first, filters them, and reports no CSP violation."""
    errors = csp_watch(page)
    record, _ = site.create_key(["read"], "dave", "audited key")
    with site.app.app_context():
        keys = get_state(site.app).keys
        keys.disable(record.id, owner="dave")
        keys.enable(record.id, owner="dave")
    sign_in(site, page, TOKEN)
    with page.expect_navigation():
        page.click("nav >> text=Audit log")
    assert page.url.endswith("/dashboard/audit")
    assert page.locator("tr.audit-row").count() >= 4
    page.fill("#key", record.id)
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    actions = page.eval_on_selector_all("tr.audit-row", "rows => rows.map(r => r.dataset.action)")
    assert actions == ["key.enabled", "key.disabled", "key.created"]
    assert "dave" in page.inner_text("table.audit")
    page.set_viewport_size({"width": 1000, "height": 600})
    page.locator("main").screenshot(path=str(site.shots / "audit.png"))
    page.select_option("#action", "key.disabled")
    with page.expect_navigation():
        page.click("main form button[type=submit]")
    assert page.eval_on_selector_all("tr.audit-row", "rows => rows.map(r => r.dataset.action)") == ["key.disabled"]
    assert errors == [], errors
    # The watch does see a violation: an inline style injected now is refused and reported.
    page.evaluate(
        "() => { const s = document.createElement('style'); s.textContent = 'body{}'; document.head.append(s); }"
    )
    page.wait_for_timeout(200)
    assert any("Content Security Policy" in e for e in errors), errors
