"""Prometheus metrics of one app (``GRIDAUTH_METRICS``), served by ``GET /metrics``.

Each app has its own :class:`~prometheus_client.CollectorRegistry`, built only
when metrics are on; when they are off the request hook never calls in here.
No label carries a key id, an owner or anything a client chose beyond the
credential kind.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, g
from flask.blueprints import BlueprintSetupState

from .errors import ConfigurationError, GridAuthError, NotFound, RateLimited, Unavailable
from .openapi import describe
from .principal import G_ATTR, Principal
from .scopes import require_manage_scope

#: Where the request hook leaves the kind of a credential that failed (only when metrics are on).
FAILED_KIND_ATTR = "_gridauth_failed_kind"
#: Content type of the Prometheus text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The counters and histogram of one app, in a registry of its own."""

    def __init__(self) -> None:
        try:
            from prometheus_client import CollectorRegistry, Counter, Histogram
        except ImportError:
            raise ConfigurationError(
                "GRIDAUTH_METRICS = True needs prometheus_client: install the extra 'flask-gridauth[metrics]'"
            ) from None
        self.registry = CollectorRegistry(auto_describe=True)
        self.authentications = Counter(
            "gridauth_authentications_total",
            "Authentications by credential kind and outcome (success, failure).",
            ("kind", "outcome"),
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "gridauth_rate_limited_total",
            "Requests refused with 429, by credential kind.",
            ("kind",),
            registry=self.registry,
        )
        self.storage_errors = Counter(
            "gridauth_storage_errors_total",
            "Requests refused with 503 because storage did not answer.",
            registry=self.registry,
        )
        self.seconds = Histogram(
            "gridauth_authentication_seconds",
            "Time the request hook spent authenticating and authorizing a request.",
            registry=self.registry,
        )

    def failed(self, kind: str) -> None:
        """Count a credential of ``kind`` that did not verify."""
        self.authentications.labels(kind=kind, outcome="failure").inc()
        setattr(g, FAILED_KIND_ATTR, kind)

    def run(self, authorize: Callable[[], None], anonymous: Principal) -> None:
        """Run the request hook's ``authorize``, counting what it did and timing it."""
        start = time.perf_counter()
        error: GridAuthError | None = None
        try:
            authorize()
        except GridAuthError as exc:
            error = exc
            raise
        finally:
            principal = g.get(G_ATTR)
            kind = g.get(FAILED_KIND_ATTR)
            if principal is not None and principal is not anonymous:
                kind = principal.kind
                self.authentications.labels(kind=kind, outcome="success").inc()
            elif kind is None and error is not None and error.code == 401:
                kind = "none"  # no credential at all
                self.authentications.labels(kind=kind, outcome="failure").inc()
            if isinstance(error, RateLimited):
                self.rate_limited.labels(kind=kind or "none").inc()
            elif isinstance(error, Unavailable):
                self.storage_errors.inc()
            if kind is not None:
                self.seconds.observe(time.perf_counter() - start)

    def exposition(self) -> bytes:
        """The text format of this app's metrics (of every process in multi-process mode)."""
        from prometheus_client import CollectorRegistry, generate_latest

        registry: Any = self.registry
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)


def _metrics_view() -> Response:
    """This app's metrics in the Prometheus text format (404 unless ``GRIDAUTH_METRICS``)."""
    from .extension import get_state

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
    from .responses import FALLBACK_METHODS, _unmatched

    def add(state: BlueprintSetupState) -> None:
        if state.app.config.get("GRIDAUTH_METRICS") is True:
            state.add_url_rule("/metrics", endpoint="metrics", view_func=metrics_view, methods=["GET"])
        else:
            methods = list(FALLBACK_METHODS)
            state.add_url_rule("/metrics", "_unmatched", _unmatched, methods=methods, provide_automatic_options=False)

    blueprint.record(add)
