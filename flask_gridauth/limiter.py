"""A key function for apps that already count with flask-limiter's ``Limiter``.

``Limiter(key_func=gridauth_key)`` counts each credential on its own instead of
each client address, with flask-limiter's own decorators and storage. Our own
per-credential limits (``GRIDAUTH_RATELIMIT_*``) stay the fast path; this is for
an app whose limits are already written as flask-limiter decorators.
"""

from __future__ import annotations

from flask import g, request

from .principal import G_ATTR


def gridauth_key() -> str:
    """``<kind>:<id>`` of the request's principal; the client address on a public route.

    ``GridAuth`` must be initialised before the ``Limiter``, so its request hook
    has authenticated the request when flask-limiter asks for the key. Names
    are namespaced (``api_key:…``, ``address:…``) so a credential id can never
    share a counter with an address.
    """
    principal = g.get(G_ATTR)
    if principal is not None:
        return f"{principal.kind}:{principal.id}"
    return f"address:{request.remote_addr or 'unknown'}"
