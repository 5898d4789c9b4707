"""The apps the benchmark compares: bare routes, the peers, and GridAuth with every credential kind.

Each builder returns a :class:`~harness.Case` whose ``call`` makes one request
through ``app.test_client()``. Credentials are pools cycled request by request
(1,000 API keys, 100 JWTs), so no configuration is measured on one cached row;
signed requests are signed before each round (untimed), because each signature
is accepted once.
"""

from __future__ import annotations

import importlib.util
import json
import random
import secrets
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from harness import Call, Case, log

from flask_gridauth import GridAuth
from flask_gridauth.keys import generate_key

BENCH = Path(__file__).resolve().parent
DATA = BENCH / ".data"
ROOT = BENCH.parent
TOKEN = "bench-bootstrap-token-0123456789abcdef"
#: Keys the benchmark presents, cycled so every request looks up a different row.
POOL = 1000
#: A body of 1 KB for the POST routes (signed requests and their bare baseline).
BODY = json.dumps({"order": "x" * 1000})[:1024].encode()
#: Limit of the rate-limited configurations: high enough that the bench never reaches it.
LIMIT = "60000/minute"
JWT_SECRET = "bench-hs256-shared-secret-of-32-bytes-or-more"
JWT_ISSUER_HS = "https://hs.bench.invalid/"
JWT_ISSUER_RS = "https://rs.bench.invalid/"
JWT_AUDIENCE = "bench"
#: Names of the two bare routes every other configuration is compared with.
BARE_GET = "bare Flask route (GET)"
BARE_POST = "bare Flask route (POST 1 KB)"
REDIS_GET_IN_REQUEST = "bare route + one redis-py GET in the view"
#: The redis-py database the bench writes to (the tests use 15), always under a fresh prefix.
REDIS_DB_URL = "redis://127.0.0.1:6379/14"


def _route(app: Flask) -> None:
    @app.route("/items", methods=["GET", "POST"])
    def items() -> dict[str, Any]:
        return {"ok": True}


def cycle(app: Flask, headers: list[dict[str, str]], *, post: bool = False) -> Call:
    """A zero-argument request against ``/items``, cycling through ``headers`` (GET, or POST of :data:`BODY`)."""
    client = app.test_client()
    state = {"i": 0}
    # len() on each call: a signed case refills its list before every round.
    if post:
        send_post = client.post

        def call_post() -> int:
            i = state["i"]
            state["i"] = i + 1
            return send_post("/items", data=BODY, headers=headers[i % len(headers)]).status_code

        return call_post
    get = client.get

    def call() -> int:
        i = state["i"]
        state["i"] = i + 1
        return get("/items", headers=headers[i % len(headers)]).status_code

    return call


# -- baselines and peers ------------------------------------------------------


def bare() -> Case:
    """Flask alone: GET /items, sending an ``Authorization`` header it ignores.

    Every baseline sends the same headers as the requests compared with it, so
    "added" is what the server does with them, not what the test client spends
    building them.
    """
    app = Flask("bare")
    _route(app)
    headers = [{"Authorization": f"Bearer {generate_key('grd')}"} for _ in range(POOL)]
    return Case(BARE_GET, cycle(app, headers), group="base", note="sends an unread Authorization header")


def bare_post() -> Case:
    """Flask alone: POST /items with a 1 KB body and signature headers it ignores, the baseline of signed rows."""
    app = Flask("bare-post")
    _route(app)
    prepare, call = signed_requests(app, 1, register=False)
    return Case(BARE_POST, call, group="base", prepare=prepare, note="sends unread signature headers")


def httpauth_peer() -> Case:
    """Flask-HTTPAuth's HTTPTokenAuth with a plain dict lookup: the peer of API keys."""
    from flask_httpauth import HTTPTokenAuth

    app = Flask("httpauth")
    auth = HTTPTokenAuth(scheme="Bearer")
    tokens = {secrets.token_hex(24): f"user{i}" for i in range(POOL)}

    @auth.verify_token
    def verify(token: str) -> str | None:
        return tokens.get(token)

    @app.get("/items")
    @auth.login_required
    def items() -> dict[str, Any]:
        return {"ok": True}

    headers = [{"Authorization": f"Bearer {t}"} for t in tokens]
    return Case("Flask-HTTPAuth token (dict)", cycle(app, headers), group="peer", note="the peer")


