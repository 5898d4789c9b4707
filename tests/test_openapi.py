"""The generated OpenAPI document: it matches the routes, is valid 3.1, and accepts exactly what the code accepts."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import checks as st_checks
from schemathesis.generation import GenerationMode

from flask_gridauth.blueprint import default_document

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
#: 422s on schema-valid input that no JSON Schema can express: a time in the past, a byte budget,
#: a cursor that was never issued, a public key that is not a prime-order point, or already registered.
SEMANTIC_422 = {
    ("expires_at", "expires_at must be in the future"),
    ("expires_at", "expires_at must be at most ten years away"),
    ("expires_at", "expires_at is out of range"),
    ("metadata", "metadata must be at most 4096 bytes of JSON"),
    ("cursor", "cursor is not valid"),
    ("public_key", "public_key is not a usable Ed25519 key (small order or non-canonical)"),
    ("public_key", "this public key is already registered"),
    # An IP or CIDR, and a refill no larger than the limit, are beyond a JSON Schema pattern's reach.
    ("allowed_ips", "allowed_ips must hold IPv4 or IPv6 CIDRs such as 203.0.113.0/24"),
    (
        "quota",
        'quota must be {"limit": 1..1000000000000, "refill": null or {"amount": 1..limit, "interval": "hour",'
        ' "day" or "month"}}',
    ),
}
#: What positive (schema-valid) input may get: success, or a refusal that is not about its shape.
POSITIVE_STATUSES = {200, 201, 202, 401, 403, 404, 409, 429}


def _public_key() -> str:
    raw = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def _validator(name: str) -> Any:
    return jsonschema_rs.Draft202012Validator(default_document()["components"]["schemas"][name], validate_formats=True)


def test_no_copy_of_the_document_is_kept() -> None:
    """The hand-written/packaged copies are gone: the document exists only as generated."""
    assert not (ROOT / "flask_gridauth" / "openapi.json").exists()
    assert not (ROOT / "docs" / "reference" / "openapi.json").exists()


def test_document_covers_every_blueprint_route() -> None:
    """Each blueprint route and method is in the document, and nothing else."""
    app = build_app("/nonexistent-instance")
    documented = {
        (path, method.upper())
        for path, item in default_document()["paths"].items()
        for method in item
        if method != "parameters"
    }
    routed = {
        (rule.rule[len(API) :].replace("<key_id>", "{key_id}"), method)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("gridauth.") and rule.endpoint != "gridauth._unmatched"
        for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}
    }
    assert documented == routed


def test_served_document_follows_the_mount_point(tmp_path: Path) -> None:
    """The served document names its mount point and lists the routes mounted there."""
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config.update(GRIDAUTH_API_TOKEN=TOKEN, GRIDAUTH_STORAGE_URI="memory://")
    from flask_gridauth import GridAuth, api_keys_blueprint

    GridAuth(app)
    app.register_blueprint(api_keys_blueprint, url_prefix="/v2/keys-api")
    served = app.test_client().get("/v2/keys-api/openapi.json").get_json()
    assert served["servers"] == [{"url": "/v2/keys-api"}]
    assert served["paths"] == default_document()["paths"]


def test_document_declares_security_and_errors() -> None:
    """Bearer and x-api-key schemes; public routes opt out; every private route documents 401, 429 and 503."""
    document = default_document()
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
            if "requestBody" in operation:
                assert "422" in operation["responses"]


def test_document_is_valid_openapi_31() -> None:
    """schemathesis loads and validates the document."""
    schema = schemathesis.openapi.from_dict(default_document())
    schema.validate()
    assert len(list(schema.get_all_operations())) == 15


ACCEPTED_BODIES: list[dict[str, Any]] = [
    {"name": "Clé de production ✓", "scopes": ["read"]},
    {"name": "n", "scopes": ["read"], "metadata": {f"key{i}": i for i in range(30)}},
    {"name": "  spaced  ", "scopes": ["read", "read", "x:*"], "environment": "test"},
    {"name": "日本語のキー", "scopes": ["read"], "rate_limit": "10/second;1000/day", "expires_in": 60.0},
    {"name": "n", "scopes": ["read"], "rate_limit": "5 per 10 seconds", "expires_at": "2030-01-01t00:00:00z"},
    {"name": "n", "scopes": ["read"], "rate_limit": None, "metadata": None, "owner": "someone else"},
    {"name": "signer", "scopes": ["read"], "type": "signing", "public_key": "__KEY__"},
]


@pytest.mark.parametrize("body", ACCEPTED_BODIES)
def test_bodies_the_code_accepts_validate(tmp_path: Path, body: dict[str, Any]) -> None:
    """Every body the code accepts (201) is valid under the document's CreateApiKey schema."""
    body = {k: (_public_key() if v == "__KEY__" else v) for k, v in body.items()}
    client = build_app(str(tmp_path)).test_client()
    response = client.post(f"{API}/api-keys", headers=bearer(TOKEN), json=body)
    assert response.status_code == 201, response.get_json()
    errors = [e.message for e in _validator("CreateApiKey").iter_errors(body)]
    assert errors == []


