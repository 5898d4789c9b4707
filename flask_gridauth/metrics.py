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

from flask import g

from .errors import ConfigurationError, GridAuthError, RateLimited, Unavailable
from .principal import G_ATTR, Principal

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
