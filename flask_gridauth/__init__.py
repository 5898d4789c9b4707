"""flask_gridauth: API keys, JWTs, signed requests and a bootstrap token for Flask."""

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
