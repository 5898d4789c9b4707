"""The :class:`GridAuth` extension: configuration, per-app state and the request hook."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from flask import Flask, Request, Response, current_app, g, request

from . import config as c
from . import responses, signals
from .audit import AuditLog
from .context import remember_error
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
from .credentials.token import bootstrap_digest, token_principal
from .errors import (
    ConfigurationError,
    ErrorInfo,
    Forbidden,
    GridAuthError,
    RateLimited,
    StorageError,
    Unauthorized,
    Unavailable,
)
from .keypolicy import KeyPolicy, cost
from .keys import key_pattern, validate_prefix
from .management import KeyManager
from .principal import G_ATTR, Principal
from .scopes import check_kind, expand_scopes, is_valid_scope, view_kinds, view_requirement
from .storage import Storage, storage_from_uri

if TYPE_CHECKING:
    from .credentials.jwt import JWTVerifier
    from .credentials.signature import SignatureVerifier
    from .ratelimit import Precount, RateLimits

logger = logging.getLogger("flask_gridauth")

P = ParamSpec("P")
R = TypeVar("R")

#: What a route needs: ``None`` when public, else ``(all of these scopes, any of these, kinds or None)``.
#: What ``GridAuth(storage=...)`` takes: called with each app, it returns that app's storage.
StorageFactory = Callable[[Flask], Storage]

Requirement = tuple[tuple[str, ...], tuple[str, ...], frozenset[str] | None] | None
_UNKNOWN: Any = object()


class GridAuthState:
    """Everything one app's authentication needs, built once by ``init_app``.

    It lives in ``app.extensions["gridauth"]``; two apps never share one.
    """

    def __init__(self, app: Flask, storage: Storage | None, extension: GridAuth | None = None) -> None:
        cfg = app.config
        self.extension = extension
        self.enabled: bool = bool(cfg[c.ENABLED])
        self.key_prefix = validate_prefix(cfg[c.KEY_PREFIX])
        self.key_pattern = key_pattern(self.key_prefix)
        self.implications: dict[str, list[str]] = _check_implications(cfg[c.SCOPE_IMPLICATIONS])
        self.method_scopes: dict[str, str] | None = _check_method_scopes(cfg[c.METHOD_SCOPES])
        self.manage_scope: str = cfg[c.MANAGE_SCOPE]
        if not is_valid_scope(self.manage_scope) or self.manage_scope.endswith("*"):
            raise ConfigurationError("GRIDAUTH_MANAGE_SCOPE must be a scope name such as 'admin' or 'keys:manage'")
        timeout = cfg[c.STORAGE_TIMEOUT]
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            raise ConfigurationError("GRIDAUTH_STORAGE_TIMEOUT must be a positive number of seconds")
        self.storage: Storage = storage or storage_from_uri(
            cfg[c.STORAGE_URI], instance_path=app.instance_path, timeout=float(timeout)
        )
        _enable_cache(self.storage, cfg.get(c.CACHE_TTL, 0))
        self.audit = AuditLog(self.storage, retention_days=cfg[c.AUDIT_RETENTION_DAYS])
        self.keys = KeyManager(self.storage, key_prefix=self.key_prefix, audit=self.audit)
        self.view_functions = app.view_functions
        self._requirements: dict[tuple[str | None, str], Requirement] = {}
        self._expanded: dict[tuple[str, ...], frozenset[str]] = {}

        owner = cfg[c.TOKEN_OWNER]
        if not isinstance(owner, str) or not owner:
            raise ConfigurationError("GRIDAUTH_TOKEN_OWNER must be a non-empty string")
        self.token_principal: Principal = token_principal(owner)
        self.disabled_principal = Principal(kind="disabled", id="anonymous", owner=owner, scopes=frozenset({"*"}))
        self.token_digest: bytes | None = None
        if self.enabled:
            self.token_digest = bootstrap_digest(cfg, self.key_prefix)

        self.jwt: JWTVerifier | None = _build_jwt(app, self.expand)
        self.signatures: SignatureVerifier = _build_signatures(app)
        self.signature_environ = frozenset(self.signatures.environ_names)
        self.ratelimit: RateLimits | None = _build_ratelimit(app, self.storage)
        #: A key's own settings: environments, address allowlist, quota, expiry warning.
        self.policy = KeyPolicy.from_config(cfg, self.storage)

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

    def add_verifier(self, kind: str, function: VerifierFunction, *, header: str | None, prefix: str | None) -> None:
        """Accept an app's own credential kind (see :meth:`GridAuth.verifier`)."""
        check_custom_kind(kind, header, prefix, key_prefix=self.key_prefix)
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
            expanded = expand_scopes(key, self.implications)
            if len(self._expanded) < 10_000:
                self._expanded[key] = expanded
        return expanded

    def requirement(self, endpoint: str | None, method: str) -> Requirement:
        """What a route needs (``None`` when public), cached per endpoint and method."""
        cached = self._requirements.get((endpoint, method), _UNKNOWN)
        if cached is not _UNKNOWN:
            return cached  # type: ignore[no-any-return]
        if endpoint is None:
            # No route matched: authenticate, then let Flask answer 404/405. Not cached: the
            # method is the client's choice, and a cache keyed by it would grow without bound.
            return ((), (), None)
        result: Requirement = None
        if not _serves_static(endpoint):
            view = self.view_functions.get(endpoint)
            scopes = view_requirement(view, method, self.method_scopes, manage_scope=self.manage_scope)
            if scopes is not None:
                result = (*scopes, view_kinds(view))
        self._requirements[(endpoint, method)] = result
        return result

    # -- the request hook ----------------------------------------------------

    @property
    def error_handler(self) -> responses.ErrorHandler | None:
        """The ``@auth.error_handler`` function of the :class:`GridAuth` that built this state, if any."""
        return None if self.extension is None else self.extension.error_handler_function

    def before_request(self) -> None:
        """Authenticate the request and check its scopes, or raise the JSON error."""
        try:
            self._authorize()
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
        needs = self._requirements.get((endpoint, method), _UNKNOWN)
        if needs is _UNKNOWN:
            needs = self.requirement(endpoint, method)
        if needs is None:
            return
        principal = self.authenticate(req)
        setattr(g, G_ATTR, principal)
        policy = self.policy
        if principal.key is not None:
            policy.check_address(principal, req.remote_addr)  # before anything is counted
        if self.ratelimit is not None:
            # Counted before the scope check: a 403 is a request too, and carries the headers.
            try:
                self.ratelimit.hit(principal, endpoint)
            except RateLimited:
                policy.note_refused(principal)
                raise
        if principal.key is not None:
            policy.spend(principal, endpoint)  # after the rate limits: a refused request costs nothing
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
        """Add the rate-limit headers of a limited credential and the headers an error owes."""
        if self.ratelimit is not None:
            self.ratelimit.add_headers(response)
        principal = g.get(G_ATTR)
        if principal is not None and principal.key is not None:
            self.policy.add_headers(response, principal)
        return responses.after_request(response)

    def authenticate(self, req: Request | None = None) -> Principal:
        """The request's principal, or 401/429/503; ``req`` is the current request, if the caller has it."""
        if req is None:
            req = request._get_current_object()  # type: ignore[attr-defined]
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
        return self.verify(credential, precount=True)

    def verify(self, credential: Credential, *, precount: bool = False) -> Principal:
        """Run the verifier of ``credential``'s kind; failures are logged, counted and re-raised.

        ``precount`` marks the request hook's call: its rate limit may be counted
        by a Redis key look-up in the same round trip (see :mod:`flask_gridauth.ratelimit`).
        """
        verifier = self.verifiers.get(credential.kind)
        try:
            if verifier is None:
                raise Unauthorized()  # a kind this app does not accept (no JWT issuer, no bootstrap token)
            if precount and credential.kind == "api_key" and self.ratelimit is not None:
                plan = self.ratelimit.precount(request.endpoint)
                if plan is not None:
                    return self._verify_counted(credential.value, plan)
            return verifier.verify(credential, request)
        except Unauthorized as exc:
            self._failed(credential.kind, exc.message)
            raise
        except StorageError as exc:
            logger.error("storage unavailable during authentication: %s", exc)
            raise Unavailable() from None

    def _verify_counted(self, raw_key: str, plan: Precount) -> Principal:
        principal, counts = verify_api_key_counted(
            raw_key,
            pattern=self.key_pattern,
            storage=plan.storage,
            expand=self.expand,
            counter_prefix=plan.prefix,
            windows=plan.windows,
            environments=self.policy.environments,
        )
        if counts is not None and self.ratelimit is not None:
            self.ratelimit.note_counted(principal, counts)
        return principal

    def verify_bearer(self, value: str) -> Principal:
        """The principal of a bare credential (what would follow ``Bearer``), e.g. from a sign-in form."""
        try:
            token = bearer_token("Bearer " + value)
        except Unauthorized:
            self._failed("malformed", "malformed credential")
            raise
        credential = classify_token(token, self.key_prefix, self.verifiers.prefixes)
        return self.verify(credential)

    def _failed(self, kind: str, reason: str) -> None:
        remote = request.remote_addr
        logger.info("authentication failed: kind=%s reason=%s remote=%s", kind, reason, remote)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        signals.authentication_failed.send(app, kind=kind, reason=reason, remote_addr=remote)
        if self.ratelimit is not None:
            self.ratelimit.record_failure(remote)  # 429 instead of the 401 once past the limit


