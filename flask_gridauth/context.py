"""What a request carries on ``flask.g`` for the extension: its principal, its windows, the error it met.

One module names these attributes so that the request hook, the decorators and
the error rendering share them without importing each other. The request hook
(:mod:`flask_gridauth.state`) is the only writer of the principal and of what
the limits and the quota decided; the steps it calls (verifiers, rate limits,
key policy) take and return values and touch none of these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from flask import g

if TYPE_CHECKING:
    from .errors import GridAuthError

E = TypeVar("E", bound="GridAuthError")

#: Attribute of ``flask.g`` that holds the request's principal.
G_PRINCIPAL = "_gridauth_principal"
#: Attribute of ``flask.g``: the error of ours this request met, whose headers every response owes.
G_ERROR = "_gridauth_error"
#: Attribute of ``flask.g``: the rate-limit ``Decision``, whose window the response's ``X-RateLimit-*`` headers show.
G_RATELIMIT = "_gridauth_ratelimit"
#: Attribute of ``flask.g``: what the key's quota paid for this request (``QuotaUse``), for ``X-Quota-*``.
G_QUOTA = "_gridauth_quota"


def remember_error(exc: E) -> E:
    """Note ``exc`` as this request's error (its owed headers reach whatever response shapes it)."""
    setattr(g, G_ERROR, exc)
    return exc
