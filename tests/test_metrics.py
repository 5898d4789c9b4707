"""GRIDAUTH_METRICS: GET /metrics in the Prometheus text format, per app, manage scope, no key id or owner."""

from __future__ import annotations

import builtins
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from flask_gridauth import get_state
from flask_gridauth.errors import ConfigurationError, StorageError
from flask_gridauth.storage import MemoryStorage

from .conftest import TOKEN, bearer, build_app, create_key

API = "/api/v1"


def metrics_app(tmp_path: Path, name: str = "a", **config: Any) -> Flask:
    """A test app with metrics on and API keys limited to one request a minute."""
    settings: dict[str, Any] = {
        "GRIDAUTH_METRICS": True,
        "GRIDAUTH_RATELIMIT_ENABLED": True,
        "GRIDAUTH_RATELIMIT_API_KEY": "1/minute",
    }
    settings.update(config)
    return build_app(str(tmp_path / name), **settings)


def scrape(app: Flask) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The body of GET /metrics (with the bootstrap token) and its samples by name and labels."""
    response = app.test_client().get(f"{API}/metrics", headers=bearer(TOKEN))
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return body, samples


def count(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """One sample's value, 0 when absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_counts_match_the_requests(tmp_path: Path) -> None:
    """A success, a failure and a 429 are each counted once under their kind, and timed."""
    app = metrics_app(tmp_path)
    other = metrics_app(tmp_path, "b")
    _, raw = create_key(app, ["read"], owner="owner-secret-name")
    _, foreign = create_key(other, ["read"])
    client = app.test_client()
    assert client.get("/items", headers=bearer(raw)).status_code == 200
    assert client.get("/items", headers=bearer(foreign)).status_code == 401
    assert client.get("/items", headers=bearer(raw)).status_code == 429

    body, samples = scrape(app)
    assert count(samples, "gridauth_authentications_total", kind="api_key", outcome="success") == 2
    assert count(samples, "gridauth_authentications_total", kind="api_key", outcome="failure") == 1
    assert count(samples, "gridauth_rate_limited_total", kind="api_key") == 1
    # The scrape itself is one bootstrap-token authentication, counted before the body is written.
    assert count(samples, "gridauth_authentications_total", kind="token", outcome="success") == 1
    assert count(samples, "gridauth_storage_errors_total") == 0
    assert count(samples, "gridauth_authentication_seconds_count") == 4
    assert count(samples, "gridauth_authentication_seconds_bucket", le="+Inf") == 4
    for secret in (raw, foreign, raw.rsplit("_", 1)[-1], "owner-secret-name", "alice"):
        assert secret not in body


def test_storage_error_counted(tmp_path: Path) -> None:
    """A 503 from storage failing during authentication is counted once."""
    app = metrics_app(tmp_path, GRIDAUTH_RATELIMIT_ENABLED=False)
    _, raw = create_key(app, ["read"])
    storage = get_state(app).storage
    assert isinstance(storage, MemoryStorage)
    original = storage.find

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise StorageError("down")

    storage.find = broken  # type: ignore[method-assign]
    assert app.test_client().get("/items", headers=bearer(raw)).status_code == 503
    storage.find = original  # type: ignore[method-assign]
    _, samples = scrape(app)
    assert count(samples, "gridauth_storage_errors_total") == 1


def test_needs_the_manage_scope(tmp_path: Path) -> None:
    """No credential is 401; a key without the manage scope is 403; the manage scope is 200."""
    app = metrics_app(tmp_path, GRIDAUTH_RATELIMIT_ENABLED=False)
    _, reader = create_key(app, ["read"])
    _, admin = create_key(app, ["admin"])
    client = app.test_client()
    assert client.get(f"{API}/metrics").status_code == 401
    refused = client.get(f"{API}/metrics", headers=bearer(reader))
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "forbidden"
    assert client.get(f"{API}/metrics", headers=bearer(admin)).status_code == 200


def test_off_by_default_is_404(tmp_path: Path) -> None:
    """Without GRIDAUTH_METRICS the path is a JSON 404 and the OpenAPI document leaves it out."""
    app = build_app(str(tmp_path / "off"))
    assert get_state(app).metrics is None
    client = app.test_client()
    response = client.get(f"{API}/metrics", headers=bearer(TOKEN))
    assert response.status_code == 404
    assert response.get_json()["code"] == "not_found"
    assert "/metrics" not in client.get(f"{API}/openapi.json").get_json()["paths"]


def test_openapi_lists_metrics_when_on(tmp_path: Path) -> None:
    """With GRIDAUTH_METRICS the OpenAPI document has GET /metrics, needing the manage scope."""
    app = metrics_app(tmp_path, GRIDAUTH_RATELIMIT_ENABLED=False)
    paths = app.test_client().get(f"{API}/openapi.json").get_json()["paths"]
    operation = paths["/metrics"]["get"]
    assert "admin" in operation["description"]
    assert {"200", "401", "403"} <= set(operation["responses"])


def test_two_apps_count_separately(tmp_path: Path) -> None:
    """Two apps in one process have their own registries and their own counts."""
    first = metrics_app(tmp_path, "one", GRIDAUTH_RATELIMIT_ENABLED=False)
    second = metrics_app(tmp_path, "two", GRIDAUTH_RATELIMIT_ENABLED=False)
    assert get_state(first).metrics is not get_state(second).metrics
    _, raw = create_key(first, ["read"])
    for _ in range(3):
        assert first.test_client().get("/items", headers=bearer(raw)).status_code == 200
    _, first_samples = scrape(first)
    _, second_samples = scrape(second)
    assert count(first_samples, "gridauth_authentications_total", kind="api_key", outcome="success") == 3
    assert count(second_samples, "gridauth_authentications_total", kind="api_key", outcome="success") == 0


def test_missing_prometheus_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """GRIDAUTH_METRICS=True without prometheus_client is a ConfigurationError naming the extra."""
    real_import = builtins.__import__

    def no_prometheus(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("prometheus_client"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_prometheus)
    with pytest.raises(ConfigurationError, match=r"\[metrics\]"):
        metrics_app(tmp_path, "missing")


def test_metrics_must_be_a_bool(tmp_path: Path) -> None:
    """A GRIDAUTH_METRICS that is not a bool is refused at init_app."""
    with pytest.raises(ConfigurationError, match="GRIDAUTH_METRICS"):
        metrics_app(tmp_path, "bad", GRIDAUTH_METRICS="yes")