def jwt_extended_peer() -> Case:
    """flask-jwt-extended, HS256, ``@jwt_required()``: the peer of JWT sign-in."""
    from flask_jwt_extended import JWTManager, create_access_token, jwt_required

    app = Flask("jwt-extended")
    app.config["JWT_SECRET_KEY"] = JWT_SECRET
    JWTManager(app)

    @app.get("/items")
    @jwt_required()
    def items() -> dict[str, Any]:
        return {"ok": True}

    with app.app_context():
        tokens = [create_access_token(identity=f"user{i}") for i in range(100)]
    headers = [{"Authorization": f"Bearer {t}"} for t in tokens]
    return Case("flask-jwt-extended HS256", cycle(app, headers), group="peer")


def flask_limiter_alone() -> Case:
    """flask-limiter's own ``Limiter``, memory storage, 60000/minute, on the bare route."""
    from flask_limiter import Limiter
    from flask_limiter.util import get_remote_address

    app = Flask("limiter")
    Limiter(get_remote_address, app=app, default_limits=[LIMIT], storage_uri="memory://")
    _route(app)
    return Case("flask-limiter alone (memory)", cycle(app, [{}]), group="peer")


# -- GridAuth -----------------------------------------------------------------


def gridauth_app(uri: str, **config: Any) -> Flask:
    """A GridAuth app with rate limits off unless the config turns them on."""
    app = Flask("gridauth", instance_path=tempfile.mkdtemp(prefix="gridauth-bench-"))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI=uri, GRIDAUTH_RATELIMIT_ENABLED=False)
    app.config.update(config)
    GridAuth(app)
    _route(app)
    return app


def api_key_call(app: Flask, raw_keys: list[str]) -> Call:
    """Requests cycling through ``raw_keys``, warmed so first-use ``last_used_at`` writes are behind us."""
    headers = [{"Authorization": f"Bearer {k}"} for k in raw_keys]
    call = cycle(app, headers)
    for _ in headers:
        call()
    return call


def with_keys(app: Flask, count: int = POOL) -> list[str]:
    """Create ``count`` keys through the Python API; return the raw keys."""
    with app.app_context():
        keys = app.extensions["gridauth"].keys
        return [keys.create(name=f"bench {i}", scopes=["read"], owner=f"o{i % 50}")[1] for i in range(count)]


def api_key_memory(*, limited: bool = False, usage: bool = True) -> Case:
    """GridAuth, API key, memory storage; with ``limited``, plus the per-key limit in memory.

    ``usage=False`` turns usage counting off (``GRIDAUTH_USAGE``): the difference is what counting costs.
    """
    config: dict[str, Any] = {"GRIDAUTH_USAGE": usage}
    if limited:
        config.update(GRIDAUTH_RATELIMIT_ENABLED=True, GRIDAUTH_RATELIMIT_API_KEY=LIMIT)
    app = gridauth_app("memory://", **config)
    name = "GridAuth API key + per-key limit, memory" if limited else "GridAuth API key, memory"
    return Case(name + ("" if usage else ", usage counting off"), api_key_call(app, with_keys(app)))


