"""One app's configuration, read once by ``init_app``: each part of its state, built and checked here.

Every error is a :class:`~flask_gridauth.errors.ConfigurationError` at start-up,
never a surprise on the first request. :class:`~flask_gridauth.state.GridAuthState`
only puts the parts together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from flask import Flask

from . import config as c
from .bounded_cache import MakeCache
from .errors import ConfigurationError
from .scopes import is_valid_scope
from .storage import Storage, storage_from_uri

if TYPE_CHECKING:
    from .credentials.jwt import JWTVerifier
    from .credentials.signature import SignatureVerifier
    from .metrics import Metrics
    from .ratelimit import RateLimits

logger = logging.getLogger("flask_gridauth")


def check_manage_scope(value: object) -> str:
    """``GRIDAUTH_MANAGE_SCOPE``: one scope name, no wildcard."""
    if not isinstance(value, str) or not is_valid_scope(value) or value.endswith("*"):
        raise ConfigurationError("GRIDAUTH_MANAGE_SCOPE must be a scope name such as 'admin' or 'keys:manage'")
    return value


def build_storage(app: Flask, storage: Storage | None) -> Storage:
    """The app's storage: the factory's, else ``GRIDAUTH_STORAGE_URI``'s; its key cache per ``GRIDAUTH_CACHE_TTL``."""
    cfg = app.config
    timeout = cfg[c.STORAGE_TIMEOUT]
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise ConfigurationError("GRIDAUTH_STORAGE_TIMEOUT must be a positive number of seconds")
    storage = storage or storage_from_uri(cfg[c.STORAGE_URI], instance_path=app.instance_path, timeout=float(timeout))
    enable_cache(storage, cfg.get(c.CACHE_TTL, 0))
    return storage


def check_token_owner(value: object) -> str:
    """``GRIDAUTH_TOKEN_OWNER``: the owner the bootstrap token acts as."""
    if not isinstance(value, str) or not value:
        raise ConfigurationError("GRIDAUTH_TOKEN_OWNER must be a non-empty string")
    return value


def check_implications(table: object) -> dict[str, list[str]]:
    """``GRIDAUTH_SCOPE_IMPLICATIONS``: scope name to the scopes it implies."""
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, list | tuple) and all(isinstance(x, str) for x in v)
        for k, v in table.items()
    ):
        raise ConfigurationError("GRIDAUTH_SCOPE_IMPLICATIONS must map scope names to lists of scope names")
    return {k: list(v) for k, v in table.items()}


def check_method_scopes(table: object) -> dict[str, str] | None:
    """``GRIDAUTH_METHOD_SCOPES``: HTTP method to the scope it needs, or ``None``."""
    if table is None:
        return None
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise ConfigurationError("GRIDAUTH_METHOD_SCOPES must map HTTP methods to scope names, or be None")
    return {k.upper(): v for k, v in table.items()}


def build_jwt(
    app: Flask, expand: Callable[[Iterable[str]], frozenset[str]], make_cache: MakeCache
) -> JWTVerifier | None:
    """The JWT verifier of ``GRIDAUTH_JWT_ISSUERS``; ``None`` when no issuer is configured."""
    if not app.config[c.JWT_ISSUERS]:
        return None
    from .credentials.jwt import JWTVerifier

    return JWTVerifier.from_config(app.config, expand=expand, make_cache=make_cache)


def build_signatures(app: Flask, make_cache: MakeCache) -> SignatureVerifier:
    """The signed-request verifier of ``GRIDAUTH_SIGNATURE_*``."""
    from .credentials.signature import SignatureVerifier

    return SignatureVerifier.from_config(app.config, make_cache=make_cache)


def build_ratelimit(app: Flask, storage: Storage) -> RateLimits | None:
    """The rate limits of ``GRIDAUTH_RATELIMIT_*``; ``None`` when off."""
    if not app.config[c.RATELIMIT_ENABLED]:
        return None
    from .ratelimit import RateLimits

    return RateLimits.from_config(app.config, storage)


def build_metrics(enabled: object) -> Metrics | None:
    """The Prometheus metrics of ``GRIDAUTH_METRICS``; ``None`` when off."""
    if not isinstance(enabled, bool):
        raise ConfigurationError("GRIDAUTH_METRICS must be True or False")
    if not enabled:
        return None
    from .metrics import Metrics

    return Metrics()


def enable_cache(storage: Storage, ttl: Any) -> None:
    """Turn on the key cache of ``GRIDAUTH_CACHE_TTL`` where the backend can push invalidations."""
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 <= ttl <= 86400:
        raise ConfigurationError("GRIDAUTH_CACHE_TTL must be a number of seconds from 0 (no cache) to 86400")
    if ttl and not storage.enable_cache(float(ttl)):
        logger.warning(
            "GRIDAUTH_CACHE_TTL is set, but %s cannot push changes: keys are not cached", type(storage).__name__
        )
