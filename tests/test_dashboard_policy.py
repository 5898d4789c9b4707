"""The dashboard applies every key-policy check the API applies, and shows and edits a key's policy."""

from __future__ import annotations

from typing import Any

from flask import Flask

from flask_gridauth import get_state

from .conftest import bearer, create_key
from .test_dashboard import D, create, dapp, dclient, make_dash, post_form, raw_key_of, sign_in

__all__ = ["dapp", "dclient", "make_dash"]  # fixtures shared with test_dashboard

INSIDE = {"REMOTE_ADDR": "10.1.2.3"}


def test_allowlisted_key_cannot_sign_in_from_outside(dapp: Flask, dclient: Any) -> None:
    """An admin key limited to 10.0.0.0/8 is refused at dashboard sign-in from 127.0.0.1, as on the API."""
    _, raw = create_key(dapp, ["admin"], owner="alice", allowed_ips=["10.0.0.0/8"])
    assert dclient.get("/items", headers=bearer(raw)).status_code == 403
    response = sign_in(dclient, raw)
    assert response.status_code == 403
    assert "may not be used from this address" in response.text
    assert dclient.get(f"{D}/").status_code == 303
    assert dclient.get(f"{D}/keys/new").status_code == 303
    with dapp.app_context():
        assert [k.name for k in get_state(dapp).keys.list(owner="alice")] == ["test key"]


def test_allowlisted_key_signs_in_from_inside(dapp: Flask) -> None:
    """From inside its allowlist the same key signs in and can create keys."""
    _, raw = create_key(dapp, ["admin"], owner="alice", allowed_ips=["10.0.0.0/8"])
    client = dapp.test_client()
    client.environ_base.update(INSIDE)
    assert sign_in(client, raw).status_code == 303
    response = create(client, name="child")
    assert response.status_code == 201
    assert client.get("/items", headers=bearer(raw_key_of(response.text))).status_code == 200


def test_session_from_outside_the_allowlist_ends(dapp: Flask) -> None:
    """A session signed in from inside the allowlist ends when a request comes from outside it."""
    _, raw = create_key(dapp, ["admin"], owner="alice", allowed_ips=["10.0.0.0/8"])
    client = dapp.test_client()
    client.environ_base.update(INSIDE)
    assert sign_in(client, raw).status_code == 303
    assert client.get(f"{D}/").status_code == 200
    outside = client.get(f"{D}/", environ_base={"REMOTE_ADDR": "192.0.2.1"})
    assert outside.status_code == 303
    assert client.get(f"{D}/").status_code == 303  # signed out for good
    assert "address" in client.get(f"{D}/sign-in").text


def test_session_ends_when_the_allowlist_changes(dapp: Flask, dclient: Any) -> None:
    """Setting an allowlist that excludes the signed-in address ends the session."""
    record, raw = create_key(dapp, ["admin"], owner="alice")
    assert sign_in(dclient, raw).status_code == 303
    with dapp.app_context():
        get_state(dapp).keys.update(record.id, allowed_ips=["10.0.0.0/8"])
    assert dclient.get(f"{D}/").status_code == 303


def test_session_ends_when_the_key_is_disabled(dapp: Flask, dclient: Any) -> None:
    """Disabling the signed-in key ends the session on the next request."""
    record, raw = create_key(dapp, ["admin"], owner="alice")
    assert sign_in(dclient, raw).status_code == 303
    with dapp.app_context():
        get_state(dapp).keys.disable(record.id)
    assert dclient.get(f"{D}/").status_code == 303
    assert "disabled" in dclient.get(f"{D}/sign-in").text


def test_canary_key_cannot_sign_in(dapp: Flask, dclient: Any) -> None:
    """An admin canary key is refused at dashboard sign-in (a generic 401) and reported."""
    _, raw = create_key(dapp, ["admin"], owner="alice", canary=True)
    response = sign_in(dclient, raw)
    assert response.status_code == 401
    assert "canary" not in response.text.lower()
    assert dclient.get(f"{D}/").status_code == 303


def test_session_ends_when_the_environment_is_no_longer_accepted(dapp: Flask, dclient: Any) -> None:
    """A session of a key whose environment the server stops accepting ends."""
    _, raw = create_key(dapp, ["admin"], owner="alice")
    assert sign_in(dclient, raw).status_code == 303
    policy = get_state(dapp).policy
    policy.environments = frozenset({"test"})
    assert dclient.get(f"{D}/").status_code == 303
    assert "environment" in dclient.get(f"{D}/sign-in").text


def _key_path(key_id: str) -> str:
    """The dashboard page of one key."""
    return f"{D}/keys/{key_id}"


def test_key_page_shows_environment_state_quota_and_allowlist(dapp: Flask, dclient: Any) -> None:
    """The key page shows the environment, state, quota (limit, remaining, refill) and allowed_ips."""
    quota = {"limit": 7, "refill": {"amount": 3, "interval": "day"}}
    record, raw = create_key(dapp, ["read"], owner="alice", environment="test", allowed_ips=["10.0.0.0/8"], quota=quota)
    dclient.get("/items", headers=bearer(raw), environ_base=INSIDE)
    sign_in(dclient)
    page = dclient.get(_key_path(record.id))
    assert page.status_code == 200
    text = page.text
    assert '<dd id="key-environment">test</dd>' in text
    assert "status-active" in text
    assert "limit 7, remaining 6, refill 3 per day" in text
    assert "<code>10.0.0.0/8</code>" in text
    assert _key_path(record.id) in dclient.get(f"{D}/").text


