"""flask_gridauth: API keys, JWTs, signed requests and a bootstrap token for Flask.

Every name is imported on first use (PEP 562), so ``import flask_gridauth.client``
loads no Flask, no werkzeug, no storage driver and no dashboard.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .blueprint import api_keys_blueprint, make_api_keys_blueprint
    from .dashboard import dashboard_blueprint
    from .errors import (
        ConfigurationError,
        Conflict,
        ErrorInfo,
        Forbidden,
        GridAuthError,
        InvalidRequest,
        MethodNotAllowed,
        NotFound,
        PayloadTooLarge,
        QuotaExceeded,
        RateLimited,
        StorageError,
        Unauthorized,
        Unavailable,
    )
    from .extension import GridAuth, get_state
    from .limiter import gridauth_key
    from .management import KeyManager
    from .principal import Principal, current_principal
    from .records import KeyRecord
    from .scopes import public, require_any_scope, require_kind, require_manage_scope, require_scope
    from .signals import authentication_failed, key_created, key_leaked, key_revoked, key_rotated

#: Public name -> the module that defines it, imported when the name is first read.
_LAZY = {
    "ConfigurationError": ".errors",
    "Conflict": ".errors",
    "ErrorInfo": ".errors",
    "Forbidden": ".errors",
    "GridAuthError": ".errors",
    "InvalidRequest": ".errors",
    "MethodNotAllowed": ".errors",
    "NotFound": ".errors",
    "PayloadTooLarge": ".errors",
    "QuotaExceeded": ".errors",
    "RateLimited": ".errors",
    "StorageError": ".errors",
    "Unauthorized": ".errors",
    "Unavailable": ".errors",
    "api_keys_blueprint": ".blueprint",
    "make_api_keys_blueprint": ".blueprint",
    "dashboard_blueprint": ".dashboard",
    "GridAuth": ".extension",
    "get_state": ".extension",
    "gridauth_key": ".limiter",
    "KeyManager": ".management",
    "Principal": ".principal",
    "current_principal": ".principal",
    "KeyRecord": ".records",
    "public": ".scopes",
    "require_any_scope": ".scopes",
    "require_kind": ".scopes",
    "require_manage_scope": ".scopes",
    "require_scope": ".scopes",
    "authentication_failed": ".signals",
    "key_created": ".signals",
    "key_leaked": ".signals",
    "key_revoked": ".signals",
    "key_rotated": ".signals",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "Conflict",
    "ErrorInfo",
    "Forbidden",
    "GridAuth",
    "GridAuthError",
    "InvalidRequest",
    "MethodNotAllowed",
    "KeyManager",
    "KeyRecord",
    "NotFound",
    "PayloadTooLarge",
    "Principal",
    "QuotaExceeded",
    "RateLimited",
    "StorageError",
    "Unauthorized",
    "Unavailable",
    "api_keys_blueprint",
    "authentication_failed",
    "current_principal",
    "dashboard_blueprint",
    "get_state",
    "gridauth_key",
    "key_created",
    "key_leaked",
    "key_revoked",
    "key_rotated",
    "make_api_keys_blueprint",
    "public",
    "require_any_scope",
    "require_kind",
    "require_manage_scope",
    "require_scope",
]
