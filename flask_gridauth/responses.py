"""Rendering errors as responses: the one JSON renderer, ``@auth.error_handler``, and owed headers.

Flask picks the handler of an error (the app's ``@app.errorhandler(401)`` first,
then ours); whoever shapes the body, the headers the error owes
(``WWW-Authenticate`` on a 401, ``Retry-After`` on a 429, ``Allow`` on a 405) are
added by :func:`add_owed_headers` in the extension's ``after_request`` hook
(:meth:`flask_gridauth.state.GridAuthState.after_request`).

A blueprint of ours owns its JSON 404 and 405 through :func:`own_errors`:
Flask hands routing errors to app handlers only (no blueprint matched), so the
blueprint adds a fallback route under each of its path stems that raises our
``NotFound`` or ``MethodNotAllowed``, which its blueprint-level handler renders.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NoReturn

from flask import Blueprint, Response, current_app, jsonify, request
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException

from .context import remember_error
from .errors import ErrorInfo, MethodNotAllowed, NotFound
from .scopes import authenticated

logger = logging.getLogger("flask_gridauth")

#: Mark on the fallback view :func:`own_errors` adds: not a route of its own (hidden from listings).
UNMATCHED_ATTR = "_gridauth_unmatched"
#: Methods the fallback route answers; OPTIONS is left to Flask's automatic answer.
FALLBACK_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


class AnyMethod(set[str]):
    """The methods of a fallback rule: it lists :data:`FALLBACK_METHODS` but matches every method.

    So ``PROPFIND`` or ``FOO`` under our routes reaches the fallback and gets
    our JSON 405, not Flask's HTML one. Werkzeug's ``"--"`` probe (how it finds
    the allowed methods of a path) is not matched, so ``Allow`` headers and
    automatic ``OPTIONS`` answers stay as they were.
    """

    __slots__ = ()

    def __contains__(self, method: object) -> bool:
        return isinstance(method, str) and method != "--"


#: ``@auth.error_handler`` functions: they take an :class:`~flask_gridauth.errors.ErrorInfo`.
ErrorHandler = Callable[[ErrorInfo], Any]


def add_owed_headers(response: Response, status: int, headers: dict[str, str] | Any) -> None:
    """Add ``headers`` the response lacks, if it still answers with the error's ``status``.

    A handler that turns a 401 into, say, a redirect to a sign-in page answers a
    different status: a ``WWW-Authenticate`` would then be wrong, so none is added.
    """
    if response.status_code != status:
        return
    for name, value in headers.items():
        if name not in response.headers:
            response.headers[name] = value


def set_headers(response: Response, pairs: list[tuple[str, str]], names: frozenset[str]) -> None:
    """``response.headers.update(pairs)`` for headers of our own on every limited request, at a fraction of the cost.

    ``names`` holds every name ``pairs`` may carry, lower-cased, built once by
    the caller (a set built here per call measured ~1,500 instructions).
    ``Headers.update`` checks each value for newlines and scans every header
    once per name set: measured under callgrind, several thousand instructions
    per header, a large share of what a rate limit or quota adds to a request.
    Our names and values (digits) need no check, and a response rarely holds
    any of them already: then they are appended; else ``update`` replaces
    them as before.
    """
    items = response.headers._list
    for name, _ in items:
        if name.lower() in names:
            response.headers.update(pairs)
            return
    items.extend(pairs)


def render_error(exc: HTTPException) -> Response:
    """The response for an error of the extension or its blueprints.

    ``@auth.error_handler`` shapes it when the app registered one (a response
    value; a 200 status becomes the error's, as in Flask-HTTPAuth); else the
    default JSON body. Owed headers are added either way. A handler that raises
    gets the default body too (its exception's type is logged, never its text,
    which may hold a credential), so a 401 or 429 never turns into a 500.
    """
    info = ErrorInfo.of(exc)
    state = current_app.extensions.get("gridauth")
    handler: ErrorHandler | None = getattr(state, "error_handler", None)
    response: Response | None = None
    if handler is not None:
        try:
            response = current_app.make_response(current_app.ensure_sync(handler)(info))
        except Exception as failure:  # noqa: BLE001 - any failure of the app's handler
            logger.error("@auth.error_handler raised %s; answering with the default body", type(failure).__name__)
        else:
            if response.status_code == 200:
                response.status_code = info.status
    if response is None:
        response = jsonify(info.body())
        response.status_code = info.status
    add_owed_headers(response, info.status, info.headers)
    return response


def own_errors(blueprint: Blueprint) -> None:
    """Make every HTTP error under ``blueprint``'s routes ours: JSON, or ``@auth.error_handler``'s.

    Call it after the blueprint's last route: at registration it adds a fallback
    route under each path stem of those routes (``/api-keys``,
    ``/api-keys/<path>``...), so an unknown path or method there is routed to the
    blueprint and answered by its handler. An app's handler for the status
    (``@app.errorhandler(404)``) still comes first, as Flask orders handlers.
    """
    blueprint.register_error_handler(HTTPException, render_error)
    blueprint.record(_add_fallback_routes)


def _add_fallback_routes(setup: BlueprintSetupState) -> None:
    prefix = (setup.url_prefix or "").rstrip("/")
    endpoints = f"{setup.name_prefix}.{setup.name}.".lstrip(".")
    stems: set[str] = set()
    for rule in setup.app.url_map.iter_rules():
        if not rule.endpoint.startswith(endpoints) or not rule.rule.startswith(prefix + "/"):
            continue
        stem = rule.rule[len(prefix) :].split("/", 2)[1]
        if stem and "<" not in stem:
            stems.add("/" + stem)
    for stem in sorted(stems):
        for path in (stem, stem + "/<path:_rest>"):
            setup.add_url_rule(
                path, "_unmatched", _unmatched, methods=list(FALLBACK_METHODS), provide_automatic_options=False
            )
    for rule in setup.app.url_map.iter_rules(f"{endpoints}_unmatched"):
        if rule.methods is not None and not isinstance(rule.methods, AnyMethod):
            rule.methods = AnyMethod(rule.methods)  # checked at match time: any method reaches _unmatched


@authenticated
def _unmatched(**_: Any) -> NoReturn:
    """No route of the blueprint serves this path and method: 405 if another method would, else 404."""
    adapter = current_app.create_url_adapter(request)
    allowed: list[str] = []
    if adapter is not None:
        for method in (*FALLBACK_METHODS, "OPTIONS"):
            try:
                rule, _args = adapter.match(method=method, return_rule=True)
            except HTTPException:
                continue
            if not getattr(current_app.view_functions.get(rule.endpoint), UNMATCHED_ATTR, False):
                allowed.append(method)
    raise remember_error(MethodNotAllowed(valid_methods=allowed) if allowed else NotFound())


setattr(_unmatched, UNMATCHED_ATTR, True)
