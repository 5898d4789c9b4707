"""``GET /metrics`` on the key-management blueprint: the web side of :mod:`flask_gridauth.metrics`."""

from __future__ import annotations

from flask import Blueprint, Response
from flask.blueprints import BlueprintSetupState

from .errors import NotFound
from .extension import get_state
from .metrics import CONTENT_TYPE
from .openapi import describe
from .responses import FALLBACK_METHODS, _unmatched
from .scopes import require_manage_scope


def _metrics_view() -> Response:
    """This app's metrics in the Prometheus text format (404 unless ``GRIDAUTH_METRICS``)."""
    metrics = get_state().metrics
    if metrics is None:
        raise NotFound()
    return Response(metrics.exposition(), content_type=CONTENT_TYPE)


metrics_view = describe(
    summary="This app's metrics, Prometheus text format",
    ok=(200, "", "Counters and histogram in the Prometheus text format (`text/plain`)."),
)(require_manage_scope(_metrics_view))


def register_metrics_route(blueprint: Blueprint) -> None:
    """Add ``GET /metrics`` to ``blueprint`` in the apps that set ``GRIDAUTH_METRICS`` before registering it.

    Elsewhere the path goes to the blueprint's fallback (a JSON 404), not in the OpenAPI document.
    """

    def add(state: BlueprintSetupState) -> None:
        if state.app.config.get("GRIDAUTH_METRICS") is True:
            state.add_url_rule("/metrics", endpoint="metrics", view_func=metrics_view, methods=["GET"])
        else:
            methods = list(FALLBACK_METHODS)
            state.add_url_rule("/metrics", "_unmatched", _unmatched, methods=methods, provide_automatic_options=False)

    blueprint.record(add)
