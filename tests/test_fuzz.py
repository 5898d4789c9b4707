"""Property tests (hypothesis): the credential parsers, the validators and the whole request path.

Whatever arrives, the answer is never a 5xx, every error is the JSON error body
(an app-level 404/405 of the example app aside, which the extension does not
own), and no secret the server holds ever appears in a response.

The default run is short; ``HYPOTHESIS_PROFILE=long pytest tests/test_fuzz.py``
runs each property for many more examples (``make bench`` runs it).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import string
import time
from collections.abc import Callable
from typing import Any

from flask import Flask
from hypothesis import assume, given
from hypothesis import strategies as st

from flask_gridauth.credentials.parse import MAX_CREDENTIAL_LENGTH, bearer_token, classify_token, parse_credential
from flask_gridauth.credentials.signature import load_public_key, request_target
from flask_gridauth.errors import InvalidRequest, Unauthorized
from flask_gridauth.keys import check_key, generate_key, hash_key, key_pattern
from flask_gridauth.management import (
    validate_duration,
    validate_environment,
    validate_expires_at,
    validate_metadata,
    validate_name,
    validate_rate_limit,
    validate_scopes,
)

from .live.conftest import load_example

# Examples per property come from the hypothesis profile tests/conftest.py loads: 150 by default,
# 3000 with HYPOTHESIS_PROFILE=long (what `make bench` runs). One test per property, one setting.

FUZZ_TOKEN = "fuzz-" + "t0k3n" * 8
JWT_ISSUER = "https://idp.fuzz.test"
JWT_SECRET = "fuzz-jwt-secret-" + "s" * 32
SIGNATURE_HEADERS = frozenset({"HTTP_X_GRID_SIGNATURE", "HTTP_X_GRID_TIMESTAMP", "HTTP_X_GRID_FINGERPRINT"})
ERROR_STATUSES = {400, 401, 403, 404, 405, 413, 415, 422, 429, 431}

# -- what a real server could deliver ----------------------------------------------------------------------------------


def _wire(text: str) -> str:
    # A header value as a WSGI server hands it over: latin-1 text without CR, LF or NUL.
    return text.replace("\r", " ").replace("\n", " ").replace("\x00", " ")


def _repeat(seed: str, length: int) -> str:
    return (seed or "A") * (length // max(len(seed), 1) + 1)[:length] if seed else "A" * length


latin1_bytes = st.binary(max_size=300).map(lambda b: _wire(b.decode("latin-1")))
# Unicode the client sent as UTF-8 arrives as its bytes decoded as latin-1.
utf8_text = st.text(max_size=200).map(lambda t: _wire(t.encode("utf-8").decode("latin-1")))
long_value = st.builds(
    lambda seed, n: _wire(((seed or "A") * (n // max(len(seed), 1) + 1))[:n]),
    st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=8),
    st.integers(MAX_CREDENTIAL_LENGTH - 8, 64 * 1024),
)
b64url = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=120)
token_like = st.one_of(
    st.builds(lambda s: "grd_live_" + s, st.text(alphabet="0123456789abcdefABCDEF", max_size=60)),
    st.builds(lambda s: "grd_test_" + s, st.text(alphabet=string.hexdigits + "_ ", max_size=60)),
    st.builds(lambda a, b, c: f"eyJ{a}.{b}.{c}", b64url, b64url, b64url),
    st.text(alphabet=string.ascii_letters + string.digits + "-._~+/=", min_size=1, max_size=80),
)
header_value = st.one_of(latin1_bytes, utf8_text, long_value, token_like)
authorization = st.one_of(
    header_value,
    st.builds(
        lambda scheme, sep, token: scheme + sep + token,
        st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "Token", ""]),
        st.sampled_from([" ", "  ", "\t", ""]),
        header_value,
    ),
)
header_name = st.one_of(
    st.sampled_from(
        [
            "Authorization",
            "X-Api-Key",
            "X-Grid-Signature",
            "X-Grid-Timestamp",
            "X-Grid-Fingerprint",
            "X-Grid-Signature-Version",
            "Content-Type",
            "Accept",
            "Origin",
            "X-Forwarded-For",
            "Cookie",
        ]
    ),
    st.from_regex(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,40}", fullmatch=True).filter(
        lambda n: n.lower() not in ("content-length", "transfer-encoding", "host")
    ),
)
headers = st.lists(st.tuples(header_name, st.one_of(header_value, authorization)), max_size=6)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=20), inner, max_size=5),
    max_leaves=20,
)


# -- the apps under test -----------------------------------------------------------------------------------------------


@functools.cache
def fuzz_app(ratelimit: bool) -> tuple[Flask, dict[str, str]]:
    """The example app on memory storage with a JWT issuer, and the secrets it holds (built once per module)."""
    config = {
        "TESTING": False,  # let errors render as they would in production
        "GRIDAUTH_API_TOKEN": FUZZ_TOKEN,
        "GRIDAUTH_STORAGE_URI": "memory://",
        "GRIDAUTH_RATELIMIT_ENABLED": ratelimit,
        "GRIDAUTH_FAILED_AUTH_LIMIT": "1000000/minute",
        "GRIDAUTH_RATELIMIT_API_KEY": "1000000/minute",
        "GRIDAUTH_JWT_ISSUERS": [{"issuer": JWT_ISSUER, "secret": JWT_SECRET, "algorithms": ["HS256"]}],
    }
    app = load_example().create_app(config)
    with app.app_context():
        keys = app.extensions["gridauth"].keys
        record, raw = keys.create(name="fuzz", scopes=["admin", "trade", "holdings:write"], owner="fuzzer")
    return app, {"token": FUZZ_TOKEN, "key": raw, "key_hash": hash_key(raw), "key_id": record.id}


def new_victim(app: Flask) -> str:
    """The id of a fresh key of the fuzzer's owner, for a request to revoke, rotate or change."""
    with app.app_context():
        record, _ = app.extensions["gridauth"].keys.create(name="victim", scopes=["read"], owner="fuzzer")
    return record.id


