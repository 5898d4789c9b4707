"""JWT sign-in: issuers by exact ``iss``, JWKS over a real loopback endpoint, HS256 secrets, claims and scopes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as rsa_module
from flask import Flask
from jwt.algorithms import RSAAlgorithm

from flask_gridauth import current_principal
from flask_gridauth.credentials.jwks import JWKSError, parse_jwks
from flask_gridauth.credentials.jwt import JWTVerifier, scopes_from_claim
from flask_gridauth.errors import ConfigurationError, Unauthorized, Unavailable

from .conftest import build_app
from .jwks_server import JWKSServer, SigningKey, ec_key, ed25519_key, rsa_key

CLERK = "https://clerk.example.com"
SUPA = "https://xyz.supabase.co/auth/v1"
OTHER = "https://other.example.com"
SUPA_SECRET = "supabase-secret-" + "s" * 32
OTHER_SECRET = "other-issuer-secret-" + "o" * 32
GENERIC_401 = {"object": "error", "status": 401, "code": "unauthorized", "message": "Authentication required"}


# -- keys, servers, apps -----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa() -> SigningKey:
    """The RS256 key the JWKS serves."""
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def rsa2() -> SigningKey:
    """A second RS256 key, for rotation."""
    return rsa_key("rsa-2")


@pytest.fixture(scope="module")
def stranger() -> SigningKey:
    """An RS256 key the JWKS never serves (it even borrows the real key's kid)."""
    return rsa_key("rsa-1")


@pytest.fixture(scope="module")
def es() -> SigningKey:
    """The ES256 key the JWKS serves."""
    return ec_key("ec-1")


@pytest.fixture(scope="module")
def ed() -> SigningKey:
    """The EdDSA key the JWKS serves."""
    return ed25519_key("ed-1")


@pytest.fixture
def jwks(rsa: SigningKey, es: SigningKey, ed: SigningKey) -> Iterator[JWKSServer]:
    """A real JWKS endpoint on loopback serving the RS256, ES256 and EdDSA keys."""
    with JWKSServer(rsa.jwk(), es.jwk(), ed.jwk()) as server:
        yield server


def issuers(jwks_url: str, **clerk: Any) -> list[dict[str, Any]]:
    """A JWKS issuer (like Clerk), an all-scopes HS256 issuer (like Supabase) and a second HS256 issuer."""
    return [
        {
            "issuer": CLERK,
            "jwks_url": jwks_url,
            "algorithms": ["RS256", "ES256", "EdDSA"],
            "audience": "gridapi",
            "scopes_claim": "permissions",
            **clerk,
        },
        {
            "issuer": SUPA,
            "secret": SUPA_SECRET,
            "algorithms": ["HS256"],
            "audience": "authenticated",
            "all_scopes": True,
        },
        {"issuer": OTHER, "secret": OTHER_SECRET, "algorithms": ["HS256"]},
    ]


def jwt_app(tmp_path: Any, jwks_url: str, clerk: dict[str, Any] | None = None, **config: Any) -> Flask:
    """A test app (memory storage) trusting :func:`issuers`, plus a route that shows the claims."""
    app = build_app(
        str(tmp_path / "instance"),
        GRIDAUTH_STORAGE_URI="memory://",
        GRIDAUTH_JWT_ISSUERS=issuers(jwks_url, **(clerk or {})),
        **config,
    )

    @app.get("/claims")
    def claims() -> dict[str, Any]:
        return dict(current_principal.claims or {})

    return app


@pytest.fixture
def app(tmp_path: Any, jwks: JWKSServer) -> Flask:
    """An app trusting the loopback JWKS and the two HS256 issuers."""
    return jwt_app(tmp_path, jwks.url)


@pytest.fixture
def client(app: Flask) -> Any:
    """A test client of ``app``."""
    return app.test_client()


def clerk_claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for the JWKS issuer; ``None`` removes a claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": CLERK,
        "sub": "user_alice",
        "aud": "gridapi",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "permissions": ["read", "holdings:write"],
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def supa_claims(**overrides: Any) -> dict[str, Any]:
    """Valid claims for the HS256 all-scopes issuer."""
    return clerk_claims(
        **{"iss": SUPA, "aud": "authenticated", "sub": "4b0c-supa-user", "permissions": None, **overrides}
    )


def b64(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge(header: dict[str, Any], claims: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand: HMAC-SHA256 with ``key``, or no signature at all."""
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key is not None else b""
    return signing_input + "." + b64(signature)


def auth(token: str) -> dict[str, str]:
    """An Authorization header for a JWT."""
    return {"Authorization": f"Bearer {token}"}


def assert_generic_401(response: Any) -> None:
    """The response is the generic JSON 401 with ``WWW-Authenticate: Bearer``."""
    assert response.status_code == 401
    assert response.get_json() == GENERIC_401
    assert response.headers["WWW-Authenticate"] == "Bearer"


# -- valid tokens ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key_name", ["rsa", "es", "ed"])
def test_valid_asymmetric_tokens(client: Any, key_name: str, request: pytest.FixtureRequest) -> None:
    """RS256, ES256 and EdDSA tokens from the JWKS issuer authenticate as kind jwt, owner = sub."""
    key: SigningKey = request.getfixturevalue(key_name)
    response = client.get("/items", headers=auth(key.sign(clerk_claims())))
    assert response.status_code == 200
    assert response.get_json() == {"owner": "user_alice", "kind": "jwt", "method": "GET"}


def test_me_shows_jwt_principal_and_claims_are_kept(client: Any, rsa: SigningKey) -> None:
    """/api/v1/me shows the JWT principal; current_principal.claims holds the verified claims."""
    claims = clerk_claims(email="alice@example.com")
    token = rsa.sign(claims)
    me = client.get("/api/v1/me", headers=auth(token)).get_json()
    assert me["kind"] == "jwt"
    assert me["id"] == me["owner"] == "user_alice"
    assert set(me["scopes"]) == {"read", "holdings:write", "holdings:read"}
    assert client.get("/claims", headers=auth(token)).get_json() == claims


def test_hs256_all_scopes_issuer(client: Any) -> None:
    """An HS256 token of the all-scopes issuer holds read, write and admin."""
    token = jwt.encode(supa_claims(), SUPA_SECRET, algorithm="HS256")
    assert client.get("/admin-only", headers=auth(token)).status_code == 200
    me = client.get("/api/v1/me", headers=auth(token)).get_json()
    assert {"read", "write", "admin"} <= set(me["scopes"])
    assert me["owner"] == "4b0c-supa-user"


def test_sub_naming_the_token_owner_is_refused(client: Any) -> None:
    """A JWT whose sub is the bootstrap token's owner is refused, so it never inherits the token's keys."""
    token = jwt.encode(supa_claims(sub="admin"), SUPA_SECRET, algorithm="HS256")
    assert_generic_401(client.get("/api/v1/me", headers=auth(token)))
    other = jwt.encode(supa_claims(sub="admin2"), SUPA_SECRET, algorithm="HS256")
    assert client.get("/api/v1/me", headers=auth(other)).status_code == 200


def test_jwt_scopes_gate_routes(client: Any, rsa: SigningKey) -> None:
    """Scopes from the claim gate @require_scope routes: 403 when missing, 200 when held."""
    reader = rsa.sign(clerk_claims(permissions=["read"]))
    response = client.post("/holdings", headers=auth(reader))
    assert response.status_code == 403
    assert response.get_json()["message"] == "Missing required scope: holdings:write"
    assert client.get("/admin-only", headers=auth(reader)).status_code == 403

    writer = rsa.sign(clerk_claims(permissions=["holdings:write"]))
    assert client.post("/holdings", headers=auth(writer)).status_code == 200


def test_space_delimited_scope_claim(tmp_path: Any, jwks: JWKSServer, rsa: SigningKey) -> None:
    """With scopes_claim 'scope', an OAuth space-delimited string gives the scopes."""
    client = jwt_app(tmp_path, jwks.url, {"scopes_claim": "scope"}).test_client()
    token = rsa.sign(clerk_claims(permissions=None, scope="read holdings:write"))
    assert client.post("/holdings", headers=auth(token)).status_code == 200
    substring = rsa.sign(clerk_claims(permissions=None, scope="readonly holdings:writer"))
    assert client.get("/items", headers=auth(substring)).status_code == 403


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (["read", "x:write"], ("read", "x:write")),
        ("read  write", ("read", "write")),
        (["read", 7, None, "bad scope", "*", "", "a" * 300], ("read",)),
        ("admin,write", ()),
        ({"admin": True}, ()),
        (True, ()),
        (None, ()),
        ("read_admin", ("read_admin",)),
    ],
)
def test_scopes_from_claim(value: object, expected: tuple[str, ...]) -> None:
    """A list or a space-delimited string; invalid names and other types give nothing."""
    assert scopes_from_claim(value) == expected


def test_leeway_accepts_small_skew(tmp_path: Any, jwks: JWKSServer, rsa: SigningKey) -> None:
    """A token expired 10 s ago passes the default 30 s leeway, but not an issuer leeway of 0."""
    token = rsa.sign(clerk_claims(exp=int(time.time()) - 10))
    assert jwt_app(tmp_path, jwks.url).test_client().get("/items", headers=auth(token)).status_code == 200
    strict = jwt_app(tmp_path, jwks.url, {"leeway": 0}).test_client()
    assert_generic_401(strict.get("/items", headers=auth(token)))


def test_token_without_kid_needs_a_single_key_set(tmp_path: Any, rsa: SigningKey, es: SigningKey) -> None:
    """A token without kid verifies against a one-key set, and is refused when the set offers a choice."""
    token = jwt.encode(clerk_claims(), rsa.private, algorithm="RS256")
    with JWKSServer(rsa.jwk()) as single:
        client = jwt_app(tmp_path, single.url).test_client()
        assert client.get("/items", headers=auth(token)).status_code == 200
    with JWKSServer(rsa.jwk(), es.jwk()) as several:
        client = jwt_app(tmp_path, several.url).test_client()
        assert_generic_401(client.get("/items", headers=auth(token)))


# -- refused tokens ----------------------------------------------------------------------------------------------------

Forger = Callable[[dict[str, SigningKey]], str]
REFUSED: dict[str, Forger] = {
    "expired": lambda k: k["rsa"].sign(clerk_claims(exp=int(time.time()) - 120)),
    "not yet valid": lambda k: k["rsa"].sign(clerk_claims(nbf=int(time.time()) + 600)),
    "issued in the future": lambda k: k["rsa"].sign(clerk_claims(iat=int(time.time()) + 600)),
    "no exp": lambda k: k["rsa"].sign(clerk_claims(exp=None)),
    "exp as string": lambda k: k["rsa"].sign(clerk_claims(exp=str(int(time.time()) + 300))),
    "exp as bool": lambda k: k["rsa"].sign(clerk_claims(exp=True)),
    "wrong aud": lambda k: k["rsa"].sign(clerk_claims(aud="someone-else")),
    "aud list without ours": lambda k: k["rsa"].sign(clerk_claims(aud=["a", "b"])),
    "no aud": lambda k: k["rsa"].sign(clerk_claims(aud=None)),
    "wrong iss": lambda k: k["rsa"].sign(clerk_claims(iss="https://evil.example.com")),
    "partial iss": lambda k: k["rsa"].sign(clerk_claims(iss="https://clerk.example")),
    "iss with trailing slash": lambda k: k["rsa"].sign(clerk_claims(iss=CLERK + "/")),
    "iss differs in case": lambda k: k["rsa"].sign(clerk_claims(iss=CLERK.upper())),
    "no iss": lambda k: k["rsa"].sign(clerk_claims(iss=None)),
    "iss as list": lambda k: k["rsa"].sign(clerk_claims(iss=[CLERK])),
    "no sub": lambda k: k["rsa"].sign(clerk_claims(sub=None)),
    "empty sub": lambda k: k["rsa"].sign(clerk_claims(sub="")),
    "sub as number": lambda k: k["rsa"].sign(clerk_claims(sub=42)),
    "sub with newline": lambda k: k["rsa"].sign(clerk_claims(sub="alice\nadmin")),
    "sub with surrounding space": lambda k: k["rsa"].sign(clerk_claims(sub=" alice")),
    "sub too long": lambda k: k["rsa"].sign(clerk_claims(sub="u" * 201)),
    "wrong key with real kid": lambda k: k["stranger"].sign(clerk_claims()),
    "alg none": lambda k: forge({"alg": "none", "typ": "JWT"}, clerk_claims(), None),
    "alg none with kid": lambda k: forge({"alg": "none", "kid": "rsa-1"}, clerk_claims(), None) + "AAAA",
    "HS256 with the RS256 issuer's public PEM": lambda k: forge(
        {"alg": "HS256", "kid": "rsa-1"},
        clerk_claims(),
        k["rsa"]
        .private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    ),
    "HS256 with the other issuer's secret": lambda k: jwt.encode(supa_claims(), OTHER_SECRET, algorithm="HS256"),
    "HS256 for the JWKS issuer with a known secret": lambda k: jwt.encode(clerk_claims(), SUPA_SECRET, "HS256"),
    "RS256 claiming the HS256 issuer": lambda k: k["rsa"].sign(supa_claims()),
    "ES256 signature on an RSA kid": lambda k: forge({"alg": "ES256", "kid": "rsa-1"}, clerk_claims(), b"x"),
    "unknown crit": lambda k: k["rsa"].sign(clerk_claims(), crit=["exp"], exp=1),
    "b64 false": lambda k: k["rsa"].sign_exact({"alg": "RS256", "kid": "rsa-1", "b64": False}, clerk_claims()),
    "crit naming b64": lambda k: k["rsa"].sign_exact(
        {"alg": "RS256", "kid": "rsa-1", "b64": True, "crit": ["b64"]}, clerk_claims()
    ),
    "kid not a string": lambda k: k["rsa"].sign_exact({"alg": "RS256", "kid": 1}, clerk_claims()),
    "tampered payload": lambda k: ".".join(
        [
            k["rsa"].sign(clerk_claims()).split(".")[0],
            b64(json.dumps(clerk_claims(sub="user_bob")).encode()),
            k["rsa"].sign(clerk_claims()).split(".")[2],
        ]
    ),
    "garbage": lambda k: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
    "garbage segments": lambda k: "eyJ" + secrets.token_urlsafe(40) + "." + secrets.token_urlsafe(40) + ".x",
    "payload not an object": lambda k: b64(b'{"alg":"RS256"}') + "." + b64(b"[1]") + ".AA",
    "payload not UTF-8": lambda k: b64(b'{"alg":"RS256"}') + "." + b64(b'{"iss":"\xff"}') + ".AA",
    "deeply nested payload": lambda k: b64(b'{"alg":"RS256"}') + "." + b64(b"[" * 1200 + b"]" * 1200) + ".AA",
    "four segments": lambda k: k["rsa"].sign(clerk_claims()) + ".AAAA",
    "8 KB token": lambda k: k["rsa"].sign(clerk_claims(padding="p" * 8192)),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_tokens_get_the_generic_401(
    client: Any, case: str, rsa: SigningKey, stranger: SigningKey, es: SigningKey
) -> None:
    """Every bad, forged, expired, foreign or oversized token is the same generic 401."""
    token = REFUSED[case]({"rsa": rsa, "stranger": stranger, "es": es})
    assert_generic_401(client.get("/items", headers=auth(token)))


def test_embedded_and_remote_key_headers_are_ignored(tmp_path: Any, jwks: JWKSServer, rsa: SigningKey) -> None:
    """jku, x5u and jwk headers pointing at an attacker's key are never read or fetched."""
    attacker = rsa_key("attacker")
    with JWKSServer(attacker.jwk()) as evil:
        client = jwt_app(tmp_path, jwks.url).test_client()
        for headers in ({"jku": evil.url}, {"x5u": evil.url}, {"jwk": attacker.jwk()}):
            assert_generic_401(client.get("/items", headers=auth(attacker.sign(clerk_claims(), **headers))))
        assert evil.fetches == 0


def test_no_token_content_in_logs(client: Any, rsa: SigningKey, caplog: pytest.LogCaptureFixture) -> None:
    """Failed JWTs (and the issuers' secrets) never appear in a log line, at any level."""
    caplog.set_level(logging.DEBUG, logger="flask_gridauth")
    tokens = [
        rsa.sign(clerk_claims(exp=1)),
        rsa.sign(clerk_claims(aud="nope")),
        jwt.encode(supa_claims(), OTHER_SECRET, algorithm="HS256"),
        forge({"alg": "none"}, clerk_claims(), None),
        rsa.sign(clerk_claims(), kid="unknown-kid"),
    ]
    for token in tokens:
        assert client.get("/items", headers=auth(token)).status_code == 401
    assert "JWT rejected" in caplog.text
    for token in tokens:
        for part in token.split("."):
            assert len(part) < 8 or part not in caplog.text
    assert SUPA_SECRET not in caplog.text and OTHER_SECRET not in caplog.text


# -- the JWKS cache against a real endpoint ----------------------------------------------------------------------------


def test_key_rotation_accepted_after_one_refetch(tmp_path: Any, rsa: SigningKey, rsa2: SigningKey) -> None:
    """A new kid published by the provider is accepted after exactly one refetch."""
    with JWKSServer(rsa.jwk()) as server:
        client = jwt_app(tmp_path, server.url).test_client()
        assert client.get("/items", headers=auth(rsa.sign(clerk_claims()))).status_code == 200
        assert server.fetches == 1
        server.set_keys(rsa2.jwk())
        token = rsa2.sign(clerk_claims())
        assert client.get("/items", headers=auth(token)).status_code == 200
        assert server.fetches == 2
        assert client.get("/items", headers=auth(token)).status_code == 200
        assert server.fetches == 2


def test_random_kids_cannot_hammer_the_provider(client: Any, jwks: JWKSServer, rsa: SigningKey) -> None:
    """1,000 tokens with random kids cause at most the initial fetch and one refetch."""
    for _ in range(1000):
        token = rsa.sign(clerk_claims(), kid=secrets.token_hex(8))
        assert client.get("/items", headers=auth(token)).status_code == 401
    assert 1 <= jwks.fetches <= 2
    assert client.get("/items", headers=auth(rsa.sign(clerk_claims()))).status_code == 200


@pytest.mark.parametrize("failure", ["error", "html", "stopped"])
def test_failed_refresh_keeps_last_good_keys(tmp_path: Any, rsa: SigningKey, rsa2: SigningKey, failure: str) -> None:
    """When the endpoint is down, answers HTML or is gone, the cached keys keep working."""
    with JWKSServer(rsa.jwk()) as server:
        # Every request verified in full (no verified-token cache), so the second one needs the keys again.
        client = jwt_app(tmp_path, server.url, GRIDAUTH_JWKS_CACHE_TTL=0.05, GRIDAUTH_JWT_CACHE_TTL=0).test_client()
        token = rsa.sign(clerk_claims())
        assert client.get("/items", headers=auth(token)).status_code == 200
        if failure == "stopped":
            server.stop()
        else:
            server.mode = failure  # type: ignore[assignment]
        time.sleep(0.1)  # let the cached set go stale, so the next request tries a refresh
        assert client.get("/items", headers=auth(token)).status_code == 200
        if failure != "stopped":
            assert server.fetches == 2  # the refresh was tried, and failed
        # A key that only a failed refetch could have brought is still refused.
        assert_generic_401(client.get("/items", headers=auth(rsa2.sign(clerk_claims()))))


def test_recovery_after_failure(tmp_path: Any, rsa: SigningKey) -> None:
    """A provider that was down at first use gives 503, and its keys are used once it is back."""
    with JWKSServer(rsa.jwk()) as server:
        server.mode = "error"
        client = jwt_app(tmp_path, server.url, GRIDAUTH_JWKS_REFETCH_COOLDOWN=0).test_client()
        token = rsa.sign(clerk_claims())
        response = client.get("/items", headers=auth(token))
        assert response.status_code == 503
        assert response.get_json()["code"] == "unavailable"
        server.mode = "ok"
        assert client.get("/items", headers=auth(token)).status_code == 200


@pytest.mark.parametrize("mode", ["hang", "trickle"])
def test_hanging_endpoint_fails_within_the_timeout(tmp_path: Any, rsa: SigningKey, mode: str) -> None:
    """A JWKS endpoint that never answers (or trickles) gives a 503 while it is still holding the connection."""
    with JWKSServer(rsa.jwk()) as server:
        server.mode = mode  # type: ignore[assignment]
        client = jwt_app(tmp_path, server.url, GRIDAUTH_JWKS_TIMEOUT=0.5).test_client()
        response = client.get("/items", headers=auth(rsa.sign(clerk_claims())))
        # The server has not let go: the worker gave up on its own, at its deadline.
        assert not server.released.is_set()
        assert response.status_code == 503
        assert response.get_json() == {
            "object": "error",
            "status": 503,
            "code": "unavailable",
            "message": "Service temporarily unavailable",
        }


def test_unreachable_endpoint_is_503(tmp_path: Any, rsa: SigningKey) -> None:
    """A JWKS URL where nothing listens gives 503 at first use (start-up itself never fetches)."""
    server = JWKSServer(rsa.jwk())
    url = server.url
    server.stop()  # the port is free again: connections are refused
    client = jwt_app(tmp_path, url).test_client()
    assert client.get("/items", headers=auth(rsa.sign(clerk_claims()))).status_code == 503
    assert_generic_401(client.get("/items", headers=auth(rsa.sign(clerk_claims(exp=1)))))


def test_concurrent_first_use_fetches_once(jwks: JWKSServer, rsa: SigningKey) -> None:
    """Twenty threads verifying at once on a cold cache share one fetch."""
    jwks.mode = "slow"
    verifier = JWTVerifier.from_config(
        {
            "GRIDAUTH_JWT_ISSUERS": issuers(jwks.url),
            "GRIDAUTH_JWT_LEEWAY": 30,
            "GRIDAUTH_JWKS_TIMEOUT": 3.0,
            "GRIDAUTH_JWKS_CACHE_TTL": 300,
            "GRIDAUTH_JWKS_REFETCH_COOLDOWN": 30,
        },
        expand=frozenset,
    )
    token = rsa.sign(clerk_claims())
    results: list[str] = []
    barrier = threading.Barrier(20)

    def worker() -> None:
        barrier.wait()
        results.append(verifier.verify(token).owner)

    threads = [threading.Thread(target=worker) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert results == ["user_alice"] * 20
    assert jwks.fetches == 1


def test_verifier_raises_the_public_errors(jwks: JWKSServer, rsa: SigningKey) -> None:
    """Used directly, the verifier raises Unauthorized (bad token) and Unavailable (no keys ever fetched)."""
    config = {
        "GRIDAUTH_JWT_ISSUERS": issuers(jwks.url),
        "GRIDAUTH_JWT_LEEWAY": 30,
        "GRIDAUTH_JWKS_TIMEOUT": 1.0,
        "GRIDAUTH_JWKS_CACHE_TTL": 300,
        "GRIDAUTH_JWKS_REFETCH_COOLDOWN": 30,
    }
    verifier = JWTVerifier.from_config(config, expand=frozenset)
    for bad in ("not-a-jwt", rsa.sign(clerk_claims(padding="p" * 8192)), "e30.e30.AA"):
        with pytest.raises(Unauthorized):
            verifier.verify(bad)
    jwks.mode = "html"
    with pytest.raises(Unavailable):
        verifier.verify(rsa.sign(clerk_claims()))


def test_only_public_signature_keys_are_taken_from_a_jwks(rsa: SigningKey, es: SigningKey, ed: SigningKey) -> None:
    """Symmetric, private, encryption-only, weak, foreign-algorithm and malformed JWKs are skipped."""
    weak_private = rsa_module.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 - must be skipped
    weak = SigningKey("weak", "RS256", weak_private)
    private_jwk = {**RSAAlgorithm.to_jwk(rsa.private, as_dict=True), "kid": "private", "alg": "RS256"}
    document = {
        "keys": [
            rsa.jwk(),
            es.jwk(),
            {"kty": "oct", "kid": "hmac", "k": b64(b"k" * 32), "alg": "HS256"},
            private_jwk,
            rsa.jwk(kid="enc", use="enc"),
            rsa.jwk(kid="ops", key_ops=["encrypt"]),
            weak.jwk(),
            ed.jwk(),  # EdDSA is not among this issuer's algorithms
            rsa.jwk(kid="ps-only", alg="PS256"),
            {"kty": "RSA", "kid": "broken", "n": "not base64!", "e": "AQAB"},
            {"kty": "EC", "kid": 7, "crv": "P-256"},
            "not a key",
        ]
    }
    keys = parse_jwks(json.dumps(document).encode(), frozenset({"RS256", "ES256"}))
    assert sorted(k for k in keys if k is not None) == ["ec-1", "rsa-1"]
    for body in (b"<html></html>", b'{"keys": {}}', b'{"keys": [{"kty": "oct", "k": "AAAA"}]}', b"\xff"):
        with pytest.raises(JWKSError):
            parse_jwks(body, frozenset({"RS256"}))


def test_jwk_alg_pins_the_algorithm(tmp_path: Any) -> None:
    """A JWK that names RS256 never verifies a PS256 token, even when the issuer accepts both."""
    key = rsa_key("pinned", alg="RS256")
    pss = SigningKey("pinned", "PS256", key.private)
    with JWKSServer(key.jwk()) as server:
        client = jwt_app(tmp_path, server.url, {"algorithms": ["RS256", "PS256"]}).test_client()
        assert client.get("/items", headers=auth(key.sign(clerk_claims()))).status_code == 200
        assert_generic_401(client.get("/items", headers=auth(pss.sign(clerk_claims()))))


# -- configuration -----------------------------------------------------------------------------------------------------

GOOD_JWKS = {"issuer": CLERK, "jwks_url": "https://clerk.example.com/.well-known/jwks.json", "algorithms": ["RS256"]}
GOOD_HS = {"issuer": SUPA, "secret": SUPA_SECRET, "algorithms": ["HS256"]}
BAD_CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    "short secret": ({**GOOD_HS, "secret": "too-short-secret"}, "too short"),
    "HS512 needs 64 bytes": ({**GOOD_HS, "algorithms": ["HS512"]}, "64 bytes"),
    "missing algorithms": ({k: v for k, v in GOOD_JWKS.items() if k != "algorithms"}, "algorithms"),
    "algorithms as a string": ({**GOOD_JWKS, "algorithms": "RS256"}, "algorithms"),
    "empty algorithms": ({**GOOD_JWKS, "algorithms": []}, "algorithms"),
    "alg none": ({**GOOD_JWKS, "algorithms": ["RS256", "none"]}, "'none'"),
    "unknown algorithm": ({**GOOD_JWKS, "algorithms": ["RS257"]}, "unsupported"),
    "both url and secret": ({**GOOD_JWKS, "secret": SUPA_SECRET}, "exactly one"),
    "neither url nor secret": ({"issuer": CLERK, "algorithms": ["RS256"]}, "exactly one"),
    "HS256 from a JWKS": ({**GOOD_JWKS, "algorithms": ["RS256", "HS256"]}, "need a 'secret'"),
    "RS256 with a secret": ({**GOOD_HS, "algorithms": ["HS256", "RS256"]}, "HS256/HS384/HS512 only"),
    "unknown setting": ({**GOOD_JWKS, "audiences": ["x"]}, "unknown setting"),
    "plain http to a remote host": ({**GOOD_JWKS, "jwks_url": "http://clerk.example.com/jwks"}, "https"),
    "not a URL": ({**GOOD_JWKS, "jwks_url": "clerk.example.com/jwks"}, "https"),
    "bad audience": ({**GOOD_JWKS, "audience": 7}, "audience"),
    "bad scopes_claim": ({**GOOD_JWKS, "scopes_claim": ""}, "scopes_claim"),
    "all_scopes not a bool": ({**GOOD_HS, "all_scopes": "yes"}, "all_scopes"),
    "negative leeway": ({**GOOD_JWKS, "leeway": -1}, "leeway"),
}


@pytest.mark.parametrize("case", list(BAD_CONFIGS))
def test_configuration_errors_name_the_issuer(tmp_path: Any, case: str) -> None:
    """Every bad issuer setting fails at start-up, naming the issuer and never the secret."""
    entry, fragment = BAD_CONFIGS[case]
    with pytest.raises(ConfigurationError) as info:
        build_app(str(tmp_path), GRIDAUTH_JWT_ISSUERS=[entry])
    message = str(info.value)
    assert repr(entry["issuer"]) in message
    assert fragment in message
    assert "too-short-secret" not in message and SUPA_SECRET not in message


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"GRIDAUTH_JWT_ISSUERS": [GOOD_JWKS, GOOD_JWKS]}, "listed twice"),
        ({"GRIDAUTH_JWT_ISSUERS": [{"jwks_url": "https://x"}]}, "GRIDAUTH_JWT_ISSUERS[0]"),
        ({"GRIDAUTH_JWT_ISSUERS": ["https://clerk.example.com"]}, "must be a dict"),
        ({"GRIDAUTH_JWT_ISSUERS": [GOOD_JWKS], "GRIDAUTH_JWKS_TIMEOUT": 0}, "GRIDAUTH_JWKS_TIMEOUT"),
        ({"GRIDAUTH_JWT_ISSUERS": [GOOD_JWKS], "GRIDAUTH_JWT_LEEWAY": "30"}, "GRIDAUTH_JWT_LEEWAY"),
    ],
)
def test_configuration_errors_elsewhere(tmp_path: Any, config: dict[str, Any], fragment: str) -> None:
    """Duplicate or nameless issuers and bad JWKS timings fail at start-up with the setting named."""
    with pytest.raises(ConfigurationError) as info:
        build_app(str(tmp_path), **config)
    assert fragment in str(info.value)


