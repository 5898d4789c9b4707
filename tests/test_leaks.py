"""Leaked keys: GitHub secret-scanning alerts from a loopback "GitHub", and the public revocation route."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from flask_gridauth import leaks as leaks_module
from flask_gridauth import signals
from flask_gridauth.errors import ConfigurationError
from flask_gridauth.keys import display_prefix, generate_key, hash_key
from flask_gridauth.leaks import secret_scanning_settings
from flask_gridauth.records import KeyRecord, new_key_id, utcnow

from .conftest import BACKENDS, TOKEN, bearer, build_app, create_key, storage_uri_for
from .github_server import AlertKey, GitHubKeysServer

API = "/api/v1"
SCAN = f"{API}/secret-scanning"
REVOKE = f"{API}/api-keys/revoke-leaked"
LEAK_URL = "https://github.com/octo/app/blob/abc123/config.py"


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def github_key() -> AlertKey:
    """One of "GitHub's" signing keys, shared by the module's tests."""
    return AlertKey.generate()


@pytest.fixture
def github(github_key: AlertKey) -> Iterator[GitHubKeysServer]:
    """The loopback public-keys endpoint, serving ``github_key``."""
    with GitHubKeysServer(github_key) as server:
        yield server


@pytest.fixture
def leak_app(make_app: Callable[..., Flask], github: GitHubKeysServer) -> Flask:
    """A test app on the current backend with secret scanning pointed at the loopback GitHub."""
    return make_app(GRIDAUTH_SECRET_SCANNING_KEYS_URL=github.url)


def _match(token: str, **extra: Any) -> dict[str, Any]:
    return {"token": token, "type": "gridauth_api_key", "url": LEAK_URL, "source": "content", **extra}


def _send(app: Flask, key: AlertKey, *tokens: str) -> Any:
    body, headers = key.alert([_match(t) for t in tokens])
    return app.test_client().post(SCAN, data=body, headers=headers)


def _works(app: Flask, raw: str) -> bool:
    status = app.test_client().get("/items", headers=bearer(raw)).status_code
    assert status in (200, 401)
    return status == 200


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def leaked(leak_app: Flask) -> Iterator[list[dict[str, Any]]]:
    """Every ``key_leaked`` signal ``leak_app`` sends, as its keyword arguments."""
    received: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        received.append(kwargs)

    with signals.key_leaked.connected_to(receiver, leak_app):
        yield received


# -- secret scanning ---------------------------------------------------------


def test_true_positive_is_revoked(leak_app: Flask, github_key: AlertKey, leaked: list[dict[str, Any]]) -> None:
    """A key of ours in an alert is revoked at once and labelled true_positive with its hash and type."""
    record, raw = create_key(leak_app)
    assert _works(leak_app, raw)
    response = _send(leak_app, github_key, raw)
    assert response.status_code == 200
    assert response.get_json() == [
        {"token_hash": _sha(raw), "token_type": "gridauth_api_key", "label": "true_positive"}
    ]
    assert not _works(leak_app, raw)
    with leak_app.app_context():
        assert leak_app.extensions["gridauth"].keys.get(record.id).revoked_at is not None
    assert len(leaked) == 1
    assert leaked[0]["key"].id == record.id and leaked[0]["key"].revoked_at is not None
    assert (leaked[0]["url"], leaked[0]["source"], leaked[0]["via"], leaked[0]["action"]) == (
        LEAK_URL,
        "content",
        "secret_scanning",
        "revoke",
    )


def test_false_positives_never_revoke(leak_app: Flask, github_key: AlertKey, leaked: list[dict[str, Any]]) -> None:
    """Made-up keys, bad checksums, other prefixes and junk are false_positive; only checksummed ones are looked up."""
    _, raw = create_key(leak_app)
    made_up = generate_key("grd")  # right shape and checksum, never stored
    bad_checksum = raw[:-1] + ("0" if raw[-1] != "0" else "1")
    others = [bad_checksum, generate_key("other"), "eyJhbGciOiJIUzI1NiJ9.e30.c2ln", "ghp_" + "a" * 36, "é" * 10]
    storage = leak_app.extensions["gridauth"].storage
    looked_up: list[str] = []
    real_find = storage.find

    def counting_find(lookup: str) -> Any:
        looked_up.append(lookup)
        return real_find(lookup)

    storage.find = counting_find
    try:
        response = _send(leak_app, github_key, made_up, *others)
    finally:
        del storage.find
    assert response.status_code == 200
    body = response.get_json()
    assert [item["label"] for item in body] == ["false_positive"] * 6
    assert [item["token_hash"] for item in body] == [hashlib.sha256(t.encode()).hexdigest() for t in [made_up, *others]]
    assert looked_up == [_sha(made_up)]  # the checksum refused every other one before storage
    assert leaked == []
    assert _works(leak_app, raw)


