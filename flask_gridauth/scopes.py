"""Scope matching, expansion through the implication table, and the route decorators.

The decorators only mark the view; the ``before_request`` hook reads the marks
and refuses the request before the view runs. The wrapper re-checks, so a
marked view can never run unauthenticated on an app that forgot ``init_app``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar

from flask import current_app, g

from .context import G_PRINCIPAL, remember_error
from .errors import Forbidden, Unauthorized

P = ParamSpec("P")
R = TypeVar("R")

#: A scope: ``name`` or ``namespace:name``, where the last part may be ``*``.
SCOPE_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}(:[A-Za-z0-9_.-]{1,64})*(:\*)?")

#: Marks read by the before_request hook and by ``flask gridauth routes``.
PUBLIC_ATTR = "_gridauth_public"
ALL_ATTR = "_gridauth_all_scopes"
ANY_ATTR = "_gridauth_any_scopes"
AUTHENTICATED_ATTR = "_gridauth_authenticated"
KINDS_ATTR = "_gridauth_kinds"
#: A credential kind's name, as ``@require_kind`` takes it.
KIND_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
#: Marks a view that needs ``GRIDAUTH_MANAGE_SCOPE`` (read from the app, so it is not fixed at import).
MANAGE_ATTR = "_gridauth_manage"
#: What an undecorated route needs for a method ``GRIDAUTH_METHOD_SCOPES`` does not name.
UNLISTED_METHOD_SCOPE = "write"


def is_valid_scope(name: object) -> bool:
    """Whether ``name`` is a string of the scope grammar (``*`` alone is reserved)."""
    return isinstance(name, str) and len(name) <= 200 and SCOPE_RE.fullmatch(name) is not None


def scope_granted(held: frozenset[str], name: str) -> bool:
    """Whether the expanded scope set ``held`` grants ``name``.

    Matching is exact: ``read_admin`` never grants ``admin``. ``*`` grants
    everything; ``x:*`` grants every scope under ``x:``.
    """
    if name in held or "*" in held:
        return True
    namespace, sep, _ = name.rpartition(":")
    while sep:
        if namespace + ":*" in held:
            return True
        namespace, sep, _ = namespace.rpartition(":")
    return False


def expand_scopes(scopes: Iterable[str], implications: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """Close ``scopes`` under the implication table, also inside each namespace.

    With the default table ``admin`` gives ``write`` and ``read``, and
    ``x:admin`` gives ``x:write`` and ``x:read``.
    """
    result: set[str] = set()
    pending = list(scopes)
    while pending:
        scope = pending.pop()
        if scope in result:
            continue
        result.add(scope)
        namespace, sep, leaf = scope.rpartition(":")
        for implied in implications.get(leaf, ()):
            pending.append(f"{namespace}{sep}{implied}")
    return frozenset(result)


def _check(required_all: tuple[str, ...], required_any: tuple[str, ...]) -> None:
    if not current_app.extensions.get("gridauth"):
        raise RuntimeError("GridAuth is not initialised on this app: call GridAuth(app) or auth.init_app(app).")
    principal = g.get(G_PRINCIPAL)
    if principal is None:
        # The hook authenticates every request that reaches a scope-marked view (the marks
        # override @public), except an OPTIONS request, which it leaves to Flask. A view that
        # serves OPTIONS itself would then run unauthenticated: refuse instead.
        raise remember_error(Unauthorized())
    missing = [s for s in required_all if not principal.has_scope(s)]
    if missing:
        raise remember_error(Forbidden.missing(missing))
    if required_any and not any(principal.has_scope(s) for s in required_any):
        raise remember_error(Forbidden.missing(required_any))


def check_kind(principal: object, kinds: frozenset[str]) -> None:
    """403 unless ``principal`` is of one of ``kinds`` (disabled authentication lets every request through)."""
    kind = getattr(principal, "kind", None)
    if kind not in kinds and kind != "disabled":
        raise Forbidden("Credential kind not accepted here: use " + " or ".join(sorted(kinds)))


def require_kind(*kinds: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Accept only credentials of ``kinds`` (``"signature"``, ``"api_key"``, an app's own...); others get 403.

    It requires authentication; the route's scopes are checked as usual.
    Stacked, the kinds narrow: a request must be of a kind every decorator names.
    """
    if not kinds:
        raise TypeError("name at least one credential kind, such as 'signature'")
    for kind in kinds:
        if not isinstance(kind, str) or not KIND_NAME_RE.fullmatch(kind):
            raise ValueError(f"not a credential kind: {kind!r}")
    allowed = frozenset(kinds)

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        narrowed = allowed & getattr(view, KINDS_ATTR, allowed)

        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            _check((), ())
            try:
                check_kind(g.get(G_PRINCIPAL), narrowed)
            except Forbidden as exc:
                raise remember_error(exc) from None
            return current_app.ensure_sync(view)(*args, **kwargs)  # type: ignore[no-any-return]

        setattr(wrapper, KINDS_ATTR, narrowed)
        return wrapper

    return decorator


