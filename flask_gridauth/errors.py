"""The error hierarchy, the JSON error body, and the headers an error owes.

Each error derives from werkzeug's exception for its status
(:class:`Unauthorized` from ``werkzeug.exceptions.Unauthorized`` and so on), so
Flask finds an app's handler for it the way it finds any other: by status code
(``@app.errorhandler(401)``), by werkzeug class, or by our class. Messages are
fixed strings chosen here: nothing a caller sent is ever echoed back.

``code`` keeps werkzeug's meaning, the **int** status, on the classes and their
instances alike: Flask files handlers under ``type(exc).code`` and app handlers
written for werkzeug return ``..., exc.code``. The string error code of the body
is ``error_code``; :class:`ErrorInfo`, which ``@auth.error_handler`` receives, names
them ``status`` and ``code`` as the JSON body does. This module imports no Flask.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

from werkzeug import exceptions as wz
from werkzeug.sansio.response import Response as SansioResponse
from werkzeug.wrappers import Response


class GridAuthError(wz.HTTPException):
    """Base of every error this extension raises; never raised itself.

    It sets no ``code``: each subclass takes its status from its werkzeug base,
    and a handler registered for ``GridAuthError`` itself is filed by Flask for
    every status, not under 500.
    """

    #: The string error code of the JSON body (``"unauthorized"``...).
    error_code: ClassVar[str] = "error"

    def __init__(self, message: str | None = None, *, headers: Mapping[str, str] | None = None) -> None:
        # Keyword only: werkzeug's MethodNotAllowed takes ``valid_methods`` first.
        super().__init__(description=message or type(self).description)
        self.extra_headers: dict[str, str] = dict(headers or {})

    @property
    def status(self) -> int:
        """The HTTP status (the same int as werkzeug's ``code``)."""
        return int(self.code or 500)

    @property
    def message(self) -> str:
        """The human-readable message of the JSON body."""
        return self.description or type(self).description or ""

    def owed_headers(self) -> dict[str, str]:
        """Headers every response to this error carries, whoever shapes its body."""
        return dict(self.extra_headers)

    def body(self) -> dict[str, Any]:
        """The JSON body: ``object``, ``status``, ``code`` and ``message``."""
        return error_body(self.status, self.error_code, self.message)

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        """Render the body as JSON instead of werkzeug's HTML."""
        return json.dumps(self.body())

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        """JSON content type plus the headers this error owes."""
        return [("Content-Type", "application/json"), *self.owed_headers().items()]

    def get_response(self, environ: Any = None, scope: Any = None) -> SansioResponse:  # type: ignore[override]
        """A response for this error with the JSON body: used when no handler shapes it."""
        return Response(self.get_body(), self.status, self.get_headers())

    def __str__(self) -> str:
        return f"{self.status} {self.error_code}: {self.message}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.status} {self.error_code!r}>"


class Unauthorized(GridAuthError, wz.Unauthorized):
    """No credential, or one that did not verify (401); always carries ``WWW-Authenticate: Bearer``."""

    error_code = "unauthorized"
    description = "Authentication required"

    def owed_headers(self) -> dict[str, str]:
        """Every 401 names the scheme the caller should use."""
        return {**super().owed_headers(), "WWW-Authenticate": "Bearer"}


class Forbidden(GridAuthError, wz.Forbidden):
    """Authenticated, but missing a scope or of a kind the route refuses (403)."""

    error_code = "forbidden"
    description = "Forbidden"

    @classmethod
    def missing(cls, scopes: Iterable[str]) -> Forbidden:
        """The error for a principal that lacks ``scopes``."""
        return cls("Missing required scope: " + ", ".join(scopes))


class NotFound(GridAuthError, wz.NotFound):
    """A key that does not exist or belongs to another owner (404)."""

    error_code = "not_found"
    description = "Not found"


class MethodNotAllowed(GridAuthError, wz.MethodNotAllowed):
    """A method the route does not serve, under one of our blueprints (405); carries ``Allow``."""

    error_code = "method_not_allowed"
    description = "Method not allowed"

    def __init__(self, message: str | None = None, *, valid_methods: Iterable[str] = ()) -> None:
        methods = sorted(valid_methods)
        super().__init__(message, headers={"Allow": ", ".join(methods)} if methods else None)
        self.valid_methods = methods or None


class Conflict(GridAuthError, wz.Conflict):
    """The key changed meanwhile: already rotated, revoked, or of a kind the change does not apply to (409)."""

    error_code = "conflict"
    description = "Conflict"


class PayloadTooLarge(GridAuthError, wz.RequestEntityTooLarge):
    """A body larger than ``MAX_CONTENT_LENGTH`` (413)."""

    error_code = "payload_too_large"
    description = "Request body too large"


class InvalidRequest(GridAuthError, wz.UnprocessableEntity):
    """A bad body or query for the blueprint, naming the field (422)."""

    error_code = "invalid_request"
    description = "Invalid request"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field

    def body(self) -> dict[str, Any]:
        """Add the offending field to the body."""
        return error_body(self.status, self.error_code, self.message, self.field)


class RateLimited(GridAuthError, wz.TooManyRequests):
    """Over a rate limit (429); carries ``Retry-After`` and the ``X-RateLimit-*`` headers."""

    error_code = "rate_limited"
    description = "Rate limit exceeded"


class QuotaExceeded(RateLimited):
    """A key's usage quota is spent (429 ``quota_exceeded``); carries ``X-Quota-Limit`` and ``X-Quota-Remaining``.

    A subclass of :class:`RateLimited`, so a handler for 429 or for rate limits sees it too.
    """

    error_code = "quota_exceeded"
    description = "Usage quota exceeded"


class Unavailable(GridAuthError, wz.ServiceUnavailable):
    """Storage unreachable: the request is refused, never let through (503)."""

    error_code = "unavailable"
    description = "Service temporarily unavailable"


class ConfigurationError(ValueError):
    """A ``GRIDAUTH_*`` setting is wrong; raised at start-up, never per request."""


class StorageError(Exception):
    """Any failure of a storage backend; the request that meets it gets 503."""


def error_body(status: int, code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The one JSON error shape: ``{"object": "error", "status", "code", "message"}`` (+ ``field``)."""
    body: dict[str, Any] = {"object": "error", "status": status, "code": code, "message": message}
    if field is not None:
        body["field"] = field
    return body


#: werkzeug's errors that have a class of ours: one of ours is rendered in their place.
_OURS: dict[type[wz.HTTPException], type[GridAuthError]] = {
    wz.RequestEntityTooLarge: PayloadTooLarge,
    wz.NotFound: NotFound,
}


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorInfo:
    """An error as ``@auth.error_handler`` receives it: the fields of the JSON body, plus the error.

    ``status`` is the int HTTP status, ``code`` the string error code
    (``"unauthorized"``), ``message`` the fixed message, ``field`` the offending
    field of a 422 (else ``None``), ``error`` the exception itself and
    ``headers`` the headers the response will carry whatever the handler returns.
    """

    status: int
    code: str
    message: str
    error: wz.HTTPException = dataclasses.field(repr=False)
    field: str | None = None
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)

    @property
    def error_code(self) -> str:
        """The string error code, under the name the exceptions use."""
        return self.code

    @classmethod
    def of(cls, exc: wz.HTTPException) -> ErrorInfo:
        """What the body of ``exc`` says, ours or werkzeug's own (``BadRequest`` -> ``bad_request``)."""
        if not isinstance(exc, GridAuthError):
            ours = _OURS.get(type(exc))
            if isinstance(exc, wz.MethodNotAllowed):
                exc = MethodNotAllowed(valid_methods=exc.valid_methods or ())
            elif ours is not None:
                exc = ours()
        if isinstance(exc, GridAuthError):
            return cls(
                exc.status,
                exc.error_code,
                exc.message,
                exc,
                field=getattr(exc, "field", None),
                headers=exc.owed_headers(),
            )
        name = exc.name or "Error"
        code = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "error"
        return cls(exc.code or 500, code, name, exc)

    def body(self) -> dict[str, Any]:
        """The default JSON body for this error."""
        return error_body(self.status, self.code, self.message, self.field)