def test_mixed_alert_labels_each_token(leak_app: Flask, github_key: AlertKey) -> None:
    """One alert with a real key, a made-up one and a revoked one labels each in order."""
    _, live = create_key(leak_app)
    revoked, raw_revoked = create_key(leak_app)
    with leak_app.app_context():
        leak_app.extensions["gridauth"].keys.revoke(revoked.id)
    made_up = generate_key("grd", "test")
    labels = [item["label"] for item in _send(leak_app, github_key, live, made_up, raw_revoked).get_json()]
    assert labels == ["true_positive", "false_positive", "true_positive"]
    assert not _works(leak_app, live)


def test_notify_only_reports(make_app: Callable[..., Flask], github: GitHubKeysServer, github_key: AlertKey) -> None:
    """With GRIDAUTH_SECRET_SCANNING_ACTION="notify" the key keeps working; the signal still fires."""
    app = make_app(GRIDAUTH_SECRET_SCANNING_KEYS_URL=github.url, GRIDAUTH_SECRET_SCANNING_ACTION="notify")
    _, raw = create_key(app)
    received: list[dict[str, Any]] = []
    with signals.key_leaked.connected_to(lambda sender, **kw: received.append(kw), app):
        response = _send(app, github_key, raw)
    assert response.get_json()[0]["label"] == "true_positive"
    assert _works(app, raw)
    assert [(r["action"], r["key"].revoked_at) for r in received] == [("notify", None)]


def _assert_401(response: Any) -> None:
    assert response.status_code == 401
    assert response.is_json
    assert response.get_json()["code"] == "unauthorized"


def test_bad_signatures_are_401(leak_app: Flask, github_key: AlertKey, leaked: list[dict[str, Any]]) -> None:
    """A forged, tampered, missing or malformed signature is 401 JSON, and nothing is revoked."""
    _, raw = create_key(leak_app)
    client = leak_app.test_client()
    body, headers = github_key.alert([_match(raw)])
    impostor = AlertKey(github_key.key_identifier, AlertKey.generate().private)
    cases = [
        (body, impostor.headers(body)),  # right key id, wrong key
        (body.replace(b"content", b"commit!"), headers),  # body changed after signing
        (body, {"Content-Type": "application/json"}),  # no signature at all
        (body, {**headers, "Github-Public-Key-Signature": "not base64!"}),
        (body, {**headers, "Github-Public-Key-Signature": "AAAA"}),  # base64, not a DER signature
        (body, {k: v for k, v in headers.items() if k != "Github-Public-Key-Identifier"}),
    ]
    for data, sent in cases:
        _assert_401(client.post(SCAN, data=data, headers=sent))
    assert leaked == []
    assert _works(leak_app, raw)
    assert client.post(SCAN, data=body, headers=headers).status_code == 200  # the genuine one still passes


def test_unknown_key_id_refetches(leak_app: Flask, github: GitHubKeysServer, github_key: AlertKey) -> None:
    """GitHub rotating its key: an unknown identifier refetches once; random identifiers cannot hammer GitHub."""
    assert _send(leak_app, github_key, generate_key("grd")).status_code == 200
    assert github.fetches == 1
    rotated = AlertKey.generate()
    github.set_keys(github_key, rotated)
    _, raw = create_key(leak_app)
    response = _send(leak_app, rotated, raw)
    assert response.status_code == 200
    assert response.get_json()[0]["label"] == "true_positive"
    assert github.fetches == 2
    for _ in range(20):
        _assert_401(_send(leak_app, AlertKey.generate(), raw))
    assert github.fetches == 2  # inside the cooldown
    assert _send(leak_app, github_key, raw).status_code == 200