def _secrets_of(held: dict[str, str]) -> list[str]:
    return [held["token"], held["key"], held["key_hash"], hashlib.sha256(FUZZ_TOKEN.encode()).hexdigest()]


def check_response(response: Any, held: dict[str, str], *, new_key_ok: bool = False) -> None:
    """The properties every answer keeps: no 5xx but 503, JSON errors, no secret echoed."""
    status = response.status_code
    assert status < 500 or status == 503, (status, response.get_data()[:300])
    body = response.get_data(as_text=True)
    if status >= 400:
        is_json = response.mimetype == "application/json"
        # The example app's own 404/405 (an unknown path or method) are Flask's; everything else is ours.
        if status not in (404, 405) or is_json:
            assert is_json, (status, body[:300])
        if is_json and response.request.method != "HEAD":  # a HEAD answer has the headers only
            data = json.loads(body)
            assert data["object"] == "error" and data["status"] == status
            assert isinstance(data["code"], str) and isinstance(data["message"], str)
            assert status in ERROR_STATUSES | {503}
        if status == 401:
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Traceback" not in body
    header_text = json.dumps(list(response.headers.items()))
    for secret in _secrets_of(held):
        assert secret not in body and secret not in header_text
    if not new_key_ok and response.mimetype == "application/json" and body:
        data = json.loads(body)
        assert not (isinstance(data, dict) and "raw_key" in data), "a secret was shown outside its creation"


# -- parsers -----------------------------------------------------------------------------------------------------------


def prop_parse_credential(authz: str | None, api_key: str | None, signed: list[str]) -> None:
    """``parse_credential`` returns a clean credential, ``None``, or raises the 401; nothing else."""
    environ: dict[str, Any] = {}
    if authz is not None:
        environ["HTTP_AUTHORIZATION"] = authz
    if api_key is not None:
        environ["HTTP_X_API_KEY"] = api_key
    for name in signed:
        environ[name] = "x"
    try:
        credential = parse_credential(environ, key_prefix="grd", signature_headers=SIGNATURE_HEADERS)
    except Unauthorized as exc:
        assert exc.code == 401 and exc.message == "Authentication required"
        return
    if credential is None:
        assert authz is None and api_key is None and not signed
        return
    assert credential.kind in ("api_key", "jwt", "signature", "token")
    if credential.kind != "signature":
        assert credential.value.isascii() and 0 < len(credential.value) <= MAX_CREDENTIAL_LENGTH
        assert not any(ch.isspace() for ch in credential.value)
    assert repr(credential) == f"Credential(kind={credential.kind!r})"  # never the secret, even in a traceback


parse_args = {
    "authz": st.none() | authorization,
    "api_key": st.none() | header_value,
    "signed": st.lists(st.sampled_from(sorted(SIGNATURE_HEADERS)), max_size=2, unique=True),
}