def sqlite_db(rows: int) -> tuple[Path, list[str]]:
    """A SQLite file holding ``rows`` keys (built once, cached in bench/.data), and POOL raw keys among them."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"keys-{rows}.db"
    pool_file = DATA / f"keys-{rows}.json"
    if path.exists() and pool_file.exists():
        return path, json.loads(pool_file.read_text())
    log(f"building a SQLite file with {rows:,} keys (cached in {DATA}) ...")
    started = time.time()
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), pool_file):
        leftover.unlink(missing_ok=True)
    app = gridauth_app(f"sqlite:///{path}")
    raw_keys = with_keys(app, min(POOL, rows))
    conn = sqlite3.connect(path)
    now = time.time()
    filler = rows - len(raw_keys)
    batch = 50_000
    for start in range(0, filler, batch):
        conn.executemany(
            "INSERT INTO gridauth_keys (id, lookup, name, type, prefix, scopes, environment, owner, created_at,"
            " metadata) VALUES (?, ?, 'filler', 'api_key', 'grd_live_00000000', '[\"read\"]', 'live', ?, ?, '{}')",
            (
                ("key_" + secrets.token_hex(12), secrets.token_hex(32), f"o{random.randrange(5000)}", now)
                for _ in range(min(batch, filler - start))
            ),
        )
        conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    # The pool is written last: a build that was interrupted is rebuilt next time.
    pool_file.write_text(json.dumps(raw_keys))
    log(f"  built in {time.time() - started:.0f} s")
    return path, raw_keys


def api_key_sqlite(rows: int, label: str) -> Case:
    """GridAuth, API key, SQLite holding ``rows`` keys."""
    path, raw_keys = sqlite_db(rows)
    app = gridauth_app(f"sqlite:///{path}")
    return Case(f"GridAuth API key, SQLite {label} keys", api_key_call(app, raw_keys))


def redis_uri(prefix: str = "gridauth-bench") -> str:
    """A fresh key prefix in the bench's Redis database (db 14, never the tests' db 15)."""
    return f"{REDIS_DB_URL}?key_prefix={prefix}-{secrets.token_hex(4)}"


def api_key_redis(uri: str, *, limited: bool = False) -> Case:
    """GridAuth, API key, Redis storage; with ``limited``, plus the per-key limit in the same Redis."""
    config = {"GRIDAUTH_RATELIMIT_ENABLED": True, "GRIDAUTH_RATELIMIT_API_KEY": LIMIT} if limited else {}
    app = gridauth_app(uri, **config)
    name = "GridAuth API key + per-key limit, Redis" if limited else "GridAuth API key, Redis"
    return Case(name, api_key_call(app, with_keys(app)))


def cleanup_redis(uri: str) -> None:
    """Delete every key a bench app created under its prefix."""
    import redis

    from flask_gridauth.storage.redis import split_uri

    url, prefix = split_uri(uri)
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


# -- JWT ------------------------------------------------------------------------


def jwks_helpers() -> Any:
    """``tests/jwks_server.py`` (a loopback JWKS server and key helpers), from the repository's tests package."""
    if str(ROOT) not in sys.path:
        sys.path.append(str(ROOT))
    return importlib.import_module("tests.jwks_server")


def _claims(issuer: str, sub: str) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": issuer, "sub": sub, "aud": JWT_AUDIENCE, "iat": now, "exp": now + 3600, "permissions": ["read"]}


def hs256_tokens(count: int = 100) -> list[str]:
    """HS256 tokens of the bench's HS256 issuer."""
    import jwt

    return [jwt.encode(_claims(JWT_ISSUER_HS, f"user{i}"), JWT_SECRET, algorithm="HS256") for i in range(count)]


def jwt_hs256(*, cache: bool = True) -> Case:
    """GridAuth, JWT HS256 (shared secret): 100 tokens in turn, remembered once verified unless ``cache`` is off."""
    issuer = {"issuer": JWT_ISSUER_HS, "secret": JWT_SECRET, "algorithms": ["HS256"], "audience": JWT_AUDIENCE}
    app = gridauth_app("memory://", GRIDAUTH_JWT_ISSUERS=[issuer], GRIDAUTH_JWT_CACHE_TTL=30 if cache else 0)
    headers = [{"Authorization": f"Bearer {t}"} for t in hs256_tokens()]
    name = "GridAuth JWT HS256" if cache else "GridAuth JWT HS256, every request verified"
    return Case(name, cycle(app, headers))


@contextmanager
def jwks_server() -> Iterator[tuple[str, Any]]:
    """A JWKS endpoint on loopback serving one RS256 key: ``(url, signing key)``."""
    helpers = jwks_helpers()
    key = helpers.rsa_key("bench-rsa")
    with helpers.JWKSServer(key.jwk()) as server:
        yield server.url, key


def rs256_tokens(key: Any, count: int = 100) -> list[str]:
    """RS256 tokens of the bench's RS256 issuer, signed with ``key``."""
    import jwt

    return [
        jwt.encode(_claims(JWT_ISSUER_RS, f"user{i}"), key.private, algorithm="RS256", headers={"kid": key.kid})
        for i in range(count)
    ]


def jwt_rs256(url: str, key: Any, *, cache: bool = True) -> Case:
    """GridAuth, JWT RS256 with its JWKS served on loopback (fetched once, then cached)."""
    issuer = {"issuer": JWT_ISSUER_RS, "jwks_url": url, "algorithms": ["RS256"], "audience": JWT_AUDIENCE}
    app = gridauth_app("memory://", GRIDAUTH_JWT_ISSUERS=[issuer], GRIDAUTH_JWT_CACHE_TTL=30 if cache else 0)
    headers = [{"Authorization": f"Bearer {t}"} for t in rs256_tokens(key)]
    name = "GridAuth JWT RS256 (JWKS cached)" if cache else "GridAuth JWT RS256, every request verified"
    return Case(name, cycle(app, headers))


# -- signed requests --------------------------------------------------------------