def _serves_static(endpoint: str) -> bool:
    """Whether ``endpoint`` is Flask's static-file route of the app or of a blueprint.

    Only a real static folder makes it public: a view that merely happens to be
    named ``static`` is a private route like any other.
    """
    name, sep, leaf = endpoint.rpartition(".")
    if leaf != "static":
        return False
    owner = current_app.blueprints.get(name) if sep else current_app
    return owner is not None and owner.has_static_folder


def _check_implications(table: object) -> dict[str, list[str]]:
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, list | tuple) and all(isinstance(x, str) for x in v)
        for k, v in table.items()
    ):
        raise ConfigurationError("GRIDAUTH_SCOPE_IMPLICATIONS must map scope names to lists of scope names")
    return {k: list(v) for k, v in table.items()}


def _check_method_scopes(table: object) -> dict[str, str] | None:
    if table is None:
        return None
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise ConfigurationError("GRIDAUTH_METHOD_SCOPES must map HTTP methods to scope names, or be None")
    return {k.upper(): v for k, v in table.items()}


def _build_jwt(app: Flask, expand: Callable[[Iterable[str]], frozenset[str]]) -> JWTVerifier | None:
    if not app.config[c.JWT_ISSUERS]:
        return None
    from .credentials.jwt import JWTVerifier

    return JWTVerifier.from_config(app.config, expand=expand)