@given(**parse_args)
def test_parse_credential(authz: str | None, api_key: str | None, signed: list[str]) -> None:
    """Random Authorization and x-api-key headers: a clean credential, None, or the generic 401."""
    prop_parse_credential(authz, api_key, signed)


def prop_token_helpers(text: str) -> None:
    """The shape checks of keys and tokens take any ``str`` (any Unicode) without an unexpected error."""
    pattern = key_pattern("grd")
    assert isinstance(check_key(text, pattern), bool)
    try:
        token = bearer_token(text)
    except Unauthorized:
        token = None
    if token is not None:
        assert token.isascii()
        assert classify_token(token, "grd").kind in ("api_key", "jwt", "token")
    try:
        classify_token(text, "grd")
    except Unauthorized:
        pass


@given(st.one_of(st.text(max_size=300), header_value, token_like))
def test_token_helpers(text: str) -> None:
    """check_key, bearer_token and classify_token on any text."""
    prop_token_helpers(text)


def test_real_keys_pass_and_single_edits_fail() -> None:
    """Sanity for the fuzzers above: a generated key passes check_key, every one-character change fails."""
    pattern = key_pattern("grd")
    key = generate_key("grd")
    assert check_key(key, pattern)
    for i in range(len("grd_live_"), len(key)):
        edited = key[:i] + ("0" if key[i] != "0" else "1") + key[i + 1 :]
        assert not check_key(edited, pattern)


@given(
    st.one_of(
        st.text(max_size=60),
        st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()),
        json_values,
    )
)
def test_load_public_key(value: Any) -> None:
    """A registered public key is validated to (base64, fingerprint) or a 422 naming public_key."""
    try:
        encoded, fingerprint = load_public_key(value)
    except InvalidRequest as exc:
        assert exc.field == "public_key"
        return
    assert encoded == value and len(fingerprint) == 43


@given(
    raw=st.none() | latin1_bytes,
    path=latin1_bytes,
    query=latin1_bytes,
    script=st.sampled_from(["", "/api", "/mount point"]),
)
def test_request_target(raw: str | None, path: str, query: str, script: str) -> None:
    """The signed request target is bytes or None for any WSGI environ, never an exception."""
    environ = {"PATH_INFO": path, "QUERY_STRING": query, "SCRIPT_NAME": script}
    if raw is not None:
        environ["RAW_URI"] = raw
    target = request_target(environ)
    assert target is None or isinstance(target, bytes)


VALIDATORS: list[Callable[[Any], Any]] = [
    validate_name,
    validate_scopes,
    lambda v: validate_duration(v, "expires_in"),
    validate_expires_at,
    validate_rate_limit,
    validate_metadata,
    validate_environment,
]


@given(st.sampled_from(range(len(VALIDATORS))), json_values)
def test_validators(index: int, value: Any) -> None:
    """Every body validator takes any JSON value: it returns, or raises the 422 with its field."""
    try:
        VALIDATORS[index](value)
    except InvalidRequest as exc:
        assert exc.code == 422 and exc.field


# -- the whole request path --------------------------------------------------------------------------------------------

METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
PATHS = st.one_of(
    st.sampled_from(
        [
            "/",
            "/boards",
            "/orders",
            "/holdings",
            "/api/v1/health",
            "/api/v1/me",
            "/api/v1/api-keys",
            "/api/v1/api-keys/key_0000",
            "/api/v1/api-keys/key_0000/rotate",
            "/api/v1/openapi.json",
            "/dashboard/",
        ]
    ),
    st.text(alphabet=string.ascii_letters + string.digits + "/-._~%?=&", max_size=60).map(
        lambda p: "/" + p.lstrip("/")  # "//host" would be a URL with a host to the test client, not a path
    ),
)
bodies = st.one_of(
    st.just(b""),
    st.binary(max_size=2000),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(60 * 1024, 1024 * 1024 + 100).map(lambda n: b"x" * n),
)


def _credential(choice: str, held: dict[str, str]) -> list[tuple[str, str]]:
    """Sometimes the real secrets, or near misses of them, so that the echo check means something."""
    key, token = held["key"], held["token"]
    return {
        "none": [],
        "key": [("Authorization", f"Bearer {key}")],
        "x-api-key": [("X-Api-Key", key)],
        "token": [("Authorization", f"Bearer {token}")],
        "key-typo": [("Authorization", f"Bearer {key[:-1]}{'0' if key[-1] != '0' else '1'}")],
        "token-typo": [("Authorization", f"Bearer {token}x")],
        "both": [("Authorization", f"Bearer {token}"), ("X-Api-Key", key)],
    }[choice]


