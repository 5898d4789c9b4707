"""Sphinx configuration for the flask_gridauth docs."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

project = "flask_gridauth"
author = "flask_gridauth developers"
copyright = "2026, flask_gridauth developers"  # noqa: A001 - Sphinx's name
extensions = ["sphinx.ext.autodoc"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
# Every reference must resolve (-W turns a miss into a failure). There is no network for
# intersphinx here, so names of other projects are accepted as plain text.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(flask|werkzeug|click|jwt|cryptography|limits|flask_limiter|redis|psycopg|psycopg_pool|blinker|prometheus_client|itsdangerous|httpx|requests)(\..*)?"),
    (r"py:.*", r"(collections\.abc|typing|datetime|fractions|re|os|ipaddress|enum|abc|dataclasses|types|pathlib|logging)\..*"),
    # ParamSpec/TypeVar names of typed decorators, and private helpers a guide names in passing.
    (r"py:.*", r"(~?P|~?R|flask_gridauth\..*\.(P|R)|.*GridAuthState.*|PrincipalKind|MUTABLE_FIELDS)"),
    (r"py:.*", r"flask_gridauth\.(credentials|ratelimit|extension|management|storage\.base)(\..*)?"),
    (r"py:class", r"(P|R|T|P\.args|P\.kwargs|Request|Response|Flask|Any|Callable|Iterable|Iterator|Mapping|Sequence|datetime|timedelta)"),
    # Type aliases of the verifier protocol (credentials.registry) and the error renderer.
    (r"py:class", r"(Credential|VerifierFunction|Expander|ErrorHandler|ErrorInfo|StorageFactory)"),
    # The audit log's classes, as annotations name them.
    (r"py:class", r"(AuditLog|AuditEvent|UsageCount|Actor)"),
]

# The OpenAPI document is generated from the code (the blueprint's URL map and the input
# schema), never kept as a copy: the build writes it beside the HTML as openapi.json.
_generated = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_generated")
os.makedirs(_generated, exist_ok=True)
from flask_gridauth.blueprint import default_document  # noqa: E402
from flask_gridauth.openapi import openapi_json  # noqa: E402

with open(os.path.join(_generated, "openapi.json"), "w", encoding="utf-8") as _fh:
    _fh.write(openapi_json(default_document()))
html_extra_path = ["_generated"]