@pytest.mark.parametrize("failure", ["error", "html", "stopped"])
def test_keys_endpoint_down_keeps_last_good_keys(
    make_app: Callable[..., Flask], github: GitHubKeysServer, github_key: AlertKey, failure: str
) -> None:
    """Once fetched, GitHub's keys keep verifying alerts while the endpoint fails; never a 500."""
    app = make_app(GRIDAUTH_SECRET_SCANNING_KEYS_URL=github.url, GRIDAUTH_SECRET_SCANNING_CACHE_TTL=60)
    clock = Clock()
    with app.app_context():
        secret_scanning_settings().keys._clock = clock  # type: ignore[union-attr]
    assert _send(app, github_key, generate_key("grd")).status_code == 200
    assert github.fetches == 1
    if failure == "stopped":
        github.stop()
    else:
        github.mode = failure  # type: ignore[assignment]
    clock.now += 3600  # the cached keys are stale: the next alert tries a refresh, which fails
    _, raw = create_key(app)
    response = _send(app, github_key, raw)
    assert response.status_code == 200
    assert response.get_json()[0]["label"] == "true_positive"
    if failure != "stopped":
        assert github.fetches == 2
    _assert_401(_send(app, AlertKey.generate(), raw))  # a key only a refetch could bring is still refused


@pytest.mark.parametrize("failure", ["error", "html", "stopped"])
def test_keys_never_fetched_is_503(
    leak_app: Flask, github: GitHubKeysServer, github_key: AlertKey, failure: str
) -> None:
    """When GitHub's keys could never be fetched the alert gets 503 JSON (GitHub retries), never a 500."""
    if failure == "stopped":
        github.stop()
    else:
        github.mode = failure  # type: ignore[assignment]
    response = _send(leak_app, github_key, generate_key("grd"))
    assert response.status_code == 503
    assert response.get_json()["code"] == "unavailable"


def test_off_without_keys_url(app: Flask, github_key: AlertKey) -> None:
    """Without GRIDAUTH_SECRET_SCANNING_KEYS_URL the route is a JSON 404, even for a signed alert."""
    response = _send(app, github_key, generate_key("grd"))
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"


def test_alert_bodies_are_bounded(
    make_app: Callable[..., Flask], github: GitHubKeysServer, github_key: AlertKey
) -> None:
    """MAX_CONTENT_LENGTH and the token cap give 413; bodies that are not alert arrays give 422; all JSON."""
    app = make_app(
        GRIDAUTH_SECRET_SCANNING_KEYS_URL=github.url, GRIDAUTH_SECRET_SCANNING_MAX_TOKENS=3, MAX_CONTENT_LENGTH=2048
    )
    client = app.test_client()
    too_big = github_key.alert([_match("x" * 3000)])
    response = client.post(SCAN, data=too_big[0], headers=too_big[1])
    assert (response.status_code, response.get_json()["code"]) == (413, "payload_too_large")
    too_many = github_key.alert([_match(generate_key("grd")) for _ in range(4)])
    assert client.post(SCAN, data=too_many[0], headers=too_many[1]).status_code == 413
    for bad in (b"{}", b"[]", b"[1]", b'[{"token": 1, "type": "t"}]', b'[{"token": "t"}]', b"[{", b"\xff"):
        response = client.post(SCAN, data=bad, headers=github_key.headers(bad))
        assert response.status_code == 422, bad
        assert response.get_json()["code"] == "invalid_request"
    assert client.get(SCAN).is_json


def test_revocation_visible_to_second_app(
    shared_storage_uri: str, tmp_path: Any, github: GitHubKeysServer, github_key: AlertKey
) -> None:
    """A key revoked through one app's alert is refused at once by another app on the same storage."""
    first = build_app(
        str(tmp_path / "a"), GRIDAUTH_STORAGE_URI=shared_storage_uri, GRIDAUTH_SECRET_SCANNING_KEYS_URL=github.url
    )
    second = build_app(str(tmp_path / "b"), GRIDAUTH_STORAGE_URI=shared_storage_uri)
    _, raw = create_key(first)
    assert _works(second, raw)
    assert _send(first, github_key, raw).get_json()[0]["label"] == "true_positive"
    assert not _works(second, raw)


