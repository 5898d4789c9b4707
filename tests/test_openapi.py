"""The OpenAPI document: its copies agree, it is valid 3.1, and schemathesis finds the app keeps it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import checks as st_checks
from schemathesis.generation import GenerationMode

from flask_gridauth.openapi import openapi_document, openapi_json

from .conftest import TOKEN, bearer, build_app

ROOT = Path(__file__).resolve().parent.parent
API = "/api/v1"
#: Examples per operation and mode: enough to reach every branch, small enough to stay well under a minute.
MAX_EXAMPLES = 25

#: No 5xx, only documented statuses and content types, bodies and headers that match their schemas.
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_schema_conformance,
    st_checks.response_headers_conformance,
]


def test_packaged_and_docs_copies_match_the_builder() -> None:
    """flask_gridauth/openapi.json and docs/reference/openapi.json are what openapi.py builds."""
    expected = openapi_json()
    assert (ROOT / "flask_gridauth" / "openapi.json").read_text(encoding="utf-8") == expected
    assert (ROOT / "docs" / "reference" / "openapi.json").read_text(encoding="utf-8") == expected


def test_document_covers_every_blueprint_route() -> None:
    """Each blueprint route and method is in the document, and nothing else."""
    app = build_app("/nonexistent-instance")
    documented = {
        (path, method.upper())
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    routed = {
        (rule.rule[len(API) :].replace("<key_id>", "{key_id}"), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("gridauth.")
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_document_declares_security_and_errors() -> None:
    """Bearer and x-api-key schemes; public routes opt out; every private route documents 401 and 503."""
    document = openapi_document()
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearerAuth"] == {**schemes["bearerAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["apiKeyHeader"] == {"type": "apiKey", "in": "header", "name": "x-api-key"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            if path in ("/health", "/openapi.json", "/secret-scanning", "/api-keys/revoke-leaked"):
                assert operation["security"] == []
                continue
            for status in ("401", "429", "503"):
                assert operation["responses"][status] == {"$ref": f"#/components/responses/E{status}"}
            if method in ("post", "patch") and path != "/me":
                assert "422" in operation["responses"]


def test_document_is_valid_openapi_31() -> None:
    """schemathesis loads and validates the document."""
    schema = schemathesis.openapi.from_dict(openapi_document())
    schema.validate()
    assert len(list(schema.get_all_operations())) == 11


@pytest.fixture
def live_app(tmp_path: Any) -> Flask:
    """An app on SQLite with a few keys of two owners."""
    app = build_app(str(tmp_path), GRIDAUTH_STORAGE_URI=f"sqlite:///{tmp_path}/gridauth.db")
    client = app.test_client()
    for owner in ("alice", "bob"):
        response = client.post(
            f"{API}/api-keys", headers=bearer(TOKEN), json={"name": "seed", "scopes": ["read"], "owner": owner}
        )
        assert response.status_code == 201
    return app


def _fuzz(strategy: Any, checks: list[Any]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(headers=bearer(TOKEN), checks=checks)

    run()


def test_schemathesis_finds_no_breakage(live_app: Flask) -> None:
    """Generated requests (valid and invalid) get no 5xx, and valid ones a response that keeps the schema."""
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", live_app)
    existing = live_app.test_client().get(f"{API}/api-keys", headers=bearer(TOKEN)).get_json()["data"]
    key_ids = [k["id"] for k in existing]
    operations = [result.ok() for result in schema.get_all_operations()]
    # Loaded from the app, schemathesis leaves out the document's own route.
    assert len(operations) == 10
    for operation in operations:
        _fuzz(operation.as_strategy(GenerationMode.POSITIVE), CHECKS)
        if operation.body or operation.query or operation.path_parameters:
            # Invalid requests may miss the route (Flask's own 404): only insist on never a 5xx.
            _fuzz(operation.as_strategy(GenerationMode.NEGATIVE), [st_checks.not_a_server_error])
        if "{key_id}" in operation.path:
            for key_id in key_ids:
                _fuzz(operation.as_strategy(path_parameters={"key_id": key_id}), CHECKS)
    # The fuzzing really created keys and reached the stored ones.
    listed = live_app.test_client().get(f"{API}/api-keys?limit=100", headers=bearer(TOKEN)).get_json()
    assert len(listed["data"]) > len(key_ids)
    assert json.dumps(listed).count('"raw_key"') == 0
