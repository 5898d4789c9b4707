"""Every ``GRIDAUTH_*`` configuration key, with its default.

``init_app`` copies each default into ``app.config`` with ``setdefault``, so a
value the app set first always wins. Defaults that depend on the app (the
instance folder) or the environment are filled in by :func:`apply_defaults`.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask

from .errors import ConfigurationError

#: Storage backend: ``memory://``, ``sqlite:///path`` or ``redis://`` / ``rediss://``.
#: ``None`` means SQLite at ``<instance>/gridauth.db``.
STORAGE_URI = "GRIDAUTH_STORAGE_URI"
#: First part of every API key: ``<prefix>_<live|test>_<48 hex>``.
KEY_PREFIX = "GRIDAUTH_KEY_PREFIX"
#: The bootstrap token. ``None`` reads the environment variable ``GRIDAUTH_TOKEN_ENV`` names,
#: else the token file, else generates one. ``False``: no bootstrap token at all.
API_TOKEN = "GRIDAUTH_API_TOKEN"  # noqa: S105 - a config key's name, not a secret
#: Where a generated bootstrap token is kept (mode 0600).
TOKEN_FILE = "GRIDAUTH_TOKEN_FILE"  # noqa: S105 - a config key's name, not a secret
#: The environment variable read for the bootstrap token.
TOKEN_ENV = "GRIDAUTH_TOKEN_ENV"  # noqa: S105 - a config key's name, not a secret
#: The environment variable whose value ``disabled`` turns authentication off.
AUTH_ENV = "GRIDAUTH_AUTH_ENV"
#: Prefix of a generated bootstrap token: ``"grip_"`` gives ``grip_<43 characters>``.
TOKEN_PREFIX = "GRIDAUTH_TOKEN_PREFIX"  # noqa: S105 - a config key's name, not a secret
#: ``False``: a new bootstrap token on every start, printed, never written to disk.
TOKEN_PERSIST = "GRIDAUTH_TOKEN_PERSIST"  # noqa: S105 - a config key's name, not a secret
#: A dotted path (``"gateway.api.auth_token"``): the token lives at that path inside the
#: JSON token file, whose other settings are kept as they are.
TOKEN_FILE_KEY = "GRIDAUTH_TOKEN_FILE_KEY"  # noqa: S105 - a config key's name, not a secret
#: Printed once to stderr when a token is generated; ``{token}`` is replaced by the token.
TOKEN_BANNER = "GRIDAUTH_TOKEN_BANNER"  # noqa: S105 - a config key's name, not a secret
#: Owner recorded on keys the bootstrap token creates without naming one.
TOKEN_OWNER = "GRIDAUTH_TOKEN_OWNER"  # noqa: S105 - a config key's name, not a secret
#: The scope every key-management route needs (``/api-keys``, the dashboard, and the routes
#: marked ``@require_manage_scope``).
MANAGE_SCOPE = "GRIDAUTH_MANAGE_SCOPE"
#: Authentication on or off. ``GRIDAUTH_AUTH=disabled`` in the environment (the variable
#: ``GRIDAUTH_AUTH_ENV`` names) sets False.
ENABLED = "GRIDAUTH_ENABLED"
#: JWT issuers: dicts with ``issuer``, ``jwks_url`` or ``secret``, ``algorithms``,
#: and optionally ``audience``, ``scopes_claim``, ``all_scopes``, ``leeway``, ``owner_prefix``.
JWT_ISSUERS = "GRIDAUTH_JWT_ISSUERS"
#: Seconds of clock skew accepted on ``exp``, ``nbf`` and ``iat``.
JWT_LEEWAY = "GRIDAUTH_JWT_LEEWAY"
#: Seconds a JWT that verified is remembered (until its ``exp`` at the latest), so the same token
#: sent again skips the signature check; ``0`` verifies every request in full.
JWT_CACHE_TTL = "GRIDAUTH_JWT_CACHE_TTL"
#: Seconds a JWKS fetch may take before it is abandoned.
JWKS_TIMEOUT = "GRIDAUTH_JWKS_TIMEOUT"
#: Seconds a fetched JWKS is trusted before it is fetched again.
JWKS_CACHE_TTL = "GRIDAUTH_JWKS_CACHE_TTL"
#: Seconds between two refetches caused by an unknown ``kid``.
JWKS_REFETCH_COOLDOWN = "GRIDAUTH_JWKS_REFETCH_COOLDOWN"
#: Prefix of the signed-request headers: ``<P>-Signature``, ``<P>-Timestamp``,
#: ``<P>-Fingerprint`` and ``<P>-Signature-Version``.
SIGNATURE_HEADER_PREFIX = "GRIDAUTH_SIGNATURE_HEADER_PREFIX"
#: Seconds of clock skew accepted either way on a signed request's timestamp.
SIGNATURE_TOLERANCE = "GRIDAUTH_SIGNATURE_TOLERANCE"
#: Signed-string versions accepted.
SIGNATURE_VERSIONS = "GRIDAUTH_SIGNATURE_VERSIONS"
#: Which replays are refused: ``"all"`` (every one), or ``"unsafe"`` (POST, PUT, PATCH, DELETE
#: and other unsafe methods; an identical GET, HEAD or OPTIONS may be repeated inside the window).
SIGNATURE_REPLAY = "GRIDAUTH_SIGNATURE_REPLAY"
#: Default limit per API key (a key's own ``rate_limit`` overrides it).
RATELIMIT_API_KEY = "GRIDAUTH_RATELIMIT_API_KEY"
#: Default limit per JWT subject.
RATELIMIT_JWT = "GRIDAUTH_RATELIMIT_JWT"
#: Default limit per signing key.
RATELIMIT_SIGNATURE = "GRIDAUTH_RATELIMIT_SIGNATURE"
#: Limit for the bootstrap token; ``None`` leaves it unlimited.
RATELIMIT_TOKEN = "GRIDAUTH_RATELIMIT_TOKEN"  # noqa: S105 - a config key's name, not a secret
#: Every limit on or off.
RATELIMIT_ENABLED = "GRIDAUTH_RATELIMIT_ENABLED"
#: The most requests per second any caller but the bootstrap token and the CLI may give a key
#: (``"100/second"``); ``None``: each caller's own limit is its only ceiling.
RATELIMIT_MAX = "GRIDAUTH_RATELIMIT_MAX"
#: Where rate-limit counters live (``memory://``, ``redis://``); ``None`` shares the key storage's
#: Redis when it is Redis, else per-process memory.
RATELIMIT_STORAGE_URI = "GRIDAUTH_RATELIMIT_STORAGE_URI"
#: How limits count: ``"fixed-window"`` (default), ``"sliding-window-counter"`` or ``"moving-window"``.
RATELIMIT_STRATEGY = "GRIDAUTH_RATELIMIT_STRATEGY"
#: Hits of a fixed window a process reserves from the shared counters at once (``1``: exact, one
#: counter call per limit and request); see :mod:`flask_gridauth.ratelimit_leases`.
RATELIMIT_BATCH = "GRIDAUTH_RATELIMIT_BATCH"
#: Seconds a process may keep a found key (``0``: no cache); changes are pushed to every process.
CACHE_TTL = "GRIDAUTH_CACHE_TTL"
#: Failed authentications accepted per client address; only the failures past it get 429
#: (a valid credential is never refused by this limit).
FAILED_AUTH_LIMIT = "GRIDAUTH_FAILED_AUTH_LIMIT"
#: Scope a route without a scope decorator needs, by HTTP method; a method it does not name
#: needs ``write`` (fail closed); ``None`` turns it off.
METHOD_SCOPES = "GRIDAUTH_METHOD_SCOPES"
#: Which scope implies which: ``{"admin": ["write"], "write": ["read"]}``.
#: The same table applies inside every namespace (``x:write`` implies ``x:read``).
SCOPE_IMPLICATIONS = "GRIDAUTH_SCOPE_IMPLICATIONS"
#: Scopes offered as checkboxes by the dashboard; ``None`` asks for free text.
SCOPE_CATALOG = "GRIDAUTH_SCOPE_CATALOG"
#: Dashboard sign-in for apps with their own login: a callable returning the signed-in
#: :class:`~flask_gridauth.Principal` (or ``None`` to offer the dashboard's own sign-in form).
DASHBOARD_PRINCIPAL = "GRIDAUTH_DASHBOARD_PRINCIPAL"
#: Seconds a Redis or SQLite operation may wait before the request gets 503.
STORAGE_TIMEOUT = "GRIDAUTH_STORAGE_TIMEOUT"
#: URL of GitHub's secret-scanning public keys; set, it turns ``POST /secret-scanning`` on.
#: HTTPS, or plain HTTP to a loopback host only.
SCANNING_KEYS_URL = "GRIDAUTH_SECRET_SCANNING_KEYS_URL"
#: What a leaked key reported by secret scanning causes: ``"revoke"`` or ``"notify"`` (event and signal only).
SCANNING_ACTION = "GRIDAUTH_SECRET_SCANNING_ACTION"
#: Seconds a fetch of the secret-scanning public keys may take before it is abandoned.
SCANNING_TIMEOUT = "GRIDAUTH_SECRET_SCANNING_TIMEOUT"
#: Seconds fetched secret-scanning public keys are trusted before they are fetched again.
SCANNING_CACHE_TTL = "GRIDAUTH_SECRET_SCANNING_CACHE_TTL"
#: Seconds between two refetches of the secret-scanning keys caused by an unknown key identifier.
SCANNING_REFETCH_COOLDOWN = "GRIDAUTH_SECRET_SCANNING_REFETCH_COOLDOWN"
#: Most tokens one secret-scanning alert may carry; a longer array is 413.
SCANNING_MAX_TOKENS = "GRIDAUTH_SECRET_SCANNING_MAX_TOKENS"  # noqa: S105 - a config key's name, not a secret
#: Days an audit event is kept; older events are purged lazily, in batches, by later writes.
AUDIT_RETENTION_DAYS = "GRIDAUTH_AUDIT_RETENTION_DAYS"
#: Count each key's requests per hour (allowed, 403, 429, scopes needed) in memory, written in batches.
USAGE = "GRIDAUTH_USAGE"
#: Seconds between two writes of a process's usage counts (the lag of ``GET /api-keys/<id>/usage``).
USAGE_FLUSH_INTERVAL = "GRIDAUTH_USAGE_FLUSH_INTERVAL"
#: Days hourly usage counts are kept; older ones are purged by later flushes.
USAGE_RETENTION_DAYS = "GRIDAUTH_USAGE_RETENTION_DAYS"
#: Whether the blueprint answers ``GET /metrics`` (Prometheus text format; needs the ``[metrics]`` extra).
METRICS = "GRIDAUTH_METRICS"

#: Environments of API keys this server accepts; a key of any other is a 401 (a production server
#: that takes no test keys: ``("live",)``).
ENVIRONMENTS = "GRIDAUTH_ENVIRONMENTS"
#: Seconds before a key's ``expires_at`` from which responses to it carry ``Sunset`` (RFC 8594)
#: and the ``key_expiring`` signal is sent; ``None`` or ``0`` turns the warning off.
EXPIRY_WARNING = "GRIDAUTH_EXPIRY_WARNING"
#: One limit shared by every key of an owner and the owner's JWTs, beside each credential's own;
#: ``None`` for none.
RATELIMIT_OWNER = "GRIDAUTH_RATELIMIT_OWNER"

DEFAULT_METHOD_SCOPES: dict[str, str] = {
    "GET": "read",
    "HEAD": "read",
    "POST": "write",
    "PUT": "write",
    "PATCH": "write",
    "DELETE": "write",
}

DEFAULT_SCOPE_IMPLICATIONS: dict[str, list[str]] = {"admin": ["write"], "write": ["read"]}

DEFAULTS: dict[str, Any] = {
    ENVIRONMENTS: ("live", "test"),
    EXPIRY_WARNING: 7 * 24 * 3600,
    RATELIMIT_OWNER: None,
    STORAGE_URI: None,
    KEY_PREFIX: "grd",
    API_TOKEN: None,
    TOKEN_FILE: None,
    TOKEN_ENV: "GRIDAUTH_API_TOKEN",
    AUTH_ENV: "GRIDAUTH_AUTH",
    TOKEN_PREFIX: "",
    TOKEN_PERSIST: True,
    TOKEN_FILE_KEY: None,
    TOKEN_BANNER: "AUTH TOKEN (save this — shown only once): {token}",
    TOKEN_OWNER: "admin",
    MANAGE_SCOPE: "admin",
    ENABLED: True,
    JWT_ISSUERS: [],
    JWT_LEEWAY: 30,
    JWKS_TIMEOUT: 3.0,
    JWKS_CACHE_TTL: 300,
    JWT_CACHE_TTL: 30,
    JWKS_REFETCH_COOLDOWN: 30,
    SIGNATURE_HEADER_PREFIX: "X-Grid",
    SIGNATURE_TOLERANCE: 30,
    SIGNATURE_VERSIONS: ("1", "2"),
    SIGNATURE_REPLAY: "all",
    RATELIMIT_API_KEY: "60/minute",
    RATELIMIT_JWT: "200/minute",
    RATELIMIT_SIGNATURE: "60/minute",
    RATELIMIT_TOKEN: None,
    RATELIMIT_ENABLED: True,
    RATELIMIT_MAX: None,
    RATELIMIT_STORAGE_URI: None,
    RATELIMIT_STRATEGY: "fixed-window",
    RATELIMIT_BATCH: 1,
    CACHE_TTL: 0,
    FAILED_AUTH_LIMIT: "20/minute",
    METHOD_SCOPES: DEFAULT_METHOD_SCOPES,
    SCOPE_IMPLICATIONS: DEFAULT_SCOPE_IMPLICATIONS,
    SCOPE_CATALOG: None,
    DASHBOARD_PRINCIPAL: None,
    STORAGE_TIMEOUT: 2.0,
    SCANNING_KEYS_URL: None,
    SCANNING_ACTION: "revoke",
    SCANNING_TIMEOUT: 3.0,
    SCANNING_CACHE_TTL: 3600,
    SCANNING_REFETCH_COOLDOWN: 60,
    SCANNING_MAX_TOKENS: 1000,
    AUDIT_RETENTION_DAYS: 90,
    USAGE: True,
    USAGE_FLUSH_INTERVAL: 5.0,
    USAGE_RETENTION_DAYS: 90,
    METRICS: False,
}


def apply_defaults(app: Flask) -> None:
    """Set every ``GRIDAUTH_*`` key the app has not set, from the table above."""
    for key, value in DEFAULTS.items():
        # Copy mutable defaults so one app's edits never reach another app.
        app.config.setdefault(key, value.copy() if isinstance(value, dict | list) else value)
    if app.config[STORAGE_URI] is None:
        app.config[STORAGE_URI] = "sqlite:///" + os.path.join(app.instance_path, "gridauth.db")
    if app.config[TOKEN_FILE] is None:
        app.config[TOKEN_FILE] = os.path.join(app.instance_path, "gridauth-token.json")
    if auth_disabled_by_environment(app.config[AUTH_ENV]):
        app.config[ENABLED] = False


def auth_disabled_by_environment(variable: object) -> bool:
    """Whether the environment variable ``variable`` (``GRIDAUTH_AUTH_ENV``) says ``disabled``."""
    if not isinstance(variable, str) or not variable:
        raise ConfigurationError("GRIDAUTH_AUTH_ENV must be an environment variable name")
    return os.environ.get(variable, "").strip().lower() == "disabled"
