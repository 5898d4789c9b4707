"""GET /metrics under gunicorn in prometheus_client's multi-process mode: every worker's counts, added up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from .conftest import BASE_CONFIG, HTTP_TIMEOUT, TOKEN, Gunicorn, bearer, create_key
from .test_workers import on_every_worker

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Gunicorn) -> tuple[int, Samples]:
    """GET /api/v1/metrics with the bootstrap token: the worker that answered, and the samples by name and labels."""
    response = requests.get(f"{server.url}/api/v1/metrics", headers=bearer(TOKEN), timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text[:300]
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return int(response.headers["X-Worker-Pid"]), samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value, 0 when absent."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_add_up_across_two_workers(gunicorn: Callable[..., Gunicorn], tmp_path: Path) -> None:
    """Requests spread over two workers are all in one scrape, whichever worker answers it, none twice."""
    multiproc = tmp_path / "prometheus-multiproc"
    multiproc.mkdir()
    config = {**BASE_CONFIG, "GRIDAUTH_STORAGE_URI": f"sqlite:///{tmp_path}/metrics.db", "GRIDAUTH_METRICS": True}
    server = gunicorn(config, workers=2, env={"PROMETHEUS_MULTIPROC_DIR": str(multiproc)})
    key = create_key(server.url, scopes=["read"])  # one bootstrap-token authentication
    good = on_every_worker(server, "/boards", bearer(key["raw_key"]))
    bad = on_every_worker(server, "/boards", bearer(key["raw_key"][:-6] + "zzzzzz"))
    assert {status for status, _ in good} == {200} and {status for status, _ in bad} == {401}
    assert {pid for _, pid in good} == {pid for _, pid in bad} == server.worker_pids()
    assert len(list(multiproc.glob("*.db"))) >= 2, "each worker writes its own files"

    tokens = 1
    answered: set[int] = set()
    # Scrape until both workers have answered one: each answer must hold both workers' counts.
    for _ in range(20):
        pid, samples = scrape(server)
        tokens += 1  # the scrape counts itself before the body is written
        answered.add(pid)
        assert value(samples, "gridauth_authentications_total", kind="api_key", outcome="success") == len(good)
        assert value(samples, "gridauth_authentications_total", kind="api_key", outcome="failure") == len(bad)
        assert value(samples, "gridauth_authentications_total", kind="token", outcome="success") == tokens
        assert value(samples, "gridauth_authentication_seconds_count") == len(good) + len(bad) + tokens
        assert value(samples, "gridauth_rate_limited_total", kind="api_key") == 0
        if answered == server.worker_pids():
            break
    assert answered == server.worker_pids(), "one worker answered every scrape"