@pytest.fixture(params=[b for b in BACKENDS if b != "memory"])
def shared_storage_uri(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """A storage two apps can share: one SQLite file, one Redis, one PostgreSQL database."""
    return storage_uri_for(str(request.param), request, tmp_path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"GRIDAUTH_SECRET_SCANNING_KEYS_URL": "http://github.example.com/keys"}, "must use https"),
        ({"GRIDAUTH_SECRET_SCANNING_KEYS_URL": 42}, "must be an https:// URL"),
        ({"GRIDAUTH_SECRET_SCANNING_KEYS_URL": "https://x", "GRIDAUTH_SECRET_SCANNING_ACTION": "delete"}, "'revoke'"),
        ({"GRIDAUTH_SECRET_SCANNING_KEYS_URL": "https://x", "GRIDAUTH_SECRET_SCANNING_MAX_TOKENS": 0}, "MAX_TOKENS"),
        ({"GRIDAUTH_SECRET_SCANNING_KEYS_URL": "https://x", "GRIDAUTH_SECRET_SCANNING_TIMEOUT": 0}, "TIMEOUT"),
    ],
)
def test_bad_settings_fail_at_start(tmp_path: Any, config: dict[str, Any], message: str) -> None:
    """A wrong secret-scanning setting is a ConfigurationError when the blueprint is registered."""
    with pytest.raises(ConfigurationError, match=message):
        build_app(str(tmp_path), **config)


# -- the public revocation route ---------------------------------------------


def _revoke(app: Flask, keys: Any, **kwargs: Any) -> Any:
    return app.test_client().post(REVOKE, json={"keys": keys}, **kwargs)