def test_startup_never_fetches(tmp_path: Any, jwks: JWKSServer) -> None:
    """Building the app contacts no provider: the JWKS is fetched at first use."""
    jwt_app(tmp_path, jwks.url)
    assert jwks.fetches == 0


# -- keys owned by JWT users -------------------------------------------------------------------------------------------


def test_two_jwt_users_cannot_see_each_others_keys(
    make_app: Callable[..., Flask], jwks: JWKSServer, rsa: SigningKey
) -> None:
    """Keys belong to the JWT sub: another JWT user can neither list, read, rotate nor revoke them."""
    client = make_app(GRIDAUTH_JWT_ISSUERS=issuers(jwks.url)).test_client()
    alice = auth(jwt.encode(supa_claims(sub="alice-uuid"), SUPA_SECRET, algorithm="HS256"))
    bob = auth(rsa.sign(clerk_claims(sub="bob-uuid", permissions=["admin"])))

    created = client.post("/api/v1/api-keys", json={"name": "alice ci", "scopes": ["read"]}, headers=alice)
    assert created.status_code == 201
    key = created.get_json()
    assert key["owner"] == "alice-uuid"
    assert [k["id"] for k in client.get("/api/v1/api-keys", headers=alice).get_json()["data"]] == [key["id"]]

    assert client.get("/api/v1/api-keys", headers=bob).get_json()["data"] == []
    for method, path in [
        ("GET", f"/api/v1/api-keys/{key['id']}"),
        ("POST", f"/api/v1/api-keys/{key['id']}/rotate"),
        ("DELETE", f"/api/v1/api-keys/{key['id']}"),
    ]:
        response = client.open(path, method=method, headers=bob)
        assert response.status_code == 404, (method, path)
    acting_for = client.post(
        "/api/v1/api-keys", json={"name": "x", "scopes": ["read"], "owner": "alice-uuid"}, headers=bob
    )
    assert acting_for.status_code == 403

    # Alice's key survived Bob's attempts and authenticates as Alice.
    me = client.get("/api/v1/me", headers=auth(key["raw_key"])).get_json()
    assert (me["kind"], me["owner"]) == ("api_key", "alice-uuid")


