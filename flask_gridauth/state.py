"""One app's authentication: :class:`GridAuthState`, built by ``init_app``, and its request hook."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar

from flask import Flask, Request, Response, current_app, g, request

from . import config as c
from . import responses, signals
from .audit import AuditLog
from .bounded_cache import BoundedCache
from .ceilings import RateCeilings
from .context import G_ERROR, G_QUOTA, G_RATELIMIT, remember_error
from .credentials.api_key import verify_api_key_counted
from .credentials.parse import Credential, bearer_token, classify_token, parse_credential
from .credentials.registry import (
    ApiKeyKind,
    FunctionVerifier,
    JWTKind,
    SignatureKind,
    TokenKind,
    VerifierFunction,
    VerifierRegistry,
    check_custom_kind,
    environ_name,
)
from .credentials.token import resolve_bootstrap, starts_with, token_digest, token_heads, token_principal
from .errors import (
    ConfigurationError,
    Forbidden,
    GridAuthError,
    StorageError,
    Unauthorized,
    Unavailable,
)
from .keypolicy import HEADER_QUOTA_LIMIT, HEADER_QUOTA_REMAINING, KeyPolicy
from .keys import key_pattern, validate_prefix
from .management import KeyManager
from .principal import G_ATTR, Principal
from .ratelimit_items import HEADER_LIMIT, HEADER_REMAINING, HEADER_RESET
from .route_requirements import MAX_ROUTES, UNKNOWN, Requirement, RouteRequirements
from .scopes import check_kind, expand_scopes
from .state_config import (
    build_jwt,
    build_metrics,
    build_ratelimit,
    build_signatures,
    build_storage,
    check_implications,
    check_manage_scope,
    check_method_scopes,
    check_token_owner,
)
from .storage import Storage
from .storage.base import QuotaUse
from .usage import UsageCounter

if TYPE_CHECKING:
    from .credentials.jwt import JWTVerifier
    from .credentials.signature import SignatureVerifier
    from .metrics import Metrics
    from .ratelimit import Precount, RateLimits
    from .ratelimit_items import Decision

__all__ = ["ExtensionHooks", "GridAuthState", "Requirement"]

logger = logging.getLogger("flask_gridauth")

P = ParamSpec("P")
R = TypeVar("R")

#: What a key look-up that also counts did besides finding: the rate-limit counts and the quota paid.
Counted = tuple[list[tuple[int, int]] | None, QuotaUse | None]
_NOT_COUNTED: Counted = (None, None)
#: Every header :meth:`GridAuthState.after_request` sets, lower-cased (see :func:`responses.set_headers`).
OWN_HEADERS = frozenset(
    name.lower() for name in (HEADER_LIMIT, HEADER_REMAINING, HEADER_RESET, HEADER_QUOTA_LIMIT, HEADER_QUOTA_REMAINING)
)


class ExtensionHooks(Protocol):
    """What the state reads of the :class:`~flask_gridauth.GridAuth` that built it."""

    error_handler_function: responses.ErrorHandler | None


class GridAuthState:
    """Everything one app's authentication needs, built once by ``init_app``.

    It lives in ``app.extensions["gridauth"]``; two apps never share one.
    """

    def __init__(
        self,
        app: Flask,
        storage: Storage | None,
        extension: ExtensionHooks | None = None,
        *,
        kind_prefixes: tuple[str, ...] = (),
    ) -> None:
        cfg = app.config
        self.extension = extension
        #: Every cache of this app by name: each bounded, each this app's own (see :meth:`cache`).
        self.caches: dict[str, BoundedCache[Any, Any]] = {}
        self.enabled: bool = bool(cfg[c.ENABLED])
        self.key_prefix = validate_prefix(cfg[c.KEY_PREFIX])
        self.key_pattern = key_pattern(self.key_prefix)
        self.implications: dict[str, list[str]] = check_implications(cfg[c.SCOPE_IMPLICATIONS])
        self.method_scopes: dict[str, str] | None = check_method_scopes(cfg[c.METHOD_SCOPES])
        self.manage_scope: str = check_manage_scope(cfg[c.MANAGE_SCOPE])
        self.storage: Storage = build_storage(app, storage)
        self.audit = AuditLog(self.storage, retention_days=cfg[c.AUDIT_RETENTION_DAYS])
        self.keys = KeyManager(
            self.storage, key_prefix=self.key_prefix, audit=self.audit, ceilings=RateCeilings.from_config(cfg)
        )
        self.view_functions = app.view_functions
        #: What each route needs, read from its view once.
        self.requirement = RouteRequirements(
            self.view_functions,
            method_scopes=self.method_scopes,
            manage_scope=self.manage_scope,
            # Kept: without it an API-key request costs 1,030,423 instructions instead of 1,017,877
            # (callgrind, api_key_memory without usage counting): -12,546, 1.2%.
            cache=self.cache("route_requirements", MAX_ROUTES),
        )
        self.usage = UsageCounter.from_config(cfg, self.storage, self.requirement)
        # Kept: every request of a stored key or a JWT verified in full expands its scopes here. Without
        # it (and without a cache of whole principals, which went: it measured no gain on top of this
        # one) an API-key request costs 1,025,386 instructions instead of 1,017,877 (callgrind,
        # api_key_memory without usage counting): -7,509, 0.7%, the smallest gain kept.
        self._expanded: BoundedCache[tuple[str, ...], frozenset[str]] = self.cache("expanded_scopes", 10_000)

        owner = check_token_owner(cfg[c.TOKEN_OWNER])
        self.token_principal: Principal = token_principal(owner)
        self.disabled_principal = Principal(kind="disabled", id="anonymous", owner=owner, scopes=frozenset({"*"}))
        self.token_digest: bytes | None = None
        #: Keyed digests of the token's first characters, so no app kind's prefix can take the token.
        self._token_salt = secrets.token_bytes(16)
        self._token_heads: frozenset[bytes] = frozenset()
        if self.enabled:
            token = resolve_bootstrap(cfg, self.key_prefix, kind_prefixes)
            if token is not None:
                self.token_digest = token_digest(token)
                self._token_heads = token_heads(token, self._token_salt)
            del token

        self.jwt: JWTVerifier | None = build_jwt(app, self.expand, self.cache)
        self.signatures: SignatureVerifier = build_signatures(app, self.cache)
        self.signature_environ = frozenset(self.signatures.environ_names)
        self.ratelimit: RateLimits | None = build_ratelimit(app, self.storage)
        if self.ratelimit is not None and self.ratelimit.owners is not None:
            # An override changed through this app takes effect here at once (elsewhere within OVERRIDE_TTL).
            self.keys.owner_limit_listeners.append(self.ratelimit.owners.forget)
        #: A key's own settings: environments, address allowlist, quota, expiry warning.
        self.policy = KeyPolicy.from_config(cfg, self.storage, make_cache=self.cache)
        #: This app's Prometheus metrics (``GRIDAUTH_METRICS``); ``None`` when off.
        self.metrics: Metrics | None = build_metrics(cfg.get(c.METRICS, False))

        #: Every credential kind this app accepts; the request hook asks it.
        self.verifiers = VerifierRegistry()
        self.verifiers.register(
            ApiKeyKind(
                pattern=self.key_pattern,
                storage=self.storage,
                expand=self.expand,
                environments=self.policy.environments,
            )
        )
        self.verifiers.register(SignatureKind(self.signatures, storage=self.storage, expand=self.expand))
        if self.jwt is not None:
            self.verifiers.register(JWTKind(self.jwt))
        if self.token_digest is not None:
            self.verifiers.register(TokenKind(self.token_digest, self.token_principal))

    def cache(self, name: str, max_entries: int) -> BoundedCache[Any, Any]:
        """A new cache of at most ``max_entries``, owned by this app and listed in :attr:`caches` as ``name``."""
        if name in self.caches:
            raise ValueError(f"this app already has a cache named {name!r}")
        cache: BoundedCache[Any, Any] = BoundedCache(name, max_entries)
        self.caches[name] = cache
        return cache

    def add_verifier(self, kind: str, function: VerifierFunction, *, header: str | None, prefix: str | None) -> None:
        """Accept an app's own credential kind (see :meth:`flask_gridauth.GridAuth.verifier`)."""
        check_custom_kind(kind, header, prefix, key_prefix=self.key_prefix)
        if isinstance(prefix, str):
            api = f"{self.key_prefix}_"
            if prefix.startswith(api) or api.startswith(prefix):
                raise ConfigurationError(f"prefix {prefix!r} overlaps the API-key prefix {api!r}: choose another")
            if starts_with(self._token_heads, self._token_salt, prefix):
                # The bootstrap token would be handed to the app's function: refuse the prefix.
                raise ConfigurationError(
                    f"prefix {prefix!r} would also match the bootstrap token: choose another prefix or token"
                )
        verifiers = self.verifiers
        if header is not None and verifiers.headers.get(environ_name(header), kind) != kind:
            raise ValueError(f"header {header!r} already carries another credential kind")
        if prefix is not None and any(
            other != kind and (p.startswith(prefix) or prefix.startswith(p)) for p, other in verifiers.prefixes
        ):
            raise ValueError(f"prefix {prefix!r} overlaps the prefix of another credential kind")
        self.verifiers.register(FunctionVerifier(kind, function, self.expand), header=header, prefix=prefix)

    # -- scopes --------------------------------------------------------------

    def expand(self, scopes: Iterable[str]) -> frozenset[str]:
        """Scopes closed under the implication table, cached per distinct tuple."""
        key = tuple(scopes)
        expanded = self._expanded.get(key)
        if expanded is None:
            expanded = self._expanded.put(key, expand_scopes(key, self.implications))
        return expanded

    # -- the request hook ----------------------------------------------------

    @property
    def error_handler(self) -> responses.ErrorHandler | None:
        """The ``@auth.error_handler`` function of the :class:`GridAuth` that built this state, if any."""
        return None if self.extension is None else self.extension.error_handler_function

    def before_request(self) -> None:
        """Authenticate the request and check its scopes, or raise the JSON error."""
        try:
            if self.metrics is None:
                self._authorize()
            else:
                self.metrics.run(self._authorize, self.disabled_principal)
        except GridAuthError as exc:
            remember_error(exc)
            raise

    def _authorize(self) -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one context look-up, not one per use
        method = req.method
        if method == "OPTIONS":
            rule = req.url_rule
            if rule is None or rule.provide_automatic_options:
                return  # Flask answers this preflight itself; no view runs
            # The view serves OPTIONS itself: it is a request like any other.
        if not self.enabled:
            setattr(g, G_ATTR, self.disabled_principal)
            return
        endpoint = req.endpoint
        needs = self.requirement.cached((endpoint, method), UNKNOWN)
        if needs is UNKNOWN:
            needs = self.requirement(endpoint, method)
        if needs is None:
            return
        principal, (counts, paid) = self._authenticate(req)
        # flask.g's attributes written straight into its __dict__, after one context look-up: that is all
        # _AppCtxGlobals.__setattr__ does, as a Python call costing ~4 times the store (callgrind).
        ctx_vars = g._get_current_object().__dict__
        ctx_vars[G_ATTR] = principal
        policy = self.policy
        if principal.key is not None:
            policy.check_address(principal, req.remote_addr)  # before anything is counted
        if self.ratelimit is not None:
            # Counted before the scope check: a 403 is a request too, and carries the headers.
            decision = self.ratelimit.hit(principal, endpoint, counts)
            if decision is not None:
                ctx_vars[G_RATELIMIT] = decision
                if decision.exceeded:
                    refused = policy.note_refused(principal, paid)
                    if refused is not None:
                        ctx_vars[G_QUOTA] = refused
                    raise decision.error()
        if principal.key is not None:
            use = policy.spend(principal, endpoint, paid)  # after the rate limits: a refused request costs nothing
            if use is not None:
                ctx_vars[G_QUOTA] = use
                if not use.allowed:
                    raise policy.exceeded(principal, use)
        required_all, required_any, kinds = needs
        if kinds is not None:
            check_kind(principal, kinds)
        held = principal.scopes
        # Most requests need a scope the principal holds by name: set look-ups, no list built.
        for scope in required_all:
            if scope not in held:
                missing = [s for s in required_all if not principal.has_scope(s)]
                if missing:
                    raise Forbidden.missing(missing)
                break
        if required_any and not any(principal.has_scope(s) for s in required_any):
            raise Forbidden.missing(required_any)

    def after_request(self, response: Response) -> Response:
        """Add the rate-limit and quota headers of a limited credential and the headers an error owes."""
        # One context look-up, then plain dict reads: _AppCtxGlobals.get and .pop are Python calls over the same
        # dict, and g.pop through the proxy looks the context up again. With them, the plain key's request
        # cost 983,941 instructions instead of 971,102 (callgrind, api_key_memory_steady).
        ctx_vars = g._get_current_object().__dict__
        window: Decision | None = ctx_vars.get(G_RATELIMIT)
        # On every response to a limited credential, the 429 too.
        pairs = window.header_items() if window is not None else []
        principal = ctx_vars.get(G_ATTR)
        record = principal.key if principal is not None else None
        if record is not None and record.quota is not None:
            quota: QuotaUse | None = ctx_vars.get(G_QUOTA)
            if quota is not None:
                pairs += KeyPolicy.quota_header_items(record, quota)
        if pairs:
            # One write for the rate-limit and quota headers together: the response's headers scanned once.
            responses.set_headers(response, pairs, OWN_HEADERS)
        if record is not None and record.expires_at is not None:
            self.policy.add_sunset(response, record)
        exc: GridAuthError | None = ctx_vars.pop(G_ERROR, None)
        if exc is not None:
            responses.add_owed_headers(response, exc.status, exc.owed_headers())
        return response

    def authenticate(self, req: Request | None = None) -> Principal:
        """The request's principal, or 401/429/503; ``req`` is the current request, if the caller has it."""
        if req is None:
            req = request._get_current_object()  # type: ignore[attr-defined]
        return self._authenticate(req)[0]

    def _authenticate(self, req: Request) -> tuple[Principal, Counted]:
        """:meth:`authenticate`, with what the key look-up counted and paid besides (the request hook's)."""
        environ = req.environ
        verifiers = self.verifiers
        try:
            credential = parse_credential(
                environ,
                key_prefix=self.key_prefix,
                signature_headers=self.signature_environ,
                custom_headers=verifiers.headers,
                custom_prefixes=verifiers.prefixes,
            )
        except Unauthorized:
            self._failed("malformed", "malformed credential")
            raise
        if credential is None:
            raise Unauthorized()
        # No address check first: a valid credential is never refused by the failed-authentication
        # limit (one attacker behind a NAT must not lock everyone out); _failed answers 429 past it.
        return self._verify(credential, precount=True)

    def verify(self, credential: Credential) -> Principal:
        """Run the verifier of ``credential``'s kind; failures are logged, counted and re-raised."""
        return self._verify(credential)[0]

    def _verify(self, credential: Credential, *, precount: bool = False) -> tuple[Principal, Counted]:
        """:meth:`verify`; with ``precount`` (the request hook's call) an API key's look-up may also count.

        Where the storage counts in its look-up (see :mod:`flask_gridauth.ratelimit`), the key's
        rate limit and quota are counted in the same round trip, and returned as values.
        """
        verifier = self.verifiers.get(credential.kind)
        try:
            if verifier is None:
                raise Unauthorized()  # a kind this app does not accept (no JWT issuer, no bootstrap token)
            ratelimit = self.ratelimit
            # ``precounts`` first: without a plan (memory, SQL) the request proxy is not consulted at all.
            if precount and credential.kind == "api_key" and ratelimit is not None and ratelimit.precounts:
                plan = ratelimit.precount(request.endpoint)
                if plan is not None:
                    return self._verify_counted(credential.value, plan)
            return verifier.verify(credential, request), _NOT_COUNTED
        except Unauthorized as exc:
            self._failed(credential.kind, exc.message)
            raise
        except StorageError as exc:
            logger.error("storage unavailable during authentication: %s", exc)
            raise Unavailable() from None

    def _verify_counted(self, raw_key: str, plan: Precount) -> tuple[Principal, Counted]:
        ratelimit = self.ratelimit
        owner_limit = ratelimit is not None and ratelimit.owner_limited()
        quota_cost = self.policy.script_cost(request.endpoint, owner_limit=owner_limit)
        principal, counts, quota = verify_api_key_counted(
            raw_key,
            pattern=self.key_pattern,
            storage=plan.storage,
            expand=self.expand,
            counter_prefix=plan.prefix,
            windows=plan.windows,
            environments=self.policy.environments,
            quota_cost=quota_cost,
        )
        return principal, (counts, quota)

    def verify_bearer(self, value: str) -> Principal:
        """The principal of a bare credential (what would follow ``Bearer``), e.g. from a sign-in form."""
        try:
            token = bearer_token("Bearer " + value)
        except Unauthorized:
            self._failed("malformed", "malformed credential")
            raise
        credential = classify_token(token, self.key_prefix, self.verifiers.prefixes)
        principal = self.verify(credential)
        if principal.key is not None:
            # What the request hook applies after verification applies here too (e.g. dashboard sign-in).
            self.policy.check_address(principal, request.remote_addr)
        return principal

    def _failed(self, kind: str, reason: str) -> None:
        remote = request.remote_addr
        logger.info("authentication failed: kind=%s reason=%s remote=%s", kind, reason, remote)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        signals.authentication_failed.send(app, kind=kind, reason=reason, remote_addr=remote)
        if self.metrics is not None:
            self.metrics.failed(kind)
        if self.ratelimit is not None:
            self.ratelimit.record_failure(remote)  # 429 instead of the 401 once past the limit
