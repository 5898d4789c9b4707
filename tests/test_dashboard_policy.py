"""The dashboard applies every key-policy check the API applies, and shows and edits a key's policy."""

from __future__ import annotations

from typing import Any

from flask import Flask

from flask_gridauth import get_state

from .conftest import bearer, create_key
from .test_dashboard import D, create, dapp, dclient, make_dash, raw_key_of, sign_in

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