def _comparable(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = sorted((k, v) for k, v in response.headers.items() if k.lower() != "date")
    return response.status_code, headers, response.get_data()


def test_revoke_leaked_answers_alike_for_real_and_made_up_keys(
    app: Flask, leaked_on: Callable[[Flask], list[dict[str, Any]]]
) -> None:
    """The same 202 (status, headers, body) whether the keys existed or not; real ones end up revoked."""
    record, raw = create_key(app)
    received = leaked_on(app)
    made_up = generate_key("grd")
    real = _revoke(app, [raw])
    fake = _revoke(app, [made_up])
    junk = _revoke(app, ["not a key at all"])
    assert real.status_code == 202
    assert real.get_json() == {"object": "revocation_report", "received": 1}
    assert _comparable(real) == _comparable(fake) == _comparable(junk)
    assert not _works(app, raw)
    assert [(r["key"].id, r["via"], r["action"]) for r in received] == [(record.id, "revoke_leaked", "revoke")]
    # Revoking it again, or a mix, still answers alike.
    assert _comparable(_revoke(app, [raw, made_up])) == _comparable(_revoke(app, [made_up, made_up]))


@pytest.fixture
def leaked_on() -> Iterator[Callable[[Flask], list[dict[str, Any]]]]:
    """Subscribe to ``key_leaked`` for an app; the list fills as the app sends it."""
    subscriptions: list[Any] = []

    def subscribe(app: Flask) -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []

        def receiver(sender: Any, **kwargs: Any) -> None:
            received.append(kwargs)

        subscriptions.append(receiver)
        signals.key_leaked.connect(receiver, app)
        return received

    yield subscribe
    for receiver in subscriptions:
        signals.key_leaked.disconnect(receiver)


def test_revoke_leaked_reaches_a_second_app(shared_storage_uri: str, tmp_path: Any) -> None:
    """A key revoked through the public route is refused by another app on the same storage."""
    first = build_app(str(tmp_path / "a"), GRIDAUTH_STORAGE_URI=shared_storage_uri)
    second = build_app(str(tmp_path / "b"), GRIDAUTH_STORAGE_URI=shared_storage_uri)
    _, raw = create_key(first)
    assert _works(second, raw)
    assert _revoke(first, [generate_key("grd"), raw]).status_code == 202
    assert not _works(second, raw)


@pytest.mark.parametrize(
    "body",
    [
        {"keys": []},
        {"keys": ["k"] * 101},
        {"keys": "grd_live_x"},
        {"keys": [1]},
        {"keys": [""]},
        {"keys": [None]},
        {"keys": ["a"], "extra": 1},
        {},
        [],
        "keys",
    ],
)
def test_revoke_leaked_bodies(app: Flask, body: Any) -> None:
    """Anything but {"keys": [1-100 strings]} is 422 JSON."""
    response = app.test_client().post(REVOKE, json=body)
    assert response.status_code == 422
    assert response.get_json()["code"] == "invalid_request"


def test_revoke_leaked_malformed_json(app: Flask) -> None:
    """Invalid JSON, an empty body and a body past the cap are 422 and 413, as JSON."""
    client = app.test_client()
    for data in (b"{", b"", b'{"keys": ["a"], "keys": ["b"]}', b"\xff"):
        response = client.post(REVOKE, data=data, content_type="application/json")
        assert (response.status_code, response.get_json()["code"]) == (422, "invalid_request")
    response = client.post(REVOKE, data=b"{" + b" " * 70_000 + b"}", content_type="application/json")
    assert (response.status_code, response.get_json()["code"]) == (413, "payload_too_large")


def test_revoke_leaked_counts_as_failed_authentication(make_app: Callable[..., Flask]) -> None:
    """Every call counts against the address's failed-authentication limit; past it, 429."""
    app = make_app(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_FAILED_AUTH_LIMIT="3/minute")
    keys = [generate_key("grd")]
    # A body that fails validation counts too.
    assert [_revoke(app, []).status_code] + [_revoke(app, keys).status_code for _ in range(2)] == [422, 202, 202]
    refused = _revoke(app, keys)
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "rate_limited"
    assert int(refused.headers["Retry-After"]) >= 1
    # Another address is not affected.
    other = _revoke(app, keys, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert other.status_code == 202


def test_no_secret_in_logs_or_error_bodies(
    leak_app: Flask, github_key: AlertKey, caplog: pytest.LogCaptureFixture
) -> None:
    """No raw key and no key hash reaches a log line, whatever route took it; only GitHub gets the hash back."""
    record, raw = create_key(leak_app)
    _, raw2 = create_key(leak_app)
    made_up = generate_key("grd")
    client = leak_app.test_client()
    with caplog.at_level(logging.DEBUG):
        answers = [
            _send(leak_app, github_key, raw, made_up),
            client.post(SCAN, data=b"[]", headers={"Github-Public-Key-Signature": raw}),
            _revoke(leak_app, [raw2, made_up]),
            client.post(REVOKE, json={"keys": [raw2], "other": raw2}),
            client.post(REVOKE, json={"keys": [raw2] * 101}),
        ]
    assert [a.status_code for a in answers] == [200, 401, 202, 422, 422]
    secrets_ = [raw, raw2, made_up, _sha(raw), _sha(raw2), _sha(made_up), raw[-40:], raw2[-40:]]
    lines = [r.getMessage() for r in caplog.records]
    assert any(record.id in line for line in lines)  # the leak was logged, by id
    for secret in secrets_:
        assert not any(secret in line for line in lines), secret
    for answer in answers[1:]:
        assert not any(secret in answer.get_data(as_text=True) for secret in secrets_)
    assert raw not in answers[0].get_data(as_text=True)
    assert json.loads(answers[0].get_data())[0]["token_hash"] == _sha(raw)


def test_second_app_without_secret_scanning_stays_off(tmp_path: Any, github: GitHubKeysServer) -> None:
    """Two apps in one process keep their own secret-scanning settings."""
    on = build_app(str(tmp_path / "on"), GRIDAUTH_SECRET_SCANNING_KEYS_URL=github.url)
    off = build_app(str(tmp_path / "off"))
    signed = AlertKey.generate()
    github.set_keys(signed)
    assert _send(on, signed, generate_key("grd")).status_code == 200
    assert _send(off, signed, generate_key("grd")).status_code == 404


def _canary(app: Flask) -> tuple[str, str]:
    """A canary key stored directly (the create route's ``canary`` field belongs to another change): id and raw key."""
    raw = generate_key("grd")
    record = KeyRecord(
        id=new_key_id(),
        name="tripwire",
        type="api_key",
        lookup=hash_key(raw),
        prefix=display_prefix(raw, "grd"),
        scopes=("read",),
        environment="live",
        owner="alice",
        created_at=utcnow(),
        canary=True,
    )
    with app.app_context():
        app.extensions["gridauth"].storage.add(record)
    return record.id, raw


def test_canary_is_reported_never_revoked(leak_app: Flask, github_key: AlertKey, leaked: list[dict[str, Any]]) -> None:
    """A leaked canary is a true positive and is reported by both routes, but stays unrevoked as a tripwire."""
    key_id, raw = _canary(leak_app)
    assert _send(leak_app, github_key, raw).get_json()[0]["label"] == "true_positive"
    assert _revoke(leak_app, [raw]).status_code == 202
    with leak_app.app_context():
        assert leak_app.extensions["gridauth"].keys.get(key_id).revoked_at is None
    assert [(r["key"].id, r["via"], r["action"]) for r in leaked] == [
        (key_id, "secret_scanning", "notify"),
        (key_id, "revoke_leaked", "notify"),
    ]


def _leak_events(app: Flask) -> list[dict[str, Any]]:
    """The ``key.leaked`` events, newest first, read through ``GET /audit-events`` with the bootstrap token."""
    response = app.test_client().get(f"{API}/audit-events?action=key.leaked&limit=100", headers=bearer(TOKEN))
    assert response.status_code == 200
    return list(response.get_json()["data"])


def test_leaks_are_audited(leak_app: Flask, github_key: AlertKey) -> None:
    """Each reported key gets a key.leaked event with its URL (commit SHA shortened) and source; made-up keys none."""
    first, raw = create_key(leak_app)
    second, raw2 = create_key(leak_app, owner="bob")
    sha = "0123456789abcdef" * 3  # 48 hex digits: a long commit id in the URL
    url = f"https://github.com/octo/app/blob/{sha}/settings.py"
    body, headers = github_key.alert([_match(raw, url=url), _match(generate_key("grd"))])
    assert leak_app.test_client().post(SCAN, data=body, headers=headers).status_code == 200
    assert _revoke(leak_app, [raw2, generate_key("grd")]).status_code == 202
    events = _leak_events(leak_app)
    assert [(e["target_id"], e["owner"]) for e in events] == [(second.id, "bob"), (first.id, "alice")]
    revoked, scanned = events
    assert scanned["actor"] == {"kind": "github", "id": "secret_scanning", "owner": None}
    assert scanned["details"] == {
        "via": "secret_scanning",
        "action": "revoke",
        "prefix": first.prefix,
        "canary": False,
        "url": f"https://github.com/octo/app/blob/{sha[:12]}/settings.py",
        "source": "content",
    }
    assert revoked["actor"]["kind"] == "anonymous"
    assert (revoked["details"]["via"], revoked["details"]["url"], revoked["remote_addr"]) == (
        "revoke_leaked",
        None,
        "127.0.0.1",
    )
    listed = leak_app.test_client().get(f"{API}/audit-events?action=key.revoked", headers=bearer(TOKEN)).get_json()
    assert {e["target_id"] for e in listed["data"]} == {first.id, second.id}


def test_secret_shaped_urls_are_scrubbed(
    leak_app: Flask, github_key: AlertKey, caplog: pytest.LogCaptureFixture, leaked: list[dict[str, Any]]
) -> None:
    """A key or JWT inside the reported URL or source never reaches a log line, the signal or the audit log."""
    record, raw = create_key(leak_app)
    jwt_like = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    body, headers = github_key.alert([_match(raw, url=f"https://gist.github.com/x?k={raw}", source=jwt_like)])
    with caplog.at_level(logging.DEBUG):
        assert leak_app.test_client().post(SCAN, data=body, headers=headers).status_code == 200
    (event,) = _leak_events(leak_app)
    assert event["target_id"] == record.id
    assert (event["details"]["url"], event["details"]["source"]) == (
        "https://gist.github.com/x?k=[redacted]",
        "[redacted]",
    )
    assert (leaked[0]["url"], leaked[0]["source"]) == ("https://gist.github.com/x?k=[redacted]", "[redacted]")
    for text in [json.dumps(event), *(r.getMessage() for r in caplog.records)]:
        assert raw not in text and raw[-48:-8] not in text and jwt_like not in text


def test_audit_refusing_the_url_still_records_the_leak(
    leak_app: Flask, github_key: AlertKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a URL get past the scrubbing and be refused by the audit log, the event is recorded without it."""
    monkeypatch.setattr(leaks_module, "scrub", lambda text: text)
    record, raw = create_key(leak_app)
    body, headers = github_key.alert([_match(raw, url=f"https://gist.github.com/x?k={raw}")])
    assert leak_app.test_client().post(SCAN, data=body, headers=headers).status_code == 200
    (event,) = _leak_events(leak_app)
    assert event["target_id"] == record.id
    assert "url" not in event["details"] and "source" not in event["details"]
    assert raw not in json.dumps(event)
