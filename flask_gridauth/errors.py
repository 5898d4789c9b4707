"""The error hierarchy and its JSON rendering.

Every error is a werkzeug ``HTTPException`` that renders itself as JSON, so it
answers correctly with or without an error handler, and an app's own handlers
for 401 or 403 still take precedence. Messages are fixed strings chosen here:
nothing a caller sent is ever echoed back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import werkzeug.exceptions
from werkzeug.exceptions import HTTPException
from werkzeug.sansio.response import Response as SansioResponse
from werkzeug.wrappers import Response


class GridAuthError(HTTPException):
    """Base of every error this extension raises; never raised itself."""

    code: int = 500
    error_code: str = "error"
    description: str = "Error"

    def __init__(self, message: str | None = None, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.description)
        self.extra_headers: dict[str, str] = dict(headers or {})

    @property
    def message(self) -> str:
        """The human-readable message of the JSON body."""
        return self.description or type(self).description

    def body(self) -> dict[str, Any]:
        """The JSON body: ``object``, ``status``, ``code`` and ``message``."""
        return {
            "object": "error",
            "status": self.code,
            "code": self.error_code,
            "message": self.message,
        }

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        """Render the body as JSON instead of werkzeug's HTML."""
        return json.dumps(self.body())

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        """JSON content type plus any headers this error carries."""
        return [("Content-Type", "application/json"), *self.extra_headers.items()]

    def get_response(self, environ: Any = None, scope: Any = None) -> SansioResponse:  # type: ignore[override]
        """A response object for this error, with the JSON body and headers."""
        return Response(self.get_body(), self.code, self.get_headers())

    def __str__(self) -> str:
        return f"{self.code} {self.error_code}: {self.message}"


class Unauthorized(GridAuthError):
    """No credential, or one that did not verify (401)."""

    code = 401
    error_code = "unauthorized"
    description = "Authentication required"

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        """Every 401 names the scheme the caller should use."""
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", "Bearer")]


class Forbidden(GridAuthError):
    """Authenticated, but missing a scope (403)."""

    code = 403
    error_code = "forbidden"
    description = "Forbidden"

    @classmethod
    def missing(cls, scopes: Iterable[str]) -> Forbidden:
        """The error for a principal that lacks ``scopes``."""
        return cls("Missing required scope: " + ", ".join(scopes))


class NotFound(GridAuthError):
    """A key that does not exist or belongs to another owner (404)."""

    code = 404
    error_code = "not_found"
    description = "Not found"


class MethodNotAllowed(GridAuthError):
    """A method the route does not serve, under one of our blueprints (405); carries ``Allow``."""

    code = 405
    error_code = "method_not_allowed"
    description = "Method not allowed"

    def __init__(self, message: str | None = None, *, valid_methods: Iterable[str] = ()) -> None:
        super().__init__(message, headers={"Allow": ", ".join(sorted(valid_methods))} if valid_methods else None)


class Conflict(GridAuthError, werkzeug.exceptions.Conflict):
    """The key changed meanwhile: already rotated, revoked, or of a kind the change does not apply to (409)."""

    code = 409
    error_code = "conflict"
    description = "Conflict"


class PayloadTooLarge(GridAuthError):
    """A body larger than ``MAX_CONTENT_LENGTH`` (413)."""

    code = 413
    error_code = "payload_too_large"
    description = "Request body too large"


class InvalidRequest(GridAuthError):
    """A bad body or query for the blueprint, naming the field (422)."""

    code = 422
    error_code = "invalid_request"
    description = "Invalid request"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def body(self) -> dict[str, Any]:
        """Add the offending field to the body."""
        data = super().body()
        if self.field is not None:
            data["field"] = self.field
        return data


class RateLimited(GridAuthError):
    """Over a rate limit (429); carries ``Retry-After``."""

    code = 429
    error_code = "rate_limited"
    description = "Rate limit exceeded"


class Unavailable(GridAuthError):
    """Storage unreachable: the request is refused, never let through (503)."""

    code = 503
    error_code = "unavailable"
    description = "Service temporarily unavailable"


class ConfigurationError(ValueError):
    """A ``GRIDAUTH_*`` setting is wrong; raised at start-up, never per request."""


class StorageError(Exception):
    """Any failure of a storage backend; the request that meets it gets 503."""