def _build_signatures(app: Flask) -> SignatureVerifier:
    from .credentials.signature import SignatureVerifier

    return SignatureVerifier.from_config(app.config)


def _build_ratelimit(app: Flask, storage: Storage) -> RateLimits | None:
    if not app.config[c.RATELIMIT_ENABLED]:
        return None
    from .ratelimit import RateLimits

    return RateLimits.from_config(app.config, storage)


def get_state(app: Flask | None = None) -> GridAuthState:
    """The :class:`GridAuthState` of ``app`` (default: the current app)."""
    app = app or current_app
    try:
        return app.extensions["gridauth"]  # type: ignore[no-any-return]
    except KeyError:
        raise RuntimeError(
            "GridAuth is not initialised on this app. Did you forget GridAuth(app) or auth.init_app(app)?"
        ) from None


class GridAuth:
    """Authenticate every request of a Flask app.

    ``GridAuth(app)`` or ``auth = GridAuth()`` then ``auth.init_app(app)``. One
    ``GridAuth`` can serve several apps; each app gets its own storage.
    ``storage`` is a factory ``(app) -> Storage`` called once per app by
    ``init_app``, replacing the backend ``GRIDAUTH_STORAGE_URI`` would build.
    """

    def __init__(self, app: Flask | None = None, *, storage: StorageFactory | None = None) -> None:
        if isinstance(storage, Storage) or (storage is not None and not callable(storage)):
            # A single instance would be shared by every app this GridAuth serves (0.1 did that).
            raise TypeError(
                "GridAuth(storage=...) takes a factory called once per app, not a storage object:"
                " pass storage=lambda app: MyStorage(...) so that two apps never share one"
            )
        self._storage_factory = storage
        #: The function ``@error_handler`` registered, if any.
        self.error_handler_function: responses.ErrorHandler | None = None
        #: ``@verifier`` registrations: kind -> (function, header, prefix), for every app, now and later.
        self._verifiers: dict[str, tuple[VerifierFunction, str | None, str | None]] = {}
        self._states: weakref.WeakSet[GridAuthState] = weakref.WeakSet()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Set config defaults, build this app's state and register the request hooks."""
        if "gridauth" in app.extensions:
            raise RuntimeError("GridAuth is already initialised on this app; create one GridAuth per app.")
        c.apply_defaults(app)
        storage = None
        if self._storage_factory is not None:
            storage = self._storage_factory(app)
            if not isinstance(storage, Storage):
                raise TypeError(f"the storage factory returned {type(storage).__name__}, not a Storage")
        state = GridAuthState(app, storage, self)
        for kind, (function, header, prefix) in self._verifiers.items():
            state.add_verifier(kind, function, header=header, prefix=prefix)
        self._states.add(state)
        app.extensions["gridauth"] = state
        app.before_request(state.before_request)
        app.after_request(state.after_request)
        if GridAuthError not in app.error_handler_spec[None][None]:
            # Filed under no status: an app's handler for the status (401) or its werkzeug class comes first.
            app.register_error_handler(GridAuthError, responses.render_error)
        from .cli import gridauth_cli

        app.cli.add_command(gridauth_cli)
        if not state.enabled:
            message = (
                "flask_gridauth: AUTHENTICATION IS DISABLED"
                f" (GRIDAUTH_ENABLED=False or {app.config[c.AUTH_ENV]}=disabled):"
                " every request is let through with every scope. Never run like this where others can connect."
            )
            logger.warning(message)  # once: a RuntimeWarning as well printed it twice

    def error_handler(self, f: Callable[[ErrorInfo], R]) -> Callable[[ErrorInfo], R]:
        """Shape every error of the extension and its blueprints (as Flask-HTTPAuth's ``error_handler``).

        ``f`` receives an :class:`~flask_gridauth.errors.ErrorInfo` (``.status``,
        ``.code``, ``.message``, ``.error``) and returns a response value; a 200
        status becomes the error's. The headers the error owes
        (``WWW-Authenticate``, ``Retry-After``, ``X-RateLimit-*``) are added.
        An app's ``@app.errorhandler(401)`` still comes first.
        """
        self.error_handler_function = f
        return f

    def verifier(
        self, kind: str, *, header: str | None = None, prefix: str | None = None
    ) -> Callable[[VerifierFunction], VerifierFunction]:
        """Register a credential kind of the app's own: a function ``(value: str) -> Principal | None``.

        ``header="X-Partner-Token"`` takes that header's value; ``prefix="oat_"``
        takes a Bearer token (or ``x-api-key``) that starts with the prefix.
        ``None`` or :class:`~flask_gridauth.errors.Unauthorized` is a 401; the
        one-credential rule holds (the header beside any other credential is a
        401, and a failing credential never falls through). The returned
        :class:`~flask_gridauth.principal.Principal` takes ``kind`` as its kind,
        has its scopes expanded by the implication table and passes the same
        scope checks and rate limits (``GRIDAUTH_RATELIMIT_JWT``'s default) as
        every other kind. A bad name, header or prefix is a ``ValueError`` here.
        """

        def decorator(function: VerifierFunction) -> VerifierFunction:
            for state in list(self._states):
                state.add_verifier(kind, function, header=header, prefix=prefix)
            self._verifiers[kind] = (function, header, prefix)
            return function

        return decorator

    @property
    def keys(self) -> KeyManager:
        """The current app's :class:`~flask_gridauth.management.KeyManager`."""
        return get_state().keys

    def storage(self, app: Flask | None = None) -> Storage:
        """The storage backend of ``app`` (default: the current app)."""
        return get_state(app).storage

    def cost(self, units: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """A request to this route uses ``units`` of an API key's quota instead of one."""
        return cost(units)

    def limit(self, *limits: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
        """Add a route limit such as ``"10/minute"``, counted per credential."""
        from .ratelimit import mark_route_limit

        return mark_route_limit(*limits)


def _enable_cache(storage: Storage, ttl: Any) -> None:
    """Turn on the key cache of ``GRIDAUTH_CACHE_TTL`` where the backend can push invalidations."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl <= 86400:
        raise ConfigurationError("GRIDAUTH_CACHE_TTL must be a number of seconds from 0 (no cache) to 86400")
    if ttl and not storage.enable_cache(float(ttl)):
        logger.warning(
            "GRIDAUTH_CACHE_TTL is set, but %s cannot push changes: keys are not cached", type(storage).__name__
        )