def test_jwt_user_without_admin_cannot_manage_keys(client: Any, rsa: SigningKey) -> None:
    """Managing keys needs the admin scope: a read-only JWT user gets 403."""
    reader = auth(rsa.sign(clerk_claims(permissions=["read"])))
    response = client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["read"]}, headers=reader)
    assert response.status_code == 403


# -- PyJWT does the validation ----------------------------------------------------------------------------------------


def test_pyjwt_decode_complete_validates(client: Any, rsa: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each accepted token went through PyJWT's decode_complete with the issuer's rules and exp/iss/sub required."""
    from flask_gridauth.credentials import jwt as jwtmod

    calls: list[dict[str, Any]] = []
    real = jwtmod._DECODER.decode_complete

    def spy(token: str, key: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(token, key, **kwargs)

    monkeypatch.setattr(jwtmod._DECODER, "decode_complete", spy)
    assert client.get("/items", headers=auth(rsa.sign(clerk_claims()))).status_code == 200
    assert client.get("/items", headers=auth(jwt.encode(supa_claims(), SUPA_SECRET, "HS256"))).status_code == 200
    assert [(c["algorithms"], c["issuer"], c["audience"]) for c in calls] == [
        (["RS256"], CLERK, frozenset({"gridapi"})),
        (["HS256"], SUPA, frozenset({"authenticated"})),
    ]
    assert all(set(c["options"]["require"]) == {"exp", "iss", "sub"} for c in calls)


def test_pyjwt_failure_is_the_generic_401(client: Any, rsa: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever PyJWT refuses (here: an immature token it alone checks) is the generic 401, never a 500."""
    from flask_gridauth.credentials import jwt as jwtmod

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise jwt.ImmatureSignatureError("The token is not yet valid (nbf)")

    monkeypatch.setattr(jwtmod._DECODER, "decode_complete", refuse)
    assert_generic_401(client.get("/items", headers=auth(rsa.sign(clerk_claims()))))


def test_aud_is_ignored_when_the_issuer_names_none(client: Any) -> None:
    """An issuer without ``audience`` accepts a token that carries one (PyJWT alone would refuse it)."""
    token = jwt.encode(clerk_claims(iss=OTHER, aud="anything"), OTHER_SECRET, "HS256")
    assert client.get("/items", headers=auth(token)).status_code == 200


@pytest.mark.parametrize(
    ("claims", "status"),
    [
        ({"aud": ["other", "gridapi"]}, 200),
        ({"aud": ["other", 7]}, 401),
        ({"iat": 0.5, "nbf": 20}, 200),  # in the future, inside the 30 s leeway
        ({"exp": -20}, 200),  # expired, but inside the leeway
        ({"exp": float("nan")}, 401),
        ({"nbf": "0"}, 401),
    ],
)
def test_claims_through_pyjwt(client: Any, rsa: SigningKey, claims: dict[str, Any], status: int) -> None:
    """Audience lists, float times and the leeway work as before the move to PyJWT; odd types are refused."""
    now = time.time()  # time claims are given relative to now, so a slow run cannot age them
    timed = {
        k: now + v if k in ("exp", "nbf", "iat") and isinstance(v, float | int) and v == v else v
        for k, v in claims.items()
    }
    assert client.get("/items", headers=auth(rsa.sign(clerk_claims(**timed)))).status_code == status