CREDENTIALS = st.sampled_from(["none", "key", "x-api-key", "token", "key-typo", "token-typo", "both"])


def prop_request(
    ratelimit: bool, method: str, path: str, extra: list[tuple[str, str]], credential: str, body: bytes
) -> None:
    """One request of any shape through the example app."""
    app, held = fuzz_app(ratelimit)
    # The key a path names is a fresh one: revoking or rotating the held key would end the run's coverage.
    path = path.replace("key_0000", new_victim(app))
    client = app.test_client()
    response = client.open(path, method=method, headers=_credential(credential, held) + extra, data=body)
    check_response(response, held, new_key_ok=response.status_code == 201)  # a create or a rotate


request_args = {
    "ratelimit": st.booleans(),
    "method": METHODS,
    "path": PATHS,
    "extra": headers,
    "credential": CREDENTIALS,
    "body": bodies,
}


@given(**request_args)
def test_request_path(
    ratelimit: bool, method: str, path: str, extra: list[tuple[str, str]], credential: str, body: bytes
) -> None:
    """Random method, path, headers (up to 64 KB), credentials and body through test_client()."""
    prop_request(ratelimit, method, path, extra, credential, body)


# -- the blueprint's JSON bodies ---------------------------------------------------------------------------------------

KEY_FIELDS = ["name", "scopes", "expires_in", "expires_at", "environment", "rate_limit", "metadata", "owner"]
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": st.text(max_size=250) | json_values,
    "scopes": st.lists(st.sampled_from(["read", "write", "admin", "x:read", "x:*", "", "read_admin", "*"]), max_size=4)
    | json_values,
    "expires_in": st.integers(-10, 10**10) | json_values,
    "expires_at": st.sampled_from(["2099-01-01T00:00:00Z", "2000-01-01", "9999-12-31T23:59-23:59", "soon"])
    | json_values,
    "environment": st.sampled_from(["live", "test", "prod"]) | json_values,
    "rate_limit": st.sampled_from(["10/minute", "1/second;5/hour", "lots", ""]) | json_values,
    "metadata": st.dictionaries(st.text(max_size=10), json_values, max_size=4) | json_values,
    "owner": st.sampled_from(["fuzzer", "admin", "someone else", " "]) | json_values,
    "type": st.sampled_from(["api_key", "signing", "other"]) | json_values,
    "public_key": st.binary(min_size=32, max_size=32).map(lambda b: base64.b64encode(b).decode()) | json_values,
    "grace_period": st.integers(-10, 10**10) | json_values,
}
blueprint_bodies = st.one_of(
    st.fixed_dictionaries({}, optional={k: v for k, v in FIELD_VALUES.items()}).map(lambda d: json.dumps(d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=500),
    st.sampled_from([b'{"name": "a", "name": "b", "scopes": ["read"]}', b'{"name": NaN}', b"[" * 5000]),
)
ROUTES = st.sampled_from(
    [
        ("POST", "/api/v1/api-keys"),
        ("PATCH", "/api/v1/api-keys/{victim}"),
        ("POST", "/api/v1/api-keys/{victim}/rotate"),
        ("DELETE", "/api/v1/api-keys/{victim}"),
        ("GET", "/api/v1/api-keys/{victim}"),
    ]
)
queries = st.dictionaries(
    st.sampled_from(["limit", "cursor", "owner", "x"]),
    st.one_of(st.sampled_from(["0", "1", "20", "101", "-1", "1e3", "٣"]), st.text(max_size=600)),
    max_size=3,
)


def prop_blueprint(route: tuple[str, str], body: bytes, content_type: str, as_key: bool, query: dict[str, str]) -> None:
    """One management call with any body: a 2xx key object or a JSON 4xx naming the field."""
    app, held = fuzz_app(False)
    method, path = route
    credential = held["key"] if as_key else held["token"]
    client = app.test_client()
    response = client.open(
        path.format(victim=new_victim(app)),
        method=method,
        data=body,
        headers={"Authorization": f"Bearer {credential}", "Content-Type": content_type},
    )
    check_response(response, held, new_key_ok=response.status_code == 201)
    if response.status_code == 422:
        assert isinstance(response.get_json().get("field"), str)
    if response.status_code in (200, 201):
        data = response.get_json()
        assert data["object"] == "api_key" and "lookup" not in data
    listing = client.get("/api/v1/api-keys", query_string=query, headers={"Authorization": f"Bearer {credential}"})
    check_response(listing, held)
    assert listing.status_code in (200, 403, 422)


blueprint_args = {
    "route": ROUTES,
    "body": blueprint_bodies,
    "content_type": st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", ""]),
    "as_key": st.booleans(),
    "query": queries,
}


@given(**blueprint_args)
def test_blueprint_bodies(
    route: tuple[str, str], body: bytes, content_type: str, as_key: bool, query: dict[str, str]
) -> None:
    """Random JSON (and not JSON) bodies and query strings for the /api-keys routes."""
    prop_blueprint(route, body, content_type, as_key, query)


# -- JWTs and signatures that get past the shape checks ----------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


claims = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([JWT_ISSUER, JWT_ISSUER + "/", ""]) | json_values,
        "sub": st.text(max_size=300) | json_values,
        "exp": st.sampled_from([int(time.time()) + 600, 0, 10**20, 1e308]) | json_values,
        "nbf": json_values,
        "iat": json_values,
        "aud": json_values,
        "permissions": st.lists(st.text(max_size=20), max_size=4) | json_values,
        "scope": st.text(max_size=60) | json_values,
    },
)
jwt_headers = st.fixed_dictionaries(
    {"alg": st.sampled_from(["HS256", "HS512", "none", "RS256", "EdDSA"]) | json_values},
    optional={"kid": json_values, "typ": json_values, "crit": json_values, "b64": json_values, "jku": json_values},
)