def test_key_page_of_a_disabled_key_says_so(dapp: Flask, dclient: Any) -> None:
    """A disabled key's page shows its state and no quota."""
    record, _ = create_key(dapp, ["read"], owner="alice")
    with dapp.app_context():
        get_state(dapp).keys.disable(record.id)
    sign_in(dclient)
    text = dclient.get(_key_path(record.id)).text
    assert "status-disabled" in text
    assert '<dd id="key-quota">none</dd>' in text
    assert '<dd id="key-allowed-ips">anywhere</dd>' in text


def test_key_page_edits_quota_and_allowlist(dapp: Flask, dclient: Any) -> None:
    """The key form sets a quota and an allowlist through the service layer (audited, enforced)."""
    record, raw = create_key(dapp, ["read"], owner="alice")
    sign_in(dclient)
    data = {
        "quota_limit": "5",
        "refill_amount": "1",
        "refill_interval": "hour",
        "allowed_ips": "10.0.0.0/8\n2001:db8::/32",
    }
    response = post_form(dclient, _key_path(record.id), data)
    assert response.status_code == 303
    assert "Saved the key" in dclient.get(_key_path(record.id)).text
    with dapp.app_context():
        stored = get_state(dapp).keys.get(record.id)
    assert stored.quota is not None and stored.quota.spec() == {"limit": 5, "refill": {"amount": 1, "interval": "hour"}}
    assert stored.allowed_ips == ("10.0.0.0/8", "2001:db8::/32")
    assert dclient.get("/items", headers=bearer(raw)).status_code == 403  # from 127.0.0.1


def test_resaving_an_unchanged_quota_does_not_refill_it(dapp: Flask, dclient: Any) -> None:
    """Saving the form without touching the quota keeps its remaining balance."""
    record, raw = create_key(dapp, ["read"], owner="alice", quota={"limit": 5, "refill": None})
    for _ in range(2):
        dclient.get("/items", headers=bearer(raw))
    sign_in(dclient)
    response = post_form(dclient, _key_path(record.id), {"quota_limit": "5", "allowed_ips": "192.0.2.0/24"})
    assert response.status_code == 303
    assert "limit 5, remaining 3" in dclient.get(_key_path(record.id)).text


def test_clearing_the_form_removes_quota_and_allowlist(dapp: Flask, dclient: Any) -> None:
    """An empty limit and an empty allowlist remove both."""
    record, _ = create_key(
        dapp, ["read"], owner="alice", quota={"limit": 5, "refill": None}, allowed_ips=["10.0.0.0/8"]
    )
    sign_in(dclient)
    assert post_form(dclient, _key_path(record.id), {"quota_limit": "", "allowed_ips": ""}).status_code == 303
    with dapp.app_context():
        stored = get_state(dapp).keys.get(record.id)
    assert (stored.quota, stored.allowed_ips) == (None, ())


def test_key_form_errors_are_shown(dapp: Flask, dclient: Any) -> None:
    """A bad CIDR or quota is a 422 page naming the problem, and nothing changes."""
    record, _ = create_key(dapp, ["read"], owner="alice")
    sign_in(dclient)
    bad_ip = post_form(dclient, _key_path(record.id), {"quota_limit": "", "allowed_ips": "not-an-address"})
    assert bad_ip.status_code == 422
    assert "Not done:" in bad_ip.text and "allowed_ips" in bad_ip.text
    assert 'id="allowed_ips" name="allowed_ips" rows="4" spellcheck="false" aria-invalid="true"' in bad_ip.text
    bad_quota = post_form(dclient, _key_path(record.id), {"quota_limit": "lots", "allowed_ips": ""})
    assert bad_quota.status_code == 422
    assert "whole number" in bad_quota.text
    with dapp.app_context():
        stored = get_state(dapp).keys.get(record.id)
    assert (stored.quota, stored.allowed_ips) == (None, ())


def test_key_form_needs_csrf(dapp: Flask, dclient: Any) -> None:
    """Posting the key form without the CSRF token is refused and changes nothing."""
    record, _ = create_key(dapp, ["read"], owner="alice")
    sign_in(dclient)
    response = dclient.post(_key_path(record.id), data={"quota_limit": "5", "allowed_ips": ""})
    assert response.status_code == 400
    assert "Form refused" in response.text
    with dapp.app_context():
        assert get_state(dapp).keys.get(record.id).quota is None


def test_key_form_cannot_refill_the_signed_in_quota(dapp: Flask, dclient: Any) -> None:
    """A signed-in key bound by a quota cannot refill its own quota from the dashboard either (403 shown)."""
    record, raw = create_key(dapp, ["admin"], owner="alice", quota={"limit": 50, "refill": None})
    sign_in(dclient, raw)
    response = post_form(dclient, _key_path(record.id), {"quota_limit": "40", "allowed_ips": ""})
    assert response.status_code == 403
    assert "cannot change its own quota" in response.text


def test_other_owners_key_page_is_404(dapp: Flask, dclient: Any) -> None:
    """A key of another owner has no page for the signed-in key."""
    _, raw = create_key(dapp, ["admin"], owner="alice")
    other, _ = create_key(dapp, ["read"], owner="bob")
    sign_in(dclient, raw)
    assert dclient.get(_key_path(other.id)).status_code == 404


def test_create_form_makes_a_canary_key(dapp: Flask, dclient: Any) -> None:
    """Ticking "Canary key" on the create form makes a key that is refused and shown as a canary."""
    sign_in(dclient)
    response = create(dclient, name="decoy", canary="on")
    assert response.status_code == 201
    raw = raw_key_of(response.text)
    assert dclient.get("/items", headers=bearer(raw)).status_code == 401
    with dapp.app_context():
        (record,) = [r for r in get_state(dapp).keys.list() if r.name == "decoy"]
    assert record.canary
    assert "status-canary" in dclient.get(_key_path(record.id)).text