def view_kinds(view: Any) -> frozenset[str] | None:
    """The credential kinds ``@require_kind`` lets reach ``view``; ``None`` when any kind may."""
    kinds: frozenset[str] | None = getattr(view, KINDS_ATTR, None)
    return kinds


def _validate(scopes: tuple[str, ...]) -> None:
    if not scopes:
        raise TypeError("name at least one scope")
    for scope in scopes:
        if not is_valid_scope(scope):
            raise ValueError(f"not a valid scope name: {scope!r}")


def require_scope(*scopes: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Require every one of ``scopes``; missing any is 403."""
    _validate(scopes)

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            _check(scopes, ())
            return current_app.ensure_sync(view)(*args, **kwargs)  # type: ignore[no-any-return]

        # Stacked decorators add up: the mark lists every scope the wrappers check.
        setattr(wrapper, ALL_ATTR, getattr(view, ALL_ATTR, ()) + scopes)
        return wrapper

    return decorator


def require_any_scope(*scopes: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Require at least one of ``scopes``; holding none is 403."""
    _validate(scopes)

    def decorator(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            _check((), scopes)
            return current_app.ensure_sync(view)(*args, **kwargs)  # type: ignore[no-any-return]

        setattr(wrapper, ANY_ATTR, getattr(view, ANY_ATTR, ()) + scopes)
        return wrapper

    return decorator


def require_manage_scope(view: Callable[P, R]) -> Callable[P, R]:
    """Require the app's ``GRIDAUTH_MANAGE_SCOPE`` (default ``admin``): for every key-management route.

    The scope is read from the app's configuration, so one view serves apps
    that chose different scopes. Stacked with other scope decorators, all apply.
    """

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _check((str(current_app.config.get("GRIDAUTH_MANAGE_SCOPE") or "admin"),), ())
        return current_app.ensure_sync(view)(*args, **kwargs)  # type: ignore[no-any-return]

    setattr(wrapper, MANAGE_ATTR, True)
    return wrapper


def authenticated(view: Callable[P, R]) -> Callable[P, R]:
    """Require a valid credential but no particular scope (the method default is skipped)."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        _check((), ())
        return current_app.ensure_sync(view)(*args, **kwargs)  # type: ignore[no-any-return]

    setattr(wrapper, AUTHENTICATED_ATTR, True)
    return wrapper


def public(view: Callable[P, R]) -> Callable[P, R]:
    """Mark a view as reachable without any credential."""
    setattr(view, PUBLIC_ATTR, True)
    return view


def view_requirement(
    view: Any, method: str, method_scopes: Mapping[str, str] | None, *, manage_scope: str = "admin"
) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """What a view needs: ``None`` if public, else ``(all_of, any_of)``.

    A view without a scope decorator needs the scope its method maps to. A
    scope decorator wins over ``@public`` stacked with it, in either order:
    a contradiction fails closed. HEAD, which Flask serves with the GET view,
    needs GET's scope when the table does not name HEAD. A method the table
    does not name at all (``PROPFIND``, an ``OPTIONS`` the view serves itself)
    needs :data:`UNLISTED_METHOD_SCOPE`: a forgotten method fails closed.
    A view marked :func:`require_manage_scope` needs ``manage_scope``.
    """
    required_all: tuple[str, ...] = getattr(view, ALL_ATTR, ())
    if getattr(view, MANAGE_ATTR, False):
        required_all = (*required_all, manage_scope)
    required_any: tuple[str, ...] = getattr(view, ANY_ATTR, ())
    authenticated_only = getattr(view, AUTHENTICATED_ATTR, False)
    restricted = getattr(view, KINDS_ATTR, None) is not None
    if getattr(view, PUBLIC_ATTR, False) and not (required_all or required_any or authenticated_only or restricted):
        return None
    if not required_all and not required_any and method_scopes and not authenticated_only:
        if method in method_scopes:
            default = method_scopes[method]
        elif method == "HEAD" and "GET" in method_scopes:
            default = method_scopes["GET"]
        else:
            default = UNLISTED_METHOD_SCOPE
        if default:
            required_all = (default,)
    return required_all, required_any