def test_bodies_the_code_refuses_are_invalid() -> None:
    """Each create body test_blueprint shows refused for its shape is invalid under the schema too."""
    from .test_blueprint import BAD_CREATE_BODIES

    def semantic(body: Any) -> bool:
        # Past or too distant times and the metadata byte budget: rules JSON Schema cannot say.
        if not isinstance(body, dict):
            return False
        return str(body.get("expires_at", "")).startswith(("2000-", "9999-")) or "big" in (body.get("metadata") or {})

    validator = _validator("CreateApiKey")
    shape_only = [body for body, _field in BAD_CREATE_BODIES if not semantic(body)]
    assert len(shape_only) > 40
    for body in shape_only:
        assert not validator.is_valid(body), body


def test_update_and_rotate_schemas_match(tmp_path: Path) -> None:
    """PATCH and rotate bodies: what the code refuses is invalid, what it accepts is valid."""
    client = build_app(str(tmp_path)).test_client()
    created = client.post(f"{API}/api-keys", headers=bearer(TOKEN), json={"name": "n", "scopes": ["read", "write"]})
    key_id = created.get_json()["id"]
    update = _validator("UpdateApiKey")
    for body, ok in [
        ({"name": "Clé ✓", "metadata": {f"k{i}": i for i in range(30)}}, True),
        ({"scopes": ["read"], "rate_limit": "1/year"}, True),
        ({"owner": "bob"}, False),
        ({"rate_limit": "1/0 second"}, False),
        ({"expires_in": 60}, False),
    ]:
        response = client.patch(f"{API}/api-keys/{key_id}", headers=bearer(TOKEN), json=body)
        assert (response.status_code == 200) is ok and update.is_valid(body) is ok, body
    rotate = _validator("RotateApiKey")
    assert rotate.is_valid({"grace_period": 0}) and not rotate.is_valid({"grace_period": -1})
    assert not rotate.is_valid({"grace_period": 60, "name": "x"})


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


def _accepted(response: Any) -> None:
    """A schema-valid request is not refused for its shape (422 only for the rules JSON Schema cannot say)."""
    if response.status_code == 422:
        body = response.json()
        assert (body.get("field"), body.get("message")) in SEMANTIC_422, body
    else:
        assert response.status_code in POSITIVE_STATUSES, (response.status_code, response.text)


@schemathesis.check
def negative_data_refused(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis' negative_data_rejection, with 413 counted as a refusal.

    Its list of refusal statuses has no 413, which our body-size guard answers when a
    negative body is over the cap (a long string in ``keys``, say): refused, and rightly.
    """
    if response.status_code == 413:
        return None
    return st_checks.negative_data_rejection(ctx, response, case)  # type: ignore[no-any-return]


def _fuzz(strategy: Any, checks: list[Any], *, positive: bool) -> None:
    @given(case=strategy)
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        response = case.call_and_validate(headers=bearer(TOKEN), checks=checks)
        if positive:
            _accepted(response)

    run()


def test_schemathesis_positive_and_negative(live_app: Flask) -> None:
    """Valid requests are accepted and keep the response schema; invalid ones are refused, never a 5xx."""
    schema = schemathesis.openapi.from_wsgi(f"{API}/openapi.json", live_app)
    existing = live_app.test_client().get(f"{API}/api-keys", headers=bearer(TOKEN)).get_json()["data"]
    key_ids = [k["id"] for k in existing]
    operations = [result.ok() for result in schema.get_all_operations()]
    # Loaded from the app, schemathesis leaves out the document's own route.
    assert len(operations) == 14
    negative = [st_checks.not_a_server_error, negative_data_refused]
    for operation in operations:
        _fuzz(operation.as_strategy(GenerationMode.POSITIVE), CHECKS, positive=True)
        if operation.body or operation.query or operation.path_parameters:
            _fuzz(operation.as_strategy(GenerationMode.NEGATIVE), negative, positive=False)
        if "{key_id}" in operation.path:
            for key_id in key_ids:
                _fuzz(operation.as_strategy(path_parameters={"key_id": key_id}), CHECKS, positive=True)
    # The fuzzing really created keys and reached the stored ones.
    listed = live_app.test_client().get(f"{API}/api-keys?limit=100", headers=bearer(TOKEN)).get_json()
    assert len(listed["data"]) > len(key_ids)
    # A listing never shows a secret (metadata may hold anything, so look at the key objects themselves).
    assert all("raw_key" not in key for key in listed["data"])