def prop_jwt(header: dict[str, Any], payload: dict[str, Any], sign: bool) -> None:
    """A JWT built from random claims, often correctly signed, so the claim checks are what decide."""
    app, held = fuzz_app(False)
    head = _b64(json.dumps(header).encode())
    body = _b64(json.dumps(payload).encode())
    signing_input = f"{head}.{body}".encode()
    signature = hmac.new(JWT_SECRET.encode(), signing_input, "sha256").digest() if sign else b"\x00" * 32
    token = f"{head}.{body}.{_b64(signature)}"
    assume(token.startswith("eyJ"))
    response = app.test_client().get("/boards", headers={"Authorization": f"Bearer {token}"})
    check_response(response, held)
    assert JWT_SECRET not in response.get_data(as_text=True)
    assert response.status_code in (200, 401, 403)


@given(jwt_headers, claims, st.booleans())
def test_jwt_claims(header: dict[str, Any], payload: dict[str, Any], sign: bool) -> None:
    """Random JWT headers and claims, signed with the real secret or not: 200, 401 or 403, never 5xx."""
    prop_jwt(header, payload, sign)


signature_values = st.one_of(
    header_value,
    st.binary(min_size=64, max_size=64).map(lambda b: base64.b64encode(b).decode()),
)


@given(
    signature=signature_values,
    timestamp=st.one_of(st.integers(-(2**70), 2**70).map(str), header_value),
    fingerprint=st.one_of(header_value, st.just("FINGERPRINT")),
    version=st.one_of(st.none(), st.sampled_from(["1", "2", "3", ""]), header_value),
    body=bodies,
)
def test_signature_headers(signature: str, timestamp: str, fingerprint: str, version: str | None, body: bytes) -> None:
    """Random signature headers against a registered key's real fingerprint: a 4xx JSON error, never 5xx."""
    app, held = fuzz_app(False)
    if fingerprint == "FINGERPRINT":
        fingerprint = _registered_fingerprint(app)
    sent = {"X-Grid-Signature": signature, "X-Grid-Timestamp": timestamp, "X-Grid-Fingerprint": fingerprint}
    if version is not None:
        sent["X-Grid-Signature-Version"] = version
    response = app.test_client().post("/orders", data=body, headers=sent)
    check_response(response, held)
    assert response.status_code in (401, 413)


@functools.cache
def _registered_fingerprint(app: Flask) -> str:
    from flask_gridauth.client import generate_keypair

    pair = generate_keypair()
    with app.app_context():
        app.extensions["gridauth"].keys.register_signing_key(
            public_key=pair.public_key, name="fuzz signer", scopes=["trade"], owner="fuzzer"
        )
    return pair.fingerprint
