"""What a request carries on ``flask.g`` for the extension: its principal and the error it met.

One module names these attributes so that the request hook, the decorators and
the error rendering share them without importing each other.
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


def remember_error(exc: E) -> E:
    """Note ``exc`` as this request's error (its owed headers reach whatever response shapes it)."""
    setattr(g, G_ERROR, exc)
    return exc