def signed_requests(app: Flask, version: int, *, register: bool = True) -> tuple[Callable[[int], None], Call]:
    """``(prepare, call)``: ``prepare(n)`` signs ``n`` POSTs with a 1 KB body (untimed), ``call`` sends the next."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from flask_gridauth.client import public_key_of, sign_request

    private = Ed25519PrivateKey.generate()
    if register:
        with app.app_context():
            app.extensions["gridauth"].keys.register_signing_key(
                name="bench signer", public_key=public_key_of(private), scopes=["write"], owner="bench"
            )
    requests: list[tuple[str, dict[str, str]]] = []
    counter = [0]

    def prepare(count: int) -> None:
        # Each signature is accepted once (the replay cache), and Ed25519 is deterministic: every
        # request gets its own query string so that no two signed strings are the same.
        requests.clear()
        for _ in range(count):
            counter[0] += 1
            path = f"/items?n={counter[0]}"
            signed_headers = sign_request(private, "POST", "http://localhost" + path, BODY, version=version)
            requests.append((path, {"Content-Type": "application/json", **signed_headers}))

    post = app.test_client().post
    state = {"i": 0}

    def call() -> int:
        i = state["i"]
        state["i"] = i + 1
        path, headers = requests[i % len(requests)]
        return post(path, data=BODY, headers=headers).status_code

    return prepare, call


def signed(version: int) -> Case:
    """GridAuth, Ed25519-signed POST with a 1 KB body, memory storage (key and replay cache)."""
    app = gridauth_app("memory://")
    prepare, call = signed_requests(app, version)
    return Case(f"GridAuth signed v{version} (1 KB POST)", call, prepare=prepare, base=BARE_POST)


# -- unit figures ------------------------------------------------------------------


def redis_get() -> Case:
    """One redis-py GET on loopback: the unit a Redis-backed request is compared with."""
    import redis

    client = redis.Redis.from_url(REDIS_DB_URL)
    name = f"gridauth-bench-get-{secrets.token_hex(4)}"
    client.set(name, b"x" * 200, ex=3600)
    get = client.get
    return Case("redis-py GET (loopback)", lambda: 200 if get(name) else 500, group="unit")


def redis_get_in_request() -> Case:
    """The bare route whose view makes one redis-py GET: what one round trip costs inside a request.

    A GET in a tight loop keeps redis-server and the client hot on two CPUs; in a
    request, ~150 µs of Python run between round trips and both sides sleep and
    wake. This is the same round trip under the same conditions as a
    Redis-backed authentication.
    """
    import redis

    client = redis.Redis.from_url(REDIS_DB_URL)
    name = f"gridauth-bench-get-{secrets.token_hex(4)}"
    client.set(name, b"x" * 200, ex=3600)
    get = client.get
    app = Flask("bare-redis-get")

    @app.get("/items")
    def items() -> dict[str, Any]:
        return {"ok": get(name) is not None}

    headers = [{"Authorization": f"Bearer {generate_key('grd')}"} for _ in range(POOL)]
    return Case(REDIS_GET_IN_REQUEST, cycle(app, headers), group="unit-request", note="the in-request GET unit")


def pyjwt_hs256() -> Case:
    """PyJWT's own ``jwt.decode`` of one of the HS256 tokens, with the same checks."""
    import jwt

    token = hs256_tokens(1)[0]

    def call() -> int:
        jwt.decode(token, JWT_SECRET, algorithms=["HS256"], audience=JWT_AUDIENCE, issuer=JWT_ISSUER_HS)
        return 200

    return Case("PyJWT decode HS256", call, group="unit")


def pyjwt_rs256(key: Any) -> Case:
    """PyJWT's own ``jwt.decode`` of an RS256 token with an already-loaded public key."""
    import jwt

    token = rs256_tokens(key, 1)[0]
    public = key.private.public_key()

    def call() -> int:
        jwt.decode(token, public, algorithms=["RS256"], audience=JWT_AUDIENCE, issuer=JWT_ISSUER_RS)
        return 200

    return Case("PyJWT decode RS256", call, group="unit")


def ed25519_verify() -> Case:
    """One Ed25519 verify (cryptography) of a v1 signed string with a 1 KB body."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    message = str(int(time.time())).encode() + b"POST/items" + BODY
    signature = private.sign(message)
    public = private.public_key()
    verify = public.verify

    def call() -> int:
        verify(signature, message)
        return 200

    return Case("Ed25519 verify (cryptography)", call, group="unit")
